// One step of load spread over several load-generator processes (`--procs N`): a single
// Node process tops out near one core (grpc-js's client used 88-91% of one at about
// 2,900 requests/s on the GPU host), which would cap what a fast server can show. Each
// child is this CLI with --procs 1, its share of the concurrency (or of the rate) and
// its own seed, writing its one step as JSON; the parent adds them up. Latency
// histograms merge exactly (same buckets, stats.ts); min/max/mean come from the
// children's summaries. Children start within a few ms of each other, small against
// the warm-up.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchOptions } from './args.js';
import type { StepResult } from './load.js';
import { ErrorCounts, LatencyHistogram } from './stats.js';
import type { BenchReport } from './report.js';

/** `total` split into `parts` integer shares that differ by at most 1 (zeros dropped). */
export function shares(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  const extra = total % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0)).filter((n) => n > 0);
}

/** The CLI arguments of a child that runs one step of `o` with `load` (concurrency or rate). */
export function childArgs(o: BenchOptions, load: number, index: number, json: string, procs: number): string[] {
  const a = ['--api', o.api, '--images', o.images, '--mode', o.mode, '--label', `${o.label} [${index}]`, '--json', json];
  a.push('--max-images', String(o.maxImages), '--warmup', `${o.warmup}s`, '--duration', `${o.duration}s`);
  a.push('--timeout', `${o.timeoutMs}ms`, '--progress', '0', '--procs', '1', '--seed', String(o.seed + 7919 * index));
  if (o.api === 'http') a.push('--url', o.url, '--path', o.path);
  else a.push('--grpc-target', o.grpcTarget, '--proto', o.proto);
  if (o.model) a.push('--model', o.model);
  if (o.topK) a.push('--top-k', String(o.topK));
  if (o.mode === 'closed') a.push('--concurrency', String(load));
  else a.push('--rate', String(load), '--arrival', o.arrival, '--max-in-flight', String(Math.ceil(o.maxInFlight / procs)));
  if (o.connections) a.push('--connections', String(Math.max(1, Math.ceil(o.connections / procs))));
  if (o.check) a.push('--check');
  if (o.allowRemote) a.push('--allow-remote');
  return a;
}

/** Adds the children's steps up into one, as if one process had run the whole load. */
export function mergeSteps(parts: StepResult[], load: number): StepResult {
  const hist = new LatencyHistogram();
  const errors = new ErrorCounts();
  const top1 = new Map<string, number>();
  for (const p of parts) {
    hist.merge(LatencyHistogram.fromSummary(p.histogram_us, p.latency));
    for (const [code, n] of Object.entries(p.errors)) errors.add(code, n);
    for (const [label, n] of Object.entries(p.top1 ?? {})) top1.set(label, (top1.get(label) ?? 0) + n);
  }
  const first = parts[0];
  const ok = parts.reduce((a, p) => a + p.ok, 0);
  return {
    mode: first.mode,
    concurrency: first.mode === 'closed' ? load : null,
    rate: first.mode === 'open' ? load : null,
    arrival: first.arrival,
    warmup_s: first.warmup_s,
    window_s: first.window_s,
    requests: ok + errors.total,
    ok,
    error_count: errors.total,
    errors: errors.toObject(),
    throughput_rps: Math.round((ok / first.window_s) * 100) / 100,
    latency: hist.summary(),
    client_cpu_pct: Math.round(parts.reduce((a, p) => a + p.client_cpu_pct, 0) * 10) / 10,
    processes: parts.length,
    top1: top1.size ? Object.fromEntries([...top1.entries()].sort((a, b) => b[1] - a[1])) : undefined,
    histogram_us: hist.toSparse(),
  };
}

/** This CLI beside this module (cli.ts under tsx, cli.js when compiled), with the loaders this process has. */
function cliCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  const cli = path.join(path.dirname(here), `cli${path.extname(here)}`);
  const loaders: string[] = [];
  const a = process.execArgv;
  for (let i = 0; i < a.length; i++) {
    if (['--import', '--require', '-r', '--loader', '--experimental-loader'].includes(a[i]) && a[i + 1] !== undefined)
      loaders.push(a[i], a[++i]);
    else if (/^--(import|require|loader|experimental-loader)=/.test(a[i])) loaders.push(a[i]);
  }
  return [...loaders, cli];
}

/** Runs one step (closed-loop concurrency or open-loop rate `load`) over `o.procs` child processes. */
export async function runStepInProcesses(o: BenchOptions, load: number): Promise<StepResult> {
  const loads = o.mode === 'closed' ? shares(load, o.procs) : Array<number>(o.procs).fill(load / o.procs);
  const dir = await mkdtemp(path.join(tmpdir(), 'swin-bench-procs-'));
  try {
    const files = loads.map((_, i) => path.join(dir, `part${i}.json`));
    const codes = await Promise.all(
      loads.map(
        (share, i) =>
          new Promise<number>((resolve, reject) => {
            const child = spawn(process.execPath, [...cliCommand(), ...childArgs(o, share, i, files[i], loads.length)], {
              stdio: ['ignore', 'ignore', 'inherit'],
            });
            child.on('error', reject);
            child.on('exit', (code) => resolve(code ?? 1));
          }),
      ),
    );
    const parts: StepResult[] = [];
    for (const [i, file] of files.entries()) {
      const report = JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) as BenchReport | null;
      if (!report?.steps?.[0]) throw new Error(`load process ${i} wrote no result (exit code ${codes[i]})`);
      parts.push(report.steps[0]);
    }
    return mergeSteps(parts, load);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
