"""Strict checkpoint loading: official and timm key layouts, safetensors, clear errors."""

import pytest
import torch
from safetensors.torch import save_file

from swintools.arch import build_model, get_arch
from swintools.checkpoint import CheckpointMismatch, load_checkpoint, to_official_layout


def tiny(family, **kw):
    return dict(
        get_arch('swin-fmnist'),
        family=family,
        img_size=64,
        window_size=4,
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 4],
        num_classes=5,
        **kw,
    )


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def official_file(model, path):
    """What microsoft/Swin-Transformer writes: {'model': state} in its key layout, with the
    buffers timm does not persist (relative_position_index, attn_mask, ...)."""
    state = dict(model.state_dict())
    for name, buf in model.named_buffers():  # buffers the official code persists
        if name.rsplit('.', 1)[-1] in ('relative_position_index', 'relative_coords_table', 'attn_mask'):
            state.setdefault(name, buf)
    official = to_official_layout(state)
    assert 'head.weight' in official and any('layers.0.downsample' in k for k in official)
    torch.save({'model': official}, path)


@pytest.mark.parametrize('family', ['swin', 'swinv2'])
def test_official_layout_loads(family, tmp_path):
    src = build_model(tiny(family), seed=1)
    official_file(src, tmp_path / 'official.pth')
    dst = build_model(tiny(family), seed=2)
    assert not same_weights(src, dst)
    load_checkpoint(dst, str(tmp_path / 'official.pth'))
    assert same_weights(src, dst)


@pytest.mark.parametrize('family', ['swin', 'swinv2'])
def test_timm_layout_and_safetensors_load(family, tmp_path):
    src = build_model(tiny(family), seed=1)
    torch.save(src.state_dict(), tmp_path / 'timm.pth')
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / 'w.safetensors'))
    for f in ('timm.pth', 'w.safetensors'):
        dst = build_model(tiny(family), seed=2)
        load_checkpoint(dst, str(tmp_path / f))
        assert same_weights(src, dst)


def test_missing_and_unexpected_keys_are_named():
    src = build_model(tiny('swinv2'), seed=1)
    state = dict(src.state_dict())
    state.pop('layers.0.blocks.0.attn.cpb_mlp.0.weight')
    state['layers.9.extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(build_model(tiny('swinv2')), state)
    msg = str(err.value)
    assert 'layers.0.blocks.0.attn.cpb_mlp.0.weight' in msg and 'layers.9.extra.weight' in msg
    assert err.value.missing == ['layers.0.blocks.0.attn.cpb_mlp.0.weight']
    assert err.value.unexpected == ['layers.9.extra.weight']


def test_wrong_architecture_is_refused():
    # V1 weights into a V2 model, and a window-4 table into a window-8 model: never partial.
    v1 = build_model(tiny('swin'), seed=1).state_dict()
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(build_model(tiny('swinv2')), v1)
    assert err.value.missing and err.value.unexpected
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(build_model(dict(tiny('swin'), window_size=8, img_size=128)), v1)
    assert any('relative_position_bias_table' in s for s in err.value.shapes)


def test_other_class_count_is_refused():
    state = build_model(tiny('swin'), seed=1).state_dict()
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(build_model(dict(tiny('swin'), num_classes=6)), state)
    assert any(s.startswith('head.fc.weight') for s in err.value.shapes)
