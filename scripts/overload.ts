// Overload measurement: finds the server's saturating throughput with a
// closed loop, then offers FACTOR times that rate open-loop and counts what
// comes back. Passes when every reply is 200, or 503/429 carrying
// Retry-After, with no other 5xx, and the server is healthy afterwards.
//
//   npx tsx scripts/overload.ts [--factor 10] [--duration 20] [--calibrate 8]
//        [--url http://127.0.0.1:8080]   (else spawns src/main.ts on loopback)
//        [--env MAX_QUEUE_SIZE=64 ...]   (env for the spawned server)
//
// Only loopback targets are allowed; every loop ends by itself.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { percentile, request, samplePng, startServer, type ServerProcess } from '../test/helpers/reliability-harness.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    factor: { type: 'string', default: '10' },
    duration: { type: 'string', default: '20' },
    calibrate: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '32' },
    'max-in-flight': { type: 'string', default: '2000' },
    env: { type: 'string', multiple: true, default: [] },
    json: { type: 'boolean', default: false },
  },
});

const factor = Number(values.factor);
const durationS = Math.min(600, Number(values.duration));
const calibrateS = Math.min(120, Number(values.calibrate));
const maxInFlight = Number(values['max-in-flight']);

let server: ServerProcess | null = null;
let url = values.url;
if (url !== undefined && !/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(url)) {
  throw new Error('--url must be a loopback address');
}
if (url === undefined) {
  const env = Object.fromEntries(values.env!.map((kv) => kv.split(/=(.*)/s).slice(0, 2)));
  server = await startServer(env);
  url = server.url;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
const image = await samplePng();
const classify = () => request(url!, { path: '/classify', body: image, contentType: 'image/png', agent, timeoutMs: 60_000 });

function outcomeKey(status: number, body: string): string {
  try {
    const code = (JSON.parse(body) as { code?: string }).code;
    return code ? `${status} ${code}` : String(status);
  } catch {
    return String(status);
  }
}

// 1. Saturating throughput: closed loop.
async function closedLoop(seconds: number, workers: number): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let ok = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        const r = await classify().catch(() => null);
        if (r?.status === 200) ok++;
      }
    }),
  );
  return ok / seconds;
}
await closedLoop(2, Number(values.concurrency)); // warm-up
const capacity = await closedLoop(calibrateS, Number(values.concurrency));

// 2. Open loop at factor x capacity.
const rate = capacity * factor;
const rssSamples: number[] = [];
const rssBefore = server?.rssKiB() ?? NaN;
const sampler = server ? setInterval(() => rssSamples.push(server!.rssKiB()), 250) : null;
const outcomes = new Map<string, number>();
const admittedMs: number[] = [];
let missingRetryAfter = 0;
let inFlight = 0;
let skipped = 0;
const pending: Promise<void>[] = [];
const t0 = performance.now();
const total = Math.floor(rate * durationS);
for (let i = 0; i < total; i++) {
  const due = t0 + (i / rate) * 1000;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  if (inFlight >= maxInFlight) {
    skipped++;
    continue;
  }
  inFlight++;
  pending.push(
    classify()
      .then((r) => {
        const k = outcomeKey(r.status, r.body);
        outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
        if (r.status === 200) admittedMs.push(r.ms);
        if ((r.status === 503 || r.status === 429) && r.headers['retry-after'] === undefined) missingRetryAfter++;
      })
      .catch((e: Error) => {
        const k = `client ${e.message}`;
        outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
      })
      .finally(() => inFlight--),
  );
}
const sentS = (performance.now() - t0) / 1000;
await Promise.all(pending);
if (sampler) clearInterval(sampler);
await new Promise((r) => setTimeout(r, 2000));
const rssAfter = server?.rssKiB() ?? NaN;

// 3. Healthy afterwards.
const live = await request(url, { method: 'GET', path: '/health/live', timeoutMs: 5000 });
const after = await classify();
let queueLimit: number | undefined;
let maxBatch = 1;
try {
  const models = JSON.stringify(JSON.parse((await request(url, { method: 'GET', path: '/models', timeoutMs: 5000 })).body));
  const q = models.match(/"max_queue_size":(\d+)/);
  const b = models.match(/"max_batch_size":(\d+)/);
  if (q) queueLimit = Number(q[1]);
  if (b) maxBatch = Number(b[1]);
} catch {
  // GET /models shape unknown: no bound printed
}

const counts = Object.fromEntries([...outcomes.entries()].sort());
const other5xx = [...outcomes.entries()].filter(([k]) => /^5\d\d/.test(k) && !k.startsWith('503')).reduce((a, [, n]) => a + n, 0);
const summary = {
  capacity_rps: Math.round(capacity * 10) / 10,
  offered_rps: Math.round(rate * 10) / 10,
  offered_requests: total,
  send_window_s: Math.round(sentS * 10) / 10,
  skipped_client_side: skipped,
  outcomes: counts,
  admitted: admittedMs.length,
  admitted_latency_ms: {
    p50: Math.round(percentile(admittedMs, 50)),
    p99: Math.round(percentile(admittedMs, 99)),
    max: Math.round(Math.max(...admittedMs)),
  },
  admitted_rps: Math.round((admittedMs.length / sentS) * 10) / 10,
  queue_limit_images: queueLimit ?? null,
  // An admitted request waits behind at most queue_limit images (decoding or queued),
  // then runs in one batch, all drained at the throughput seen during the overload.
  latency_bound_ms: queueLimit ? Math.round(((queueLimit + maxBatch) / (admittedMs.length / sentS)) * 1000) : null,
  rejections_without_retry_after: missingRetryAfter,
  other_5xx: other5xx,
  rss_mib: server
    ? { before: Math.round(rssBefore / 1024), peak: Math.round(Math.max(...rssSamples) / 1024), after: Math.round(rssAfter / 1024) }
    : null,
  healthy_after: live.status === 200 && after.status === 200,
};
console.log(JSON.stringify(summary, null, 2));

agent.destroy();
if (server) {
  server.proc.kill('SIGTERM');
  await Promise.race([server.exited, new Promise((r) => setTimeout(r, 30_000))]);
}
const pass = other5xx === 0 && missingRetryAfter === 0 && summary.healthy_after && !Object.keys(counts).some((k) => k.startsWith('client'));
console.log(pass ? 'PASS' : 'FAIL');
process.exit(pass ? 0 : 1);
