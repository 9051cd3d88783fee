#!/bin/bash
# One lent-GPU session (device tool): unpack the Opus corpus subset, train the flagship and the framework
# retrains side by side on the one GPU for a fixed training-time budget, check GPU inference, and pack the
# results into $OUT within the tool's limits. Run from the repository root with .whl, .gpu and one model
# folder carried:  BUDGET=390 bash benchmarks/gpu/session.sh
set -u
export PYTHONUNBUFFERED=1
B=${BUDGET:-390}
DEVICE=${DEVICE:-cuda}
FLAG_BATCH=${FLAG_BATCH:-256}
RETRAINS=${RETRAINS:-apc_fwd-s apc_bwd-s mpc-s wav2vec2-s temporal_order-s cpc-s npc-s}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
. benchmarks/gpu/prelude.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > /tmp/logs/nvidia-smi.txt 2>&1
cat /tmp/logs/unpack.log 2>/dev/null
train() {  # recipe name steps batch threads keep_every
  timeout $((B + 120)) python3 -m audioemb.train "$1" --corpus /tmp/corpus --out "/tmp/runs/$2" --device "$DEVICE" \
    --set name="$2" --set steps="$3" --set batch_size="$4" --set threads="$5" --set keep_every="$6" \
    --set time_budget_s="$B" --set ckpt_every=1000 --set log_every=100 > "/tmp/runs/$2.log" 2>&1
  echo "$2 exit $? at $(( $(date +%s) - T0 )) s" >> /tmp/logs/exits.txt
}
train byol_frames-m byol_frames-m.debian2 16000 "$FLAG_BATCH" 4 1000 &
for r in $RETRAINS; do
  b=$(python3 -c "import json; print(json.load(open('audioemb/train/recipes/$r.json'))['batch_size'])")
  train $r ${r}.debian2 20000 "$b" 1 0 &
done
sleep 20
python3 benchmarks/gpu/embed_check.py "${MODEL:-pretrained/byol-s.debian2}" "$OUT/embed_check.json" > /tmp/logs/embed_check.log 2>&1
nvidia-smi > /tmp/logs/nvidia-smi-busy.txt 2>&1
wait
for f in /tmp/runs/*.log; do n=$(basename "$f" .log); cp "$f" "/tmp/runs/$n/train.log" 2>/dev/null; done
cat /tmp/logs/exits.txt; tail -n 3 /tmp/runs/*.log
python3 benchmarks/gpu/collect.py /tmp/runs "$OUT"
tar -cf "$OUT/logs.tar" -C /tmp logs
echo "session done in $(( $(date +%s) - T0 )) s"
