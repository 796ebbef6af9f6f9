"""PyTorch references shared by the GPU tests (written from timm's definitions, fp64/fp32)."""

from __future__ import annotations

import math

import torch


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def window_attention_ref(qkv, bias, mask, logit_scale, scale, B, H, W, C, heads, ws, shift):
    """timm's roll -> partition -> attention -> reverse -> roll back, on natural-order qkv [B*H*W, 3C]."""
    qkv = qkv.double().view(B, H, W, 3 * C)
    if shift:
        qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(1, 2))
    x = qkv.view(B, H // ws, ws, W // ws, ws, 3 * C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, 3 * C)
    N = ws * ws
    q, k, v = x.reshape(-1, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4).unbind(0)
    if logit_scale is not None:
        attn = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * logit_scale.double().view(1, heads, 1, 1)
    else:
        attn = (q * scale) @ k.transpose(-2, -1)
    attn = attn + bias.double().unsqueeze(0)
    if mask is not None:
        nW = mask.shape[0]
        attn = attn.view(-1, nW, heads, N, N) + mask.double().unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, N, N)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, N, C)
    out = out.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
    if shift:
        out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
    return out.reshape(B * H * W, C)


def shift_mask_ref(H, W, ws, shift):
    """timm's SwinTransformerBlock.attn_mask for this geometry."""
    from timm.models.swin_transformer import SwinTransformerBlock

    blk = SwinTransformerBlock(dim=32, input_resolution=(H, W), num_heads=1, window_size=ws, shift_size=shift)
    return blk.attn_mask


def v2_coords_index(ws):
    from timm.models.swin_transformer_v2 import WindowAttention

    at = WindowAttention(dim=32, window_size=(ws, ws), num_heads=1)
    return at.relative_coords_table.reshape(-1, 2).float(), at.relative_position_index.reshape(-1)


def logit_scale_ref(raw):
    return torch.clamp(raw.double(), max=math.log(100.0)).exp()
