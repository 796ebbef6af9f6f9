"""Fashion-MNIST reading and the service's preprocessing, reproduced in torch.

The service (sharp) turns a 28x28 grayscale image into 256x256 uint8 RGB NHWC with the
kernel named in model.json preprocess.kernel. Measured against sharp 0.35.5 / libvips
8.18.7 (tools/sharp-resize.mjs, then `python -m swintools.fmnist compare`): sharp's
"linear" upsizing samples source coordinate  dst * (in/out) - 0.5  (not torch's
(dst + 0.5) * in/out - 0.5), blends the two neighbours with edge pixels repeated and
rounds half up. linear_matrix() builds exactly that, and the result equals sharp's
output bit for bit on the test images (max abs difference 0); F.interpolate's bilinear
differs by up to 26 gray levels (mean 1.6).
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

# Debian's dataset-fashion-mnist; FMNIST_ROOT overrides it (e.g. a carried copy on the GPU host).
DEFAULT_ROOT = os.environ.get('FMNIST_ROOT', '/usr/share/datasets/fashion-mnist')
CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
KERNEL = 'linear'  # sharp kernel named in swin-fmnist's model.json; resize_float reproduces it


def _read_idx(path: str) -> np.ndarray:
    """An IDX file, gzip (Debian's package) or xz (smaller, to carry to the GPU host)."""
    if not os.path.exists(path) and os.path.exists(path[:-3] + '.xz'):
        path = path[:-3] + '.xz'
    opener = lzma.open if path.endswith('.xz') else gzip.open
    with opener(path, 'rb') as f:
        data = f.read()
    (magic,) = struct.unpack('>I', data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack('>' + 'I' * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """('train'|'test') -> images uint8 [N, 28, 28], labels uint8 [N]."""
    root = root or DEFAULT_ROOT
    prefix = {'train': 'train', 'test': 't10k'}[split]
    images = _read_idx(os.path.join(root, f'{prefix}-images-idx3-ubyte.gz'))
    labels = _read_idx(os.path.join(root, f'{prefix}-labels-idx1-ubyte.gz'))
    return images, labels


def resize_float(gray: torch.Tensor, size: int = 256, kernel: str = KERNEL) -> torch.Tensor:
    """[N, h, w] (any dtype, 0..255) -> [N, size, size] float32 holding whole numbers 0..255,
    i.e. what sharp emits for one channel. Runs on gray's device."""
    x = gray.to(torch.float32)
    if kernel == 'linear':
        mh = linear_matrix(x.shape[-2], size, x.device)
        mw = linear_matrix(x.shape[-1], size, x.device)
        y = torch.einsum('oh,nhw,pw->nop', mh, x, mw)
    elif kernel == 'nearest':
        y = F.interpolate(x.unsqueeze(1), size=(size, size), mode='nearest').squeeze(1)
    else:
        raise ValueError(f'kernel {kernel!r} is not reproduced in torch (use linear or nearest)')
    return torch.floor(y + 0.5).clamp_(0, 255)


def linear_matrix(n_in: int, n_out: int, device=None) -> torch.Tensor:
    """[n_out, n_in] weights of sharp's linear upsizing along one axis (see module doc)."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out) - 0.5
    i0 = torch.floor(src)
    frac = src - i0
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, i0.long().clamp(0, n_in - 1)), 1 - frac, accumulate=True)
    m.index_put_((rows, (i0.long() + 1).clamp(0, n_in - 1)), frac, accumulate=True)
    return m.to(device=device, dtype=torch.float32)


def to_service_input(gray: torch.Tensor, size: int = 256, kernel: str = KERNEL) -> torch.Tensor:
    """[N, 28, 28] -> uint8 [N, size, size, 3] RGB NHWC, the service's engine input
    (sharp converts grayscale to sRGB by repeating the channel)."""
    y = resize_float(gray, size, kernel).to(torch.uint8)
    return y.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def compare_with_sharp(sharp_raw: str, indices: list[int], size: int, kernel: str) -> dict:
    """Compares sharp's raw RGB output (tools/sharp-resize.mjs) with to_service_input."""
    images, _ = load_split('test')
    ours = to_service_input(torch.from_numpy(images[indices]), size, kernel).numpy().astype(np.int16)
    theirs = np.fromfile(sharp_raw, dtype=np.uint8).reshape(len(indices), size, size, 3).astype(np.int16)
    d = np.abs(ours - theirs)
    return {
        'kernel': kernel,
        'images': len(indices),
        'size': size,
        'max_abs': int(d.max()),
        'mean_abs': float(d.mean()),
        'fraction_equal': float((d == 0).mean()),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description='Fashion-MNIST helpers: export PNGs for sharp, compare resizes.')
    sub = p.add_subparsers(dest='cmd', required=True)
    e = sub.add_parser(
        'dump', help='write the first COUNT test images as raw uint8 [COUNT, 28, 28] (input of tools/sharp-resize.mjs)'
    )
    e.add_argument('--out', required=True)
    e.add_argument('--count', type=int, default=64)
    c = sub.add_parser('compare', help='compare sharp raw output with the torch resize')
    c.add_argument('--sharp-raw', required=True)
    c.add_argument('--count', type=int, default=64)
    c.add_argument('--size', type=int, default=256)
    c.add_argument('--kernel', default=KERNEL)
    c.add_argument('--json')
    args = p.parse_args(argv)
    if args.cmd == 'dump':
        images, _ = load_split('test')
        images[: args.count].tofile(args.out)
        print(f'wrote {args.count} images of 28x28 to {args.out}')
    else:
        r = compare_with_sharp(args.sharp_raw, list(range(args.count)), args.size, args.kernel)
        print(json.dumps(r))
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(r, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
