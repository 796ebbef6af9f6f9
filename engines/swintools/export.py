"""ONNX export of a Swin model in the two variants fold and unfold.

    python -m swintools.export --arch swin_tiny --random-seed 0 --out /tmp/swin_tiny
    python -m swintools.export --arch swinv2_base_w16 --checkpoint swinv2_base.pth --out out/ --device cuda

Writes <out>/<name>.fold.onnx and <out>/<name>.unfold.onnx: input "image" uint8
[batch, H, W, 3], output "logits" float32 [batch, classes], batch dynamic, opset 17.

Exporter: torch's TorchScript exporter (dynamo=False), with torch's own constant folding
off. It keeps the eager module's ops one to one, so the unfold graph shows cpb_mlp's
MatMuls, Sigmoid, Clip/Exp of the logit scale, the bias-table Gather and the shift-mask
Where; `fold` is that graph after onnx_fold.fold_constants, which precomputes every node
that depends on no graph input. engines/README.md says why not the dynamo exporter.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence

import onnx
import torch
from torch import nn

from .arch import PREPROCESS, build_model, get_arch
from .onnx_fold import fold_constants, input_first_order
from .wrapper import UInt8NHWC, with_runtime_masks

OPSET = 17
VARIANTS = ('fold', 'unfold')


def export_variant(
    model: nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    img_size: int,
    variant: str,
    path: str,
    opset: int = OPSET,
) -> dict:
    """Exports `model` (any device, eval) wrapped in UInt8NHWC to `path`. Returns stats."""
    if variant not in VARIANTS:
        raise ValueError(f'variant must be one of {VARIANTS}, not {variant!r}')
    device = next(model.parameters()).device
    t0 = time.time()
    try:
        buf = _trace_to_onnx(model, mean, std, img_size, device, opset)
        exported_on = str(device)
    except RuntimeError as err:
        if device.type == 'cpu':
            raise
        # Safety net only: tracing on the GPU is expected to work (see _trace_to_onnx).
        buf = _trace_to_onnx(model, mean, std, img_size, torch.device('cpu'), opset)
        exported_on = f'cpu (fallback from {device}: {str(err).splitlines()[0][:120]})'
    proto = onnx.load_from_string(buf)
    folded = Counter()
    if variant == 'fold':
        proto, folded = fold_constants(proto)
    proto = input_first_order(proto)
    onnx.checker.check_model(proto)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(proto, path)
    ops = Counter(n.op_type for n in proto.graph.node)
    return {
        'variant': variant,
        'path': path,
        'bytes': os.path.getsize(path),
        'seconds': round(time.time() - t0, 2),
        'device': exported_on,
        'opset': opset,
        'nodes': sum(ops.values()),
        'first_ops': [n.op_type for n in proto.graph.node if n.op_type != 'Constant'][:4],
        'ops': dict(sorted(ops.items())),
        'folded_by_fold_pass': dict(sorted(folded.items())),
    }


def _trace_to_onnx(model, mean, std, img_size, device, opset) -> bytes:
    """The unfolded graph, traced on `device`.

    do_constant_folding stays off for both variants: torch's folding pass
    (_jit_pass_onnx_constant_fold) evaluates on the CPU and fails on CUDA models with
    "Expected all tensors to be on the same device, cuda:0 and cpu" (the hackathon's
    SwinV2 error), and it misses most of what `fold` must precompute anyway
    (onnx_fold's docstring). onnx_fold.fold_constants does all the folding, on the CPU.
    """
    src = copy.deepcopy(model).to(device) if device != next(model.parameters()).device else model
    wrapped = UInt8NHWC(with_runtime_masks(src), mean, std).to(device).eval()
    # Batch 2 traces the graph; the batch axis is declared dynamic. Traced Python ints
    # (window counts, shapes) are per-image constants, so other batch sizes are exact.
    example = torch.randint(0, 256, (2, img_size, img_size, 3), dtype=torch.uint8, device=device)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings about timm's shape asserts
        torch.onnx.export(
            wrapped,
            (example,),
            buf,
            dynamo=False,
            opset_version=opset,
            do_constant_folding=False,
            input_names=['image'],
            output_names=['logits'],
            dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}},
        )
    return buf.getvalue()


def export_both(model, mean, std, img_size, out_dir, name, variants=VARIANTS, log=print) -> list[dict]:
    stats = []
    for v in variants:
        path = os.path.join(out_dir, f'{name}.{v}.onnx')
        log(f'[export] {name} {v} -> {path} ...')
        s = export_variant(model, mean, std, img_size, v, path)
        log(f"[export] {v}: {s['nodes']} nodes, {s['bytes'] / 1e6:.1f} MB, {s['seconds']} s, starts {s['first_ops']}")
        stats.append(s)
    return stats


def load_for_cli(args) -> tuple[nn.Module, dict, dict]:
    """Model, arch dict and preprocess dict from the common CLI flags."""
    from .checkpoint import load_checkpoint

    arch = get_arch(args.arch, args.num_classes)
    model = build_model(arch, seed=args.random_seed)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    model = model.to(args.device).eval()
    pre = dict(PREPROCESS.get(args.arch, {})) if isinstance(args.arch, str) else {}
    if args.mean:
        pre['mean'] = args.mean
    if args.std:
        pre['std'] = args.std
    if 'mean' not in pre:
        raise SystemExit('no mean/std known for this arch: pass --mean and --std')
    return model, arch, pre


def add_model_args(p: argparse.ArgumentParser):
    p.add_argument(
        '--arch',
        required=True,
        help='preset name (swin_tiny, swinv2_base_w16, swin-fmnist, ...) or a JSON file with an ArchitectureConfig',
    )
    p.add_argument('--checkpoint', help='official .pth, timm .pth/.bin or .safetensors; omit for random weights')
    p.add_argument('--random-seed', type=int, default=0, help='seed of the random init (default 0)')
    p.add_argument('--num-classes', type=int)
    p.add_argument('--mean', type=float, nargs=3)
    p.add_argument('--std', type=float, nargs=3)
    p.add_argument('--device', default='cpu', help='cpu or cuda: device the model is exported from')


def resolve_arch_arg(args):
    if args.arch.endswith('.json'):
        with open(args.arch) as f:
            data = json.load(f)
        args.arch = data.get('architecture', data)
        if 'preprocess' in data and not args.mean:
            args.mean, args.std = data['preprocess']['mean'], data['preprocess']['std']


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--name', help='file name stem (default: arch name)')
    p.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    args = p.parse_args(argv)
    resolve_arch_arg(args)
    model, arch, pre = load_for_cli(args)
    name = args.name or (args.arch if isinstance(args.arch, str) else 'model')
    stats = export_both(model, pre['mean'], pre['std'], arch['img_size'], args.out, name, args.variants)
    with open(os.path.join(args.out, f'{name}.export.json'), 'w') as f:
        json.dump({'arch': arch, 'preprocess': pre, 'torch': torch.__version__, 'exports': stats}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
