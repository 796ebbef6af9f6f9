"""Swin inference benchmark on one GPU, in one process: PyTorch eager fp32 / fp16, torch.compile
fp16 (mode reduce-overhead: inductor kernels + CUDA graphs), and our CUDA engine (fp16, fold and
unfold), for Swin-T/S/B (224), SwinV2-T/S (w8, 256) and SwinV2-B (w16, 256).

    python engines/bench_gpu.py --out docs/bench/cuda-engine-h100.json

Every backend starts from the same uint8 NHWC batch already on the GPU and ends with fp32 logits
on the GPU (PyTorch runs swintools.wrapper-style normalisation in front of the timm model).
Times are medians of CUDA-event timings around each forward after warm-up; the engine's are
taken by the C API around each CUDA-graph launch (swin_engine_time). Weights are timm's random
init (speed does not depend on the values; no zeros are timed: the input is random).
torch.compile is run only for the (model, batch) cases named by --compile (each shape compiles
for ~1 min). Needs build/cuda/libswin_cuda_capi.so (cmake -S addon/cuda -B build/cuda).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from swintools.arch import PREPROCESS, build_model, get_arch
from swintools.cuda_engine import Engine, EngineError, write_engine

MODELS = ['swin_tiny', 'swin_small', 'swin_base', 'swinv2_tiny', 'swinv2_small', 'swinv2_base_w16']
BACKENDS = ['eager_fp32', 'eager_fp16', 'compile_fp16', 'engine_fold', 'engine_unfold']
RUN_ORDER = [
    'engine_fold',
    'engine_unfold',
    'eager_fp32',
    'eager_fp16',
    'compile_fp16',
]  # engine first: compiler workers stay out of its timings


class Normalised(torch.nn.Module):
    """uint8 NHWC -> normalised NCHW in `dtype` -> model."""

    def __init__(self, model, mean, std, dtype):
        super().__init__()
        self.model, self.dtype = model, dtype
        self.register_buffer('sub', torch.tensor([255 * m for m in mean]).view(1, 3, 1, 1))
        self.register_buffer('div', torch.tensor([255 * s for s in std]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x.permute(0, 3, 1, 2).float() - self.sub) / self.div
        return self.model(x.to(self.dtype)).float()


def time_fn(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for a, b in ev:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in ev)


def is_oom(e):
    return isinstance(e, torch.cuda.OutOfMemoryError) or 'OUT_OF_MEMORY' in str(e) or 'out of memory' in str(e)


def bench_model(name, batches, compile_batches, iters, tmp, log):
    arch = get_arch(name)
    pre = PREPROCESS[name]
    size = arch['img_size']
    model = build_model(arch, seed=0)
    rows = []
    engines = {}
    for variant in ('fold', 'unfold'):
        path = os.path.join(tmp, f'{name}.{variant}.fp16.swin')
        write_engine(path, model, variant, 'fp16', pre['mean'], pre['std'], name=name, max_batch=max(batches))
        engines[variant] = Engine(path, max_batch=max(batches))
        os.remove(path)
    m32 = Normalised(model, pre['mean'], pre['std'], torch.float32).cuda().eval()
    import copy

    m16 = Normalised(copy.deepcopy(model).half(), pre['mean'], pre['std'], torch.float16).cuda().eval()
    compiled = None
    dead = set()  # backends that ran out of memory at a smaller batch
    for n in batches:
        images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, device='cuda')
        it = iters if n < 128 else max(5, iters // 2)
        res = {}
        with torch.no_grad():
            for be in RUN_ORDER:
                if be in dead:
                    res[be] = 'OOM'
                    continue
                try:
                    if be == 'eager_fp32':
                        res[be] = time_fn(partial(m32, images), 2, it)
                    elif be == 'eager_fp16':
                        res[be] = time_fn(partial(m16, images), 2, it)
                    elif be == 'compile_fp16':
                        if n not in compile_batches:
                            res[be] = None
                            continue
                        if compiled is None:
                            compiled = torch.compile(m16, mode='reduce-overhead')
                        t0 = time.time()
                        for _ in range(3):
                            compiled(images)
                        log(f'  compile {name} b{n}: {time.time() - t0:.0f} s')
                        res[be] = time_fn(partial(compiled, images), 3, it)
                    else:
                        eng = engines[be.split('_')[1]]
                        eng.infer(images)
                        torch.cuda.synchronize()
                        res[be] = statistics.median(eng.time(n, warmup=3, iters=max(it, 20)))
                except (RuntimeError, EngineError) as e:
                    if not is_oom(e):
                        raise
                    res[be] = 'OOM'
                    dead.add(be)
                    torch.cuda.empty_cache()
        for be in BACKENDS:
            v = res.get(be)
            rows.append(
                {
                    'model': name,
                    'batch': n,
                    'backend': be,
                    'ms': v if isinstance(v, float) else None,
                    'images_per_s': n * 1000 / v if isinstance(v, float) else None,
                    'note': v if isinstance(v, str) else None,
                }
            )
        log(
            f'{name:16s} b{n:<4d} '
            + '  '.join(
                f'{be}={res[be]:.3f}ms' if isinstance(res.get(be), float) else f'{be}={res.get(be)}' for be in BACKENDS
            )
        )
        del images
    for e in engines.values():
        e.close()
    del m32, m16, compiled
    torch.cuda.empty_cache()
    return rows


def profile(name, n, tmp, log):
    """Per-kernel GPU time of one engine forward (fp16 fold, eager launches, no graph)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprof

    arch = get_arch(name)
    pre = PREPROCESS[name]
    path = os.path.join(tmp, f'{name}.prof.swin')
    write_engine(path, build_model(arch, seed=0), 'fold', 'fp16', pre['mean'], pre['std'], name=name, max_batch=n)
    eng = Engine(path, max_batch=n, graphs=False)
    os.remove(path)
    images = torch.randint(0, 256, (n, arch['img_size'], arch['img_size'], 3), dtype=torch.uint8, device='cuda')
    for _ in range(3):
        eng.infer(images)
    torch.cuda.synchronize()
    with tprof(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            eng.infer(images)
        torch.cuda.synchronize()
    eager_ms = statistics.median(eng.time(n, 3, 20))
    eng.close()
    path = os.path.join(tmp, f'{name}.prof.swin')
    write_engine(path, build_model(arch, seed=0), 'fold', 'fp16', pre['mean'], pre['std'], name=name, max_batch=n)
    geng = Engine(path, max_batch=n, graphs=True)
    os.remove(path)
    geng.infer(images)
    graph_ms = statistics.median(geng.time(n, 3, 20))
    geng.close()
    groups = {}
    for ev in prof.events():
        if ev.device_type.name != 'CUDA':
            continue
        k = ev.name
        mine = [
            x
            for x in (
                'windowAttention',
                'layerNorm',
                'patchMerge',
                'finalNormPool',
                'patchEmbed',
                'toFloat',
                'biasGelu',
                'addBias',
                'naiveGemm',
            )
            if x in k
        ]
        key = mine[0] if mine else ('memcpy' if 'emcpy' in k else 'gemm (cuBLASLt)')
        g = groups.setdefault(key, [0.0, 0])
        g[0] += ev.device_time_total / 5
        g[1] += 1
    total = sum(v[0] for v in groups.values())
    log(
        f'profile {name} b{n} (fp16 fold): sum of kernel times {total / 1000:.3f} ms per forward; '
        f'forward with eager launches {eager_ms:.3f} ms, with the CUDA graph {graph_ms:.3f} ms'
    )
    for k, (us, cnt) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:12]:
        log(f'  {k:42s} {us:9.1f} us  {cnt // 5:4d} launches')


def table(rows):
    out = ['| model | batch | ' + ' | '.join(BACKENDS) + ' |', '|---|---|' + '---|' * len(BACKENDS)]
    keys = []
    for r in rows:
        if (r['model'], r['batch']) not in keys:
            keys.append((r['model'], r['batch']))
    for m, n in keys:
        cells = []
        for be in BACKENDS:
            r = next(x for x in rows if x['model'] == m and x['batch'] == n and x['backend'] == be)
            cells.append(f"{r['ms']:.3f} ms ({r['images_per_s']:,.0f}/s)" if r['ms'] else (r['note'] or '—'))
        out.append(f'| {m} | {n} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', default=','.join(MODELS))
    p.add_argument(
        '--batches',
        default='1,8,32,64,128,256,512',
        help='batch sizes; the last is the largest tried (OOM is recorded, not fatal)',
    )
    p.add_argument(
        '--compile',
        default='swin_tiny:1,swin_tiny:128,swinv2_base_w16:1,swinv2_base_w16:64',
        help='model:batch cases for torch.compile ("none" to skip)',
    )
    p.add_argument('--iters', type=int, default=20)
    p.add_argument(
        '--profile',
        default='swin_tiny:1,swinv2_base_w16:1,swin_tiny:128',
        help='model:batch cases for a per-kernel breakdown ("none" to skip)',
    )
    p.add_argument('--out', default='build/bench_gpu.json')
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(',')]
    comp = {}
    if args.compile != 'none':
        for c in args.compile.split(','):
            m, b = c.split(':')
            comp.setdefault(m, set()).add(int(b))
    tmp = '/dev/shm' if os.path.isdir('/dev/shm') else '/tmp'
    rows = []
    t0 = time.time()
    props = torch.cuda.get_device_properties(0)
    meta = {
        'device': props.name,
        'sms': props.multi_processor_count,
        'torch': torch.__version__,
        'cuda': torch.version.cuda,
        'command': 'python engines/bench_gpu.py ' + ' '.join(argv or sys.argv[1:]),
        'compile_mode': 'reduce-overhead',
        'eager_fp32_matmul_tf32': torch.backends.cuda.matmul.allow_tf32,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.profile != 'none':
        for c in args.profile.split(','):
            m, b = c.split(':')
            try:
                profile(m, int(b), tmp, lambda s: print(s, flush=True))
            except Exception as e:  # a breakdown is a diagnostic: never lose the benchmark for it
                print(f'profile {c} failed: {e!r}', flush=True)
    for name in [m for m in args.models.split(',') if m]:
        rows += bench_model(name, batches, comp.get(name, set()), args.iters, tmp, lambda s: print(s, flush=True))
        meta['seconds'] = round(time.time() - t0)
        with open(args.out, 'w') as f:  # after every model, so a cut-off run keeps what it measured
            json.dump({'meta': meta, 'rows': rows}, f, indent=1)
    md = table(rows)
    with open(os.path.splitext(args.out)[0] + '.md', 'w') as f:
        f.write(f"{props.name}, PyTorch {torch.__version__}; median ms (images/s)\n\n{md}\n")
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
