#!/usr/bin/env bash
# Builds, on this machine, what bench/gpu-service-bench.sh needs on the GPU host, which
# has no Node.js and no network. Everything lands in .carry/bench-*/ (git-ignored) and
# travels with a `device` run as carried paths (64 MiB per call, tracked files included):
#
#   .carry/bench-node/node.xz        /usr/bin/node, xz -9 (about 23 MB)
#   .carry/bench-node/addon-headers.tar.xz  node-api-headers + node-addon-api (the addon build)
#   .carry/bench-node/nlohmann-json/include/  nlohmann/json's headers (addon/cuda parses engine
#                                    files with it; 1 MB), from Debian's nlohmann-json3-dev or
#                                    NLOHMANN_JSON_ROOT; test/gpu/run_gpu_host.sh uses it too
#   .carry/bench-node/selftest-photos/      16 JPEGs for the Swin-T self-test inputs
#   .carry/bench-run/modules.tar.xz  production node_modules, pruned: no onnxruntime-node
#                                    binaries (the GPU run serves through the cuda backend;
#                                    onnxruntime is only loaded by its worker threads), no
#                                    cmake-js (the addon is built with plain cmake there),
#                                    no docs, maps or type declarations
#   .carry/bench-run/dist.tar.xz     the compiled service and the GPU host's Node tests (dist/src,
#                                    dist/test/gpu, dist/test/helpers)
#   .carry/bench-run/photos/         the benchmark JPEGs (bench/.images/photos)
#   .carry/bench-run/fmnist-jpeg/    1,000 Fashion-MNIST test JPEGs, and fmnist-cpu.json: their
#                                    top-1 through this machine's CPU service (the `fmnist` phase
#                                    compares the GPU path with it; made when a service answers on
#                                    CPU_URL, default none)
#   .carry/bench-run/jpeg-cases/     damaged and unusual JPEGs with the replies they must get
#   .carry/bench-run/fmnist-idx/     the Fashion-MNIST test split (IDX) for test/gpu/gpu-decode.test.ts
#
# The two folders go in separate calls (node alone is a third of the limit); see
# bench/gpu-service-bench.sh. Prints the sizes. FMNIST=0 leaves out the Fashion-MNIST and
# JPEG-case folders (only the `fmnist` phase reads them), so that both folders fit one call
# (prepare with run, first or timeline) beside a tree without the model's .onnx/.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_BIN=${NODE_BIN:-$(command -v node)}   # e.g. .cache/node-24/package/bin/node (scripts/test-on-node.sh 24)
NODE_DIR=.carry/bench-node
RUN_DIR=.carry/bench-run
mkdir -p "$NODE_DIR" "$RUN_DIR"

if [ ! -s "$NODE_DIR/node.xz" ] || [ "$NODE_BIN" -nt "$NODE_DIR/node.xz" ]; then
  echo "compressing $NODE_BIN ($("$NODE_BIN" --version))..."
  xz -9e -T0 -c "$(readlink -f "$NODE_BIN")" > "$NODE_DIR/node.xz.tmp"
  mv "$NODE_DIR/node.xz.tmp" "$NODE_DIR/node.xz"
fi

# Headers the addon's CMake build resolves through node (built in the prepare call).
tar -C . -cf - node_modules/node-api-headers node_modules/node-addon-api | xz -9 > "$NODE_DIR/addon-headers.tar.xz"
# nlohmann/json for the CUDA engine's build. The GPU host image seen on 2026-12-05 had
# /usr/include/nlohmann (CMake finds it there first); this copy is for hosts without it.
json_inc=${NLOHMANN_JSON_ROOT:+$NLOHMANN_JSON_ROOT/include}
json_inc=${json_inc:-/usr/include}
[ -f "$json_inc/nlohmann/json.hpp" ] || { echo "nlohmann/json.hpp not in $json_inc: apt-get install nlohmann-json3-dev"; exit 1; }
rm -rf "$NODE_DIR/nlohmann-json" && mkdir -p "$NODE_DIR/nlohmann-json/include"
cp -r "$json_inc/nlohmann" "$NODE_DIR/nlohmann-json/include/"
# A few photographs for the Swin-T self-test images (gpu_model_repo.py).
[ -d bench/.images/photos ] || npm run -s bench:images
rm -rf "$NODE_DIR/selftest-photos" && mkdir -p "$NODE_DIR/selftest-photos"
ls bench/.images/photos/*.jpg | sed -n 1,16p | xargs -I{} cp {} "$NODE_DIR/selftest-photos/"

echo "building dist/ ..."
npx tsc -p tsconfig.json --outDir dist >/dev/null || { echo "tsc failed: fix the typecheck first"; exit 1; }
# dist/test/gpu + helpers: the GPU host's Node tests (test/gpu/*.test.ts), compiled, since tsx is not carried.
tar -C . -cf - dist/src dist/bench dist/test/gpu dist/test/helpers proto package.json | xz -9 -T0 > "$RUN_DIR/dist.tar.xz"

echo "packing production node_modules ..."
# Production packages (one path per line), minus what the GPU run does not load.
npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$PWD/||" | grep '^node_modules/' | sort -u \
  | grep -v -E '^node_modules/(onnxruntime-node|cmake-js)(/|$)' > "$RUN_DIR/packages.txt"
tar -C . -cf - \
  --exclude='*.md' --exclude='*.map' --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' \
  --exclude='*/docs' --exclude='*/test' --exclude='*/tests' --exclude='*/example' --exclude='*/examples' \
  --exclude='*/LICENSE*' --exclude='*/CHANGELOG*' \
  -T "$RUN_DIR/packages.txt" \
  node_modules/onnxruntime-node/package.json node_modules/onnxruntime-node/dist \
  | xz -9 -T0 > "$RUN_DIR/modules.tar.xz"

rm -rf "$RUN_DIR/photos"
mkdir -p "$RUN_DIR/photos"
[ -d bench/.images/photos ] || npm run -s bench:images
cp bench/.images/photos/*.jpg "$RUN_DIR/photos/"
rm -rf "$RUN_DIR/fmnist-jpeg" "$RUN_DIR/jpeg-cases" "$RUN_DIR/fmnist-idx"
if [ "${FMNIST:-1}" != 0 ]; then
  # The Fashion-MNIST test split (IDX, 4.3 MiB) for test/gpu/gpu-decode.test.ts (FMNIST_DIR).
  mkdir -p "$RUN_DIR/fmnist-idx" && cp "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"/t10k-*-ubyte.gz "$RUN_DIR/fmnist-idx/"
  cp -r bench/.images/fmnist-jpeg "$RUN_DIR/fmnist-jpeg"
  npx tsx bench/write-jpeg-cases.ts --out "$RUN_DIR/jpeg-cases"
  if [ -n "${CPU_URL:-}" ]; then   # the CPU service's answers on the same JPEGs, for the fmnist phase
    python3 bench/fmnist_service_accuracy.py --url "$CPU_URL" --images "$RUN_DIR/fmnist-jpeg" --out "$RUN_DIR/fmnist-cpu.json"
    python3 bench/jpeg_refusal_check.py --url "$CPU_URL" --dir "$RUN_DIR/jpeg-cases"
  fi
fi

du -b "$NODE_DIR"/*.xz "$RUN_DIR"/*.xz | awk '{printf "%8.1f MiB  %s\n", $1/1048576, $2}'
for d in "$RUN_DIR/photos" "$NODE_DIR/selftest-photos" "$RUN_DIR"/fmnist-* "$RUN_DIR/jpeg-cases"; do
  if [ -e "$d" ]; then du -sb "$d"; fi
done | awk '{printf "%8.1f MiB  %s\n", $1/1048576, $2}'
tracked=$(git ls-files -z | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files --others --exclude-standard -z | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1); untracked=${untracked:-0}
printf '%8.1f MiB  working tree that travels with every call (tracked + untracked-not-ignored)\n' \
  "$(echo "($tracked + ${untracked:-0}) / 1048576" | bc -l)"
