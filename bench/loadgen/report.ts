// Outputs of a benchmark run: the table on stdout, CSV (one row per step) and
// JSON (options, host, every step with its sparse latency histogram), which
// bench/charts.py reads.
import os from 'node:os';
import type { BenchOptions } from './args.js';
import type { StepResult } from './load.js';

export interface BenchReport {
  tool: 'swin-serve bench';
  version: 1;
  label: string;
  started_at: string;
  host: { hostname: string; cpus: number; cpu_model: string; total_mem_gib: number; node: string; platform: string };
  target: { api: string; url?: string; path?: string; grpc_target?: string; model?: string; top_k?: number };
  images: { folder: string; count: number; mean_bytes: number };
  options: Omit<BenchOptions, 'help'>;
  steps: StepResult[];
}

export function hostInfo(): BenchReport['host'] {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    total_mem_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  };
}

export const CSV_COLUMNS = [
  'label',
  'api',
  'mode',
  'concurrency',
  'rate',
  'arrival',
  'window_s',
  'requests',
  'ok',
  'errors',
  'throughput_rps',
  'p50_ms',
  'p90_ms',
  'p95_ms',
  'p99_ms',
  'mean_ms',
  'min_ms',
  'max_ms',
  'client_cpu_pct',
  'error_codes',
] as const;

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(label: string, api: string, steps: readonly StepResult[]): string {
  const rows = steps.map((s) =>
    [
      label,
      api,
      s.mode,
      s.concurrency,
      s.rate,
      s.arrival,
      s.window_s,
      s.requests,
      s.ok,
      s.error_count,
      s.throughput_rps,
      s.latency.p50_ms,
      s.latency.p90_ms,
      s.latency.p95_ms,
      s.latency.p99_ms,
      s.latency.mean_ms,
      s.latency.min_ms,
      s.latency.max_ms,
      s.client_cpu_pct,
      Object.entries(s.errors)
        .map(([k, n]) => `${k}=${n}`)
        .join(';'),
    ]
      .map(csvCell)
      .join(','),
  );
  return [CSV_COLUMNS.join(','), ...rows].join('\n') + '\n';
}

const fmt = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '-');

export function tableHeader(): string {
  return ['load', 'req/s', 'p50 ms', 'p90 ms', 'p95 ms', 'p99 ms', 'max ms', 'ok', 'errors', 'client cpu']
    .map((h, i) => (i === 0 ? h.padEnd(14) : h.padStart(9)))
    .join(' ');
}

export function tableRow(s: StepResult): string {
  const load = s.mode === 'closed' ? `c=${s.concurrency}` : `${s.rate}/s ${s.arrival === 'constant' ? 'const' : 'pois'}`;
  const errs = Object.entries(s.errors)
    .map(([k, n]) => `${k}:${n}`)
    .join(', ');
  return (
    [
      load.padEnd(14),
      fmt(s.throughput_rps).padStart(9),
      fmt(s.latency.p50_ms, 2).padStart(9),
      fmt(s.latency.p90_ms, 2).padStart(9),
      fmt(s.latency.p95_ms, 2).padStart(9),
      fmt(s.latency.p99_ms, 2).padStart(9),
      fmt(s.latency.max_ms, 2).padStart(9),
      String(s.ok).padStart(9),
      String(s.error_count).padStart(9),
      `${fmt(s.client_cpu_pct, 0)}%`.padStart(9),
    ].join(' ') + (errs ? `  [${errs}]` : '')
  );
}
