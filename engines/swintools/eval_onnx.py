"""Top-1 accuracy of a model folder's ONNX file on the Fashion-MNIST test set (CPU, no PyTorch model).

    python -m swintools.eval_onnx --model-dir models/swin-fmnist --variant unfold [--limit 2000]

Images go through the service's preprocessing (fmnist.to_service_input: sharp's linear
resize, reproduced exactly) and then through onnxruntime, as in the service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from .fmnist import load_split, to_service_input
from .parity import ort_session


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model-dir', required=True)
    p.add_argument('--variant', default='unfold', choices=['fold', 'unfold'])
    p.add_argument('--limit', type=int, default=0, help='first N test images only')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--threads', type=int, default=0)
    args = p.parse_args(argv)
    with open(os.path.join(args.model_dir, 'model.json')) as f:
        cfg = json.load(f)
    size, kernel = cfg['architecture']['img_size'], cfg['preprocess']['kernel']
    sess = ort_session(
        os.path.join(args.model_dir, cfg['artifacts'][args.variant]['onnxruntime']), threads=args.threads
    )
    images, labels = load_split('test')
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    correct, t0 = 0, time.time()
    for i in range(0, len(images), args.batch):
        x = to_service_input(torch.from_numpy(images[i : i + args.batch].copy()), size, kernel).numpy()
        logits = sess.run(['logits'], {'image': x})[0]
        correct += int((logits.argmax(1) == labels[i : i + args.batch]).sum())
        if (i // args.batch) % 50 == 0:
            print(
                f'[eval] {i + len(x)}/{len(images)} images, top-1 so far {correct / (i + len(x)) * 100:.2f}%',
                flush=True,
            )
    acc = correct / len(images)
    print(
        json.dumps(
            {
                'model': cfg['name'],
                'variant': args.variant,
                'images': len(images),
                'top1': acc,
                'seconds': round(time.time() - t0, 1),
            }
        )
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
