"""Architecture presets and model construction.

An architecture is a plain dict with exactly the fields of `ArchitectureConfig` in
src/models/model-config.ts (family, timm_name, img_size, patch_size, window_size, embed_dim,
depths, num_heads, mlp_ratio, num_classes), so the same dict goes into model.json.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer_v2 import SwinTransformerV2

ArchDict = dict[str, Any]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _arch(family, timm_name, img, window, embed, depths, heads, classes=1000, patch=4):
    return {
        'family': family,
        'timm_name': timm_name,
        'img_size': img,
        'patch_size': patch,
        'window_size': window,
        'embed_dim': embed,
        'depths': list(depths),
        'num_heads': list(heads),
        'mlp_ratio': 4.0,
        'num_classes': classes,
    }


PRESETS: dict[str, ArchDict] = {
    'swin_tiny': _arch('swin', 'swin_tiny_patch4_window7_224', 224, 7, 96, (2, 2, 6, 2), (3, 6, 12, 24)),
    'swin_small': _arch('swin', 'swin_small_patch4_window7_224', 224, 7, 96, (2, 2, 18, 2), (3, 6, 12, 24)),
    'swin_base': _arch('swin', 'swin_base_patch4_window7_224', 224, 7, 128, (2, 2, 18, 2), (4, 8, 16, 32)),
    'swinv2_tiny': _arch('swinv2', 'swinv2_tiny_window8_256', 256, 8, 96, (2, 2, 6, 2), (3, 6, 12, 24)),
    'swinv2_small': _arch('swinv2', 'swinv2_small_window8_256', 256, 8, 96, (2, 2, 18, 2), (3, 6, 12, 24)),
    'swinv2_base_w16': _arch('swinv2', 'swinv2_base_window16_256', 256, 16, 128, (2, 2, 18, 2), (4, 8, 16, 32)),
    # The embedded default model (issue 2): the 256 input and window 8 of SwinV2-T/S,
    # but embed 32 and 2-2-2-2 blocks: 2.3 M parameters, so it trains in minutes.
    'swin-fmnist': _arch('swinv2', None, 256, 8, 32, (2, 2, 2, 2), (1, 2, 4, 8), classes=10),
}
PRESETS['swinv2_base'] = PRESETS['swinv2_base_w16']

# Preprocessing each preset was trained with (timm's eval transform for the ImageNet
# models: bicubic resize of the shorter side to crop/0.9, centre crop).
PREPROCESS: dict[str, dict[str, Any]] = {}
for _name, _a in PRESETS.items():
    if _name == 'swin-fmnist':
        # Mean/std of Fashion-MNIST pixels (train set) on the 0..1 scale; sharp's linear
        # kernel is reproduced exactly in torch (fmnist.py), so training sees what serving sees.
        PREPROCESS[_name] = {
            'mode': 'squash',
            'resize': 256,
            'crop': 256,
            'kernel': 'linear',
            'mean': [0.2860] * 3,
            'std': [0.3530] * 3,
        }
        continue
    PREPROCESS[_name] = {
        'mode': 'shorter_side_crop',
        'resize': int(_a['img_size'] / 0.9),
        'crop': _a['img_size'],
        'kernel': 'cubic',
        'mean': IMAGENET_MEAN,
        'std': IMAGENET_STD,
    }


def get_arch(name_or_dict: str | ArchDict, num_classes: int | None = None) -> ArchDict:
    """A copy of a preset (by name) or of a given dict, optionally with another class count."""
    if isinstance(name_or_dict, str):
        if name_or_dict not in PRESETS:
            raise KeyError(f'unknown architecture preset {name_or_dict!r}; known: {sorted(PRESETS)}')
        arch = copy.deepcopy(PRESETS[name_or_dict])
    else:
        arch = copy.deepcopy(name_or_dict)
    if num_classes is not None:
        arch['num_classes'] = num_classes
    return arch


def build_model(arch: ArchDict, seed: int | None = 0, device: str | torch.device = 'cpu', **extra) -> nn.Module:
    """timm model for `arch`, in eval mode. With `seed`, the random init is reproducible.
    `extra` goes to the timm constructor (e.g. drop_path_rate for training)."""
    kwargs = dict(
        img_size=arch['img_size'],
        patch_size=arch['patch_size'],
        window_size=arch['window_size'],
        embed_dim=arch['embed_dim'],
        depths=tuple(arch['depths']),
        num_heads=tuple(arch['num_heads']),
        mlp_ratio=arch.get('mlp_ratio', 4.0),
        num_classes=arch['num_classes'],
        **extra,
    )
    if seed is not None:
        torch.manual_seed(seed)
    if arch['family'] == 'swin':
        model = SwinTransformer(**kwargs)
    elif arch['family'] == 'swinv2':
        model = SwinTransformerV2(**kwargs)
    else:
        raise ValueError(f"unknown family {arch['family']!r} (expected 'swin' or 'swinv2')")
    return model.to(device).eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
