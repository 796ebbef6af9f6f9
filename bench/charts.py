"""Charts for docs/benchmarks.md from the JSON the benchmarks write.

    /opt/torchenv/bin/python bench/charts.py \
        --batch-sweep docs/bench/data/cpu-ort-raw.json docs/bench/data/gpu-engine.json \
        --load docs/bench/data/cpu-service-http.json docs/bench/data/cpu-baseline-http.json \
        --out docs/bench --prefix cpu

Inputs
  --batch-sweep  {"kind": "batch-sweep", "label", "rows": [{"batch", "images_per_s"}]}
                 (bench/ort-raw.ts; any engine benchmark that writes this shape)
                 -> <prefix>-throughput-vs-batch.svg, one line per file
  --load         the report `npm run bench -- --json FILE` writes (steps with throughput_rps
                 and latency percentiles) -> <prefix>-latency-vs-throughput.svg: p50 (dashed)
                 and p99 (solid) latency against achieved throughput, one colour per file
Needs matplotlib (pip install matplotlib). SVG text stays text, so the charts diff.
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt

plt.rcParams['svg.fonttype'] = 'none'
plt.rcParams['svg.hashsalt'] = 'swin-serve'  # stable ids: re-running gives the same file


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def host_line(reports: list[dict]) -> str:
    hosts = {f"{r['host']['cpus']} x {r['host']['cpu_model']}" for r in reports if 'host' in r}
    return '; '.join(sorted(hosts))


def throughput_vs_batch(files: list[str], out: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    reports = [load(f) for f in files]
    for r in reports:
        rows = sorted(r['rows'], key=lambda x: x['batch'])
        ax.plot([x['batch'] for x in rows], [x['images_per_s'] for x in rows], marker='o', label=r.get('label', '?'))
    ax.set_xscale('log', base=2)
    ax.set_xlabel('batch size')
    ax.set_ylabel('images / s')
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f'{title}\n{host_line(reports)}', fontsize=9)
    fig.tight_layout()
    fig.savefig(out, metadata={'Date': None})
    plt.close(fig)
    return out


def latency_vs_throughput(files: list[str], out: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    reports = [load(f) for f in files]
    for i, r in enumerate(reports):
        # in load order (concurrency or rate): past saturation the line turns upward in place
        steps = sorted((s for s in r['steps'] if s['ok'] > 0), key=lambda s: s.get('concurrency') or s.get('rate') or 0)
        x = [s['throughput_rps'] for s in steps]
        color = f'C{i}'
        ax.plot(x, [s['latency']['p99_ms'] for s in steps], marker='o', color=color, label=f"{r['label']} p99")
        ax.plot(
            x,
            [s['latency']['p50_ms'] for s in steps],
            marker='.',
            linestyle='--',
            color=color,
            label=f"{r['label']} p50",
        )
    ax.set_xlabel('throughput (requests / s, one image each)')
    ax.set_ylabel('latency (ms)')
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f'{title}\n{host_line(reports)}', fontsize=9)
    fig.tight_layout()
    fig.savefig(out, metadata={'Date': None})
    plt.close(fig)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--batch-sweep', nargs='*', default=[])
    p.add_argument('--load', nargs='*', default=[])
    p.add_argument('--out', default='docs/bench')
    p.add_argument('--prefix', default='bench')
    p.add_argument('--title', default='')
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    if a.batch_sweep:
        print(
            throughput_vs_batch(
                a.batch_sweep,
                os.path.join(a.out, f'{a.prefix}-throughput-vs-batch.svg'),
                a.title or 'Throughput against batch size',
            )
        )
    if a.load:
        print(
            latency_vs_throughput(
                a.load,
                os.path.join(a.out, f'{a.prefix}-latency-vs-throughput.svg'),
                a.title or 'Latency against throughput (closed-loop concurrency sweep)',
            )
        )
    if not a.batch_sweep and not a.load:
        p.error('nothing to plot: pass --batch-sweep and/or --load files')


if __name__ == '__main__':
    main()
