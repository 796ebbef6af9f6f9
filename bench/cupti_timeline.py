#!/usr/bin/env python3
"""Where a GPU batch's time goes, from a CUPTI trace of the service under load.

Reads the tab-separated file that bench/cupti-trace/cupti_trace.cc writes (a short window of
kernels, copies and CUDA API calls) and prints three tables in Markdown:

  1. the window: batches, images, images/s, how busy the GPU was (union of kernel and copy time);
  2. per batch, over every batch that lies wholly in the window: the engine thread's time from
     the first CUDA call of the batch to the end of its last stream synchronisation, split into
     stages, and what ran on the GPU for it (kernels by kind, copies);
  3. one batch (the median by wall time), step by step on a common clock.

A batch is found on its engine thread (ImageBatchRunner::run, addon/binding/image_batch.cc):
its CUDA calls run from the first one after the previous batch's final cudaStreamSynchronize
to the first cudaStreamSynchronize after its cudaGraphLaunch (the engine). Kernels and copies
belong to the batch whose calls launched them (CUPTI's correlation id). Images per batch come
from the logits copied back (4 bytes x classes per image; --classes).

  python3 bench/cupti_timeline.py trace-1234.tsv --classes 1000 [--json out.json]
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    rows, meta = [], {}
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.startswith("#"):
                for part in line[1:].split():
                    k, _, v = part.partition("=")
                    meta[k] = int(v)
                continue
            r = dict(zip(header, line.rstrip("\n").split("\t")))
            for k in ("start_ns", "end_ns", "stream", "correlation", "thread", "bytes", "graph"):
                r[k] = int(r[k])
            rows.append(r)
    return rows, meta


def api(name):
    """cudaGraphLaunch_v10000 -> cudaGraphLaunch (CUPTI appends the API version)."""
    base, _, version = name.rpartition("_v")
    return base if base and version.isdigit() else name


def kernel_kind(r):
    if r["graph"]:
        return "engine"
    n = r["name"].lower()
    if "resize" in n:
        return "resize"
    if "nvjpeg" in n or "jpeg" in n or "idct" in n or "huffman" in n or "color" in n:
        return "nvjpeg"
    return "other"


def union_ns(intervals):
    total, end = 0, -1
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def duration_ms(records):
    """Summed durations."""
    return sum(r["end_ns"] - r["start_ns"] for r in records) / 1e6


def busy_ms(records):
    """Time covered by at least one of them (overlaps counted once)."""
    return union_ns([(r["start_ns"], r["end_ns"]) for r in records]) / 1e6


def span_ms(records):
    """First start to last end; 0 for none."""
    return (max(r["end_ns"] for r in records) - min(r["start_ns"] for r in records)) / 1e6 if records else 0.0


def batches_of(rows, classes):
    calls = defaultdict(list)  # thread -> runtime API calls
    for r in rows:
        if r["kind"] == "R":
            calls[r["thread"]].append(r)
    gpu_by_corr = defaultdict(list)
    for r in rows:
        if r["kind"] in "KMS":
            gpu_by_corr[r["correlation"]].append(r)
    out = []
    for thread, cs in calls.items():
        cs.sort(key=lambda r: r["start_ns"])
        launches = [i for i, r in enumerate(cs) if api(r["name"]) == "cudaGraphLaunch"]
        syncs = [i for i, r in enumerate(cs) if api(r["name"]) == "cudaStreamSynchronize"]
        prev_end = None  # index of the previous batch's final sync
        for li in launches:
            end = next((s for s in syncs if s > li), None)
            if end is None:
                break
            if prev_end is None:  # the first batch's start is not in the window
                prev_end = end
                continue
            own = cs[prev_end + 1 : end + 1]
            out.append(describe(thread, own, cs[prev_end], li - prev_end - 1, gpu_by_corr, classes))
            prev_end = end
    return out


def describe(thread, calls, previous_sync, launch_at, gpu_by_corr, classes):
    t0, t1 = calls[0]["start_ns"], calls[-1]["end_ns"]
    launch = calls[launch_at]
    gpu = [g for c in calls for g in gpu_by_corr.get(c["correlation"], [])]
    by = defaultdict(list)
    for g in gpu:
        if g["kind"] == "K":
            by[kernel_kind(g)].append(g)
        elif g["kind"] == "M":
            by["copy " + g["name"]].append(g)
        else:
            by["memset"].append(g)
    dtoh = [g for g in by.get("copy DtoH", []) if g["start_ns"] >= launch["start_ns"]]
    images = dtoh[-1]["bytes"] // (4 * classes) if dtoh else 0
    final_sync = calls[-1]
    syncs = [c for c in calls if api(c["name"]) == "cudaStreamSynchronize"]
    return {
        "thread": thread,
        "images": images,
        "t0": t0,
        "idle_before_ms": (t0 - previous_sync["end_ns"]) / 1e6,
        "wall_ms": (t1 - t0) / 1e6,
        # Host stages on the engine thread.
        "host_until_engine_launch_ms": (launch["start_ns"] - t0) / 1e6,
        "engine_launch_call_ms": duration_ms([launch]),
        "final_sync_wait_ms": duration_ms([final_sync]),
        "sync_calls_ms": duration_ms(syncs),
        "api_calls": len(calls),
        # GPU work launched by this batch's calls.
        "gpu": {k: {"n": len(v), "busy_ms": busy_ms(v)} for k, v in by.items()},
        "engine_span_ms": span_ms(by.get("engine", [])),
        "gpu_busy_ms": busy_ms(gpu),
        "steps": steps(calls, gpu, t0),
    }


def steps(calls, gpu, t0):
    """Chronological steps: host calls grouped by name, GPU work grouped by kind, each run of a
    kind merged into one step (start, end, count)."""
    items = [(c["start_ns"], c["end_ns"], "host", api(c["name"])) for c in calls]
    for g in gpu:
        what = (
            kernel_kind(g) + " kernels" if g["kind"] == "K" else ("copy " + g["name"] if g["kind"] == "M" else "memset")
        )
        items.append((g["start_ns"], g["end_ns"], "gpu", what))
    items.sort()
    merged = []
    for s, e, where, what in items:
        last = next((m for m in reversed(merged) if m["where"] == where), None)
        if last and last["what"] == what and (where == "gpu" or what != "cudaStreamSynchronize"):
            last["end"] = max(last["end"], e)
            last["n"] += 1
            last["busy"] += e - s
            continue
        merged.append({"where": where, "what": what, "start": s, "end": e, "n": 1, "busy": e - s})
    return [
        {
            "where": m["where"],
            "what": m["what"],
            "at_ms": round((m["start"] - t0) / 1e6, 3),
            "span_ms": round((m["end"] - m["start"]) / 1e6, 3),
            "busy_ms": round(m["busy"] / 1e6, 3),
            "n": m["n"],
        }
        for m in merged
    ]


def mean_p50(xs):
    return (statistics.fmean(xs), statistics.median(xs)) if xs else (0.0, 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--json")
    a = p.parse_args()
    rows, meta = load(a.trace)
    if not rows:
        sys.exit("no records in the trace")
    w0 = meta.get("window_start_ns", min(r["start_ns"] for r in rows))
    w1 = meta.get("window_end_ns", max(r["start_ns"] for r in rows))
    window_ms = (w1 - w0) / 1e6
    bs = [b for b in batches_of(rows, a.classes) if b["t0"] >= w0]
    gpu_rows = [r for r in rows if r["kind"] in "KMS" and w0 <= r["start_ns"] <= w1]
    busy = union_ns([(r["start_ns"], min(r["end_ns"], w1)) for r in gpu_rows]) / 1e6
    engine_busy = (
        union_ns([(r["start_ns"], min(r["end_ns"], w1)) for r in gpu_rows if r["kind"] == "K" and r["graph"]]) / 1e6
    )
    threads = sorted({b["thread"] for b in bs})
    images = sum(b["images"] for b in bs)
    print(
        f"CUPTI window {window_ms:.1f} ms, {len(rows)} records ({meta.get('dropped', 0)} dropped), "
        f"{len(bs)} whole batches on {len(threads)} engine thread(s), {images} images "
        f"({images / (window_ms / 1e3):.0f} images/s of batches that started in the window)"
    )
    print(
        f"GPU busy (any kernel or copy) {100 * busy / window_ms:.1f}% of the window; engine kernels {100 * engine_busy / window_ms:.1f}%\n"
    )
    if not bs:
        sys.exit("no whole batch in the window: is it long enough, and did the engine run CUDA graphs?")

    print("| per batch, engine thread | mean ms | p50 ms |")
    print("|---|---:|---:|")
    for key, label in [
        ("images", "images"),
        ("idle_before_ms", "idle before the batch (waiting for work)"),
        ("wall_ms", "batch on its thread, first CUDA call to last synchronise"),
        ("host_until_engine_launch_ms", "  copy-in + JPEG decode + resize, until the engine's launch"),
        ("engine_launch_call_ms", "  cudaGraphLaunch call"),
        ("final_sync_wait_ms", "  final wait: engine, logits copy"),
        ("sync_calls_ms", "  all cudaStreamSynchronize waits (decode's included)"),
        ("gpu_busy_ms", "GPU busy for the batch (union of its kernels and copies)"),
        ("engine_span_ms", "  engine: first to last kernel"),
    ]:
        m, med = mean_p50([b[key] for b in bs])
        print(f"| {label} | {m:.3f} | {med:.3f} |")
    kinds = sorted({k for b in bs for k in b["gpu"]})
    for k in kinds:
        busy_k = [b["gpu"].get(k, {"busy_ms": 0.0})["busy_ms"] for b in bs]
        n_k = [b["gpu"].get(k, {"n": 0})["n"] for b in bs]
        m, med = mean_p50(busy_k)
        print(f"|   GPU {k} ({statistics.fmean(n_k):.1f} a batch) | {m:.3f} | {med:.3f} |")

    walls = sorted(bs, key=lambda b: b["wall_ms"])
    one = walls[len(walls) // 2]
    print(
        f"\nOne batch (the median by wall time): {one['images']} images, {one['wall_ms']:.3f} ms on its thread, "
        f"GPU busy {one['gpu_busy_ms']:.3f} ms\n"
    )
    print("| at ms | span ms | busy ms | where | what | count |")
    print("|---:|---:|---:|---|---|---:|")
    for s in one["steps"]:
        print(f"| {s['at_ms']:.3f} | {s['span_ms']:.3f} | {s['busy_ms']:.3f} | {s['where']} | {s['what']} | {s['n']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"window_ms": window_ms, "meta": meta, "gpu_busy_ms": busy, "batches": bs}, f, indent=1)


if __name__ == "__main__":
    main()
