"""Export of tiny Swin V1 / V2 models in both variants, ONNX Runtime parity, graph contents."""

from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from swintools.arch import build_model, get_arch
from swintools.export import export_variant
from swintools.parity import compare, ort_logits, ort_session, random_images, torch_logits
from swintools.wrapper import UInt8NHWC, with_runtime_masks

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tiny_arch(family: str) -> dict:
    # 64x64 input, patch 4 -> 16x16 tokens, window 4: stage 0 has 4x4 windows with a shifted
    # block (masks), stage 1 (8x8 tokens) too; 2 stages keep export under a few seconds.
    return dict(
        get_arch('swin-fmnist'),
        family=family,
        img_size=64,
        window_size=4,
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 4],
        num_classes=7,
    )


@pytest.fixture(scope='module', params=['swin', 'swinv2'])
def exported(request, tmp_path_factory):
    arch = tiny_arch(request.param)
    model = build_model(arch, seed=3)
    out = tmp_path_factory.mktemp(request.param)
    stats = {
        v: export_variant(model, MEAN, STD, arch['img_size'], v, str(out / f'm.{v}.onnx')) for v in ('fold', 'unfold')
    }
    return request.param, arch, model, stats


def ops_of(path):
    return Counter(n.op_type for n in onnx.load(path).graph.node)


def test_graph_interface(exported):
    _, arch, _, stats = exported
    for v, s in stats.items():
        m = onnx.load(s['path'])
        assert s['first_ops'] == ['Cast', 'Transpose', 'Sub', 'Div'], v
        assert m.opset_import[0].version >= 17
        (inp,), (out,) = m.graph.input, m.graph.output
        assert inp.name == 'image' and out.name == 'logits'
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        dims = inp.type.tensor_type.shape.dim
        assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [arch['img_size'], arch['img_size'], 3]
        assert out.type.tensor_type.shape.dim[0].dim_param


@pytest.mark.parametrize('graph_opt', ['all', 'disable'])
def test_parity_dynamic_batch(exported, graph_opt):
    _, arch, model, stats = exported
    wrapped = UInt8NHWC(model, MEAN, STD).eval()
    for n in (1, 3, 5):  # the trace used batch 2
        images = random_images(arch['img_size'], n, seed=n)
        ref = torch_logits(wrapped, images)
        for v, s in stats.items():
            r = compare(ref, ort_logits(ort_session(s['path'], graph_opt), images))
            assert r['max_abs_diff'] <= 1e-5, (v, n, r)
            assert r['nonfinite_ort'] == 0 and r['top1_agree'] == 1.0


def test_fold_precomputes_what_unfold_computes(exported):
    family, _, _, stats = exported
    fold, unfold = ops_of(stats['fold']['path']), ops_of(stats['unfold']['path'])
    # Shift masks from region ids: Sub of ids, Equal/Not, Where only in unfold.
    assert unfold['Where'] >= 1 and fold['Where'] == 0
    if family == 'swinv2':
        # cpb_mlp: 2 MatMuls, Relu and 16*sigmoid per block; clamp + exp of the logit scale.
        blocks = 4
        assert unfold['Sigmoid'] == blocks and fold['Sigmoid'] == 0
        assert unfold['Relu'] == blocks and fold['Relu'] == 0
        assert unfold['Exp'] == blocks and fold['Exp'] == 0
        assert unfold['MatMul'] - fold['MatMul'] == 2 * blocks
    else:
        # relative_position_bias_table[relative_position_index]: a Gather per block.
        assert unfold['Gather'] - fold['Gather'] >= 4
    assert stats['fold']['nodes'] < stats['unfold']['nodes']


def test_runtime_masks_equal_timm_masks():
    for family in ('swin', 'swinv2'):
        model = build_model(tiny_arch(family), seed=1)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(model(x), with_runtime_masks(model)(x))


def test_uint8_wrapper_matches_manual_normalisation():
    model = build_model(tiny_arch('swinv2'), seed=2)
    img = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    x = (img.float().permute(0, 3, 1, 2) / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        np.testing.assert_allclose(UInt8NHWC(model, MEAN, STD)(img).numpy(), model(x).numpy(), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_export_from_cuda(tmp_path):
    arch = tiny_arch('swinv2')
    model = build_model(arch, seed=3)
    cpu = UInt8NHWC(model, MEAN, STD).eval()
    images = random_images(64, 2, seed=0)
    ref = torch_logits(cpu, images)
    model_cuda = build_model(arch, seed=3, device='cuda')
    for v in ('fold', 'unfold'):
        s = export_variant(model_cuda, MEAN, STD, 64, v, str(tmp_path / f'{v}.onnx'))
        assert s['device'].startswith('cuda')
        assert compare(ref, ort_logits(ort_session(s['path']), images))['max_abs_diff'] <= 1e-4
