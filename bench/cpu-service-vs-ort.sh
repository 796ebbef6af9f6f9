#!/usr/bin/env bash
# The CPU acceptance check: swin-serve's /classify throughput against raw onnxruntime-node
# at the same batch size, same graph, same threads (swin-fmnist by default).
#
#   bench/cpu-service-vs-ort.sh [BATCH] [ROUNDS] [SECONDS]      # defaults 8 3 15
#
# Each round measures raw onnxruntime (bench/ort-raw.ts: session.run on uint8 batches
# back to back), then the service (node dist/src/main.js with --max-batch-size BATCH,
# closed loop at 2 x BATCH requests in flight, Fashion-MNIST PNGs through /classify), then
# raw onnxruntime again; the round's ratio is the service over the mean of the two raw
# runs, so a drifting background load hits both sides; the median over rounds is reported.
# On a shared machine, NICE (default -10, needs root; 0 to leave it) gives the measured
# processes priority over other work, the same for both sides. Where other work still
# competes, the process with more runnable threads (the service: ORT's pool plus sharp,
# HTTP and the client) gets a larger share of the cores, so the script also reports
# images per CPU-second of each side (service: its process's CPU time over warm-up +
# window, divided by throughput x (warm-up + window) images; the client is not counted).
# Results: bench/.out/cpu-intra<INTRA>/ (JSON per measurement, summary.txt). INTRA (default 0)
# sets onnxruntime's intra-op threads on both sides; SERVICE_INTRA (default INTRA) the
# service's alone, and the service's other settings come from the environment
# (INSTANCES=2 SERVICE_INTRA=1: two single-threaded sessions against raw's one).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-8}
ROUNDS=${2:-3}
SECONDS_PER=${3:-15}
MODEL=${MODEL:-swin-fmnist}
PORT=${PORT:-28280}
GRPC_PORT=${GRPC_PORT:-28281}
NICE=${NICE:--10}
INTRA=${INTRA:-0}   # onnxruntime intra-op threads on both sides (0 = one per physical core)
SERVICE_INTRA=${SERVICE_INTRA:-$INTRA}
N="nice -n $NICE"
OUTD=bench/.out/cpu-intra$INTRA-svc$SERVICE_INTRA-inst${INSTANCES:-default}
mkdir -p "$OUTD"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
[ -d bench/.images/fmnist ] || npm run -s bench:images
npx tsc -p tsconfig.json >/dev/null 2>&1 || echo "tsc failed; using the dist/ that is there"   # service and load generator (bench/loadgen)
VARIANT=$(node -e "console.log(require('./engines/models/$MODEL/model.json').default_variant)")
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
echo "model $MODEL ($VARIANT), batch $BATCH, onnxruntime intra-op threads $INTRA (service: $SERVICE_INTRA, instances ${INSTANCES:-from model.json}), $ROUNDS rounds of ${SECONDS_PER}s each"

rm -f "$OUTD"/*.json
: > "$OUTD/summary.txt"
for r in $(seq 1 "$ROUNDS"); do
  load0=$(cut -d' ' -f1 /proc/loadavg)
  raw_run() {
    $N node --import tsx bench/ort-raw.ts --model "engines/models/$MODEL" --variant "$VARIANT" --batches "$BATCH" --intra-op-threads "$INTRA" \
      --seconds "$SECONDS_PER" --json "$OUTD/ort-raw-r$r-$1.json" >/dev/null
    node -e "console.log(require('./$OUTD/ort-raw-r$r-$1.json').rows[0].images_per_s)"
  }
  raw_a=$(raw_run a)

  $N node dist/src/main.js --models "$MODEL" --backend onnxruntime --variant "$VARIANT" --max-batch-size "$BATCH" --ort-intra-op-threads "$SERVICE_INTRA" \
    --host 127.0.0.1 --port "$PORT" --grpc-port "$GRPC_PORT" --log-level warn > "$OUTD/service-r$r.log" 2>&1 &
  svc=$!
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 1; done
  cpu0=$(awk '{print $14 + $15}' "/proc/$svc/stat")
  $N node dist/bench/loadgen/cli.js --url "http://127.0.0.1:$PORT" --images bench/.images/fmnist --model "$MODEL" \
    --concurrency "$((2 * BATCH))" --warmup 3s --duration "${SECONDS_PER}s" --progress 0 \
    --label "swin-serve /classify cpu round $r" --json "$OUTD/service-r$r.json" >/dev/null
  cpu1=$(awk '{print $14 + $15}' "/proc/$svc/stat")
  kill "$svc"; wait "$svc" 2>/dev/null || true
  svc_rps=$(node -e "console.log(require('./$OUTD/service-r$r.json').steps[0].throughput_rps)")
  tick=$(getconf CLK_TCK)
  svc_eff=$(node -e "console.log(($svc_rps * (3 + $SECONDS_PER) / (($cpu1 - $cpu0) / $tick)).toFixed(2))")
  raw_b=$(raw_run b)
  raw_eff=$(node -e "const a=require('./$OUTD/ort-raw-r$r-a.json').rows[0], b=require('./$OUTD/ort-raw-r$r-b.json').rows[0]; console.log(((a.images_per_cpu_s + b.images_per_cpu_s) / 2).toFixed(2))")
  load1=$(cut -d' ' -f1 /proc/loadavg)
  echo "round $r: raw onnxruntime $raw_a / $raw_b images/s, service $svc_rps images/s, ratio $(node -e "console.log((2 * $svc_rps / ($raw_a + $raw_b)).toFixed(3))"); images per CPU-second: raw $raw_eff, service $svc_eff, ratio $(node -e "console.log(($svc_eff / $raw_eff).toFixed(3))") (load average $load0 -> $load1)" \
    | tee -a "$OUTD/summary.txt"
done
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
  const med = (re) => { const v = lines.map((l) => Number(re.exec(l)[1])).sort((a, b) => a - b); return v[Math.floor(v.length / 2)].toFixed(3); };
  console.log(`median over ${lines.length} rounds, service / raw onnxruntime: throughput ${med(/ratio ([\d.]+);/)}, images per CPU-second ${med(/service [\d.]+, ratio ([\d.]+)/)}`);
' "$OUTD/summary.txt" | tee -a "$OUTD/summary.txt"
