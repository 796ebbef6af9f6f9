"""CPU emulation of where the CUDA engine rounds to fp16 in a Swin V2 forward, to tell which
rounding dominates the fp16 error (not a test; float64 PyTorch, a few minutes per model):

    python test/gpu/fp16_emulation.py swinv2_tiny 4 [stress]

Follows swin_engine.cc step by step (natural token order, fp16 GEMM operands and outputs, q^
scaled then rounded, k^ rounded, bias rounded, P rounded before PV, residual stream rounded,
tanh GELU) and switches single rounding points to fp32 to show each one's share. With `stress`
the V2 logit scales are log-uniform in [5, 120] (test_parity_v2_stress), else [3, 30]. Result on
2026-11-24 (SwinV2-T, stress, 4 images): all roundings 1.54e-2 (the H100 measured 1.54e-2), bias
in fp32 1.21e-2, everything but the GEMM operands/outputs in fp32 1.14e-2; CPU PyTorch fp16 2.5e-2.
With timm's init logit scale (10) the same emulation gives 1.3e-3.
"""

from __future__ import annotations

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'engines'))
sys.path.insert(0, os.path.dirname(__file__))

from refs import rel_l2
from swintools.arch import PREPROCESS, build_model, get_arch
from test_parity import randomize_


def r(t, on=True):
    return t.half().double() if on else t


@torch.no_grad()
def emulate(model, x0, opt):
    m, B, P = model, x0.shape[0], 4
    H = W = x0.shape[1] // P
    x = x0.view(B, H, P, W, P, 3).permute(0, 1, 3, 2, 4, 5).reshape(B * H * W, -1)
    w = m.patch_embed.proj.weight.permute(0, 2, 3, 1).reshape(m.patch_embed.proj.weight.shape[0], -1)
    x = r(r(x) @ r(w).t() + r(m.patch_embed.proj.bias))
    x = r(F.layer_norm(x, x.shape[-1:], r(m.patch_embed.norm.weight), r(m.patch_embed.norm.bias)), not opt.get('x32'))
    for layer in m.layers:
        ds = layer.downsample
        if not isinstance(ds, torch.nn.Identity):
            C = x.shape[-1]
            mm = r(x).view(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(-1, 4 * C)
            H, W = H // 2, W // 2
            t = r(mm @ r(ds.reduction.weight).t())
            x = r(F.layer_norm(t, t.shape[-1:], r(ds.norm.weight), r(ds.norm.bias)), not opt.get('x32'))
        for blk in layer.blocks:
            at = blk.attn
            C, heads, ws, sh = x.shape[-1], at.num_heads, blk.window_size[0], blk.shift_size[0]
            N = ws * ws
            qkvb = torch.cat((at.q_bias, torch.zeros_like(at.v_bias), at.v_bias))
            qkv = r(r(x) @ r(at.qkv.weight).t() + r(qkvb))
            tab = at.cpb_mlp(at.relative_coords_table).view(-1, heads)
            bias = 16 * torch.sigmoid(tab[at.relative_position_index.view(-1)].view(N, N, heads).permute(2, 0, 1))
            bias = r(bias, not opt.get('bias32'))
            ls = torch.clamp(at.logit_scale.view(-1), max=math.log(100)).exp()
            v = qkv.view(B, H, W, 3 * C)
            if sh:
                v = torch.roll(v, (-sh, -sh), (1, 2))
            xx = v.view(B, H // ws, ws, W // ws, ws, 3 * C).permute(0, 1, 3, 2, 4, 5).reshape(-1, N, 3 * C)
            q, k, vv = xx.reshape(-1, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4).unbind(0)
            qh = r(F.normalize(q, dim=-1) * ls.view(1, heads, 1, 1), not opt.get('q32'))
            kh = r(F.normalize(k, dim=-1), not opt.get('q32'))
            s = qh @ kh.transpose(-2, -1) + bias.unsqueeze(0)
            if blk.attn_mask is not None:
                mk = blk.attn_mask.double()
                s = (s.view(-1, mk.shape[0], heads, N, N) + mk.unsqueeze(1).unsqueeze(0)).view(-1, heads, N, N)
            p = torch.exp(s - s.amax(-1, keepdim=True))
            o = (r(p, not opt.get('p32')) @ vv) / p.sum(-1, keepdim=True)
            o = o.transpose(1, 2).reshape(-1, N, C).view(B, H // ws, W // ws, ws, ws, C)
            o = o.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
            if sh:
                o = torch.roll(o, (sh, sh), (1, 2))
            o = r(o.reshape(-1, C))
            t = r(o @ r(at.proj.weight).t() + r(at.proj.bias))
            x = r(x + F.layer_norm(t, t.shape[-1:], r(blk.norm1.weight), r(blk.norm1.bias)), not opt.get('x32'))
            h = F.gelu(r(x) @ r(blk.mlp.fc1.weight).t() + r(blk.mlp.fc1.bias), approximate='tanh')
            t = r(r(h) @ r(blk.mlp.fc2.weight).t() + r(blk.mlp.fc2.bias))
            x = r(x + F.layer_norm(t, t.shape[-1:], r(blk.norm2.weight), r(blk.norm2.bias)), not opt.get('x32'))
    xn = F.layer_norm(x, x.shape[-1:], r(m.norm.weight), r(m.norm.bias)).view(B, H * W, -1).mean(1)
    return r(r(xn) @ r(m.head.fc.weight).t() + r(m.head.fc.bias))


def main():
    name, n = sys.argv[1], int(sys.argv[2])
    lr = (5.0, 120.0) if 'stress' in sys.argv[3:] else (3.0, 30.0)
    a = get_arch(name)
    model = build_model(a, seed=0)
    randomize_(model, 1234, logit_range=lr)
    model = model.double().eval()
    pre = PREPROCESS[name]
    imgs = torch.randint(
        0, 256, (n, a['img_size'], a['img_size'], 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    x0 = (imgs.double() / 255 - torch.tensor(pre['mean']).double()) / torch.tensor(pre['std']).double()
    with torch.no_grad():
        ref = model(x0.permute(0, 3, 1, 2))
    for opt in [{}, {'bias32': 1}, {'x32': 1}, {'q32': 1}, {'p32': 1}, {'bias32': 1, 'q32': 1, 'p32': 1, 'x32': 1}]:
        print(name, 'fp32 at:', opt or 'nothing', f'rel L2 {rel_l2(emulate(model, x0, opt), ref):.3g}', flush=True)


if __name__ == '__main__':
    main()
