#!/bin/bash
# Train variants of one recipe side by side on a lent GPU (device tool) for a fixed training-time budget, in
# one call, and pack them into $OUT within the tool's limits. Carried: .whl (soundfile, cffi, pycparser, soxr
# wheels) and .gpu (the Opus corpus subset, docs/gpu.md). Each argument is "TAG SETTINGS...": one training
# named NAME-TAG with those extra `audioemb train` arguments.
#   BUDGET=400 RECIPE=byol_frames-m NAME=byol_frames-m.debian3 bash benchmarks/gpu/variants.sh \
#     "fine --set encoder.readout=concat_fine" "ctl --set encoder.readout=concat"
set -u
export PYTHONUNBUFFERED=1
B=${BUDGET:-400}
RECIPE=${RECIPE:-byol_frames-m}
NAME=${NAME:-$RECIPE}
THREADS=${THREADS:-5}
OUT=${OUT:-/tmp/out}
T0=$(date +%s)
mkdir -p "$OUT"
. benchmarks/gpu/prelude.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > /tmp/logs/nvidia-smi.txt 2>&1
for spec in "$@"; do
  tag=${spec%% *}; extra=${spec#"$tag"}
  # shellcheck disable=SC2086  # the extra settings are split into arguments on purpose
  timeout $((B + 150)) python3 -m audioemb.train "$RECIPE" --corpus /tmp/corpus --out "/tmp/runs/$NAME-$tag" \
    --device "${DEVICE:-cuda}" --set name="$NAME-$tag" --set steps=40000 --set batch_size="${BATCH:-256}" \
    --set threads="$THREADS" --set keep_every=1000 --set time_budget_s="$B" --set ckpt_every=1000 \
    --set log_every=100 $extra \
    > "/tmp/runs/$NAME-$tag.log" 2>&1 < /dev/null &
done
sleep 60
nvidia-smi > /tmp/logs/nvidia-smi-busy.txt 2>&1
wait
echo "trainings done at $(( $(date +%s) - T0 )) s"
for f in /tmp/runs/*.log; do n=$(basename "$f" .log); cp "$f" "/tmp/runs/$n/train.log" 2>/dev/null; done
tail -n 3 /tmp/runs/*.log
python3 benchmarks/gpu/collect.py /tmp/runs "$OUT"
tar -cf "$OUT/logs.tar" -C /tmp logs
echo "done in $(( $(date +%s) - T0 )) s"
