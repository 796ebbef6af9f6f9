#!/usr/bin/env bash
# Compiles the addon's CUDA code on a machine without a GPU, warnings as errors:
#   1. every addon/{binding,common,nvjpeg,testing}/*.cc with CUDA and nvJPEG on (the GPU device
#      and buffers, the nvJPEG JpegDecoder host code, the cuda backend's glue), against the
#      CUDA 13 headers;
#   2. the CUDA engine's host code (addon/cuda/*.cc: cuBLASLt GEMMs, safetensors and its
#      nlohmann/json parsing, the engine);
#   3. bench/cupti-trace (the GPU-timeline tracer), compiled and linked against CUPTI;
#   4. with NVCC=1 (scripts/test.sh sets it), every .cu kernel file for sm_90a with nvcc.
# Objects only (but the tracer, which is linked): nothing is run. Not covered: addon/tensorrt/tensorrt_engine.cc, whose
# TensorRT headers cannot be fetched here (addon/tools/check-tensorrt-build.sh takes them
# from a snapshot, docs/tensorrt.md).
#
# usage: addon/tools/ci-cuda-compile.sh CUDA_ROOT
#   CUDA_ROOT: include/ (and bin/nvcc for NVCC=1), e.g. the site-packages/nvidia/cu13 folder
#   that NVIDIA's wheels unpack to (addon/tools/cuda-requirements.txt).
# nlohmann/json: /usr/include (Debian's nlohmann-json3-dev) or NLOHMANN_JSON_ROOT/include.
set -euo pipefail
cuda=$(cd "${1:?usage: $0 CUDA_ROOT}" && pwd)
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ver=$(sed -nE 's/^#define CUDART_VERSION +([0-9]+).*/\1/p' "$cuda/include/cuda_runtime_api.h")
echo "ci-cuda-compile: CUDA headers $((ver / 1000)).$((ver % 1000 / 10)) in $cuda"

# What addon/CMakeLists.txt would generate for a build with CUDA, nvJPEG and the cuda backend.
sed -e 's/@SWIN_CUDA_STATUS@/found/' -e 's/@SWIN_CUDA_ENGINE_STATUS@/built/' \
    -e 's/@SWIN_TENSORRT_STATUS@/not found/' -e 's/@SWIN_TENSORRT_VERSION@//' \
    -e "s/@SWIN_CUDA_VERSION@/$((ver / 1000)).$((ver % 1000 / 10))/" -e 's/@SWIN_NVJPEG_STATUS@/found/' \
    -e 's/@CMAKE_BUILD_TYPE@/Release/' addon/binding/build_config.h.in > "$work/build_config.h"
json_inc=${NLOHMANN_JSON_ROOT:+$NLOHMANN_JSON_ROOT/include}
json_inc=${json_inc:-/usr/include}
[ -f "$json_inc/nlohmann/json.hpp" ] || { echo "ci-cuda-compile: nlohmann/json.hpp not in $json_inc (apt-get install nlohmann-json3-dev)" >&2; exit 1; }
json_flags=()   # -isystem /usr/include would break libstdc++'s #include_next
[ "$json_inc" = /usr/include ] || json_flags=(-isystem "$json_inc")

warn=(-Wall -Wextra -Werror -Wno-unused-parameter)
cxx=(g++ -std=c++17 -O2 -fPIC "${warn[@]}" -DSWIN_HAVE_CUDA -DSWIN_HAVE_NVJPEG -DSWIN_HAVE_CUDA_ENGINE
     -I"$work" -Iaddon -Iaddon/cuda -isystem "$cuda/include" "${json_flags[@]}"
     -isystem node_modules/node-api-headers/include -isystem node_modules/node-addon-api
     -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNAPI_CPP_EXCEPTIONS)
n=0
for f in addon/{binding,common,nvjpeg,testing,cuda}/*.cc; do   # not tensorrt/: needs TensorRT headers
  case "$f" in
    addon/testing/testing_kernels_none.cc) continue ;;   # the no-nvcc stand-in for testing_kernels.cu
  esac
  "${cxx[@]}" -c "$f" -o "$work/$(basename "$f").o" || { echo "ci-cuda-compile: FAILED $f" >&2; exit 1; }
  n=$((n + 1))
done
echo "ci-cuda-compile: $n host files compiled (g++ $(g++ -dumpversion), -Werror)"

# bench/cupti-trace: the GPU-timeline injection library, linked against the wheel's CUPTI (torch
# brings nvidia-cuda-cupti); the driver finds it by its InitializeInjection symbol.
# Found as the GPU host's timeline phase finds it (bench/cupti-trace/find-cupti.sh), in the wheels' folder.
cupti_found=$(CUPTI_CANDIDATES="$cuda" bash bench/cupti-trace/find-cupti.sh) || { echo "ci-cuda-compile: no CUPTI in $cuda" >&2; exit 1; }
read -r cupti_inc cupti_lib <<< "$cupti_found"
g++ -std=c++17 -O2 -shared -fPIC "${warn[@]}" -isystem "$cupti_inc" -isystem "$cuda/include" bench/cupti-trace/cupti_trace.cc \
  -o "$work/libswin_cupti_trace.so" "$cupti_lib" -lpthread || { echo "ci-cuda-compile: FAILED bench/cupti-trace" >&2; exit 1; }
nm -D --defined-only "$work/libswin_cupti_trace.so" | grep -q ' InitializeInjection$' \
  || { echo "ci-cuda-compile: bench/cupti-trace does not export InitializeInjection" >&2; exit 1; }
echo "ci-cuda-compile: bench/cupti-trace linked against $(basename "$cupti_lib")"

if [ "${NVCC:-0}" = 1 ]; then
  nvcc=("$cuda/bin/nvcc" -std=c++17 -O2 -arch=sm_90a -Werror all-warnings -Xcompiler -Wall,-Werror
        -DSWIN_HAVE_CUDA -DSWIN_HAVE_NVJPEG -DSWIN_HAVE_CUDA_ENGINE
        -Iaddon -Iaddon/cuda -I"$work")
  m=0
  for f in addon/cuda/*.cu addon/{nvjpeg,testing}/*.cu; do
    "${nvcc[@]}" -c "$f" -o "$work/$(basename "$f").o" || { echo "ci-cuda-compile: FAILED $f" >&2; exit 1; }
    m=$((m + 1))
  done
  echo "ci-cuda-compile: $m kernel files compiled ($("$cuda/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), sm_90a, -Werror all-warnings)"
fi
