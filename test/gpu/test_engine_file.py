"""Engine-file semantics, without a GPU: a plain PyTorch executor follows the CUDA engine's
forward pass (addon/cuda/swin_engine.cc) step for step on the tensors of an engine file (natural
token order, attention gathered through the shifted-window map, merge order, V2 post-norm,
fold/unfold tables computed as the load-time kernels do) and must reproduce timm's logits.
This pins the builder's layouts and the engine's algorithm; the kernels themselves are checked
on the GPU by test_kernels.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from refs import rel_l2, shift_mask_ref, window_attention_ref

pytestmark = pytest.mark.cpu_ok


def run_engine_file(path: str, images: torch.Tensor) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(path, 'pt') as f:
        meta = json.loads(f.metadata()['swin_engine'])
    t = {k: v.double() if v.is_floating_point() else v for k, v in load_file(path).items()}
    v2, fold, eps = meta['family'] == 'swinv2', meta['variant'] == 'fold', meta['ln_eps']
    B, Hi, Wi, _ = images.shape
    P = meta['patch_size']
    mean, std = torch.tensor(meta['preprocess']['mean']).double(), torch.tensor(meta['preprocess']['std']).double()
    x = (images.double() / 255 - mean) / std
    H, W = Hi // P, Wi // P
    patches = x.view(B, H, P, W, P, 3).permute(0, 1, 3, 2, 4, 5).reshape(B * H * W, P * P * 3)
    x = patches @ t['patch_embed.weight'].t() + t['patch_embed.bias']
    if meta['patch_norm']:
        x = F.layer_norm(x, x.shape[-1:], t['patch_embed.norm.weight'], t['patch_embed.norm.bias'], eps)
    ln = lambda v, p: F.layer_norm(v, v.shape[-1:], t[p + '.weight'], t[p + '.bias'], eps)  # noqa: E731
    for si, st in enumerate(meta['stages']):
        sp = f'stages.{si}.'
        if st['downsample']:
            C = x.shape[-1]
            m = x.view(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(-1, 4 * C)
            H, W = H // 2, W // 2
            if v2:
                x = ln(m @ t[sp + 'downsample.reduction.weight'].t(), sp + 'downsample.norm')
            else:
                x = ln(m, sp + 'downsample.norm') @ t[sp + 'downsample.reduction.weight'].t()
        C, heads, ws = st['dim'], st['heads'], st['window']
        N = ws * ws
        for bi, shift in enumerate(st['shifts']):
            bp = sp + f'blocks.{bi}.'
            if fold:
                bias = t[bp + 'attn_bias']
                mask = t[sp + 'attn_mask'] if shift else None
                ls = t.get(bp + 'logit_scale')
            else:
                idx = t[bp + 'rp_index'].long()
                if v2:
                    hid = torch.relu(t[bp + 'cpb_coords'] @ t[bp + 'cpb_fc1.weight'].t() + t[bp + 'cpb_fc1.bias'])
                    tab = hid @ t[bp + 'cpb_fc2.weight'].t()
                    bias = 16 * torch.sigmoid(tab[idx].view(N, N, heads).permute(2, 0, 1))
                    ls = torch.clamp(t[bp + 'logit_scale_raw'], max=math.log(100)).exp()
                else:
                    bias = t[bp + 'rpb_table'][idx].view(N, N, heads).permute(2, 0, 1)
                    ls = None
                mask = shift_mask_ref(H, W, ws, shift).double() if shift else None
            lin = lambda v, p: v @ t[p + '.weight'].t() + t[p + '.bias']  # noqa: E731
            if not v2:
                qkv = lin(ln(x, bp + 'norm1'), bp + 'qkv')
                a = window_attention_ref(qkv, bias, mask, None, (C // heads) ** -0.5, B, H, W, C, heads, ws, shift)
                x = x + lin(a, bp + 'proj')
                x = x + lin(F.gelu(lin(ln(x, bp + 'norm2'), bp + 'fc1')), bp + 'fc2')
            else:
                qkv = lin(x, bp + 'qkv')
                a = window_attention_ref(qkv, bias, mask, ls, 1.0, B, H, W, C, heads, ws, shift)
                x = x + ln(lin(a, bp + 'proj'), bp + 'norm1')
                x = x + ln(lin(F.gelu(lin(x, bp + 'fc1')), bp + 'fc2'), bp + 'norm2')
    pooled = ln(x, 'norm').view(B, H * W, -1).mean(1)
    return pooled @ t['head.weight'].t() + t['head.bias']


@pytest.mark.parametrize('arch', ['swin_tiny', 'swinv2_tiny'])
@pytest.mark.parametrize('variant', ['fold', 'unfold'])
def test_engine_file_semantics(arch, variant, tmp_path, record):
    from swintools.arch import PREPROCESS, build_model, get_arch
    from swintools.cuda_engine import write_engine
    from test_parity import randomize_

    a = get_arch(arch)
    model = build_model(a, seed=0)
    randomize_(model, seed=7)
    pre = PREPROCESS[arch]
    path = str(tmp_path / 'e.swin')
    write_engine(path, model.float(), variant, 'fp32', pre['mean'], pre['std'])
    images = torch.randint(0, 256, (2, a['img_size'], a['img_size'], 3), dtype=torch.uint8)
    with torch.no_grad():  # timm in float64, so the comparison sees algorithm differences, not fp32 rounding
        x = (
            images.double().permute(0, 3, 1, 2) / 255 - torch.tensor(pre['mean']).double().view(1, 3, 1, 1)
        ) / torch.tensor(pre['std']).double().view(1, 3, 1, 1)
        ref = model.double()(x)
    out = run_engine_file(path, images)
    err = rel_l2(out, ref)
    # unfold carries the raw fp32 parameters (exact here); fold's tables are rounded once to fp32
    tol = 1e-6 if variant == 'unfold' else 1e-5
    record(kind='engine_file', arch=arch, variant=variant, rel_l2=err, tol=tol, ok=err < tol)
    assert err < tol, f'engine-file executor differs from timm: rel L2 {err:.3g}'
