#!/usr/bin/env bash
# One GPU-host session for issue 2, run from the repository root:
#   OUT=/tmp/out FMNIST_ROOT=.carry/fmnist TRAIN_BUDGET_S=300 bash engines/tools/gpu-train-and-parity.sh
#   OUT=/tmp/out FMNIST_ROOT=.carry/fmnist RUNS=1 EPOCHS=28 EVAL_EVERY=4 LIMIT=420 SKIP_PYTEST=1 bash ...
# 1. without EPOCHS: measures training img/s with two processes sharing the GPU and sizes
#    the epochs to TRAIN_BUDGET_S; 2. trains swin-fmnist RUNS (default 2) times with the same
#    seed, concurrently (reproducibility check); 3. meanwhile exports Swin-T (224) and SwinV2-B window 16 (256)
#    with seeded random weights from CUDA models, fold and unfold, and writes their parity
#    reports (ORT on the CPU). Results: $OUT/gpu-results.tar.gz and $OUT/log.
# The last line is the verdict ("gpu-train-and-parity: PASS" or "... FAIL: <steps>"); the exit
# status is non-zero when the CUDA pytest, a parity export or a training run failed.
set -o pipefail
failed=()
OUT=${OUT:-/tmp/out}
BUDGET=${TRAIN_BUDGET_S:-300}
SEED=${SEED:-0}
DATA=${FMNIST_ROOT:-/usr/share/datasets/fashion-mnist}
DATA=$(realpath "$DATA"); export FMNIST_ROOT=$DATA
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
if [ -z "${SKIP_PYTEST:-}" ]; then
  $PY -m pytest -q tests/test_export_parity.py -k cuda > $W/pytest-cuda.txt 2>&1 || failed+=("pytest-cuda: exit $?")
  tail -3 $W/pytest-cuda.txt
fi

# SKIP_PARITY=1: training only (the exports compete with it for the GPU and the call's 10 minutes).
[ -n "${SKIP_PARITY:-}" ] || (
  for a in swin_tiny swinv2_base_w16; do
    timeout 420 $PY -m swintools.parity --arch $a --random-seed 0 --device cuda --export --onnx-dir $W/par/$a \
      --random 3 --real 8 --ort-threads 8 || echo "PARITY FAILED: $a"
  done
) > $W/parity.log 2>&1 &
PAR=$!

T0=$(date +%s)
COMPILE=${COMPILE---compile}
RUNS=${RUNS:-2}          # 2: the same seed twice, concurrently (reproducibility); 1: one run at full speed
EVAL_EVERY=${EVAL_EVERY:-1}
if [ -z "${EPOCHS:-}" ]; then
$PY -m swintools.train_fmnist --bench 30 $COMPILE --data-root "$DATA" > $W/bench1.json 2> $W/bench1.err &
B1=$!
$PY -m swintools.train_fmnist --bench 30 $COMPILE --data-root "$DATA" > $W/bench2.json 2> $W/bench2.err
wait $B1
if ! grep -q bench_img_per_s $W/bench1.json || ! grep -q bench_img_per_s $W/bench2.json; then
  tail -5 $W/bench*.err; echo "compiled bench failed: training eagerly"; COMPILE=""
  echo '{"bench_img_per_s": 1200}' > $W/bench1.json; cp $W/bench1.json $W/bench2.json
fi
echo "bench took $(( $(date +%s) - T0 )) s"; cat $W/bench1.json $W/bench2.json
EPOCHS=$($PY - "$W" "$BUDGET" <<'PYEOF'
import json, sys
w, budget = sys.argv[1], float(sys.argv[2])
ips = min(json.loads(open(f'{w}/bench{i}.json').read().strip().splitlines()[-1])['bench_img_per_s'] for i in (1, 2))
print(max(3, min(60, int(budget * ips / 60000))))
PYEOF
)
elif [ -n "$COMPILE" ]; then
  # Warm torch.compile's cache in one short run first. On 2026-12-05 (H200) two runs that
  # compiled cold and concurrently were both stuck at ~13-18% after epoch 1 (stopped by
  # --min-epoch1-acc); right after a 10-step warm-up the same command trained to 91.6/91.8%.
  $PY -m swintools.train_fmnist --bench 10 $COMPILE --data-root "$DATA" > $W/bench-warm.json 2> $W/bench-warm.err \
    || failed+=("compile warm-up: exit $?")
  echo "compile warm-up took $(( $(date +%s) - T0 )) s"
fi
# Hard stop so the results are always packed: budget + compile + final evaluation.
LIMIT=${LIMIT:-$(( BUDGET + 90 ))}
echo "training 2 x seed $SEED for $EPOCHS epochs (budget ${BUDGET}s, hard limit ${LIMIT}s) $COMPILE"
TRAIN="$PY -m swintools.train_fmnist --seed $SEED --epochs $EPOCHS --eval-every $EVAL_EVERY $COMPILE --data-root $DATA"
if [ "$RUNS" = 2 ]; then
  timeout $LIMIT $TRAIN --out $W/runA > $W/runA.out 2>&1 &
  A=$!
fi
timeout $LIMIT $TRAIN --out $W/runB 2>&1 | tee $W/runB.out || failed+=("runB: exit $?")
if [ "$RUNS" = 2 ]; then wait $A; rc=$?; echo "runA exit $rc"; tail -3 $W/runA.out; [ $rc -eq 0 ] || failed+=("runA: exit $rc"); fi
if [ -z "${SKIP_PARITY:-}" ]; then
  echo "waiting for parity"; wait $PAR; cat $W/parity.log
  grep -q "PARITY FAILED" $W/parity.log && failed+=("parity: $(grep -c 'PARITY FAILED' $W/parity.log) arch(s)")
fi
cd $W && for r in runA runB; do
  for f in swin-fmnist.safetensors train.json train.log; do [ -f $r/$f ] && cp $r/$f "$OUT/$r.$f"; done
done
tar czf "$OUT/gpu-results.tar.gz" --ignore-failed-read --exclude="*.safetensors" pytest-cuda.txt bench* runA runB runA.out parity.log $(ls par/*/*.parity.* par/*/*.export.json 2>/dev/null)
ls -la "$OUT"
if [ ${#failed[@]} -eq 0 ]; then echo "gpu-train-and-parity: PASS"; else echo "gpu-train-and-parity: FAIL: ${failed[*]}"; exit 1; fi
