#!/usr/bin/env bash
# One call on a GPU host: build the CUDA engine, run the kernel checks and whole-model parity,
# then (with "bench") the benchmark. Results land in $OUT (default build/gpu-out).
#   bash test/gpu/run_gpu_host.sh check        # build + kernels + parity + fmnist accuracy
#   bash test/gpu/run_gpu_host.sh bench        # build + benchmark
#   bash test/gpu/run_gpu_host.sh all
set -o pipefail
MODE=${1:-check}
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SWIN_GPU_REPORT="$OUT" TORCHINDUCTOR_COMPILE_THREADS=16
PY=${PYTHON:-python3}
T0=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - T0 ))s] $*"; }

stamp "host"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
nvcc --version | tail -2
$PY -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__)'

stamp "build"
mkdir -p build
if ! timeout 300 bash -c 'cmake -S addon/cuda -B build/cuda -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_BUILD_TYPE=Release >build/cmake.log 2>&1 && cmake --build build/cuda -j16 -- VERBOSE=0 2>&1 | tail -20'; then
  echo "cmake build failed:"; tail -40 build/cmake.log; exit 1
fi
ls -la build/cuda/*.so build/cuda/*.a || exit 1

if [ "$MODE" = check ] || [ "$MODE" = all ]; then
  stamp "kernel checks"
  timeout 240 $PY -m pytest -q -p no:cacheprovider test/gpu/test_kernels.py 2>&1 | tail -25
  cp "$OUT/report.md" "$OUT/kernels.md" 2>/dev/null
  stamp "parity + fmnist accuracy"
  timeout 420 $PY -m pytest -q -p no:cacheprovider test/gpu/test_parity.py test/gpu/test_fmnist_accuracy.py test/gpu/test_engine_api.py 2>&1 | tail -40
  cp "$OUT/report.md" "$OUT/parity.md" 2>/dev/null
  cp "$OUT/report.json" "$OUT/parity.json" 2>/dev/null
fi
if [ "$MODE" = bench ] || [ "$MODE" = all ]; then
  stamp "benchmark"
  timeout ${BENCH_TIMEOUT:-480} $PY engines/bench_gpu.py --out "$OUT/bench.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -80
fi
stamp "done"
