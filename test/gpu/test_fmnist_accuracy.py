"""swin-fmnist served through the CUDA engine keeps its Fashion-MNIST test accuracy: the 10,000
test images go through the service's resize (swintools.fmnist.to_service_input, bit-exact with
sharp) into PyTorch fp32 and into the engine (fp16, fold and unfold); the accuracies must agree
within 0.3 percentage points. The data set comes from $SWIN_FMNIST_ROOT, the Debian package's
folder, or .carry/cuda-fmnist (copied there for the GPU host)."""

from __future__ import annotations

import json
import os

import pytest
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FMNIST_DIR = os.path.join(ROOT, 'engines', 'models', 'swin-fmnist')


def data_root():
    for d in (
        os.environ.get('SWIN_FMNIST_ROOT'),
        '/usr/share/datasets/fashion-mnist',
        os.path.join(ROOT, '.carry', 'cuda-fmnist'),
    ):
        if d and os.path.exists(os.path.join(d, 't10k-images-idx3-ubyte.gz')):
            return d
    return None


@pytest.mark.parametrize('variant', ['fold', 'unfold'])
def test_fmnist_accuracy(variant, record, tmp_path):
    root = data_root()
    if root is None:
        pytest.skip('Fashion-MNIST test set not found')
    from swintools.arch import build_model, get_arch
    from swintools.checkpoint import load_checkpoint
    from swintools.cuda_engine import Engine, write_engine
    from swintools.fmnist import load_split, to_service_input
    from swintools.wrapper import UInt8NHWC

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with open(os.path.join(FMNIST_DIR, 'model.json')) as f:
        mj = json.load(f)
    model = build_model(get_arch(mj['architecture']), seed=0)
    load_checkpoint(model, os.path.join(FMNIST_DIR, 'swin-fmnist.safetensors'))
    model.eval()
    mean, std = mj['preprocess']['mean'], mj['preprocess']['std']
    path = str(tmp_path / f'fm.{variant}.swin')
    write_engine(path, model, variant, 'fp16', mean, std, labels=mj['labels'], name='swin-fmnist', max_batch=250)
    wrapped = UInt8NHWC(model, mean, std).cuda().eval()
    eng = Engine(path, max_batch=250)
    images, labels = load_split('test', root)
    images, labels = torch.from_numpy(images), torch.from_numpy(labels.astype('int64')).cuda()
    pt_pred, en_pred = [], []
    with torch.no_grad():
        for i in range(0, images.shape[0], 250):
            u8 = to_service_input(
                images[i : i + 250].cuda(),
                size=mj['architecture']['img_size'],
                kernel=mj['preprocess'].get('kernel', 'linear'),
            )
            pt_pred.append(wrapped(u8).argmax(1))
            en_pred.append(eng.infer(u8).argmax(1))
    eng.close()
    pt_pred, en_pred = torch.cat(pt_pred), torch.cat(en_pred)
    acc_pt = float((pt_pred == labels).float().mean())
    acc_en = float((en_pred == labels).float().mean())
    agree = float((pt_pred == en_pred).float().mean())
    record(
        kind='fmnist',
        variant=variant,
        precision='fp16',
        images=int(labels.numel()),
        acc_pytorch_fp32=acc_pt,
        acc_engine=acc_en,
        diff_points=100 * (acc_en - acc_pt),
        top1_agreement=agree,
        ok=abs(acc_en - acc_pt) <= 0.003,
    )
    assert abs(acc_en - acc_pt) <= 0.003, f'accuracy {acc_en:.4f} vs PyTorch {acc_pt:.4f}'
