"""Whole-model parity of the CUDA engine against PyTorch fp32 (timm, TF32 off) on fresh random
uint8 images: Swin-T/S/B, SwinV2-T/S (w8), SwinV2-B (w16, 256) and swin-fmnist, variants fold and
unfold, engine precision fp16 and fp32.

Weights. timm's random init zeroes V2's post-norm gains (every V2 block starts as identity) and
gives tiny attention logits, which would test little; the synthetic models get weights that
keep every branch active instead: Linear/conv ~ N(0, 1/fan_in), biases ~ N(0, 0.1), LayerNorm
gains ~ N(1, 0.2), V1 bias tables ~ N(0, 1), V2 logit scales log-uniform in [5, 120] (some clamp at
100), q/v biases ~ N(0, 0.1). swin-fmnist uses its committed weights.

Top-1 agreement. With random weights many rows have nearly tied logits, where any rounding
flips the argmax. Agreement is therefore asserted on the rows whose PyTorch top-1 margin is at
least 0.1 x the row's logit standard deviation ("confident"), and reported on all rows too.
Fashion-MNIST accuracy (the real test set through the service's resize) is compared in
test_fmnist_accuracy.

Batch sizes 1, 7, 32 and 88 run through separate CUDA graphs (128 images per case).
"""
from __future__ import annotations

import json
import math
import os

import pytest
import torch
from torch import nn

from refs import rel_l2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FMNIST_DIR = os.path.join(ROOT, 'engines', 'models', 'swin-fmnist')
MODELS = ['swin_tiny', 'swin_small', 'swin_base', 'swinv2_tiny', 'swinv2_small', 'swinv2_base_w16', 'swin-fmnist']
CASES = [(m, v, pr) for m in MODELS for v in ('fold', 'unfold') for pr in ('fp16', 'fp32')]
TOL = {'fp16': 1e-2, 'fp32': 1e-4}
IMAGES = 128
CHUNKS = [1, 7, 32, 88]
TMP = os.environ.get('SWIN_ENGINE_TMP', '/dev/shm/swin-engines' if os.path.isdir('/dev/shm') else '/tmp/swin-engines')


@torch.no_grad()
def randomize_(model: nn.Module, seed: int):
    g = torch.Generator().manual_seed(seed)

    def normal(t, mean, std):
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            normal(m.weight, 0, 1 / math.sqrt(m.weight[0].numel()))
            if m.bias is not None:
                normal(m.bias, 0, 0.1)
        elif isinstance(m, nn.LayerNorm):
            normal(m.weight, 1, 0.2)
            normal(m.bias, 0, 0.1)
        if hasattr(m, 'relative_position_bias_table') and isinstance(m.relative_position_bias_table, nn.Parameter):
            normal(m.relative_position_bias_table, 0, 1)
        if hasattr(m, 'logit_scale') and isinstance(m.logit_scale, nn.Parameter):
            u = torch.rand(m.logit_scale.shape, generator=g)
            m.logit_scale.copy_(math.log(5) + u * (math.log(120) - math.log(5)))
        for name in ('q_bias', 'v_bias'):
            t = getattr(m, name, None)
            if isinstance(t, nn.Parameter):
                normal(t, 0, 0.1)


def build(name: str):
    """(timm model fp32 eval on cuda, mean, std, labels)."""
    from swintools.arch import PREPROCESS, build_model, get_arch
    if name == 'swin-fmnist':
        from swintools.checkpoint import load_checkpoint
        with open(os.path.join(FMNIST_DIR, 'model.json')) as f:
            mj = json.load(f)
        model = build_model(get_arch(mj['architecture']), seed=0)
        load_checkpoint(model, os.path.join(FMNIST_DIR, 'swin-fmnist.safetensors'))
        return model.cuda().eval(), mj['preprocess']['mean'], mj['preprocess']['std'], mj['labels']
    model = build_model(get_arch(name), seed=0)
    randomize_(model, seed=1234)
    pre = PREPROCESS[name]
    return model.cuda().eval(), pre['mean'], pre['std'], None


_cache: dict = {}


def reference(name: str):
    """Built model, fresh images and PyTorch fp32 logits, once per model."""
    if name in _cache:
        return _cache[name]
    from swintools.wrapper import UInt8NHWC
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model, mean, std, labels = build(name)
    size = model.patch_embed.img_size[0]
    images = torch.randint(0, 256, (IMAGES, size, size, 3), dtype=torch.uint8, device='cuda')
    with torch.no_grad():
        wrapped = UInt8NHWC(model, mean, std).cuda().eval()
        ref = torch.cat([wrapped(images[i:i + 32]) for i in range(0, IMAGES, 32)]).float()
    _cache.clear()  # one model at a time on the GPU
    _cache[name] = (model, mean, std, labels, images, ref)
    return _cache[name]


def engine_file(name, variant, precision):
    from swintools.cuda_engine import write_engine
    model, mean, std, labels, _, _ = reference(name)
    os.makedirs(TMP, exist_ok=True)
    path = os.path.join(TMP, f'{name}.{variant}.{precision}.swin')
    write_engine(path, model.float().cpu(), variant, precision, mean, std, labels=labels, name=name,
                 max_batch=max(CHUNKS))
    model.cuda()
    return path


@pytest.mark.parametrize('name,variant,precision', CASES)
def test_parity(name, variant, precision, record):
    from swintools.cuda_engine import Engine
    _, _, _, _, images, ref = reference(name)
    path = engine_file(name, variant, precision)
    eng = Engine(path, max_batch=max(CHUNKS))
    try:
        assert eng.precision == precision
        outs, i = [], 0
        for n in CHUNKS:
            outs.append(eng.infer(images[i:i + n]))
            i += n
        torch.cuda.synchronize()
        out = torch.cat(outs)
        again = eng.infer(images[8:40])  # replay of the batch-32 graph: must equal the first pass bit for bit
        torch.cuda.synchronize()
    finally:
        eng.close()
        os.remove(path)
    finite = bool(torch.isfinite(out).all())
    err = rel_l2(out, ref)
    top_ref, top_out = ref.argmax(1), out.argmax(1)
    srt = ref.sort(1, descending=True).values
    margin = srt[:, 0] - srt[:, 1]
    confident = margin >= 0.1 * ref.std(1)
    agree_all = float((top_ref == top_out).float().mean())
    agree_conf = float((top_ref == top_out)[confident].float().mean()) if confident.any() else float('nan')
    replay_equal = bool(torch.equal(again, out[8:40]))
    record(kind='parity', model=name, variant=variant, precision=precision, images=IMAGES, rel_l2=err, tol=TOL[precision],
           max_abs=float((out - ref).abs().max()), finite=finite, top1_all=agree_all, top1_confident=agree_conf,
           confident_rows=int(confident.sum()), replay_equal=replay_equal,
           ok=finite and err <= TOL[precision] and not agree_conf < 0.99)
    assert finite, 'non-finite logits'
    assert replay_equal, 'graph replay differs from the captured pass'
    assert err <= TOL[precision], f'rel L2 {err:.3g} > {TOL[precision]}'
    assert confident.sum() >= IMAGES // 4, 'too few confident rows to judge top-1 agreement'
    assert agree_conf >= 0.99, f'top-1 agreement on confident rows {agree_conf:.3f} < 0.99'
