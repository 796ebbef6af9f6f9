"""Every kernel of addon/cuda against a PyTorch reference, on fresh random inputs, fp32 and fp16.

Outputs are poisoned (NaN) before each call, so an unwritten element fails the check.
Tolerances (relative L2): fp32 1e-5 (fp32 rounding); fp16 3e-3 (fp16 storage of inputs and
outputs, fp32 arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from refs import logit_scale_ref, rel_l2, shift_mask_ref, v2_coords_index, window_attention_ref

DT = {'fp32': (0, torch.float32, 1e-5), 'fp16': (1, torch.float16, 3e-3)}
dev = 'cuda'


def lib():
    from swintools.cuda_engine import capi

    return capi()


def ok(rc):
    from swintools.cuda_engine import check

    check(rc)


def poisoned(shape, dtype):
    return torch.full(shape, float('nan'), dtype=dtype, device=dev)


def p(t):
    return None if t is None else t.data_ptr()


def assert_close(name, out, ref, tol, record, **info):
    assert torch.isfinite(out).all(), f'{name}: non-finite output (unwritten or overflow)'
    err = rel_l2(out, ref)
    record(kind='kernel', name=name, **info, rel_l2=err, tol=tol, ok=err <= tol)
    assert err <= tol, f'{name}: rel L2 {err:.3g} > {tol}'


@pytest.fixture(autouse=True)
def no_tf32():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('B,H,P', [(3, 224, 4), (2, 256, 4), (2, 32, 2)])
def test_patch_embed_im2col(prec, B, H, P, record):
    code, dt, tol = DT[prec]
    img = torch.randint(0, 256, (B, H, H, 3), dtype=torch.uint8, device=dev)
    mean = torch.rand(3) * 0.5 + 0.25
    std = torch.rand(3) * 0.2 + 0.15
    out = poisoned((B * (H // P) ** 2, P * P * 3), dt)
    ok(lib().swin_k_patch_embed(code, p(img), p(out), B, H, H, P, mean.numpy().ctypes.data, std.numpy().ctypes.data))
    x = (img.double() / 255 - mean.double().to(dev)) / std.double().to(dev)
    ref = x.view(B, H // P, P, H // P, P, 3).permute(0, 1, 3, 2, 4, 5).reshape(-1, P * P * 3)
    assert_close('patch_embed_im2col', out, ref, tol, record, prec=prec, shape=f'B{B} {H}px P{P}')


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('C', [32, 96, 192, 768, 1024, 2048])
@pytest.mark.parametrize('residual', [False, True])
def test_layernorm(prec, C, residual, record):
    code, dt, tol = DT[prec]
    rows = 1037
    x = (torch.randn(rows, C, device=dev) * 3 + 1).to(dt)
    g = (torch.randn(C, device=dev) * 0.3 + 1).to(dt)
    b = (torch.randn(C, device=dev) * 0.2).to(dt)
    if residual:
        base = torch.randn(rows, C, device=dev).to(dt)
        out = base.clone()
    else:
        out = poisoned((rows, C), dt)
    ok(lib().swin_k_layernorm(code, p(x), p(out), p(g), p(b), rows, C, 1e-5, int(residual)))
    ref = F.layer_norm(x.double(), (C,), g.double(), b.double(), 1e-5)
    if residual:
        ref = ref + base.double()
    assert_close('layernorm' + ('_residual' if residual else ''), out, ref, tol, record, prec=prec, shape=f'{rows}x{C}')


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('norm', [True, False])
@pytest.mark.parametrize('B,H,C', [(2, 56, 96), (3, 14, 384), (2, 16, 512)])
def test_patch_merge(prec, norm, B, H, C, record):
    code, dt, tol = DT[prec]
    x = torch.randn(B, H, H, C, device=dev).to(dt)
    g = (torch.randn(4 * C, device=dev) * 0.3 + 1).to(dt) if norm else None
    b = (torch.randn(4 * C, device=dev) * 0.2).to(dt) if norm else None
    out = poisoned((B * (H // 2) ** 2, 4 * C), dt)
    ok(lib().swin_k_patch_merge(code, p(x), p(out), p(g), p(b), B, H, H, C, 1e-5))
    # timm PatchMerging: reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
    ref = x.double().reshape(B, H // 2, 2, H // 2, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(-1, 4 * C)
    if norm:
        ref = F.layer_norm(ref, (4 * C,), g.double(), b.double(), 1e-5)
    assert_close(
        'patch_merge' + ('_norm' if norm else '_gather'),
        out,
        ref,
        tol if norm else 0.0,
        record,
        prec=prec,
        shape=f'B{B} {H}x{H}x{C}',
    )


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('B,L,C', [(3, 49, 768), (2, 64, 1024), (5, 64, 256)])
def test_final_norm_pool(prec, B, L, C, record):
    code, dt, tol = DT[prec]
    x = (torch.randn(B, L, C, device=dev) * 2).to(dt)
    g = (torch.randn(C, device=dev) * 0.3 + 1).to(dt)
    b = (torch.randn(C, device=dev) * 0.2).to(dt)
    out = poisoned((B, C), dt)
    ok(lib().swin_k_final_pool(code, p(x), p(out), p(g), p(b), B, L, C, 1e-5))
    ref = F.layer_norm(x.double(), (C,), g.double(), b.double(), 1e-5).mean(1)
    assert_close('final_norm_pool', out, ref, tol, record, prec=prec, shape=f'B{B} L{L} C{C}')


ATTN_CASES = [  # (B, H, ws, shift, heads)
    (2, 14, 7, 0, 3),
    (2, 14, 7, 3, 3),
    (1, 56, 7, 3, 3),
    (2, 7, 7, 0, 24),
    (2, 16, 8, 4, 2),
    (1, 64, 8, 4, 3),
    (2, 8, 8, 0, 4),
    (1, 24, 12, 6, 4),
    (1, 12, 12, 0, 2),
    (1, 32, 16, 8, 4),
    (2, 16, 16, 0, 8),
    (2, 16, 4, 2, 2),
    # >= 2 CTAs per SM: one CTA per (window, head), no query split
    (4, 56, 7, 3, 3),
    (8, 48, 12, 6, 4),
    (8, 64, 16, 8, 4),
]


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('v2', [False, True])
@pytest.mark.parametrize('B,H,ws,shift,heads', ATTN_CASES)
def test_window_attention(prec, v2, B, H, ws, shift, heads, record):
    code, dt, _ = DT[prec]
    tol = 1e-5 if prec == 'fp32' else 5e-3
    C, N = heads * 32, ws * ws
    qkv = torch.randn(B * H * H, 3 * C, device=dev).to(dt)
    if v2:
        bias = (16 * torch.sigmoid(torch.randn(heads, N, N, device=dev) * 2)).to(dt)
        ls = torch.exp(torch.empty(heads, device=dev).uniform_(math.log(2), math.log(100))).float()
        scale = 1.0
    else:
        bias = (torch.randn(heads, N, N, device=dev) * 2).to(dt)
        ls = None
        scale = 32**-0.5
    mask = shift_mask_ref(H, H, ws, shift).to(dev, dt) if shift else None
    out = poisoned((B * H * H, C), dt)
    ok(
        lib().swin_k_window_attention(
            code, p(qkv), p(out), p(bias), p(mask), p(ls), scale, B, H, H, C, heads, ws, shift
        )
    )
    ref = window_attention_ref(qkv, bias, mask, ls, scale, B, H, H, C, heads, ws, shift)
    assert_close(
        'window_attention_v2' if v2 else 'window_attention_v1',
        out,
        ref,
        tol,
        record,
        prec=prec,
        shape=f'B{B} {H}x{H} w{ws} s{shift} h{heads}',
    )


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('ws,heads', [(7, 3), (8, 6), (12, 4), (16, 16)])
def test_relative_bias_gather(prec, ws, heads, record):
    from timm.models.swin_transformer import get_relative_position_index

    code, dt, tol = DT[prec]
    N = ws * ws
    table = torch.randn((2 * ws - 1) ** 2, heads, device=dev)
    index = get_relative_position_index(ws, ws).reshape(-1).to(dev)
    out = poisoned((heads, N, N), dt)
    ok(lib().swin_k_rel_bias(code, p(table), p(index.int().contiguous()), p(out), heads, N))
    ref = table[index].view(N, N, heads).permute(2, 0, 1)
    assert_close(
        'relative_bias_gather', out, ref, tol if prec == 'fp16' else 0.0, record, prec=prec, shape=f'w{ws} h{heads}'
    )


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('ws,heads', [(8, 3), (16, 16), (8, 32)])
def test_cpb_bias(prec, ws, heads, record):
    code, dt, tol = DT[prec]
    N = ws * ws
    coords, index = v2_coords_index(ws)
    coords, index = coords.to(dev), index.to(dev)
    w1 = torch.randn(512, 2, device=dev)
    b1 = torch.randn(512, device=dev) * 0.5
    w2 = torch.randn(heads, 512, device=dev) / math.sqrt(512) * 3
    scratch = torch.empty(coords.shape[0] * heads, device=dev)
    out = poisoned((heads, N, N), dt)
    ok(
        lib().swin_k_cpb_bias(
            code,
            p(coords),
            p(w1),
            p(b1),
            p(w2),
            p(index.int().contiguous()),
            p(scratch),
            p(out),
            coords.shape[0],
            512,
            heads,
            N,
        )
    )
    t = F.linear(torch.relu(F.linear(coords.double(), w1.double(), b1.double())), w2.double())
    ref = 16 * torch.sigmoid(t[index].view(N, N, heads).permute(2, 0, 1))
    assert_close('cpb_bias', out, ref, tol, record, prec=prec, shape=f'w{ws} h{heads}')


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('H,ws,shift', [(56, 7, 3), (28, 7, 3), (64, 8, 4), (32, 16, 8), (24, 12, 6)])
def test_shift_mask(prec, H, ws, shift, record):
    code, dt, _ = DT[prec]
    out = poisoned(((H // ws) ** 2, ws * ws, ws * ws), dt)
    ok(lib().swin_k_shift_mask(code, p(out), H, H, ws, shift))
    ref = shift_mask_ref(H, H, ws, shift).to(dev)
    assert_close('shift_mask', out, ref, 0.0, record, prec=prec, shape=f'{H} w{ws} s{shift}')


def test_logit_scale(record):
    raw = torch.empty(32, device=dev).uniform_(-1, 6)
    out = poisoned((32,), torch.float32)
    ok(lib().swin_k_logit_scale(p(raw), p(out), 32))
    assert_close('logit_scale', out, logit_scale_ref(raw), 1e-6, record, prec='fp32', shape='32')


GEMM_CASES = [  # M, N, K
    (6272, 288, 96),
    (6272, 96, 384),
    (1568, 192, 384),
    (49 * 7, 3072, 768),
    (7, 1000, 768),
    (3, 10, 256),
    (3136, 96, 48),
]


@pytest.mark.parametrize('prec', ['fp32', 'fp16'])
@pytest.mark.parametrize('epi,acc', [(0, 0), (1, 0), (2, 0), (1, 1)])
@pytest.mark.parametrize('M,N,K', GEMM_CASES)
def test_gemm(prec, epi, acc, M, N, K, record):
    code, dt, _ = DT[prec]
    tol = 1e-5 if prec == 'fp32' else 3e-3
    X = torch.randn(M, K, device=dev).to(dt)
    Wt = (torch.randn(N, K, device=dev) / math.sqrt(K)).to(dt)
    bias = (torch.randn(N, device=dev) * 0.5).to(dt) if epi else None
    if acc:
        base = torch.randn(M, N, device=dev).to(dt)
        D = base.clone()
    else:
        D = poisoned((M, N), dt)
    ok(lib().swin_k_gemm(code, p(X), p(Wt), p(bias), p(D), M, N, K, epi, acc))
    ref = X.double() @ Wt.double().t()
    if epi:
        ref = ref + bias.double()
    if epi == 2:
        ref = F.gelu(ref)  # exact erf GELU: fp16 uses cuBLASLt's tanh form, within the tolerance
    if acc:
        ref = ref + base.double()
    assert_close(f'gemm_epi{epi}_acc{acc}', D, ref, tol, record, prec=prec, shape=f'{M}x{N}x{K}')
