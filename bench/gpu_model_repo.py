"""A model folder for the GPU end-to-end benchmark: Swin-T served by our CUDA engine.

    PYTHONPATH=engines python bench/gpu_model_repo.py --out bench/.out/gpu-models/swin-tiny

Writes <out>/model.json, <out>/swin-tiny.{fold,unfold}.swin (fp16 engine files written by
swintools.cuda_engine.write_engine), and the self-test (uint8 NHWC input + PyTorch fp32
logits). Weights: timm's seeded random init (--seed; --checkpoint for real weights; no
network on the GPU host) -- speed does not depend on the values. ImageNet labels from timm.

Self-test images: with random weights the top-1 margin of most inputs is tiny, and the
service's self-test also requires top-1 agreement, so the --selftest-count inputs with the
largest top-1 margin are kept out of 64 candidates (decoded photographs when --images is
given, else random pixels). Tolerance of an fp16 engine file: 5% of the largest |logit| of
those images (under both keys of model.json's selftest.tolerance).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'engines'))
from swintools.arch import PREPROCESS, build_model, get_arch
from swintools.wrapper import UInt8NHWC


def candidates(images_dir: str | None, size: int, resize: int, count: int, seed: int) -> np.ndarray:
    if images_dir and os.path.isdir(images_dir):
        from PIL import Image

        out = []
        for name in sorted(os.listdir(images_dir))[:count]:
            img = Image.open(os.path.join(images_dir, name)).convert('RGB')
            w, h = img.size
            s = resize / min(w, h)
            img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
            l, t = (img.size[0] - size) // 2, (img.size[1] - size) // 2
            out.append(np.array(img.crop((l, t, l + size, t + size)), dtype=np.uint8))
        if out:
            return np.stack(out)
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', default='swin_tiny')
    p.add_argument('--name', default='swin-tiny')
    p.add_argument('--checkpoint')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='bench/.out/gpu-models/swin-tiny')
    p.add_argument('--images', help='folder of photographs for the self-test candidates')
    p.add_argument('--selftest-count', type=int, default=4)
    p.add_argument('--max-batch', type=int, default=128)
    p.add_argument('--batch-size', type=int, default=64, help='batching.max_batch_size in model.json')
    p.add_argument('--queue-delay-ms', type=float, default=2)
    p.add_argument('--instances', type=int, default=2)
    p.add_argument('--precision', default='fp16', choices=['fp16', 'fp32'])
    a = p.parse_args(argv)

    from swintools.cuda_engine import write_engine

    arch = get_arch(a.arch)
    pre = PREPROCESS[a.arch]
    model = build_model(arch, seed=a.seed)
    if a.checkpoint:
        from swintools.checkpoint import load_checkpoint

        load_checkpoint(model, a.checkpoint)
    model = model.float().cpu().eval()
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    labels = [info.index_to_description(i) for i in range(arch['num_classes'])]
    os.makedirs(a.out, exist_ok=True)

    size = arch['img_size']
    cand = candidates(a.images, size, pre['resize'], 64, a.seed)
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    wrapped = UInt8NHWC(model, pre['mean'], pre['std']).to(dev).eval()
    with torch.inference_mode():
        logits = wrapped(torch.from_numpy(cand).to(dev)).float().cpu().numpy()
    model = model.cpu()
    top2 = np.sort(logits, axis=1)[:, -2:]
    keep = np.argsort(-(top2[:, 1] - top2[:, 0]))[: a.selftest_count]
    st_in, st_logits = cand[keep], logits[keep]
    st_in.tofile(os.path.join(a.out, f'{a.name}.selftest.u8'))
    with open(os.path.join(a.out, f'{a.name}.selftest.logits.json'), 'w') as f:
        json.dump(st_logits.tolist(), f)
    margin = float((top2[keep, 1] - top2[keep, 0]).min())
    tol16 = round(0.05 * float(np.abs(st_logits).max()), 4)

    artifacts = {}
    for variant in ('fold', 'unfold'):
        fname = f'{a.name}.{variant}.swin'
        write_engine(
            os.path.join(a.out, fname),
            model,
            variant,
            a.precision,
            pre['mean'],
            pre['std'],
            labels=labels,
            name=a.name,
            arch=arch,
            max_batch=a.max_batch,
        )
        artifacts[variant] = {'cuda': fname}

    cfg = {
        'name': a.name,
        'version': '1',
        'description': f'{arch.get("timm_name")} with timm random init (seed {a.seed}), CUDA engine {a.precision}: '
        'for benchmarks only',
        'architecture': arch,
        'preprocess': pre,
        'labels': labels,
        'input': {'name': 'image', 'datatype': 'UINT8', 'shape': [-1, size, size, 3], 'layout': 'NHWC'},
        'output': {'name': 'logits', 'datatype': 'FP32', 'shape': [-1, arch['num_classes']]},
        'batching': {
            'max_batch_size': a.batch_size,
            'max_queue_delay_ms': a.queue_delay_ms,
            'max_queue_size': 4096,
            'instances': a.instances,
        },
        'default_variant': 'fold',
        'artifacts': artifacts,
        'selftest': {
            'input': f'{a.name}.selftest.u8',
            'count': int(a.selftest_count),
            'expected_logits': f'{a.name}.selftest.logits.json',
            # The engine file's precision decides; an fp16 file gets the fp16 bound under
            # both keys (the backend may report the precision it computes in).
            'tolerance': {'fp32': max(tol16, 1e-3) if a.precision == 'fp16' else 1e-3, 'fp16': max(tol16, 1e-3)},
        },
    }
    with open(os.path.join(a.out, 'model.json'), 'w') as f:
        json.dump(cfg, f, indent=1)
    print(
        f'[gpu_model_repo] {a.out}: {a.name} fold/unfold {a.precision}, self-test {a.selftest_count} images, '
        f'min top-1 margin {margin:.4f}, fp16 tolerance {cfg["selftest"]["tolerance"]["fp16"]}',
        flush=True,
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
