#!/usr/bin/env bash
# The gpu image's entry point: serve from the TensorRT plan cache when it holds
# plans built for this GPU, this TensorRT and these models (see
# build-plans.sh), else from the image's own model folder, where BACKEND=auto
# picks the CUDA engine or onnxruntime. Then run the service. A MODELS_DIR
# set by the operator (a mounted model repository) is served as it is.
# (IMAGE_MODELS_DIR, TRT_VERSION_FILE and SWIN_MAIN exist for
# test/deploy-plan-cache.test.ts.)
set -euo pipefail

image_models=${IMAGE_MODELS_DIR:-/app/engines/models}
cache=${TRT_PLAN_CACHE:-}
use_cache=0
if [ -n "${MODELS_DIR:-}" ]; then
  exec node "${SWIN_MAIN:-/app/dist/src/main.js}" "$@"
fi
if [ -n "$cache" ] && [ -d "$cache/models" ]; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
  trt=$(cat "${TRT_VERSION_FILE:-/opt/tensorrt/VERSION}")
  use_cache=1
  for src in "$image_models"/*/; do
    src=${src%/}
    name=$(basename "$src")
    [ -f "$src/model.json" ] || continue
    want="model.json $(sha256sum < "$src/model.json" | cut -d' ' -f1) tensorrt $trt gpu $gpu"
    have=$(cat "$cache/models/$name/.stamp" 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
      echo "serve: no current TensorRT plans for $name in $cache (run the trt-plans one-shot); serving without them" >&2
      use_cache=0
    fi
  done
fi
if [ "$use_cache" = 1 ]; then
  export MODELS_DIR="$cache/models"
  echo "serve: TensorRT plans from $MODELS_DIR" >&2
else
  export MODELS_DIR="$image_models"
fi
exec node "${SWIN_MAIN:-/app/dist/src/main.js}" "$@"
