"""The hackathon's two tables on our stack, in one process on one GPU:
SwinV2-B w16 256 at batch 1 -- fps, and max abs diff of the logits against PyTorch fp32 --
for PyTorch, onnxruntime and our CUDA engine, each in the variants fold and unfold.

    PYTHONPATH=engines python bench/hackathon_tables.py --out bench/.out/hackathon   # GPU host
    PYTHONPATH=engines python bench/hackathon_tables.py --arch swin-fmnist --device cpu --iters 20   # smoke test

Rows
  pytorch        timm SwinV2-B in eager mode, fp32 (the reference) and fp16 autocast, and
                 torch.compile fp16 (mode reduce-overhead; fold only, to bound the compile
                 time). fold/unfold: the same module with
                 timm's precomputed buffers (fold) or swintools' run-time masks (unfold; the
                 CPB MLP is computed at run time by timm in both).
  onnxruntime    the graphs `python -m swintools.export` writes (fold: constant folding on,
                 unfold: off), on the best execution provider installed: CUDA when
                 onnxruntime-gpu is there, else CPU (the GPU host has the CPU build only).
  engine         our CUDA engine through its ctypes C API (engines/swintools/cuda_engine.py),
                 fp16 and fp32, engine files built from the same weights, fold and unfold.

Inputs: --images N fresh uniform uint8 NHWC images (seed --seed); max abs diff is taken over
all of them against PyTorch fp32 eager (TF32 off). Timing: batch 1, median of --iters runs
after --warmup runs; GPU rows are synchronised per run (CUDA events), fps = 1000 / median ms.
Writes <out>/hackathon.json and <out>/hackathon.md and prints the tables.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import signal
import statistics
import sys
import time
import traceback

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'engines'))
from swintools.arch import PREPROCESS, build_model, get_arch
from swintools.wrapper import UInt8NHWC, with_runtime_masks

VARIANTS = ('fold', 'unfold')


def time_gpu(fn, warmup: int, iters: int, device: torch.device) -> float:
    """Median ms of fn() over iters runs, each synchronised."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == 'cuda':
        torch.cuda.synchronize()
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def max_abs_diff(ref: np.ndarray, out: np.ndarray) -> dict:
    out = out.astype(np.float64)
    ref = ref.astype(np.float64)
    finite = bool(np.isfinite(out).all())
    return {
        'max_abs_diff': float(np.max(np.abs(out - ref))) if finite else float('nan'),
        'top1_agree': float((out.argmax(1) == ref.argmax(1)).mean()),
        'finite': finite,
    }


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, framework: str, precision: str, variant: str, ms: float | None, diff: dict | None, note: str = ''):
        row = {
            'framework': framework,
            'precision': precision,
            'variant': variant,
            'ms': None if ms is None else round(ms, 4),
            'fps': None if ms is None else round(1000.0 / ms, 1),
            **(diff or {}),
            'note': note,
        }
        self.rows.append(row)
        timing = '-' if ms is None else f'{ms:9.3f} ms {1000 / ms:9.1f} fps'
        d = '' if not diff else 'max|d| {:.3e} top1 {:.2f}'.format(diff['max_abs_diff'], diff['top1_agree'])
        print(f'  {framework:<12} {precision:<14} {variant:<7} {timing}  {d}  {note}', flush=True)


def pytorch_rows(t: Table, model, pre, img, images, ref, dev, a):
    # fold = timm's module as it is (bias/mask buffers precomputed); unfold = run-time masks.
    variants = {
        'fold': UInt8NHWC(model, pre['mean'], pre['std']).to(dev).eval(),
        'unfold': UInt8NHWC(with_runtime_masks(model), pre['mean'], pre['std']).to(dev).eval(),
    }
    x1 = torch.from_numpy(images[:1]).to(dev)
    xs = torch.from_numpy(images).to(dev)
    for variant, w in variants.items():
        for prec in ('fp32', 'fp16') if dev.type == 'cuda' else ('fp32',):
            with torch.inference_mode(), torch.autocast(dev.type, torch.float16, enabled=prec == 'fp16'):
                ms = time_gpu(lambda: w(x1), a.warmup, a.iters, dev)
                out = w(xs).float().cpu().numpy()
            t.add('pytorch', f'eager {prec}', variant, ms, max_abs_diff(ref, out))
        # torch.compile takes a minute or more per graph on SwinV2-B: fold only.
        if a.compile and dev.type == 'cuda' and variant == 'fold':
            try:
                c = torch.compile(w, mode='reduce-overhead')
                with torch.inference_mode(), torch.autocast('cuda', torch.float16):
                    ms = time_gpu(lambda: c(x1), max(a.warmup, 5), a.iters, dev)
                    out = np.concatenate(
                        [
                            c(torch.from_numpy(images[i : i + 1]).to(dev)).float().cpu().numpy()
                            for i in range(len(images))
                        ]
                    )
                t.add('pytorch', 'compile fp16', variant, ms, max_abs_diff(ref, out), 'reduce-overhead')
            except Exception as err:  # report, keep going
                t.add('pytorch', 'compile fp16', variant, None, None, f'failed: {err}'[:200])


def onnx_rows(t: Table, model, pre, img, images, ref, a):
    import onnxruntime as ort
    from swintools.export import export_variant

    providers = ort.get_available_providers()
    ep = 'CUDAExecutionProvider' if 'CUDAExecutionProvider' in providers else 'CPUExecutionProvider'
    os.makedirs(a.out, exist_ok=True)
    cpu_model = model
    for variant in VARIANTS:
        path = os.path.join(a.out, f'{a.arch}.{variant}.onnx')
        if not os.path.exists(path):
            export_variant(cpu_model, pre['mean'], pre['std'], img, variant, path)
        so = ort.SessionOptions()
        sess = ort.InferenceSession(path, so, providers=[ep])
        x1 = images[:1]
        ms = time_gpu(lambda: sess.run(['logits'], {'image': x1}), a.warmup, a.ort_iters, torch.device('cpu'))
        out = np.concatenate([sess.run(['logits'], {'image': images[i : i + 1]})[0] for i in range(len(images))])
        note = ep.replace('ExecutionProvider', '') + (f', {os.cpu_count()} cores' if ep.startswith('CPU') else '')
        t.add('onnxruntime', 'fp32', variant, ms, max_abs_diff(ref, out), note)


def engine_rows(t: Table, model, arch, pre, images, ref, dev, a):
    """Our CUDA engine via engines/swintools/cuda_engine.py (ctypes over addon/cuda's C API,
    libswin_cuda_capi.so: cmake -S addon/cuda -B build/cuda && cmake --build build/cuda -j)."""
    try:
        from swintools.cuda_engine import Engine, write_engine
    except Exception as err:
        t.add('engine', '-', '-', None, None, f'not available: {err}'[:200])
        return
    xs = torch.from_numpy(images).to(dev)
    x1 = xs[:1].contiguous()
    cpu_model = model  # already a CPU copy
    for prec in ('fp16', 'fp32'):
        for variant in VARIANTS:
            try:
                path = os.path.join(a.out, f'{a.arch}.{variant}.{prec}.swin')
                write_engine(
                    path,
                    cpu_model,
                    variant,
                    prec,
                    pre['mean'],
                    pre['std'],
                    name=a.arch,
                    arch=arch,
                    max_batch=len(images),
                )
                eng = Engine(path, max_batch=len(images))
                try:
                    ms = time_gpu(lambda: eng.infer(x1), a.warmup, a.iters, dev)
                    out = eng.infer(xs).float().cpu().numpy()
                finally:
                    eng.close()
                t.add('engine', prec, variant, ms, max_abs_diff(ref, out))
            except Exception as err:
                traceback.print_exc()
                t.add('engine', prec, variant, None, None, f'failed: {err}'[:200])


def to_markdown(meta: dict, rows: list[dict]) -> str:
    def cell(r, key, fmt):
        v = r.get(key)
        return '-' if v is None or (isinstance(v, float) and v != v) else fmt.format(v)

    lines = [
        f"`{meta['arch']}`, batch 1, {meta['device_name']}; "
        f"max abs diff over {meta['images']} random images against PyTorch fp32 eager.",
        '',
        '| framework | precision | fps fold | fps unfold | max abs diff fold | max abs diff unfold | note |',
        '|---|---|---|---|---|---|---|',
    ]
    keys = []
    for r in rows:
        k = (r['framework'], r['precision'])
        if k not in keys:
            keys.append(k)
    for fw, prec in keys:
        by = {r['variant']: r for r in rows if (r['framework'], r['precision']) == (fw, prec)}
        f, u = by.get('fold', {}), by.get('unfold', {})
        notes = '; '.join(sorted({r['note'] for r in by.values() if r.get('note')}))
        lines.append(
            f"| {fw} | {prec} | {cell(f, 'fps', '{:.1f}')} | {cell(u, 'fps', '{:.1f}')} | "
            f"{cell(f, 'max_abs_diff', '{:.2e}')} | {cell(u, 'max_abs_diff', '{:.2e}')} | {notes} |"
        )
    return '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', default='swinv2_base_w16', help='swintools preset (default swinv2_base_w16)')
    p.add_argument('--checkpoint', help='weights; default: random init with --seed')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--images', type=int, default=8, help='random images for the diff (default 8)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--iters', type=int, default=100, help='timed runs per GPU row (default 100)')
    p.add_argument('--ort-iters', type=int, default=20, help='timed runs per onnxruntime row (default 20)')
    p.add_argument('--no-compile', dest='compile', action='store_false')
    p.add_argument('--skip', nargs='*', default=[], choices=['pytorch', 'onnxruntime', 'engine'])
    p.add_argument('--out', default='bench/.out/hackathon')
    a = p.parse_args(argv)

    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    arch = get_arch(a.arch)
    pre = PREPROCESS[a.arch]
    img = arch['img_size']
    model = build_model(arch, seed=a.seed)
    if a.checkpoint:
        from swintools.checkpoint import load_checkpoint

        load_checkpoint(model, a.checkpoint)
    model = model.to(dev).eval()
    images = np.random.default_rng(a.seed).integers(0, 256, (a.images, img, img, 3), dtype=np.uint8)
    with torch.inference_mode():
        ref = (
            UInt8NHWC(model, pre['mean'], pre['std'])
            .to(dev)
            .eval()(torch.from_numpy(images).to(dev))
            .float()
            .cpu()
            .numpy()
        )

    import onnxruntime as ort

    meta = {
        'arch': a.arch,
        'batch': 1,
        'images': a.images,
        'seed': a.seed,
        'device': str(dev),
        'device_name': torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or 'cpu',
        'cpu_count': os.cpu_count(),
        'torch': torch.__version__,
        'onnxruntime': ort.__version__,
        'ort_providers': ort.get_available_providers(),
        'iters': a.iters,
        'warmup': a.warmup,
        'date': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
    }
    print(json.dumps(meta), flush=True)
    t = Table()
    # `timeout` sends SIGTERM: turn it into SystemExit so the rows measured so far are written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    # A CPU copy taken first: the onnxruntime rows need no GPU, so a fault in the engine
    # (run before them, being the rows that matter most here) cannot spoil them.
    cpu_model = copy.deepcopy(model).float().cpu()
    try:
        if 'pytorch' not in a.skip:
            pytorch_rows(t, model, pre, img, images, ref, dev, a)
        if 'engine' not in a.skip and dev.type == 'cuda':
            engine_rows(t, cpu_model, arch, pre, images, ref, dev, a)
        if 'onnxruntime' not in a.skip:
            onnx_rows(t, cpu_model, pre, img, images, ref, a)
    finally:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, 'hackathon.json'), 'w') as f:
            json.dump({'meta': meta, 'rows': t.rows}, f, indent=1)
        md = to_markdown(meta, t.rows)
        with open(os.path.join(a.out, 'hackathon.md'), 'w') as f:
            f.write(md)
        print(md, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
