"""Engine files for our CUDA Swin engine (addon/cuda), and a ctypes handle to run them.

    python -m swintools.cuda_engine --arch swin_tiny --random-seed 0 --variant fold --precision fp16 --out t.swin
    python -m swintools.cuda_engine --arch models/swin-fmnist/model.json \\
        --weights models/swin-fmnist/swin-fmnist.safetensors --variant unfold --precision fp16 --out fm.swin

An engine file is a safetensors container. Its __metadata__ holds "swin_engine": a JSON
document (format "swin-cuda-engine", format_version, family, variant fold|unfold, precision,
geometry per stage, labels, preprocess mean/std, input size), and its tensors are already in
the engine's layout and precision (see docs/cuda-engine.md for every name):

- patch_embed.weight is the 4x4 conv as [C, P*P*3] in (ky, kx, c) order, matching the
  uint8 NHWC bytes the engine reads.
- V2's qkv bias is cat(q_bias, 0, v_bias), as timm computes it.
- fold: attention biases precomputed here, [heads, N, N]: V1 the gathered relative
  position bias table, V2 16*sigmoid(cpb_mlp(coords)) gathered; V2's exp(clamp(logit_scale,
  log 100)); each shifted stage's 0/-100 mask [nW, N, N]. unfold: the raw tables (V1 table +
  index; V2 CPB MLP weights, coords table, index, raw logit_scale), from which the engine
  computes the same tensors on the GPU when it loads. Same meaning as the ONNX variants.

The Engine class below loads libswin_cuda_capi.so (built by `cmake -S addon/cuda -B build/cuda`;
override with SWIN_CUDA_CAPI=/path/lib.so) for tests and benchmarks in the PyTorch process.
"""

from __future__ import annotations

import contextlib
import argparse
import ctypes
import json
import math
import os
import sys
from typing import Any

import torch
from torch import nn

FORMAT = 'swin-cuda-engine'
FORMAT_VERSION = 1
VARIANTS = ('fold', 'unfold')
PRECISIONS = ('fp16', 'fp32')


def _is_v2(model: nn.Module) -> bool:
    from timm.models.swin_transformer_v2 import SwinTransformerV2

    return isinstance(model, SwinTransformerV2)


def _square(v, what: str) -> int:
    v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if v[0] != v[1]:
        raise ValueError(f'{what} must be square, got {v}')
    return int(v[0])


@torch.no_grad()
def engine_tensors(model: nn.Module, variant: str, precision: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, geometry metadata) of a timm SwinTransformer / SwinTransformerV2 in eval mode."""
    if variant not in VARIANTS or precision not in PRECISIONS:
        raise ValueError(f'variant in {VARIANTS}, precision in {PRECISIONS}')
    v2 = _is_v2(model)
    wdt = torch.float16 if precision == 'fp16' else torch.float32
    fold = variant == 'fold'
    out: dict[str, torch.Tensor] = {}

    def put(name, t, dtype=None):
        out[name] = t.detach().to('cpu', dtype or wdt).contiguous()

    if getattr(model, 'absolute_pos_embed', None) is not None:
        raise ValueError('absolute position embedding is not supported by the CUDA engine')
    pe = model.patch_embed
    w = pe.proj.weight  # [C, 3, P, P]
    C0, _, P, _ = w.shape
    put('patch_embed.weight', w.permute(0, 2, 3, 1).reshape(C0, -1))
    put('patch_embed.bias', pe.proj.bias)
    patch_norm = isinstance(pe.norm, nn.LayerNorm)
    if patch_norm:
        put('patch_embed.norm.weight', pe.norm.weight)
        put('patch_embed.norm.bias', pe.norm.bias)
    eps = pe.norm.eps if patch_norm else model.norm.eps

    stages = []
    for si, layer in enumerate(model.layers):
        sp = f'stages.{si}.'
        ds = layer.downsample
        downsample = not isinstance(ds, nn.Identity)
        if downsample:
            put(sp + 'downsample.norm.weight', ds.norm.weight)
            put(sp + 'downsample.norm.bias', ds.norm.bias)
            put(sp + 'downsample.reduction.weight', ds.reduction.weight)
        blocks = list(layer.blocks)
        res = tuple(int(r) for r in blocks[0].input_resolution)
        ws = _square(blocks[0].window_size, 'window')
        shifts = [_square(b.shift_size, 'shift') for b in blocks]
        heads = blocks[0].attn.num_heads
        dim = blocks[0].norm1.normalized_shape[0]
        N = ws * ws
        for bi, blk in enumerate(blocks):
            if _square(blk.window_size, 'window') != ws:
                raise ValueError('blocks of one stage with different windows')
            bp = sp + f'blocks.{bi}.'
            at = blk.attn
            put(bp + 'norm1.weight', blk.norm1.weight)
            put(bp + 'norm1.bias', blk.norm1.bias)
            put(bp + 'norm2.weight', blk.norm2.weight)
            put(bp + 'norm2.bias', blk.norm2.bias)
            put(bp + 'qkv.weight', at.qkv.weight)
            if v2:
                if at.q_bias is None:
                    qkv_b = torch.zeros(3 * dim)
                else:
                    qkv_b = torch.cat((at.q_bias, torch.zeros_like(at.v_bias), at.v_bias))
            else:
                qkv_b = at.qkv.bias if at.qkv.bias is not None else torch.zeros(3 * dim)
            put(bp + 'qkv.bias', qkv_b)
            put(bp + 'proj.weight', at.proj.weight)
            put(bp + 'proj.bias', at.proj.bias)
            put(bp + 'fc1.weight', blk.mlp.fc1.weight)
            put(bp + 'fc1.bias', blk.mlp.fc1.bias)
            put(bp + 'fc2.weight', blk.mlp.fc2.weight)
            put(bp + 'fc2.bias', blk.mlp.fc2.bias)
            index = at.relative_position_index.reshape(-1)
            if not v2:
                table = at.relative_position_bias_table.float()  # [(2w-1)^2, heads]
                if fold:
                    put(bp + 'attn_bias', table[index].view(N, N, heads).permute(2, 0, 1))
                else:
                    put(bp + 'rpb_table', table, torch.float32)
                    put(bp + 'rp_index', index, torch.int32)
            else:
                coords = at.relative_coords_table.reshape(-1, 2).float()
                fc1, fc2 = at.cpb_mlp[0], at.cpb_mlp[2]
                raw_ls = at.logit_scale.reshape(-1).float()
                if fold:
                    # float64 so that the fold variant carries the exact function, rounded once
                    t = nn.functional.linear(coords.double(), fc1.weight.double(), fc1.bias.double())
                    t = nn.functional.linear(torch.relu(t), fc2.weight.double())
                    bias = 16 * torch.sigmoid(t[index].view(N, N, heads).permute(2, 0, 1))
                    put(bp + 'attn_bias', bias)
                    put(bp + 'logit_scale', torch.clamp(raw_ls.double(), max=math.log(1.0 / 0.01)).exp(), torch.float32)
                else:
                    put(bp + 'cpb_coords', coords, torch.float32)
                    put(bp + 'cpb_fc1.weight', fc1.weight, torch.float32)
                    put(bp + 'cpb_fc1.bias', fc1.bias, torch.float32)
                    put(bp + 'cpb_fc2.weight', fc2.weight, torch.float32)
                    put(bp + 'rp_index', index, torch.int32)
                    put(bp + 'logit_scale_raw', raw_ls, torch.float32)
        if any(shifts) and fold:
            masks = [b.attn_mask for b in blocks if _square(b.shift_size, 'shift') > 0]
            if masks[0] is None:
                raise ValueError('shifted block without a precomputed attn_mask (dynamic_mask models unsupported)')
            put(sp + 'attn_mask', masks[0])
        stages.append(
            {
                'dim': int(dim),
                'depth': len(blocks),
                'heads': int(heads),
                'resolution': list(res),
                'window': ws,
                'shifts': shifts,
                'downsample': downsample,
            }
        )

    put('norm.weight', model.norm.weight)
    put('norm.bias', model.norm.bias)
    head = model.head
    pool = getattr(getattr(head, 'global_pool', None), 'pool_type', 'avg')
    if pool != 'avg':
        raise ValueError(f'only average pooling heads are supported, not {pool!r}')
    fc = head.fc if hasattr(head, 'fc') else head
    put('head.weight', fc.weight)
    put('head.bias', fc.bias)
    img = pe.img_size if hasattr(pe, 'img_size') else None
    geometry = {
        'family': 'swinv2' if v2 else 'swin',
        'variant': variant,
        'precision': precision,
        'img_size': [int(img[0]), int(img[1])],
        'patch_size': int(P),
        'embed_dim': int(C0),
        'num_classes': int(fc.weight.shape[0]),
        'ln_eps': float(eps),
        'patch_norm': patch_norm,
        'stages': stages,
    }
    return out, geometry


def write_engine(
    path: str,
    model: nn.Module,
    variant: str,
    precision: str,
    mean,
    std,
    labels=None,
    name: str | None = None,
    arch: dict | None = None,
    max_batch: int = 128,
) -> dict:
    """Writes the engine file; returns its metadata document."""
    from safetensors.torch import save_file

    tensors, geo = engine_tensors(model, variant, precision)
    classes = geo['num_classes']
    meta = {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'name': name or geo['family'],
        **geo,
        'max_batch': int(max_batch),
        'preprocess': {'mean': [float(m) for m in mean], 'std': [float(s) for s in std], 'input_scale': 1 / 255},
        'input': {
            'layout': 'NHWC',
            'dtype': 'uint8',
            'height': geo['img_size'][0],
            'width': geo['img_size'][1],
            'channels': 3,
        },
        'labels': list(labels) if labels else [f'class_{i}' for i in range(classes)],
        'architecture': arch or {},
    }
    if len(meta['labels']) != classes:
        raise ValueError(f'{len(meta["labels"])} labels for {classes} classes')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(
        tensors,
        path,
        metadata={
            'swin_engine': json.dumps(meta),
            'format': FORMAT,
            'format_version': str(FORMAT_VERSION),
            'variant': variant,
            'precision': precision,
        },
    )
    return meta


# --------------------------------------------------------------------------- runtime (ctypes)


def _find_capi() -> str:
    env = os.environ.get('SWIN_CUDA_CAPI')
    if env:
        return env
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
    for cand in ('build/cuda/libswin_cuda_capi.so', 'addon/build/cuda/libswin_cuda_capi.so'):
        p = os.path.join(root, cand)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(
        'libswin_cuda_capi.so not found: build it with `cmake -S addon/cuda -B build/cuda && '
        'cmake --build build/cuda -j` or set SWIN_CUDA_CAPI'
    )


_lib = None


def capi() -> ctypes.CDLL:
    """The C API library with argument types declared (loaded once)."""
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(_find_capi())
    P, I, F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    sig = {
        'swin_last_error': ([], ctypes.c_char_p),
        'swin_last_error_code': ([], ctypes.c_char_p),
        'swin_engine_open': ([ctypes.c_char_p, I, I, I, I, ctypes.c_char_p], P),
        'swin_engine_close': ([P], None),
        'swin_engine_info': ([P, P], I),
        'swin_engine_infer': ([P, P, I, P], I),
        'swin_engine_infer_device': ([P, P, I, P, P], I),
        'swin_engine_time': ([P, I, I, I, P], I),
        'swin_k_patch_embed': ([I, P, P, I, I, I, I, P, P], I),
        'swin_k_layernorm': ([I, P, P, P, P, I, I, F, I], I),
        'swin_k_patch_merge': ([I, P, P, P, P, I, I, I, I, F], I),
        'swin_k_final_pool': ([I, P, P, P, P, I, I, I, F], I),
        'swin_k_window_attention': ([I, P, P, P, P, P, F, I, I, I, I, I, I, I], I),
        'swin_k_rel_bias': ([I, P, P, P, I, I], I),
        'swin_k_cpb_bias': ([I, P, P, P, P, P, P, P, I, I, I, I], I),
        'swin_k_shift_mask': ([I, P, I, I, I, I], I),
        'swin_k_logit_scale': ([P, P, I], I),
        'swin_k_gemm': ([I, P, P, P, P, I, I, I, I, I], I),
    }
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    _lib = lib
    return lib


class EngineError(RuntimeError):
    def __init__(self, code: str, message: str):
        super().__init__(f'{code}: {message}')
        self.code = code


def check(rc: int):
    if rc != 0:
        lib = capi()
        raise EngineError(lib.swin_last_error_code().decode(), lib.swin_last_error().decode())


class Engine:
    """A loaded engine file; infer() takes a uint8 [n, H, W, 3] CUDA tensor, returns fp32 logits."""

    def __init__(
        self,
        path: str,
        device: int = 0,
        max_batch: int = 0,
        instances: int = 1,
        graphs: bool = True,
        precision: str = '',
    ):
        lib = capi()
        self.handle = lib.swin_engine_open(path.encode(), device, max_batch, instances, int(graphs), precision.encode())
        if not self.handle:
            raise EngineError(lib.swin_last_error_code().decode(), lib.swin_last_error().decode())
        info = (ctypes.c_int * 6)()
        check(lib.swin_engine_info(self.handle, info))
        self.max_batch, self.height, self.width, self.num_classes, fp32, self.device_mib = list(info)
        self.precision = 'fp32' if fp32 else 'fp16'

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.is_cuda and images.is_contiguous()
        n = images.shape[0]
        out = torch.empty(n, self.num_classes, dtype=torch.float32, device=images.device)
        stream = torch.cuda.current_stream(images.device).cuda_stream
        check(capi().swin_engine_infer_device(self.handle, images.data_ptr(), n, out.data_ptr(), stream))
        return out

    def infer_host(self, images) -> Any:
        import numpy as np

        images = np.ascontiguousarray(images, dtype=np.uint8)
        n = images.shape[0]
        out = np.empty((n, self.num_classes), dtype=np.float32)
        check(capi().swin_engine_infer(self.handle, images.ctypes.data, n, out.ctypes.data))
        return out

    def time(self, n: int, warmup: int = 5, iters: int = 20) -> list[float]:
        """Per-pass ms of batch n (CUDA events around each graph launch; inputs from the last infer)."""
        ms = (ctypes.c_float * iters)()
        check(capi().swin_engine_time(self.handle, n, warmup, iters, ms))
        return list(ms)

    def close(self):
        if self.handle:
            capi().swin_engine_close(self.handle)
            self.handle = None

    def __del__(self):
        with contextlib.suppress(Exception):  # interpreter shutdown: the library may be gone
            self.close()


# --------------------------------------------------------------------------- CLI


def main(argv=None):
    from .export import add_model_args, load_for_cli, resolve_arch_arg

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument('--weights', dest='checkpoint', help='alias of --checkpoint')
    p.add_argument('--variant', required=True, choices=VARIANTS)
    p.add_argument('--precision', default='fp16', choices=PRECISIONS)
    p.add_argument('--max-batch', type=int, default=128, help='default max batch recorded in the file')
    p.add_argument('--labels', help='JSON list or text file with one label per line (default: from model.json)')
    p.add_argument('--out', required=True, help='engine file to write (.swin)')
    args = p.parse_args(argv)
    arch_arg = args.arch
    labels = None
    if arch_arg.endswith('.json'):
        with open(arch_arg) as f:
            labels = json.load(f).get('labels')
    resolve_arch_arg(args)
    model, arch, pre = load_for_cli(args)
    if args.labels:
        with open(args.labels) as f:
            text = f.read()
        labels = json.loads(text) if text.lstrip().startswith('[') else [l for l in text.splitlines() if l.strip()]
    name = arch.get('timm_name') or (
        arch_arg if not arch_arg.endswith('.json') else os.path.basename(os.path.dirname(os.path.abspath(arch_arg)))
    )
    meta = write_engine(
        args.out,
        model.float().cpu(),
        args.variant,
        args.precision,
        pre['mean'],
        pre['std'],
        labels=labels,
        name=name,
        arch=arch,
        max_batch=args.max_batch,
    )
    print(
        f"[cuda_engine] {args.out}: {meta['family']} {args.variant} {args.precision}, "
        f"{os.path.getsize(args.out) / 1e6:.1f} MB, {len(meta['stages'])} stages"
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
