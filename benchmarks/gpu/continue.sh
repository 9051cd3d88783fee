#!/bin/bash
# Continue a shipped model on a lent GPU (device tool), in the background, while later calls carry other
# files (benchmarks/gpu/ort_cuda.sh waits for these trainings, then packs them with collect.py). Carried:
# .whl, .gpu (the Opus corpus subset, docs/gpu.md) and .init/MODEL (its config.json and model.safetensors).
#   BUDGET=280 INIT=.init/byol_frames-m.debian2 bash benchmarks/gpu/continue.sh "fw1 1.0" "fw3 3.0"
# Each argument is "TAG FRAME_WEIGHT": one training of byol_frames-m per argument, side by side on the GPU,
# started with setsid so that it outlives this call; training time is BUDGET seconds (time_budget_s).
set -u
export PYTHONUNBUFFERED=1
B=${BUDGET:-280}
INIT=${INIT:-.init/byol_frames-m.debian2}
. benchmarks/gpu/prelude.sh
rm -rf /tmp/init && cp -r "$INIT" /tmp/init && INIT=/tmp/init  # the carried copy does not stay for later calls
name=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['name'])" "$INIT/config.json")
for spec in "$@"; do
  set -- $spec
  setsid nohup timeout $((B + 180)) python3 -m audioemb.train byol_frames-m --corpus /tmp/corpus \
    --out "/tmp/runs/$name-$1" --init "$INIT" --device cuda --set name="$name-$1" \
    --set objective_params.frame_weight="$2" --set steps=20000 --set batch_size=256 --set threads=4 \
    --set keep_every=1000 --set time_budget_s="$B" --set ckpt_every=1000 --set log_every=100 \
    > "/tmp/runs/$name-$1.log" 2>&1 < /dev/null &
done
sleep 40
tail -n 2 /tmp/runs/*.log
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
