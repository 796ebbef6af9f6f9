// Soak: steady closed-loop load on a spawned server for a bounded time,
// reporting RSS and latency per window and their drift from the first
// (post-warm-up) window to the last. One request in ten is a bad image
// (truncated PNG) so error paths are soaked too.
//
//   npx tsx scripts/soak.ts [--minutes 5] [--concurrency 8] [--window 30]
//                           [--env KEY=VALUE ...]  (env for the spawned server)
//
// Loopback only; the run ends after --minutes (at most 24 h).
import http from 'node:http';
import { parseArgs } from 'node:util';
import { percentile, request, samplePng, startServer } from '../test/helpers/reliability-harness.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '8' },
    window: { type: 'string', default: '30' },
    env: { type: 'string', multiple: true, default: [] },
  },
});
const minutes = Math.min(24 * 60, Number(values.minutes));
const windowS = Number(values.window);
const concurrency = Number(values.concurrency);

const env = Object.fromEntries(values.env!.map((kv) => kv.split(/=(.*)/s).slice(0, 2)));
const server = await startServer(env);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const good = await Promise.all([1, 2, 3, 4].map((s) => samplePng(s)));
const bad = good[0].subarray(0, Math.floor(good[0].length / 2));

interface Window {
  t_s: number;
  rss_mib: number;
  requests: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: Record<string, number>;
}
const windows: Window[] = [];
let lat: number[] = [];
let errors: Record<string, number> = {};
let n = 0;
const t0 = performance.now();
const end = t0 + minutes * 60_000;
let windowStart = t0;

const ticker = setInterval(() => {
  const now = performance.now();
  const w: Window = {
    t_s: Math.round((now - t0) / 1000),
    rss_mib: Math.round((server.rssKiB() / 1024) * 10) / 10,
    requests: n,
    rps: Math.round((lat.length / ((now - windowStart) / 1000)) * 10) / 10,
    p50_ms: Math.round(percentile(lat, 50) * 10) / 10,
    p99_ms: Math.round(percentile(lat, 99) * 10) / 10,
    errors,
  };
  windows.push(w);
  console.log(JSON.stringify(w));
  lat = [];
  errors = {};
  n = 0;
  windowStart = now;
}, windowS * 1000);

let i = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const k = i++;
      const isBad = k % 10 === 9;
      const body = isBad ? bad : good[k % good.length];
      try {
        const r = await request(server.url, { path: '/classify', body, contentType: 'image/png', agent, timeoutMs: 30_000 });
        n++;
        if (!isBad && r.status === 200) lat.push(r.ms);
        const expected = isBad ? 400 : 200;
        if (r.status !== expected) errors[String(r.status)] = (errors[String(r.status)] ?? 0) + 1;
      } catch (e) {
        errors[(e as Error).message] = (errors[(e as Error).message] ?? 0) + 1;
      }
    }
  }),
);
clearInterval(ticker);
agent.destroy();

// Drift: the first window is warm-up (JIT, allocator growth); compare the second with the last.
const first = windows[Math.min(1, windows.length - 1)];
const last = windows[windows.length - 1];
const unexpected = windows.reduce((a, w) => a + Object.values(w.errors).reduce((x, y) => x + y, 0), 0);
// Least-squares slope of RSS over the windows after the first, MiB per minute: a leak shows as a
// steady positive slope, while single windows swing with the allocator and GC.
function slopePerMinute(points: Array<[number, number]>): number | null {
  if (points.length < 2) return null;
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  return Math.round((sxy / sxx) * 60 * 100) / 100;
}
const rssSlope = slopePerMinute(windows.slice(1).map((w) => [w.t_s, w.rss_mib]));
const summary = {
  minutes,
  concurrency,
  windows: windows.length,
  rss_mib: {
    baseline: first?.rss_mib,
    last: last?.rss_mib,
    drift: last && first ? Math.round((last.rss_mib - first.rss_mib) * 10) / 10 : null,
    min: Math.min(...windows.map((w) => w.rss_mib)),
    max: Math.max(...windows.map((w) => w.rss_mib)),
    slope_per_min: rssSlope,
  },
  p99_ms: { baseline: first?.p99_ms, last: last?.p99_ms },
  p50_ms: { baseline: first?.p50_ms, last: last?.p50_ms },
  rps: { baseline: first?.rps, last: last?.rps },
  unexpected_replies: unexpected,
};
console.log(JSON.stringify(summary, null, 2));
server.proc.kill('SIGTERM');
const code = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
console.log(`server exit: ${code}`);
process.exit(unexpected === 0 && code === 0 ? 0 : 1);
