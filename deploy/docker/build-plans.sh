#!/usr/bin/env bash
# The trt-plans image's entry point: TensorRT plans for the GPU this runs on,
# for every model the image ships, into the plan cache (a volume or hostPath).
#
#   $TRT_PLAN_CACHE/models/<model>/   the model folder the gpu image serves from:
#       every file of /app/engines/models/<model>/ as a symlink into the image,
#       model.json (a copy that engines/build_trt_plans.sh edits to name the plans),
#       <model>.<variant>.fp16.plan, and .stamp saying what the plans were built for.
#
# A model whose .stamp matches (same model.json, TensorRT version, GPU) is
# skipped, so running this on every pod start costs seconds. Arguments are
# passed on to engines/build_trt_plans.sh (default: --precisions fp16).
# (BUILD_TRT_PLANS and TRT_VERSION_FILE exist for test/deploy-plan-cache.test.ts.)
set -euo pipefail

models_dir=${MODELS_DIR:-/app/engines/models}
build_trt_plans=${BUILD_TRT_PLANS:-/app/engines/build_trt_plans.sh}
cache=${TRT_PLAN_CACHE:?TRT_PLAN_CACHE must name the plan cache directory}
[ $# -gt 0 ] || set -- --precisions fp16 --record fp16

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
[ -n "$gpu" ] || { echo "build-plans: no GPU visible (run with --gpus / a GPU reservation)" >&2; exit 1; }
trt=$(cat "${TRT_VERSION_FILE:-/opt/tensorrt/VERSION}")

for src in "$models_dir"/*/; do
  src=${src%/}
  name=$(basename "$src")
  [ -f "$src/model.json" ] || continue
  dst="$cache/models/$name"
  stamp="model.json $(sha256sum < "$src/model.json" | cut -d' ' -f1) tensorrt $trt gpu $gpu"
  if [ -f "$dst/.stamp" ] && [ "$(cat "$dst/.stamp")" = "$stamp" ]; then
    echo "build-plans: $name: plans for $gpu / TensorRT $trt are up to date"
    continue
  fi
  echo "build-plans: $name: building plans for $gpu / TensorRT $trt"
  rm -rf "$dst.tmp"
  mkdir -p "$dst.tmp"
  for f in "$src"/*; do
    [ "$(basename "$f")" = model.json ] || ln -s "$f" "$dst.tmp/$(basename "$f")"
  done
  cp "$src/model.json" "$dst.tmp/model.json"
  bash "$build_trt_plans" "$dst.tmp" "$@"
  echo "$stamp" > "$dst.tmp/.stamp"
  # Swap in whole, so a reader never sees half a model folder.
  rm -rf "$dst.old"
  [ -d "$dst" ] && mv "$dst" "$dst.old"
  mv "$dst.tmp" "$dst"
  rm -rf "$dst.old"
done
