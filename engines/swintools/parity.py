"""Parity report: ONNX Runtime (CPU) against PyTorch fp32 for every exported variant.

    python -m swintools.parity --arch swin_tiny --onnx-dir out/ --name swin_tiny
    python -m swintools.parity --arch swin_tiny --export --device cuda --onnx-dir out/   # export first

Inputs: `--random N` fresh uniform uint8 images (seed printed and stored) and `--real N`
Fashion-MNIST test images preprocessed like the service does (resized with sharp's kernel
to the model's size, gray -> RGB). Metrics per variant and input set: max abs diff, relative
L2 error ||ort - torch|| / ||torch||, top-1 agreement, non-finite outputs (ORT and torch).
Writes <onnx-dir>/<name>.parity.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from .wrapper import UInt8NHWC

VARIANTS = ('fold', 'unfold')


def torch_logits(wrapped: torch.nn.Module, images: np.ndarray, batch: int = 8) -> np.ndarray:
    """fp32 reference (TF32 off) on the wrapped model's device; images uint8 [N, H, W, 3]."""
    device = next(wrapped.parameters()).device
    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        outs = []
        with torch.inference_mode():
            for i in range(0, len(images), batch):
                outs.append(wrapped(torch.from_numpy(images[i : i + batch]).to(device)).float().cpu().numpy())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev
    return np.concatenate(outs)


def ort_session(path: str, graph_opt: str = 'all', threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads  # 0: ORT's default (one per physical core)
    so.graph_optimization_level = {
        'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        'disable': ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[graph_opt]
    return ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])


def ort_logits(session, images: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate(
        [session.run(['logits'], {'image': images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    )


def compare(ref: np.ndarray, out: np.ndarray) -> dict:
    finite = np.isfinite(out).all(axis=1) & np.isfinite(ref).all(axis=1)
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    return {
        'images': len(ref),
        'max_abs_diff': float(np.nanmax(np.where(np.isfinite(diff), diff, np.inf))) if len(ref) else 0.0,
        'rel_l2': float(np.linalg.norm((out - ref)[finite]) / max(np.linalg.norm(ref[finite]), 1e-30)),
        'top1_agree': float((out.argmax(1) == ref.argmax(1)).mean()),
        'nonfinite_ort': int((~np.isfinite(out)).sum()),
        'nonfinite_torch': int((~np.isfinite(ref)).sum()),
        'max_abs_logit': float(np.abs(ref[np.isfinite(ref)]).max()) if np.isfinite(ref).any() else 0.0,
    }


def real_images(img_size: int, count: int, kernel: str = 'linear') -> np.ndarray:
    from .fmnist import load_split, to_service_input

    images, _ = load_split('test')
    return to_service_input(torch.from_numpy(images[:count].copy()), img_size, kernel).numpy()


def random_images(img_size: int, count: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    return g.integers(0, 256, size=(count, img_size, img_size, 3), dtype=np.uint8)


def run_parity(
    model,
    mean,
    std,
    img_size: int,
    paths: dict[str, str],
    n_random: int = 3,
    n_real: int = 8,
    seed: int | None = None,
    kernel: str = 'linear',
    graph_opt: str = 'all',
    tol: float = 1e-4,
    threads: int = 0,
    log=print,
) -> dict:
    """Compares each ONNX file in `paths` ({variant: path}) with the torch model."""
    seed = int.from_bytes(os.urandom(4), 'little') if seed is None else seed
    wrapped = UInt8NHWC(model, mean, std).to(next(model.parameters()).device).eval()
    sets = {'random': random_images(img_size, n_random, seed), 'real': real_images(img_size, n_real, kernel)}
    refs = {}
    for k, imgs in sets.items():
        t0 = time.time()
        refs[k] = torch_logits(wrapped, imgs)
        log(f'[parity] torch fp32 on {k} ({len(imgs)} images): {time.time() - t0:.1f} s')
    rows = []
    for variant, path in paths.items():
        t0 = time.time()
        sess = ort_session(path, graph_opt, threads)
        load_s = time.time() - t0
        for k, imgs in sets.items():
            t0 = time.time()
            out = ort_logits(sess, imgs)
            row = {
                'variant': variant,
                'inputs': k,
                'file': os.path.basename(path),
                **compare(refs[k], out),
                'ort_seconds': round(time.time() - t0, 2),
                'ort_load_seconds': round(load_s, 2),
            }
            row['pass'] = bool(row['max_abs_diff'] <= tol and row['nonfinite_ort'] == 0 and row['nonfinite_torch'] == 0)
            rows.append(row)
            log(
                f"[parity] {variant:6s} {k:6s} max_abs={row['max_abs_diff']:.3g} rel_l2={row['rel_l2']:.3g} "
                f"top1={row['top1_agree']:.3f} nonfinite={row['nonfinite_ort']} {'PASS' if row['pass'] else 'FAIL'}"
            )
    import onnxruntime as ort

    return {
        'tolerance_max_abs': tol,
        'random_seed': seed,
        'real_images': f'Fashion-MNIST test[0:{n_real}], {kernel} resize',
        'torch_device': str(next(model.parameters()).device),
        'ort_provider': 'CPUExecutionProvider',
        'ort_graph_optimization': graph_opt,
        'torch': torch.__version__,
        'onnxruntime': ort.__version__,
        'host': platform.node(),
        'cpu': platform.processor() or platform.machine(),
        'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        'rows': rows,
        'all_pass': all(r['pass'] for r in rows),
    }


def to_markdown(title: str, report: dict) -> str:
    lines = [
        f'# Parity: {title}',
        '',
        f"ONNX Runtime {report['onnxruntime']} ({report['ort_provider']}, graph optimization "
        f"{report['ort_graph_optimization']}) vs PyTorch {report['torch']} fp32 on {report['torch_device']}"
        + (f" ({report['gpu']})" if report.get('gpu') and 'cuda' in report['torch_device'] else '')
        + f". Random inputs: uniform uint8, seed {report['random_seed']}. Real inputs: {report['real_images']}. "
        f"Pass: max abs diff <= {report['tolerance_max_abs']:g} and no non-finite output.",
        '',
        '| variant | inputs | images | max abs diff | rel L2 | top-1 agree | non-finite (ORT/torch) | max abs logit | result |',
        '|---|---|---:|---:|---:|---:|---:|---:|---|',
    ]
    for r in report['rows']:
        lines.append(
            f"| {r['variant']} | {r['inputs']} | {r['images']} | {r['max_abs_diff']:.3g} | {r['rel_l2']:.3g} | "
            f"{r['top1_agree'] * 100:.1f}% | {r['nonfinite_ort']}/{r['nonfinite_torch']} | "
            f"{r['max_abs_logit']:.3g} | {'pass' if r['pass'] else '**FAIL**'} |"
        )
    if report.get('exports'):
        lines += [
            '',
            'Exported from: '
            + ', '.join(
                f"{e['variant']} on {e['device']} ({e['bytes'] / 1e6:.1f} MB, {e['nodes']} nodes, {e['seconds']} s)"
                for e in report['exports']
            ),
        ]
    return '\n'.join(lines) + '\n'


def write_report(out_dir: str, name: str, title: str, report: dict) -> tuple[str, str]:
    md, js = os.path.join(out_dir, f'{name}.parity.md'), os.path.join(out_dir, f'{name}.parity.json')
    with open(md, 'w') as f:
        f.write(to_markdown(title, report))
    with open(js, 'w') as f:
        json.dump(report, f, indent=1)
    return md, js


def main(argv=None):
    from .export import add_model_args, export_both, load_for_cli, resolve_arch_arg

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument('--onnx-dir', required=True, help='folder with <name>.fold.onnx / <name>.unfold.onnx')
    p.add_argument('--name', help='file name stem (default: arch name)')
    p.add_argument('--export', action='store_true', help='export both variants into --onnx-dir first')
    p.add_argument('--random', type=int, default=3, help='random images (default 3)')
    p.add_argument('--real', type=int, default=8, help='Fashion-MNIST images (default 8)')
    p.add_argument('--input-seed', type=int, help='seed of the random images (default: fresh)')
    p.add_argument('--kernel', default='linear', help='resize kernel for the real images')
    p.add_argument('--ort-graph-opt', default='all', choices=['all', 'basic', 'disable'])
    p.add_argument('--tol', type=float, default=1e-4)
    p.add_argument('--ort-threads', type=int, default=0, help='ORT intra-op threads (0: one per core)')
    args = p.parse_args(argv)
    resolve_arch_arg(args)
    model, arch, pre = load_for_cli(args)
    name = args.name or (args.arch if isinstance(args.arch, str) else 'model')
    exports = []
    if args.export:
        exports = export_both(model, pre['mean'], pre['std'], arch['img_size'], args.onnx_dir, name)
    paths = {
        v: os.path.join(args.onnx_dir, f'{name}.{v}.onnx')
        for v in VARIANTS
        if os.path.exists(os.path.join(args.onnx_dir, f'{name}.{v}.onnx'))
    }
    if not paths:
        raise SystemExit(f'no {name}.fold.onnx / {name}.unfold.onnx in {args.onnx_dir}')
    weights = args.checkpoint or f'seeded random init (seed {args.random_seed})'
    report = run_parity(
        model,
        pre['mean'],
        pre['std'],
        arch['img_size'],
        paths,
        args.random,
        args.real,
        args.input_seed,
        args.kernel,
        args.ort_graph_opt,
        args.tol,
        args.ort_threads,
    )
    report.update(
        {
            'model': name,
            'arch': arch,
            'weights': weights,
            'exports': [
                {k: e[k] for k in ('variant', 'device', 'bytes', 'nodes', 'seconds', 'first_ops')} for e in exports
            ],
        }
    )
    md, js = write_report(args.onnx_dir, name, f'{name} ({weights})', report)
    print(f'[parity] wrote {md} and {js}: {"ALL PASS" if report["all_pass"] else "FAILURES"}')
    return 0 if report['all_pass'] else 1


if __name__ == '__main__':
    sys.exit(main())
