#!/usr/bin/env bash
# One GPU-host session for issue 2, run from the repository root:
#   OUT=/tmp/out FMNIST_ROOT=.carry/fmnist TRAIN_BUDGET_S=300 bash engines/tools/gpu-train-and-parity.sh
# 1. measures training img/s with two processes sharing the GPU and sizes the epochs to
#    TRAIN_BUDGET_S; 2. trains swin-fmnist twice with the same seed, concurrently
#    (reproducibility check); 3. meanwhile exports Swin-T (224) and SwinV2-B window 16 (256)
#    with seeded random weights from CUDA models, fold and unfold, and writes their parity
#    reports (ORT on the CPU). Results: $OUT/gpu-results.tar.gz and $OUT/log.
set -o pipefail
OUT=${OUT:-/tmp/out}
BUDGET=${TRAIN_BUDGET_S:-300}
SEED=${SEED:-0}
DATA=${FMNIST_ROOT:-/usr/share/datasets/fashion-mnist}
DATA=$(realpath "$DATA")
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
PY=${PYTHON:-python3}
if ! $PY -c 'import timm' 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site ../.whl/timm-*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c 'import torch, timm, onnx, onnxruntime; print("torch", torch.__version__, "timm", timm.__version__, "onnx", onnx.__version__, "ort", onnxruntime.__version__)'
W=/tmp/swin-gpu; rm -rf $W; mkdir -p $W/par
$PY -m pytest -q tests/test_export_parity.py -k cuda 2>&1 | tail -3 | tee $W/pytest-cuda.txt

(
  for a in swin_tiny swinv2_base_w16; do
    $PY -m swintools.parity --arch $a --random-seed 0 --device cuda --export --onnx-dir $W/par/$a \
      --random 3 --real 8 --ort-threads 8 || echo "PARITY FAILED: $a"
  done
) > $W/parity.log 2>&1 &
PAR=$!

$PY -m swintools.train_fmnist --bench 40 --data-root "$DATA" > $W/bench1.json &
B1=$!
$PY -m swintools.train_fmnist --bench 40 --data-root "$DATA" > $W/bench2.json
wait $B1
cat $W/bench1.json $W/bench2.json
EPOCHS=${EPOCHS:-$($PY - "$W" "$BUDGET" <<'PYEOF'
import json, sys
w, budget = sys.argv[1], float(sys.argv[2])
ips = min(json.loads(open(f'{w}/bench{i}.json').read().strip().splitlines()[-1])['bench_img_per_s'] for i in (1, 2))
print(max(3, min(60, int(budget * ips / 60000))))
PYEOF
)}
echo "training 2 x seed $SEED for $EPOCHS epochs (budget ${BUDGET}s)"
$PY -m swintools.train_fmnist --seed $SEED --epochs $EPOCHS --data-root "$DATA" --out $W/runA > $W/runA.out 2>&1 &
A=$!
$PY -m swintools.train_fmnist --seed $SEED --epochs $EPOCHS --data-root "$DATA" --out $W/runB 2>&1 | tee $W/runB.out
wait $A; echo "runA exit $?"; tail -3 $W/runA.out
echo "waiting for parity"; wait $PAR; cat $W/parity.log
cd $W && tar czf "$OUT/gpu-results.tar.gz" pytest-cuda.txt bench*.json runA runB parity.log par/*/*.parity.* par/*/*.export.json
ls -la "$OUT"
