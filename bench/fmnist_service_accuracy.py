"""Top-1 of a running swin-serve on Fashion-MNIST test images, one image per POST /classify.

    python3 bench/fmnist_service_accuracy.py --url http://127.0.0.1:8080 --images DIR \\
        [--reference other-run.json] [--out run.json] [--concurrency 16]

DIR holds <index>-<label>.<ext> files, label a class name with '_' for '/' (`npm run
bench:images` writes bench/.images/fmnist as PNG and bench/.images/fmnist-jpeg as JPEG
quality 90, as test/accuracy.test.ts sends them). Prints the
accuracy, the backend and variant the service named, and with --reference (the --out of
another run, e.g. the CPU service on the same files) the share of images whose top-1
agrees. Standard library only: it runs on the GPU host and here alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# Class names as bench/make-images.ts writes them into file names ('/' -> '_').
LABELS = ['T-shirt_top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle_boot']
TYPES = {'.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png'}


def classify(url: str, path: str) -> dict:
    with open(path, 'rb') as f:
        body = f.read()
    ctype = TYPES[os.path.splitext(path)[1].lower()]
    req = urllib.request.Request(f'{url}/classify?top_k=1', data=body, headers={'content-type': ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return {'error': e.code, 'body': e.read().decode(errors='replace')[:300]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--url', default='http://127.0.0.1:8080')
    p.add_argument('--images', required=True)
    p.add_argument('--limit', type=int, default=0)
    p.add_argument('--concurrency', type=int, default=16)
    p.add_argument('--reference', help='JSON written by --out of another run over the same files')
    p.add_argument('--out', help='write per-image predictions and the summary here')
    args = p.parse_args(argv)

    files = sorted(
        (f for f in os.listdir(args.images) if os.path.splitext(f)[1].lower() in TYPES),
        key=lambda f: int(f.split('-')[0]),
    )
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f'no <index>-<label> images in {args.images}', file=sys.stderr)
        return 2
    t0 = time.time()
    with ThreadPoolExecutor(args.concurrency) as pool:
        replies = list(pool.map(lambda f: classify(args.url, os.path.join(args.images, f)), files))
    seconds = time.time() - t0
    preds, errors, correct, served_by = {}, 0, 0, set()
    for name, reply in zip(files, replies):
        label = LABELS.index(os.path.splitext(name)[0].split('-', 1)[1])
        if 'predictions' not in reply:
            errors += 1
            if errors <= 3:
                print(f'{name}: {reply}', file=sys.stderr)
            continue
        served_by.add(f"{reply.get('backend')}/{reply.get('variant')}")
        top = reply['predictions'][0][0]['index']
        preds[name] = top
        correct += top == label
    summary = {
        'images': len(files),
        'errors': errors,
        'accuracy': correct / len(files),
        'served_by': sorted(served_by),
        'seconds': round(seconds, 1),
    }
    if args.reference:
        with open(args.reference) as f:
            ref = json.load(f)['predictions']
        common = [n for n in preds if n in ref]
        agree = sum(preds[n] == ref[n] for n in common)
        summary['reference'] = {
            'file': os.path.basename(args.reference),
            'compared': len(common),
            'top1_agreement': agree / max(1, len(common)),
            'reference_accuracy': json.load(open(args.reference))['summary']['accuracy'],
        }
    print(json.dumps(summary))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'summary': summary, 'predictions': preds}, f, indent=0)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
