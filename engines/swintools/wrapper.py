"""The graph every engine runs: uint8 NHWC images in, logits out.

ARCHITECTURE.md fixes the input contract: engines take sharp's raw output (uint8 RGB,
NHWC) and normalise inside the graph. UInt8NHWC puts that in front of a timm model so
an exported ONNX graph begins Cast -> Transpose -> Sub -> Div.

Shift masks. timm stores each shifted block's attention mask ([nW, N, N], 0 / -100) as a
constant buffer, so an ONNX graph would carry it precomputed even with folding off.
with_runtime_masks() replaces the buffer with the small per-window region ids ([nW, N])
and derives the mask from them in forward, so the `unfold` graph really computes the
masks at run time and only the `fold` graph carries them precomputed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from timm.layers import to_2tuple


class UInt8NHWC(nn.Module):
    """[N, H, W, 3] uint8 -> model(((x / 255) - mean) / std as NCHW float32).

    The /255 is folded into the constants ((x - 255*mean) / (255*std)) so the graph
    starts with exactly four cheap ops. Constants are buffers: they move with .to(device),
    which keeps CUDA export free of CPU tensors.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer('sub', torch.tensor([255.0 * m for m in mean], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('div', torch.tensor([255.0 * s for s in std], dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(torch.float32).permute(0, 3, 1, 2)
        x = (x - self.sub) / self.div
        return self.model(x)


def _region_ids(block) -> torch.Tensor:
    """[nW, N] float: which of the 9 shift regions each position of each window is in."""
    H, W = block.input_resolution
    wh, ww = to_2tuple(block.window_size)
    sh, sw = to_2tuple(block.shift_size)
    Hp, Wp = -(-H // wh) * wh, -(-W // ww) * ww
    img = torch.zeros(Hp, Wp)
    cnt = 0
    for hs in (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)):
        for ws in (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)):
            img[hs, ws] = cnt
            cnt += 1
    # window partition: [Hp/wh, wh, Wp/ww, ww] -> [nW, wh*ww]
    return img.view(Hp // wh, wh, Wp // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)


class _RuntimeMask:
    """Mixin whose attn_mask property computes the 0/-100 mask from region ids."""

    @property
    def attn_mask(self):
        ids = self.mask_region_ids
        diff = ids.unsqueeze(1) - ids.unsqueeze(2)  # [nW, N, N]
        return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


def with_runtime_masks(model: nn.Module) -> nn.Module:
    """Deep copy of `model` for export: shifted blocks compute their masks in forward,
    and every buffer is persistent (see the comment below).

    Numerically identical to the original (the mask is exactly 0 or -100 either way).
    """
    model = copy.deepcopy(model)
    for module in model.modules():
        buffers = getattr(module, '_buffers', {})
        if 'attn_mask' in buffers and buffers['attn_mask'] is not None:
            old = buffers.pop('attn_mask')
            ids = _region_ids(module).to(device=old.device, dtype=old.dtype)
            if not torch.equal(torch.where(ids.unsqueeze(1) - ids.unsqueeze(2) != 0, -100.0, 0.0).to(old), old):
                raise RuntimeError(f'region ids do not reproduce the shift mask of {type(module).__name__}')
            module.register_buffer('mask_region_ids', ids)
            module.__class__ = type(f'RuntimeMask{type(module).__name__}', (_RuntimeMask, type(module)), {})
        # The TorchScript exporter inlines non-persistent buffers as Constant nodes and
        # its always-on constant propagation then precomputes whatever depends only on
        # them (the masks above would vanish from `unfold`). Persistent buffers become
        # initializers, which only do_constant_folding / onnx_fold precompute.
        for name in list(getattr(module, '_non_persistent_buffers_set', ())):
            module._non_persistent_buffers_set.discard(name)
    return model
