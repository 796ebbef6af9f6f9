#!/usr/bin/env bash
# perf_analyzer (Triton's load generator) against swin-serve's KServe v2 endpoints,
# next to our own CLI at the same concurrency, against a server that is already running.
#
#   bench/perf-analyzer.sh [HTTP_PORT] [GRPC_PORT] [MODEL] [CONCURRENCY_LIST] [IMAGES_DIR]
#   bench/perf-analyzer.sh 8080 8081 swin-fmnist 1,2,4,8 bench/.images/fmnist
#
# Where perf_analyzer comes from: the PyPI package `perf-analyzer` is a 2 KB placeholder
# (0.1.0, no binary). The binary ships in tritonclient's manylinux wheels up to 2.41.0
# (tritonclient-2.41.0.data/data/bin/perf_analyzer); it links libcudart.so.12 (taken from
# the nvidia-cuda-runtime-cu12 wheel; no GPU is needed) and libb64 (Debian: libb64-0d).
# Both wheels are fetched with pip into bench/.tools/ (git-ignored) on first use.
#
# What each tool sends: perf_analyzer sends a random uint8 [1,256,256,3] tensor to
# ModelInfer / POST /v2/models/<m>/infer (no image decoding on the server); our CLI sends
# encoded images (PNG/JPEG) to POST /classify and swin.v1 Predict (decode + resize on the
# server). Outputs go to bench/.out/perf-analyzer/.
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP_PORT=${1:-8080}
GRPC_PORT=${2:-8081}
MODEL=${3:-swin-fmnist}
CONC=${4:-1,2,4,8}
IMAGES=${5:-bench/.images/fmnist}
WINDOW_MS=${WINDOW_MS:-5000}
PY=${PY:-python3}
TOOLS=bench/.tools
OUT=bench/.out/perf-analyzer
PA_DIR=$TOOLS/tritonclient-2.41.0.data/data/bin
PA=$PA_DIR/perf_analyzer
CUDART_DIR=$TOOLS/nvidia/cuda_runtime/lib

if [ ! -x "$PA" ] || [ ! -e "$CUDART_DIR/libcudart.so.12" ]; then
  mkdir -p "$TOOLS/wheels"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux1_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$TOOLS/wheels" tritonclient==2.41.0 nvidia-cuda-runtime-cu12==12.4.127
  (cd "$TOOLS" && unzip -q -o wheels/tritonclient-2.41.0-*.whl 'tritonclient-2.41.0.data/data/bin/perf_analyzer' \
    && unzip -q -o wheels/nvidia_cuda_runtime_cu12-*.whl 'nvidia/cuda_runtime/lib/*')
  chmod +x "$PA"
fi
if ! ldconfig -p | grep -q libb64.so.0d; then
  apt-get install -y -qq --no-install-recommends libb64-0d >/dev/null
fi
export LD_LIBRARY_PATH="$CUDART_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$OUT"

for proto in http grpc; do
  port=$HTTP_PORT; [ "$proto" = grpc ] && port=$GRPC_PORT
  echo "== perf_analyzer -i $proto (KServe v2 ModelInfer, random uint8 tensor), batch 1"
  printf '%-12s %10s %10s %10s %10s %10s\n' concurrency 'infer/s' 'p50 ms' 'p90 ms' 'p95 ms' 'p99 ms'
  for c in ${CONC//,/ }; do
    "$PA" -m "$MODEL" -u "127.0.0.1:$port" -i "$proto" -b 1 --input-data random --concurrency-range "$c:$c" \
      --measurement-interval "$WINDOW_MS" --stability-percentage 50 --max-trials 4 \
      -f "$OUT/pa-$proto-c$c.csv" >"$OUT/pa-$proto-c$c.log" 2>&1 || { echo "perf_analyzer failed, see $OUT/pa-$proto-c$c.log"; tail -3 "$OUT/pa-$proto-c$c.log"; continue; }
    # -f CSV: Concurrency,Inferences/Second,...,p50 latency,p90 latency,p95 latency,p99 latency,... (microseconds)
    awk -F, -v c="$c" 'NR==1{for(i=1;i<=NF;i++)h[$i]=i} NR==2{printf "%-12s %10.1f %10.2f %10.2f %10.2f %10.2f\n", c, $h["Inferences/Second"], $h["p50 latency"]/1000, $h["p90 latency"]/1000, $h["p95 latency"]/1000, $h["p99 latency"]/1000}' "$OUT/pa-$proto-c$c.csv"
  done
done

echo "== npm run bench (encoded images from $IMAGES), same concurrency"
npm run -s bench -- --url "http://127.0.0.1:$HTTP_PORT" --images "$IMAGES" --model "$MODEL" --concurrency "$CONC" \
  --warmup 2s --duration "$((WINDOW_MS / 1000))s" --label "bench http /classify" --json "$OUT/bench-http.json" --csv "$OUT/bench-http.csv"
npm run -s bench -- --api grpc --grpc-target "127.0.0.1:$GRPC_PORT" --images "$IMAGES" --model "$MODEL" --concurrency "$CONC" \
  --warmup 2s --duration "$((WINDOW_MS / 1000))s" --label "bench grpc Predict" --json "$OUT/bench-grpc.json" --csv "$OUT/bench-grpc.csv"
