#!/usr/bin/env bash
# The CPU acceptance check: swin-serve's /classify throughput against raw onnxruntime-node
# at the same batch size, same graph, same threads (swin-fmnist by default).
#
#   bench/cpu-service-vs-ort.sh [BATCH] [ROUNDS] [SECONDS]      # defaults 8 3 15
#
# Each round measures raw onnxruntime (bench/ort-raw.ts: session.run on uint8 batches
# back to back) and then the service (node dist/src/main.js with --max-batch-size BATCH,
# closed loop at 2 x BATCH requests in flight, Fashion-MNIST PNGs through /classify), so
# both see the same background load; the ratio is per round and the median is reported.
# Results: bench/.out/cpu/ (JSON per measurement, summary.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-8}
ROUNDS=${2:-3}
SECONDS_PER=${3:-15}
MODEL=${MODEL:-swin-fmnist}
PORT=${PORT:-28280}
GRPC_PORT=${GRPC_PORT:-28281}
OUTD=bench/.out/cpu
mkdir -p "$OUTD"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
[ -d bench/.images/fmnist ] || npm run -s bench:images
npm run -s build >/dev/null 2>&1 || echo "npm run build failed; using the dist/ that is there"
VARIANT=$(node -e "console.log(require('./engines/models/$MODEL/model.json').default_variant)")
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
echo "model $MODEL ($VARIANT), batch $BATCH, $ROUNDS rounds of ${SECONDS_PER}s each"

: > "$OUTD/summary.txt"
for r in $(seq 1 "$ROUNDS"); do
  load0=$(cut -d' ' -f1 /proc/loadavg)
  npx tsx bench/ort-raw.ts --model "engines/models/$MODEL" --variant "$VARIANT" --batches "$BATCH" \
    --seconds "$SECONDS_PER" --json "$OUTD/ort-raw-r$r.json" >/dev/null
  raw=$(node -e "console.log(require('./$OUTD/ort-raw-r$r.json').rows[0].images_per_s)")

  node dist/src/main.js --models "$MODEL" --backend onnxruntime --variant "$VARIANT" --max-batch-size "$BATCH" \
    --host 127.0.0.1 --port "$PORT" --grpc-port "$GRPC_PORT" --log-level warn > "$OUTD/service-r$r.log" 2>&1 &
  svc=$!
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 1; done
  node dist/src/bench/cli.js --url "http://127.0.0.1:$PORT" --images bench/.images/fmnist --model "$MODEL" \
    --concurrency "$((2 * BATCH))" --warmup 3s --duration "${SECONDS_PER}s" --progress 0 \
    --label "swin-serve /classify cpu round $r" --json "$OUTD/service-r$r.json" >/dev/null
  kill "$svc"; wait "$svc" 2>/dev/null || true
  svc_rps=$(node -e "console.log(require('./$OUTD/service-r$r.json').steps[0].throughput_rps)")
  load1=$(cut -d' ' -f1 /proc/loadavg)
  echo "round $r: raw onnxruntime $raw images/s, service $svc_rps images/s, ratio $(node -e "console.log(($svc_rps / $raw).toFixed(3))") (load average $load0 -> $load1)" \
    | tee -a "$OUTD/summary.txt"
done
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
  const ratios = lines.map((l) => Number(/ratio ([\d.]+)/.exec(l)[1])).sort((a, b) => a - b);
  console.log(`median ratio service / raw onnxruntime: ${ratios[Math.floor(ratios.length / 2)].toFixed(3)} (${ratios.length} rounds)`);
' "$OUTD/summary.txt" | tee -a "$OUTD/summary.txt"
