"""Writes a model folder for the service: engines/models/<name>/.

    python -m swintools.make_model_repo --arch swin-fmnist --weights swin-fmnist.safetensors \\
        --out models/swin-fmnist
    python -m swintools.make_model_repo --arch swin_tiny --weights swin_tiny_patch4_window7_224.pth \\
        --labels imagenet.txt --out models/swin-tiny --name swin-tiny

Steps (each prints progress): load weights strictly (or a seeded random init with
--random-seed and no --weights), save them as <name>.safetensors, export
<name>.fold.onnx and <name>.unfold.onnx, write the self-test input (real Fashion-MNIST
test images preprocessed like the service) and PyTorch fp32 expected logits, run the
parity report, and write model.json (src/models/model-config.ts, docs/model-json.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from .arch import PREPROCESS, build_model, count_params, get_arch
from .checkpoint import load_checkpoint
from .export import export_both
from .parity import real_images, run_parity, torch_logits, write_report
from .wrapper import UInt8NHWC

# Two batches in flight: on the CPU two one-thread onnxruntime sessions (the service splits the
# cores among instances) beat one two-thread session on 2 cores; on a GPU the host side of one
# batch overlaps the other's kernels.
DEFAULT_BATCHING = {'max_batch_size': 8, 'max_queue_delay_ms': 5, 'max_queue_size': 256, 'instances': 2}


def save_weights(model: torch.nn.Module, path: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, path, metadata=metadata)


def write_selftest(wrapped, img_size: int, kernel: str, count: int, out_dir: str, name: str) -> dict:
    images = real_images(img_size, count, kernel)  # uint8 [count, S, S, 3]
    logits = torch_logits(wrapped, images)  # float32 [count, classes]
    if not np.isfinite(logits).all():
        raise RuntimeError('reference logits are not finite')
    inp, exp = f'{name}.selftest.u8', f'{name}.selftest.logits.json'
    images.tofile(os.path.join(out_dir, inp))
    with open(os.path.join(out_dir, exp), 'w') as f:
        # float32 values written as the shortest decimal that round-trips to float64 of them.
        json.dump([[float(v) for v in row] for row in logits], f)
        f.write('\n')
    return {'input': inp, 'count': count, 'expected_logits': exp, 'logits': logits}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', required=True, help='preset name or JSON file with an ArchitectureConfig')
    p.add_argument('--weights', help='official .pth, timm file or .safetensors; omit for a seeded random init')
    p.add_argument('--allow-pickle', action='store_true', help='allow full pickle loading of trusted .pth files')
    p.add_argument('--random-seed', type=int, default=0)
    p.add_argument('--out', required=True, help='model folder to write')
    p.add_argument('--name', help='model name (default: folder name)')
    p.add_argument('--version', default='1')
    p.add_argument('--description')
    p.add_argument('--labels', help='text file, one label per line (default: Fashion-MNIST names for 10 classes)')
    p.add_argument('--num-classes', type=int)
    p.add_argument('--default-variant', default='unfold', choices=['fold', 'unfold'])
    p.add_argument('--selftest-count', type=int, default=4)
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)

    t_start = time.time()
    name = args.name or os.path.basename(os.path.normpath(args.out))
    if args.arch.endswith('.json'):
        with open(args.arch) as f:
            arch = get_arch(json.load(f), args.num_classes)
        pre = None
    else:
        arch = get_arch(args.arch, args.num_classes)
        pre = PREPROCESS.get(args.arch)
    if pre is None:
        raise SystemExit(f'no preprocessing known for {args.arch}; add it to arch.PREPROCESS')
    if args.labels:
        with open(args.labels) as f:
            labels = [line.strip() for line in f if line.strip()]
    elif arch['num_classes'] == 10:
        from .fmnist import CLASSES

        labels = list(CLASSES)
    else:
        labels = [f'class_{i}' for i in range(arch['num_classes'])]
    if len(labels) != arch['num_classes']:
        raise SystemExit(f"{len(labels)} labels for {arch['num_classes']} classes")
    os.makedirs(args.out, exist_ok=True)

    model = build_model(arch, seed=args.random_seed)
    if args.weights:
        print(f'[repo] loading {args.weights} (strict)')
        load_checkpoint(model, args.weights, args.allow_pickle)
        source = os.path.basename(args.weights)
    else:
        source = f'random init, seed {args.random_seed} (not trained)'
        print(f'[repo] {source}')
    model = model.to(args.device).eval()
    print(f"[repo] {name}: {arch['family']} {count_params(model) / 1e6:.2f} M parameters")

    weights_file = f'{name}.safetensors'
    save_weights(
        model,
        os.path.join(args.out, weights_file),
        {'arch': json.dumps(arch), 'source': source, 'torch': torch.__version__},
    )
    print(f'[repo] wrote {weights_file}')

    stats = export_both(model, pre['mean'], pre['std'], arch['img_size'], args.out, name)

    wrapped = UInt8NHWC(model, pre['mean'], pre['std']).to(args.device).eval()
    st = write_selftest(wrapped, arch['img_size'], pre['kernel'], args.selftest_count, args.out, name)
    print(f"[repo] wrote self-test: {st['count']} images, logits {st['logits'].shape}")

    paths = {s['variant']: s['path'] for s in stats}
    report = run_parity(model, pre['mean'], pre['std'], arch['img_size'], paths, kernel=pre['kernel'])
    report.update({'model': name, 'arch': arch, 'weights': source})
    write_report(args.out, name, f'{name} ({source})', report)

    config = {
        'name': name,
        'version': args.version,
        'description': args.description or f"{arch['family']} {name}; weights: {source}",
        'architecture': arch if arch.get('timm_name') else {k: v for k, v in arch.items() if k != 'timm_name'},
        'preprocess': pre,
        'labels': labels,
        'input': {
            'name': 'image',
            'datatype': 'UINT8',
            'shape': [-1, arch['img_size'], arch['img_size'], 3],
            'layout': 'NHWC',
        },
        'output': {'name': 'logits', 'datatype': 'FP32', 'shape': [-1, arch['num_classes']]},
        'batching': dict(DEFAULT_BATCHING),
        'default_variant': args.default_variant,
        'artifacts': {v: {'onnxruntime': os.path.basename(path)} for v, path in paths.items()},
        'selftest': {
            'input': st['input'],
            'count': st['count'],
            'expected_logits': st['expected_logits'],
            'tolerance': {'fp32': 1e-4, 'fp16': 0.1},
        },
    }
    with open(os.path.join(args.out, 'model.json'), 'w') as f:
        json.dump(config, f, indent=2)
        f.write('\n')
    print(
        f"[repo] wrote {os.path.join(args.out, 'model.json')} in {time.time() - t_start:.1f} s; parity "
        f"{'ALL PASS' if report['all_pass'] else 'FAILURES'}; weights: {source}"
    )
    return 0 if report['all_pass'] else 1


if __name__ == '__main__':
    sys.exit(main())
