#!/usr/bin/env bash
# Builds TensorRT plans (.plan) for one model from its fold and unfold ONNX
# files, with trtexec, and records them in the model's model.json.
#
# Plans are specific to the GPU model and TensorRT version that build them:
# run this on the serving GPU, inside NVIDIA's TensorRT container of the
# version the service's image ships, e.g.
#   docker run --rm --gpus all -v "$PWD":/work -w /work nvcr.io/nvidia/tensorrt:<yy.mm>-py3 \
#     engines/build_trt_plans.sh engines/models/swin-fmnist
#
# usage: engines/build_trt_plans.sh MODEL_DIR [--variants fold,unfold] [--precisions fp16,fp32]
#                                   [--record fp16|fp32] [--dry-run]
#   Writes MODEL_DIR/<name>.<variant>.<precision>.plan for each pair, then sets
#   artifacts.<variant>.tensorrt in model.json to the --record precision's plan
#   (default fp16; fp32 plans are for checking).
#   Batch profiles come from model.json: min 1, opt the largest of
#   batching.preferred_batch_sizes (else max_batch_size), max batching.max_batch_size;
#   one identical profile per batching.instances, because TensorRT runs
#   concurrent execution contexts only on distinct profiles.
#   --dry-run prints the trtexec commands and the model.json change, runs nothing.
#   TRTEXEC (default: trtexec on PATH, else /usr/src/tensorrt/bin/trtexec) and
#   TRTEXEC_EXTRA (extra flags, e.g. --memPoolSize=workspace:8192M) are honoured.
set -euo pipefail

die() { echo "build_trt_plans: $*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: $0 MODEL_DIR [--variants fold,unfold] [--precisions fp16,fp32] [--record fp16|fp32] [--dry-run]"
model_dir=${1%/}; shift
variants=fold,unfold
precisions=fp16,fp32
record=fp16
dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --variants) variants=$2; shift 2 ;;
    --precisions) precisions=$2; shift 2 ;;
    --record) record=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -f "$model_dir/model.json" ] || die "$model_dir/model.json not found"
case ",$precisions," in *",$record,"*) ;; *) die "--record $record is not among --precisions $precisions" ;; esac

trtexec=${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}
if [ "$dry_run" = 0 ]; then
  [ -x "$trtexec" ] || die "trtexec not found (run inside NVIDIA's TensorRT container, or set TRTEXEC)"
  "$trtexec" --help >/dev/null 2>&1 || true
fi

# Everything this script needs from model.json, one field a line.
read_model() {
  python3 - "$model_dir/model.json" "$1" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
variant = sys.argv[2]
b = m["batching"]
mx = int(b["max_batch_size"])
opt = max([p for p in b.get("preferred_batch_sizes", []) if p <= mx] or [mx])
onnx = m.get("artifacts", {}).get(variant, {}).get("onnxruntime", "")
print(m["name"]); print(m["input"]["name"]); print(m["architecture"]["img_size"])
print(1); print(opt); print(mx); print(max(1, int(b.get("instances", 1)))); print(onnx)
EOF
}

built=()
for variant in ${variants//,/ }; do
  mapfile -t f < <(read_model "$variant")
  name=${f[0]} input=${f[1]} size=${f[2]} min=${f[3]} opt=${f[4]} max=${f[5]} instances=${f[6]} onnx=${f[7]}
  [ -n "$onnx" ] || die "model.json has no artifacts.$variant.onnxruntime (the ONNX file to build from)"
  [ -f "$model_dir/$onnx" ] || die "$model_dir/$onnx not found"
  profiles=()
  for ((p = 0; p < instances; p++)); do
    profiles+=("--profile=$p" "--minShapes=$input:${min}x${size}x${size}x3"
               "--optShapes=$input:${opt}x${size}x${size}x3" "--maxShapes=$input:${max}x${size}x${size}x3")
  done
  for precision in ${precisions//,/ }; do
    plan="$name.$variant.$precision.plan"
    flags=()
    [ "$precision" = fp16 ] && flags+=(--fp16)
    # shellcheck disable=SC2206  # TRTEXEC_EXTRA is a list of flags on purpose
    cmd=("$trtexec" "--onnx=$model_dir/$onnx" "--saveEngine=$model_dir/$plan" "${profiles[@]}" "${flags[@]}"
         --skipInference ${TRTEXEC_EXTRA:-})
    echo "+ ${cmd[*]}"
    if [ "$dry_run" = 0 ]; then
      "${cmd[@]}" > "$model_dir/$plan.log" 2>&1 || { tail -n 30 "$model_dir/$plan.log" >&2; die "trtexec failed for $plan (log: $model_dir/$plan.log)"; }
    fi
    [ "$precision" = "$record" ] && built+=("$variant=$plan")
  done
done

# Record the plans: artifacts.<variant>.tensorrt = plan file (relative to the model folder).
echo "model.json: ${built[*]/#/artifacts.}" | sed 's/=/.tensorrt = /g'
if [ "$dry_run" = 0 ]; then
  python3 - "$model_dir/model.json" "${built[@]}" <<'EOF'
import json, sys
path = sys.argv[1]
m = json.load(open(path))
for item in sys.argv[2:]:
    variant, plan = item.split("=", 1)
    m.setdefault("artifacts", {}).setdefault(variant, {})["tensorrt"] = plan
with open(path, "w") as f:
    json.dump(m, f, indent=2)
    f.write("\n")
EOF
fi
