"""Per-image PyTorch fp32 top-1 on the images test/accuracy.test.ts serves.

    python -m swintools.reference_predictions                      # from engines/, defaults below
    python -m swintools.reference_predictions --model-dir models/swin-fmnist --count 1000 \\
        --out ../test/fixtures/accuracy/swin-fmnist.reference.json

The accuracy test sends the first COUNT Fashion-MNIST test images through the HTTP API
twice: as PNG (lossless, so the raw pixels) and as JPEG quality 90 encoded by sharp (lossy).
This tool makes the JPEG bytes and decodes them with the same sharp call the test uses
(tools/sharp-codec.mjs, run with node from the repository root), resizes both sets to the
model's input with fmnist.to_service_input (sharp's linear kernel, reproduced exactly), and
runs the model folder's safetensors weights in PyTorch fp32 on the CPU. The JSON it writes
holds the predicted class per image and format, the labels' accuracy, and the sha256 of the
weights, so the test can tell a stale reference from a regression.

Rerun it whenever the weights change (README: "Regenerating the accuracy reference").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from .arch import build_model, get_arch
from .checkpoint import load_checkpoint
from .fmnist import load_split, to_service_input
from .parity import torch_logits
from .wrapper import UInt8NHWC

ENGINES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
ROOT = os.path.join(ENGINES, '..')
FORMATS = ('png', 'jpeg')


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def served_pixels(images: np.ndarray, fmt: str) -> np.ndarray:
    """[N, 28, 28] uint8 as the service sees them after encoding to `fmt` and decoding (sharp)."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, 'in.u8'), os.path.join(d, 'out.u8')
        np.ascontiguousarray(images, dtype=np.uint8).tofile(src)
        subprocess.run(
            ['node', os.path.join(ENGINES, 'tools', 'sharp-codec.mjs'), src, str(len(images)), fmt, dst],
            cwd=ROOT,
            check=True,
            stdout=sys.stderr,
        )
        return np.fromfile(dst, dtype=np.uint8).reshape(images.shape)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model-dir', default=os.path.join(ENGINES, 'models', 'swin-fmnist'))
    p.add_argument('--count', type=int, default=1000, help='first N test images (the test\'s ACCURACY_IMAGES)')
    p.add_argument('--out', default=os.path.join(ROOT, 'test', 'fixtures', 'accuracy', 'swin-fmnist.reference.json'))
    p.add_argument('--data-root', default=None, help='Fashion-MNIST folder (default: fmnist.load_split\'s)')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with open(os.path.join(args.model_dir, 'model.json')) as f:
        cfg = json.load(f)
    weights = os.path.join(args.model_dir, f"{cfg['name']}.safetensors")
    arch = get_arch(cfg['architecture'])
    model = load_checkpoint(build_model(arch, seed=None), weights)
    wrapped = UInt8NHWC(model, cfg['preprocess']['mean'], cfg['preprocess']['std']).eval()

    images, labels = load_split('test', args.data_root)
    images, labels = images[: args.count], labels[: args.count]
    t0 = time.time()
    predictions: dict[str, list[int]] = {}
    for fmt in FORMATS:
        pixels = served_pixels(images, fmt)
        x = to_service_input(torch.from_numpy(pixels.copy()), arch['img_size'], cfg['preprocess']['kernel']).numpy()
        predictions[fmt] = torch_logits(wrapped, x, batch=50).argmax(axis=1).tolist()
    accuracy = {fmt: float(np.mean(np.array(predictions[fmt]) == labels)) for fmt in FORMATS}

    out = {
        'model': cfg['name'],
        'weights_sha256': sha256(weights),
        'images': f'first {args.count} Fashion-MNIST test images (t10k), PNG and JPEG q90 encoded by sharp',
        'count': args.count,
        'precision': 'fp32',
        'torch': torch.__version__,
        'generated_by': 'python -m swintools.reference_predictions (engines/)',
        'labels': labels.astype(int).tolist(),
        'accuracy': accuracy,
        'predictions': predictions,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(out, f, separators=(',', ':'))
        f.write('\n')
    print(json.dumps({'out': os.path.relpath(args.out), 'accuracy': accuracy, 'seconds': round(time.time() - t0, 1)}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
