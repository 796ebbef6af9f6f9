#!/usr/bin/env bash
# One call on a GPU host: build the CUDA engine, run the kernel checks and whole-model parity,
# then (with "bench") the benchmark. Results land in $OUT (default build/gpu-out).
#   bash test/gpu/run_gpu_host.sh check        # build + kernels + parity + fmnist accuracy
#   bash test/gpu/run_gpu_host.sh bench        # build + benchmark
#   bash test/gpu/run_gpu_host.sh all
# Every step runs even when an earlier one failed (except after a failed build); the last line
# is the verdict, "run_gpu_host: PASS ..." or "run_gpu_host: FAIL ...", and the exit status is
# 0 only when every step passed.
set -uo pipefail
MODE=${1:-check}
case "$MODE" in check | bench | all) ;; *) echo "usage: $0 check|bench|all" >&2; exit 2 ;; esac
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SWIN_GPU_REPORT="$OUT" TORCHINDUCTOR_COMPILE_THREADS=16
PY=${PYTHON:-python3}
T0=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - T0 ))s] $*"; }
passed=() failed=()
verdict() {
  if [ ${#failed[@]} -eq 0 ]; then
    echo "run_gpu_host: PASS $MODE (${passed[*]})"
    exit 0
  fi
  echo "run_gpu_host: FAIL $MODE: ${#failed[@]} failed (${failed[*]}); passed: ${passed[*]:-none}"
  exit 1
}
# step NAME LOG LINES CMD...: runs CMD with its output in LOG, shows the last LINES lines and
# records the step by CMD's own exit status (not that of a pipe's last command).
step() {
  local name=$1 log=$2 lines=$3 rc
  shift 3
  "$@" >"$log" 2>&1
  rc=$?
  tail -n "$lines" "$log"
  if [ $rc -eq 0 ]; then passed+=("$name"); else failed+=("$name: exit $rc"); fi
  return $rc
}

stamp "host"
step host "$OUT/host.log" 20 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader && nvcc --version | tail -2 && $PY -c 'import torch, timm; print(\"torch\", torch.__version__, \"timm\", timm.__version__)'"

stamp "build"
mkdir -p build
# addon/cuda reads engine files with nlohmann/json: the host's package where it has one,
# else the headers bench/gpu-prepare-carry.sh puts in .carry/bench-node (carry that folder).
if [ -z "${NLOHMANN_JSON_ROOT:-}" ] && [ -f .carry/bench-node/nlohmann-json/include/nlohmann/json.hpp ]; then
  export NLOHMANN_JSON_ROOT=$PWD/.carry/bench-node/nlohmann-json
fi
if ! step build "$OUT/build.log" 40 timeout 300 bash -c 'cmake -S addon/cuda -B build/cuda -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_BUILD_TYPE=Release && cmake --build build/cuda -j16 -- VERBOSE=0 && ls -la build/cuda/*.so build/cuda/*.a'; then
  verdict   # nothing below can run without the engine
fi

if [ "$MODE" = check ] || [ "$MODE" = all ]; then
  stamp "kernel checks"
  step kernels "$OUT/kernels.log" 25 timeout 240 $PY -m pytest -q -p no:cacheprovider test/gpu/test_kernels.py
  cp "$OUT/report.md" "$OUT/kernels.md" 2>/dev/null
  stamp "parity + fmnist accuracy"
  step parity "$OUT/parity.log" 40 timeout 420 $PY -m pytest -q -p no:cacheprovider test/gpu/test_parity.py test/gpu/test_fmnist_accuracy.py test/gpu/test_engine_api.py
  cp "$OUT/report.md" "$OUT/parity.md" 2>/dev/null
  cp "$OUT/report.json" "$OUT/parity.json" 2>/dev/null
fi
if [ "$MODE" = bench ] || [ "$MODE" = all ]; then
  stamp "benchmark"
  step bench "$OUT/bench.log" 80 timeout "${BENCH_TIMEOUT:-480}" $PY engines/bench_gpu.py --out "$OUT/bench.json" ${BENCH_ARGS:-}
fi
stamp "done"
verdict
