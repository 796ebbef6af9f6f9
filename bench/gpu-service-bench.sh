#!/usr/bin/env bash
# GPU end-to-end benchmark: POST /classify with JPEG photographs against swin-serve
# (Swin-T on our CUDA engine) and against the Python baseline, on the GPU host.
#
# The GPU host has no Node.js and no network, and each `device` call carries at most
# 64 MiB (tracked files included), so the run takes two calls on one warm machine
# (files under ignored paths stay there between calls; the machine is given back
# 30 s after a call, so send the second at once):
#
#   bench/gpu-prepare-carry.sh                          # here: .carry/bench-node, .carry/bench-run
#   run(carry=[".carry/bench-node"], command="bash bench/gpu-service-bench.sh prepare")
#   run(carry=[".carry/bench-run"],  command="bash bench/gpu-service-bench.sh run")
#   run(command="bash bench/gpu-service-bench.sh hackathon")   # optional third call
# (or `prepare+hackathon` as the first call, where its 10 minutes allow).
#
# prepare: unpacks node; builds the C API library (build/cuda) and the addon
#          (build/gpu-addon) for this GPU; writes the Swin-T model folder with fold/unfold
#          fp16 engine files (bench/gpu_model_repo.py).
# run:     unpacks node_modules and dist; measures the decode ceiling; starts the service
#          (cuda backend) and runs a closed-loop sweep, then an open-loop Poisson run at
#          80% of the sweep's peak, and a gRPC step; then the Python baselines
#          (bench/python_baseline.py, aiohttp; docs/benchmarks.md section 3) with the same
#          client and images, each started fresh and driven only once /health/ready answers:
#            python eager fp32                  PIL decode, one request at a time
#            python eager fp16 batch<=32        PIL decode, fp16 autocast, naive batching
#            python torch.compile fp16          PIL decode, torch.compile (inductor), batch 1
#            python gpu-decode + torch.compile fp16 batch<=64
#                                               the strongest plain-Python server: JPEG batches
#                                               decoded by nvJPEG (torchvision), resize/crop on
#                                               the GPU, torch.compile fp16 on power-of-two
#                                               batch buckets compiled at start-up, top-k on GPU
#          (the two torch.compile ones compile for a minute or more before they are ready).
# hackathon: bench/hackathon_tables.py (builds the C API library if prepare has not; carries nothing).
# fmnist:  (after prepare, carry .carry/bench-run) the repository as committed, default settings:
#          starts `node dist/src/main.js` with the addon where `npm install` puts it
#          (addon/build/Release) and no flags but the ports, checks that swin-fmnist is served
#          by the cuda backend, sends the 1,000 Fashion-MNIST JPEGs (top-1, agreement with the
#          CPU service's fmnist-cpu.json), the damaged/unusual JPEG cases (same replies as the
#          CPU path), and reads swin_decoded_images_total; then runs test/gpu/gpu-decode.test.ts and
#          addon-gpu.test.ts (compiled, from dist/test). Exits non-zero when a check fails.
# first:   (instead of run, same carry) first request after /health/ready against the steady-state
#          p50 at every batch size (dist/bench/loadgen/first-request.js), three times: warm (model.json's
#          warm-up and WARMUP_REQUESTS), engine (the engine's warm-up only) and cold (neither), for
#          contrast (issue 16: within 2x). FIRST_SIZES (1-32), FIRST_REPEATS (30), FIRST_MODES (warm engine cold).
# timeline: (instead of run, same carry) a GPU timeline of batches at the peak, in place of nsys (not on the
#          GPU host): builds bench/cupti-trace (a CUPTI injection library), starts the service with it
#          (FRONTEND_WORKERS=4, or TIMELINE_WORKERS), drives /classify at TIMELINE_CONC (256) in flight,
#          records TIMELINE_WINDOW_S (0.5) s of kernels, copies and CUDA calls in mid-run, and turns them
#          into tables (bench/cupti_timeline.py: timeline.md, the raw trace as cupti-trace.tsv.gz); then the
#          same load without tracing, for the tracer's own cost. CUPTI is looked for by
#          bench/cupti-trace/find-cupti.sh (toolkit, PyTorch's CUDA wheels, Triton's wheel); CUPTI_DIR (its
#          include/ and lib64/ or lib/) and CUDA_INCLUDE (cuda.h) where it is elsewhere.
# Results: bench/.out/gpu/results, packed into $OUT/results-<phase>.tgz on exit.
#
# Knobs (environment): DURATION (s, default 8), WARMUP (s, 3), CONC (closed-loop list), BASE_CONC, SKIP_CEILING=1,
# HACKATHON_TIMEOUT (s; default: what is left of 570 s since the script started),
# BACKEND (cuda), MODEL (swin-tiny), MODEL_ARCH (swin_tiny; prepare: the engines/swintools preset, e.g. swinv2_base_w16 with MODEL=swinv2-base), MODELS_DIR, IMAGES, SKIP_BASELINE=1, ORT_ITERS (10),
# BASELINE_COMPILE=0 to leave the torch.compile baselines out, BASELINES="base-eager-fp16-b32 ..." (file names) to run only those, SKIP_SERVICE=1 to run only the
# baselines (e.g. in a call of their own), LOADGEN_PROCS (4), SERVICE_ENVS="label:VAR=v,...;label2:..." (service runs
# with other settings, e.g. "perrequest:BATCH_DECODE=false;batch:BATCH_DECODE=true"), GRPC_CONC,
# LOCAL=1 for a dry run of `run` off the GPU host
# (e.g. LOCAL=1 BACKEND=onnxruntime MODEL=swin-fmnist MODELS_DIR=engines/models IMAGES=bench/.images/fmnist).
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-run}
G=bench/.out/gpu
# Results are written to $G/results; the device tool returns at most 8 files from $OUT, so
# on exit they are packed into $OUT/results-<phase>.tgz, with the summary beside it.
RES=$G/results
rm -rf "$RES"
mkdir -p "$G" "$RES"
export PYTHONUNBUFFERED=1 PYTHONPATH=engines
NODE_DIR=$G/node
export PATH="$PWD/$NODE_DIR/bin:$PATH"
# cuBLASLt and friends for the addon, wherever the toolkit keeps them.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
# Our own build folders (others' runs on a shared machine may hold build/cuda with another generator).
export SWIN_CUDA_CAPI="$PWD/build/bench-capi/libswin_cuda_capi.so"
MODEL=${MODEL:-swin-tiny}
MODELS_DIR=${MODELS_DIR:-$G/models}
BACKEND=${BACKEND:-cuda}
IMAGES=${IMAGES:-.carry/bench-run/photos}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-3}
CONC=${CONC:-1,16,64,128,256}
PORT=${PORT:-28080}
GRPC_PORT=${GRPC_PORT:-28081}
BPORT=${BPORT:-28090}
PY=${PY:-python3}
# Load-generator processes per step (bench/loadgen/procs.ts): one Node process tops out near one
# core, below what the service can answer over gRPC.
LOADGEN_PROCS=${LOADGEN_PROCS:-4}
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
# Servers and monitors started here end with the script, whatever way it ends.
finish() {
  kill $(jobs -p) 2>/dev/null || true
  if [ -n "${OUT:-}" ]; then
    tar -C "$RES" -czf "$OUT/results-$PHASE.tgz" . 2>/dev/null || true
    cp "$RES/summary.txt" "$OUT/" 2>/dev/null || true
  fi
}
trap finish EXIT

host_info() {
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
    echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    free -g | sed -n 2p
    node --version 2>/dev/null || true
    "$PY" -c 'import torch; print("torch", torch.__version__)' || true; } | tee "$RES/host.txt"
}

prepare() {
  log "prepare: node"
  mkdir -p "$NODE_DIR/bin"
  xz -dc .carry/bench-node/node.xz > "$NODE_DIR/bin/node"
  chmod +x "$NODE_DIR/bin/node"
  mkdir -p node_modules
  tar -C . -xJf .carry/bench-node/addon-headers.tar.xz
  export NLOHMANN_JSON_ROOT=${NLOHMANN_JSON_ROOT:-$PWD/.carry/bench-node/nlohmann-json}   # addon/cuda's JSON parser
  host_info
  # CUDA architectures: this GPU only (addon/cuda alone would build four); the addon's
  # own default already picks the host's GPUs.
  local arch
  arch=$("$PY" -c 'import torch; c=torch.cuda.get_device_capability(); print(f"{c[0]}{c[1]}" + ("a" if c[0] == 9 else ""))')
  log "prepare: build C API library (sm_$arch) and addon"
  cmake -S addon/cuda -B build/bench-capi "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$RES/cmake-capi.log" 2>&1 \
    || { tail -30 "$RES/cmake-capi.log"; exit 1; }
  cmake -S addon -B build/gpu-addon "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/build/gpu-addon/Release" 2>&1 | tee "$RES/cmake-addon.log" | grep -E -- '-- (CUDA|cuBLASLt|nvcc|TensorRT|CUDA engine|Node)' || true
  cmake --build build/bench-capi -j "$(nproc)" >"$RES/build-capi.log" 2>&1 &
  local b1=$!
  cmake --build build/gpu-addon -j "$(nproc)" >"$RES/build-addon.log" 2>&1 &
  local b2=$!
  wait "$b1" || { tail -30 "$RES/build-capi.log"; exit 1; }
  wait "$b2" || { tail -30 "$RES/build-addon.log"; exit 1; }
  ls -la build/gpu-addon/Release/swin_addon.node build/bench-capi/libswin_cuda_capi.so
  # Where `npm install` puts the addon, so that the fmnist phase runs with default settings.
  mkdir -p addon/build/Release && cp build/gpu-addon/Release/swin_addon.node addon/build/Release/
  ldd build/gpu-addon/Release/swin_addon.node | grep -E 'not found|cublas|cudart' || true
  node -e "const a=require('./build/gpu-addon/Release/swin_addon.node'); console.log(JSON.stringify(a.capabilities ? a.capabilities() : Object.keys(a)))" || true
  log "prepare: $MODEL model folder (${MODEL_ARCH:-swin_tiny})"
  "$PY" bench/gpu_model_repo.py --arch "${MODEL_ARCH:-swin_tiny}" --name "$MODEL" --out "$MODELS_DIR/$MODEL" --images .carry/bench-node/selftest-photos
  log "prepare: done"
}

hackathon() {
  if [ ! -e build/bench-capi/libswin_cuda_capi.so ]; then   # a fresh machine: the C API library alone (no node needed)
    export NLOHMANN_JSON_ROOT=${NLOHMANN_JSON_ROOT:-$PWD/.carry/bench-node/nlohmann-json}
    local arch
    arch=$("$PY" -c 'import torch; c=torch.cuda.get_device_capability(); print(f"{c[0]}{c[1]}" + ("a" if c[0] == 9 else ""))')
    cmake -S addon/cuda -B build/bench-capi "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$RES/cmake-capi.log" 2>&1
    cmake --build build/bench-capi -j "$(nproc)" >"$RES/build-capi.log" 2>&1 || { tail -30 "$RES/build-capi.log"; exit 1; }
  fi
  host_info
  log "hackathon tables (SwinV2-B w16 256, batch 1)"
  # Bounded so a call ends inside the device's 10 minutes: HACKATHON_TIMEOUT, or what is
  # left of 570 s since this script started.
  local left=$((570 - SECONDS))
  timeout "${HACKATHON_TIMEOUT:-$left}" "$PY" bench/hackathon_tables.py --no-compile --iters 50 --ort-iters "${ORT_ITERS:-10}" \
    --out "$G/hackathon" 2>&1 \
    | grep -v -i warning | tee "$RES/hackathon.log"
  cp "$G/hackathon/hackathon.json" "$G/hackathon/hackathon.md" "$RES/" || true
}

wait_ready() {  # url, pid, seconds
  for _ in $(seq 1 "$3"); do
    kill -0 "$2" 2>/dev/null || { echo "server exited"; return 1; }
    if curl -sf "$1" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "not ready after $3 s"; return 1
}

bench() {  # label, json name, extra args...
  local label=$1 name=$2; shift 2
  node dist/bench/loadgen/cli.js --images "$IMAGES" --warmup "${WARMUP}s" --duration "${DURATION}s" --progress 2000 --procs "$LOADGEN_PROCS" \
    --label "$label" --json "$RES/$name.json" --csv "$RES/$name.csv" "$@" 2>&1 | tee -a "$RES/bench.log" || true   # a failed step is in the log; go on
}

peak_rps() { node -e 'const r=require(require("path").resolve(process.argv[1])); console.log(Math.max(...r.steps.map(s=>s.throughput_rps)))' "$1"; }

proc_cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }   # user+sys seconds (USER_HZ 100)

# serve_and_measure LABEL "VAR=v,VAR=v" ADDON: starts the service with those settings, runs the
# closed-loop sweep, an open loop at 80% of its peak and a gRPC step; files carry the label.
serve_and_measure() {
  local label=$1 envs=$2 ADDON=$3 sfx=""
  [ "$label" = default ] || sfx="-$label"
  local -a extra=()
  [ -n "$envs" ] && IFS=',' read -r -a extra <<< "$envs"
  log "run: swin-serve ($BACKEND backend) [$label] ${envs:-default settings}"
  if curl -s -m 2 "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then echo "port $PORT is taken"; exit 1; fi
  nvidia-smi dmon -s u -d 1 > "$RES/dmon$sfx.txt" 2>&1 &
  local dmon=$!
  env "${extra[@]}" SWIN_ADDON_PATH="$ADDON" node dist/src/main.js --models-dir "$MODELS_DIR" --models "$MODEL" --backend "$BACKEND" \
    --host 127.0.0.1 --port "$PORT" --grpc-port "$GRPC_PORT" --log-level warn > "$RES/service$sfx.log" 2>&1 &
  local svc=$!
  wait_ready "http://127.0.0.1:$PORT/health/ready" "$svc" 120 || { tail -40 "$RES/service$sfx.log"; kill $dmon; exit 1; }
  curl -s "http://127.0.0.1:$PORT/models" > "$RES/models$sfx.json" || true
  local c0; c0=$(proc_cpu_s "$svc"); local t0; t0=$(date +%s.%N)
  bench "swin-serve http$sfx" "serve-http$sfx" --url "http://127.0.0.1:$PORT" --concurrency "$CONC"
  local c1; c1=$(proc_cpu_s "$svc"); local t1; t1=$(date +%s.%N)
  awk -v c="$c1" -v d="$c0" -v t="$t1" -v u="$t0" -v l="$label" 'BEGIN{printf "[%s] service process CPU during the closed-loop sweep (warm-ups included): %.2f cores\n", l, (c-d)/(t-u)}' | tee -a "$RES/bench.log"
  curl -s "http://127.0.0.1:$PORT/metrics" > "$RES/metrics-sweep$sfx.txt" || true
  local peak; peak=$(peak_rps "$RES/serve-http$sfx.json")
  local rate; rate=$(node -e "console.log(Math.round(0.8 * $peak))")
  log "run: [$label] open loop at 80% of peak ($peak req/s) = $rate req/s"
  bench "swin-serve http open 80%$sfx" "serve-http-open80$sfx" --url "http://127.0.0.1:$PORT" --mode open --rate "$rate" --arrival poisson --duration "$((DURATION * 2))s"
  bench "swin-serve grpc$sfx" "serve-grpc$sfx" --api grpc --grpc-target "127.0.0.1:$GRPC_PORT" --proto proto/swin/v1/classifier.proto --concurrency "${GRPC_CONC:-64,256}"
  curl -s "http://127.0.0.1:$PORT/metrics" > "$RES/metrics$sfx.txt" || true
  kill "$svc" 2>/dev/null || true; wait "$svc" 2>/dev/null || true
  kill "$dmon" 2>/dev/null || true
}


# The phases after prepare: node from it, node_modules and dist from .carry/bench-run
# (LOCAL=1: this checkout's own, for a dry run off the GPU host).
start_after_prepare() {  # phase name
  command -v node >/dev/null || { echo "node missing: the prepare call's machine is gone; run prepare again"; exit 3; }
  if [ "${LOCAL:-0}" != 1 ]; then
    log "$1: unpack node_modules and dist"
    tar -C . -xJf .carry/bench-run/modules.tar.xz
    tar -C . -xJf .carry/bench-run/dist.tar.xz
  fi
  host_info
}

run() {
  start_after_prepare run
  local ADDON=${SWIN_ADDON_PATH:-$PWD/build/gpu-addon/Release/swin_addon.node}

  log "run: decode ceiling (service preprocessing, sharp, no HTTP)"
  [ "${SKIP_CEILING:-0}" = 1 ] || for pool in 16 32; do
    UV_THREADPOOL_SIZE=$pool node dist/bench/loadgen/decode-ceiling.js --model "$MODELS_DIR/$MODEL" --images "$IMAGES" \
      --seconds 5 --json "$RES/decode-ceiling-pool$pool.json" 2>&1 | tee -a "$RES/bench.log" || true
  done

  # One service run per entry of SERVICE_ENVS ("label:VAR=v,VAR=v;label2:..."), same images and
  # load: before/after comparisons of service settings in one call.
  if [ "${SKIP_SERVICE:-0}" != 1 ]; then
    local entry
    IFS=';' read -r -a entries <<< "${SERVICE_ENVS:-default:}"
    for entry in "${entries[@]}"; do
      serve_and_measure "${entry%%:*}" "${entry#*:}" "$ADDON"
    done
  fi
  if [ "${SKIP_BASELINE:-0}" != 1 ]; then
    # BASELINES: which to run, by file name (default all four; the torch.compile ones only with BASELINE_COMPILE=1).
    want() { [ -z "${BASELINES:-}" ] || [[ " $BASELINES " == *" $1 "* ]]; }
    want base-eager-fp32 && baseline "python eager fp32" base-eager-fp32 --arch swin_tiny
    want base-eager-fp16-b32 && baseline "python eager fp16 batch<=32" base-eager-fp16-b32 --arch swin_tiny --half --max-batch 32
    if [ "${BASELINE_COMPILE:-1}" = 1 ]; then
      want base-compile-fp16 && baseline "python torch.compile fp16" base-compile-fp16 --arch swin_tiny --half --compile --max-batch 1
      want base-gpudecode-compile-fp16-b64 && baseline "python gpu-decode + torch.compile fp16 batch<=64" base-gpudecode-compile-fp16-b64 \
        --arch swin_tiny --gpu-decode --half --compile --max-batch 64
    fi
  fi
  log "run: summary"
  node -e '
    const fs = require("fs"), dir = process.argv[1];
    for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".json") && !f.startsWith("decode") && !f.startsWith("models") && !f.startsWith("hackathon"))) {
      const r = JSON.parse(fs.readFileSync(dir + "/" + f));
      if (!r.steps) continue;
      const best = r.steps.reduce((a, s) => (s.throughput_rps > a.throughput_rps ? s : a));
      console.log(`${r.label.padEnd(50)} peak ${best.throughput_rps.toFixed(1).padStart(8)} req/s at ${best.concurrency ?? best.rate}  p99 ${best.latency.p99_ms} ms  errors ${best.error_count}`);
    }
    // Per service run, from its /metrics after the closed-loop sweep: mean batch and engine time.
    for (const f of fs.readdirSync(dir).filter((f) => /^metrics-sweep.*\.txt$/.test(f))) {
      const t = fs.readFileSync(dir + "/" + f, "utf8");
      const sum = (name) => t.split("\n").filter((l) => l.startsWith(name + "{") || l.startsWith(name + " ")).reduce((a, l) => a + Number(l.split(" ").pop()), 0);
      const b = sum("swin_batch_size_sum") / sum("swin_batch_size_count");
      const ms = (1000 * sum("swin_inference_duration_seconds_sum")) / sum("swin_inference_duration_seconds_count");
      const dec = t.split("\n").filter((l) => l.startsWith("swin_decoded_images_total")).map((l) => l.replace(/^swin_decoded_images_total/, "")).join(" ");
      console.log(`${f.padEnd(32)} mean batch ${b.toFixed(1)} images, ${ms.toFixed(2)} ms a batch (decode included where batched); decoded ${dec}`);
      // Where the time of a GPU-decoded batch goes (swin_gpu_batch_stage_seconds), ms per batch.
      const stages = ["copy_in", "decode", "engine", "copy_out", "host_decode"].map((st) => {
        const of = (suffix) => t.split("\n").filter((l) => l.startsWith("swin_gpu_batch_stage_seconds_" + suffix + "{") && l.includes(`stage="${st}"`)).reduce((a, l) => a + Number(l.split(" ").pop()), 0);
        const c = of("count");
        return c ? `${st} ${((1000 * of("sum")) / c).toFixed(2)}` : null;
      }).filter(Boolean);
      if (stages.length) console.log(`${"".padEnd(32)} per batch, ms: ${stages.join(", ")}`);
    }' "$(cd "$RES" && pwd)" | tee "$RES/summary.txt"
  if [ ${#BASE_FAILED[@]} -gt 0 ]; then
    printf 'FAIL: baseline %s\n' "${BASE_FAILED[@]}" | tee -a "$RES/summary.txt"
    exit 1
  fi
}

fmnist() {
  start_after_prepare fmnist
  local C=.carry/bench-run
  log "fmnist: swin-serve, default settings (engines/models as committed)"
  node dist/src/main.js --host 127.0.0.1 --port "$PORT" --grpc-port "$GRPC_PORT" > "$RES/service.log" 2>&1 &
  local svc=$!
  wait_ready "http://127.0.0.1:$PORT/health/ready" "$svc" 180 || { tail -40 "$RES/service.log"; exit 1; }
  curl -s "http://127.0.0.1:$PORT/models" | tee "$RES/models.json"; echo
  local fails=0
  node -e 'const m=JSON.parse(require("fs").readFileSync(process.argv[1])); const f=(m.models||m).find(x=>x.name==="swin-fmnist"); const b=JSON.stringify(f); console.log("swin-fmnist:", b); process.exit(/"backend":"cuda"/.test(b)?0:1)' "$RES/models.json" \
    || { echo "FAIL: swin-fmnist is not served by the cuda backend"; fails=$((fails + 1)); }
  local ref=(); [ -f $C/fmnist-cpu.json ] && ref=(--reference $C/fmnist-cpu.json)
  "$PY" bench/fmnist_service_accuracy.py --url "http://127.0.0.1:$PORT" --images $C/fmnist-jpeg --out "$RES/fmnist-gpu.json" "${ref[@]}" \
    | tee "$RES/fmnist-accuracy.txt" || fails=$((fails + 1))
  "$PY" bench/jpeg_refusal_check.py --url "http://127.0.0.1:$PORT" --dir $C/jpeg-cases | tee "$RES/jpeg-cases.txt" || fails=$((fails + 1))
  curl -s "http://127.0.0.1:$PORT/metrics" > "$RES/metrics.txt"
  grep -E '^swin_decoded_images_total' "$RES/metrics.txt" | tee "$RES/decoded.txt"
  grep -q 'decoder="gpu"' "$RES/decoded.txt" || { echo "FAIL: no image was decoded on the GPU"; fails=$((fails + 1)); }
  kill "$svc" 2>/dev/null; wait "$svc" 2>/dev/null || true
  # The GPU host's Node tests (compiled by gpu-prepare-carry): nvJPEG against sharp, the corrupt and
  # truncated JPEGs refused with the CPU path's code, the addon's GPU entry points.
  local t
  for t in gpu-decode addon-gpu; do
    log "fmnist: test/gpu/$t.test.ts"
    FMNIST_DIR=$C/fmnist-idx SWIN_GPU_DECODE_OUT="$RES/$t.json" SWIN_GPU_DECODE_PHOTOS=$C/photos SWIN_REPO_ROOT="$PWD" \
      SWIN_TEST_CUDA_ENGINE=engines/models/swin-fmnist/swin-fmnist.unfold.fp16.swin \
      timeout 240 node --test --test-reporter=spec "dist/test/gpu/$t.test.js" > "$RES/$t.test.txt" 2>&1 \
      || { echo "FAIL: test/gpu/$t.test.ts"; fails=$((fails + 1)); }
    grep -E '^ *(✔|✖|﹣)|^ℹ (tests|pass|fail|skipped)' "$RES/$t.test.txt" | tail -25
    grep -q '^ℹ skipped 0' "$RES/$t.test.txt" || { echo "FAIL: test/gpu/$t.test.ts skipped tests on the GPU host"; fails=$((fails + 1)); }
  done
  echo "fmnist phase: $fails check(s) failed" | tee "$RES/summary.txt"
  [ "$fails" = 0 ]
}

first() {
  start_after_prepare first
  local ADDON=${SWIN_ADDON_PATH:-$PWD/build/gpu-addon/Release/swin_addon.node}
  local img; img=$(find "$IMAGES" -type f -name '*.jp*g' | head -1)
  # A copy of the model folder with warm-up off: what the first requests cost without it.
  local cold=$G/models-nowarm
  rm -rf "$cold"; mkdir -p "$cold"; cp -r "$MODELS_DIR/$MODEL" "$cold/"
  node -e 'const f=process.argv[1], c=JSON.parse(require("fs").readFileSync(f)); c.warmup=[]; require("fs").writeFileSync(f, JSON.stringify(c, null, 2))' "$cold/$MODEL/model.json"
  for mode in ${FIRST_MODES:-warm engine cold}; do
    local dir=$MODELS_DIR; [ "$mode" = cold ] && dir=$cold
    local requests=false; [ "$mode" = warm ] && requests=true
    log "first: $mode ($dir, warm-up requests $requests)"
    SWIN_ADDON_PATH=$ADDON SWIN_LOG_LEVEL=warn node dist/bench/loadgen/first-request.js --sizes "${FIRST_SIZES:-1-32}" \
      --repeats "${FIRST_REPEATS:-30}" --image "$img" --port "$PORT" --json "$RES/first-$mode.json" \
      -- node dist/src/main.js --models-dir "$dir" --models "$MODEL" --backend "$BACKEND" --grpc-port "$GRPC_PORT" \
      --warmup-requests "$requests" \
      2>&1 | tee "$RES/first-$mode.txt" || true   # exit 1 = over the limit: the table says where
  done
  grep -E '^(ready|worst)' "$RES"/first-*.txt | tee "$RES/summary.txt"
}

timeline() {
  start_after_prepare timeline
  local ADDON=${SWIN_ADDON_PATH:-$PWD/build/gpu-addon/Release/swin_addon.node}
  local found inc lib tracer=$PWD/build/cupti-trace/libswin_cupti_trace.so
  found=$(bash bench/cupti-trace/find-cupti.sh "$PY") || exit 1
  read -r inc lib <<< "$found"
  log "timeline: build the tracer against $lib"
  mkdir -p build/cupti-trace
  g++ -std=c++17 -O2 -shared -fPIC -I"$inc" -I/usr/local/cuda/include ${CUDA_INCLUDE:+-I"$CUDA_INCLUDE"} bench/cupti-trace/cupti_trace.cc \
    -o "$tracer" "$lib" -Wl,-rpath,"$(dirname "$lib")" -lpthread
  local T=$G/cupti
  rm -rf "$T"; mkdir -p "$T"
  local workers=${TIMELINE_WORKERS:-4} conc=${TIMELINE_CONC:-256}
  log "timeline: swin-serve traced (FRONTEND_WORKERS=$workers), $conc in flight"
  CUDA_INJECTION64_PATH=$tracer SWIN_CUPTI_DIR=$T FRONTEND_WORKERS=$workers SWIN_ADDON_PATH="$ADDON" \
    node dist/src/main.js --models-dir "$MODELS_DIR" --models "$MODEL" --backend "$BACKEND" \
    --host 127.0.0.1 --port "$PORT" --grpc-port "$GRPC_PORT" --log-level warn > "$RES/service-timeline.log" 2>&1 &
  local svc=$!
  wait_ready "http://127.0.0.1:$PORT/health/ready" "$svc" 180 || { tail -40 "$RES/service-timeline.log"; exit 1; }
  bench "swin-serve http traced" "serve-http-traced" --url "http://127.0.0.1:$PORT" --concurrency "$conc" &
  local load=$!
  sleep $((WARMUP + DURATION / 2))
  touch "$T/start"; sleep "${TIMELINE_WINDOW_S:-0.5}"; touch "$T/stop"
  for _ in $(seq 1 40); do ls "$T"/trace-*.tsv >/dev/null 2>&1 && break; sleep 0.5; done
  wait "$load" || true
  curl -s "http://127.0.0.1:$PORT/metrics" > "$RES/metrics-timeline.txt" || true
  kill "$svc" 2>/dev/null || true; wait "$svc" 2>/dev/null || true
  grep -E '^cupti-trace' "$RES/service-timeline.log" || true
  local trace; trace=$(ls "$T"/trace-*.tsv 2>/dev/null | head -1 || true)
  if [ -n "$trace" ]; then
    gzip -c "$trace" > "$RES/cupti-trace.tsv.gz"
    "$PY" bench/cupti_timeline.py "$trace" --classes "${CLASSES:-1000}" --json "$RES/timeline.json" | tee "$RES/timeline.md" || true
  else
    echo "FAIL: no trace was written (service-timeline.log)"
  fi
  log "timeline: the same load without the tracer"
  SWIN_ADDON_PATH="$ADDON" FRONTEND_WORKERS=$workers node dist/src/main.js --models-dir "$MODELS_DIR" --models "$MODEL" --backend "$BACKEND" \
    --host 127.0.0.1 --port "$PORT" --grpc-port "$GRPC_PORT" --log-level warn > "$RES/service-untraced.log" 2>&1 &
  svc=$!
  wait_ready "http://127.0.0.1:$PORT/health/ready" "$svc" 180 || { tail -40 "$RES/service-untraced.log"; exit 1; }
  bench "swin-serve http untraced" "serve-http-untraced" --url "http://127.0.0.1:$PORT" --concurrency "$conc"
  curl -s "http://127.0.0.1:$PORT/metrics" > "$RES/metrics-untraced.txt" || true
  kill "$svc" 2>/dev/null || true; wait "$svc" 2>/dev/null || true
  grep -h -E 'throughput|req/s' "$RES/bench.log" | tail -4 > "$RES/summary.txt" || true
  [ -n "$trace" ]
}

BASE_FAILED=()   # baselines that did not start or answered no request: `run` exits 1 after its summary

baseline() {  # label, name, python_baseline args...
  local label=$1 name=$2; shift 2
  log "run: baseline $label"
  "$PY" bench/python_baseline.py "$@" --device "${BASE_DEVICE:-cuda}" --port "$BPORT" > "$RES/$name.server.log" 2>&1 &
  local pid=$!
  # Ready only after the server compiled and warmed every batch shape (its log says how long each took).
  if wait_ready "http://127.0.0.1:$BPORT/health/ready" "$pid" "${BASE_READY_S:-300}"; then
    grep -E 'baseline: ' "$RES/$name.server.log" | tee -a "$RES/bench.log" || true
    bench "$label" "$name" --url "http://127.0.0.1:$BPORT" --concurrency "${BASE_CONC:-8,32,64}" --timeout 60s
    node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1])); process.exit(r.steps.some((s)=>s.ok>0)?0:1)' "$RES/$name.json" 2>/dev/null \
      || { echo "FAIL: baseline $label answered no request (server log: $name.server.log)" | tee -a "$RES/bench.log"; tail -40 "$RES/$name.server.log"; BASE_FAILED+=("$label"); }
  else
    echo "FAIL: baseline $label did not become ready" | tee -a "$RES/bench.log"
    tail -40 "$RES/$name.server.log"
    BASE_FAILED+=("$label")
  fi
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

case "$PHASE" in
  prepare) prepare ;;
  run) run ;;
  hackathon) hackathon ;;
  first) first ;;
  timeline) timeline ;;
  prepare+timeline) prepare; timeline ;;
  prepare+hackathon) prepare; hackathon ;;
  fmnist) fmnist ;;
  all) prepare; run; hackathon ;;
  *) echo "usage: $0 prepare|run|first|timeline|prepare+timeline|fmnist|hackathon|prepare+hackathon|all"; exit 2 ;;
esac
