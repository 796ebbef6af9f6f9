"""Strict weight loading: official microsoft/Swin-Transformer .pth, timm checkpoints, safetensors.

Every tensor of the model must come from the file and every tensor of the file must be
used (buffers that timm rebuilds itself excepted); otherwise CheckpointMismatch names
the missing, unexpected and wrongly shaped keys. Nothing is resized or dropped silently:
a window-12 checkpoint does not load into a window-7 model.

Key layouts:
  official (V1 and V2): head.weight, layers.<i>.downsample.* after stage i,
      plus buffers relative_position_index / relative_coords_table / attn_mask;
  timm (>= 0.9):        head.fc.weight, layers.<i+1>.downsample.* before stage i+1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

# Buffers derived from the architecture; timm builds them itself, official files carry them.
DERIVED_BUFFERS = ('relative_position_index', 'relative_coords_table', 'attn_mask')


class CheckpointMismatch(ValueError):
    def __init__(self, source: str, missing: list[str], unexpected: list[str], shapes: list[str]):
        self.missing, self.unexpected, self.shapes = missing, unexpected, shapes
        parts = [f'checkpoint {source} does not match the model:']
        for title, keys in (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', shapes)):
            if keys:
                shown = ', '.join(keys[:20]) + (f', ... ({len(keys) - 20} more)' if len(keys) > 20 else '')
                parts.append(f'{len(keys)} {title}: {shown}')
        super().__init__('\n  '.join(parts))


def read_state_dict(path: str, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch file (weights under 'model', 'state_dict' or top level)."""
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file

        return load_file(path, device='cpu')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except Exception as err:
        if allow_pickle:
            raise
        raise ValueError(
            f'{path}: cannot be read with weights_only=True ({err}). Official training '
            'checkpoints that also hold optimizer/config objects need --allow-pickle '
            '(only for files you trust).'
        ) from err
    for key in ('model', 'state_dict', 'model_ema'):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(f'{path}: no state dict found (got {type(obj).__name__})')
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def to_timm_layout(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames official keys to timm's; timm-layout input passes through unchanged."""
    state = {k[len('module.') :] if k.startswith('module.') else k: v for k, v in state.items()}
    official = 'head.fc.weight' not in state and 'head.weight' in state
    out = {}
    for k, v in state.items():
        if k.rsplit('.', 1)[-1] in DERIVED_BUFFERS:
            continue
        if official:
            k = re.sub(r'^layers\.(\d+)\.downsample', lambda m: f'layers.{int(m.group(1)) + 1}.downsample', k)
            if k.startswith('head.'):
                k = 'head.fc.' + k[len('head.') :]
        out[k] = v
    return out


def load_checkpoint(
    model: nn.Module, source: str | Mapping[str, torch.Tensor], allow_pickle: bool = False
) -> nn.Module:
    """Loads weights into `model` strictly. `source`: a file path or a state dict."""
    name = source if isinstance(source, str) else '<state dict>'
    state = read_state_dict(source, allow_pickle) if isinstance(source, str) else dict(source)
    state = to_timm_layout(state)
    own = {k: v for k, v in model.state_dict().items() if k.rsplit('.', 1)[-1] not in DERIVED_BUFFERS}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f'{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        raise CheckpointMismatch(name, missing, unexpected, shapes)
    result = model.load_state_dict(state, strict=False)
    leftover = [k for k in result.missing_keys if k.rsplit('.', 1)[-1] not in DERIVED_BUFFERS]
    if leftover or result.unexpected_keys:
        raise CheckpointMismatch(name, leftover, list(result.unexpected_keys), [])
    return model


def to_official_layout(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm keys -> official microsoft/Swin-Transformer keys (used by tests to fake official files)."""
    out = {}
    for k, v in state.items():
        k = re.sub(r'^layers\.(\d+)\.downsample', lambda m: f'layers.{int(m.group(1)) - 1}.downsample', k)
        if k.startswith('head.fc.'):
            k = 'head.' + k[len('head.fc.') :]
        out[k] = v
    return out
