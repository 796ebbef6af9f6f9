#!/usr/bin/env bash
# Prints "<include dir> <libcupti path>" for building bench/cupti-trace, or exits 1 with what
# it looked at. CUPTI is found in, in order: $CUPTI_DIR (its include/ and lib64/ or lib/), the
# CUDA toolkit (/usr/local/cuda/extras/CUPTI, /usr/local/cuda), the nvidia-cuda-cupti wheel that
# PyTorch brings (site-packages/nvidia/cu13 or nvidia/cuda_cupti), and the copy inside Triton's
# wheel (triton/backends/nvidia: include/ and lib/cupti/). Usage: find-cupti.sh [python]
# CUPTI_CANDIDATES (space-separated folders) replaces the list after $CUPTI_DIR (tests).
set -euo pipefail
py=${1:-python3}

# The first libcupti.so* in the folders given, if any.
first_lib() {
  local d f
  for d in "$@"; do
    for f in "$d"/libcupti.so*; do
      [ -e "$f" ] && { echo "$f"; return 0; }
    done
  done
  return 1
}

candidates=${CUPTI_CANDIDATES-}
if [ -z "${CUPTI_CANDIDATES+x}" ]; then
  wheels=$("$py" -c 'import nvidia, os; print(" ".join(os.path.join(p, s) for p in nvidia.__path__ for s in ("cu13", "cuda_cupti")))' 2>/dev/null || true)
  triton=$("$py" -c 'import triton, os; print(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia"))' 2>/dev/null || true)
  candidates="/usr/local/cuda/extras/CUPTI /usr/local/cuda /usr/local/cuda/targets/x86_64-linux $wheels $triton"
fi
for d in ${CUPTI_DIR:-} $candidates; do
  [ -f "$d/include/cupti.h" ] || continue
  lib=$(first_lib "$d/lib64" "$d/lib" "$d/lib/cupti") || continue
  echo "$d/include $lib"
  exit 0
done
echo "find-cupti: no cupti.h with a libcupti.so beside it in: ${CUPTI_DIR:-} $candidates" >&2
exit 1
