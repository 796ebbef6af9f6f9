// Issue 15's measurements on the real server (src/main.ts, swin-fmnist on
// onnxruntime), each phase on a fresh process:
//   strips:  16 clients send 1 x 25,000,000 PNGs (48 KB each) in a closed loop
//            for --seconds while one client sends normal 28 x 28 PNGs; reports
//            the normal requests' p50/p99/max, the strips' replies, and how far
//            any reply came after its deadline (REQUEST_TIMEOUT_MS).
//   kserve:  32 concurrent KServe JSON UINT8 requests of about 15 MB each;
//            reports replies and the server's peak RSS (VmHWM) against the
//            body budget.
//   npx tsx bench/cost-abuse.ts strips [--seconds 20] [--env K=V ...]
//   npx tsx bench/cost-abuse.ts kserve [--env BODY_MEMORY_BUDGET_BYTES=268435456 ...]
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { agentFor, destroyAgents, percentile, request, startServer } from '../test/helpers/reliability-harness.js';
import { stripPng } from '../test/helpers/strip-png.js';

const args = process.argv.slice(2);
const phase = args[0];
const env: Record<string, string> = {};
for (let i = 0; i < args.length; i++)
  if (args[i] === '--env') {
    const [k, ...v] = args[++i].split('=');
    env[k] = v.join('=');
  }
const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 20;

function hwmMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

async function strips(): Promise<void> {
  const timeoutMs = Number(env.REQUEST_TIMEOUT_MS ?? 30_000);
  const server = await startServer({ LOG_LEVEL: 'warn', ...env });
  const strip = await stripPng(1, 25_000_000);
  const normal = await sharp({ create: { width: 28, height: 28, channels: 3, background: '#666' } })
    .png()
    .toBuffer();
  const agent = agentFor(server.url);
  const end = Date.now() + seconds * 1000;
  const stripReplies: Record<string, number> = {};
  const normalReplies: Record<string, number> = {};
  const normalMs: number[] = [];
  let worstOverDeadline = -Infinity;
  const send = async (body: Buffer, into: Record<string, number>, ms?: number[]) => {
    try {
      const r = await request(server.url, { path: '/classify', body, contentType: 'image/png', agent, timeoutMs: timeoutMs + 60_000 });
      count(into, r.status === 200 ? '200' : `${r.status} ${(JSON.parse(r.body) as { code?: string }).code}`);
      ms?.push(r.ms);
      worstOverDeadline = Math.max(worstOverDeadline, r.ms - timeoutMs);
    } catch (err) {
      count(into, `client ${(err as Error).message}`);
    }
  };
  const attackers = Array.from({ length: 16 }, async () => {
    while (Date.now() < end) await send(strip, stripReplies);
  });
  const victim = (async () => {
    await new Promise((r) => setTimeout(r, 500)); // the strips first
    while (Date.now() < end) {
      await send(normal, normalReplies, normalMs);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await Promise.all([...attackers, victim]);
  console.log(
    JSON.stringify({
      phase: 'strips',
      env,
      seconds,
      strips: stripReplies,
      normal: normalReplies,
      normal_ms: {
        n: normalMs.length,
        p50: Math.round(percentile(normalMs, 50)),
        p99: Math.round(percentile(normalMs, 99)),
        max: Math.round(Math.max(...normalMs)),
      },
      worst_reply_after_deadline_ms: Math.round(worstOverDeadline),
      rss_peak_mib: Math.round(hwmMiB(server.proc.pid!)),
    }),
  );
  destroyAgents();
  server.proc.kill('SIGTERM');
  await server.exited;
}

async function kserve(): Promise<void> {
  const server = await startServer({ LOG_LEVEL: 'warn', MAX_BODY_BYTES: String(32 << 20), ...env });
  // 256 x 256 x 3 per image: 196,608 elements of 1-3 digits; 20 images is about 15 MB of JSON.
  const n = 20;
  const elements = n * 256 * 256 * 3;
  const data = Array.from({ length: elements }, (_, i) => (i * 7919) % 256);
  const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'image', datatype: 'UINT8', shape: [n, 256, 256, 3], data }] }));
  const before = server.rssKiB() / 1024;
  const replies: Record<string, number> = {};
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      try {
        const r = await request(server.url, {
          path: '/v2/models/swin-fmnist/infer',
          body,
          contentType: 'application/json',
          timeoutMs: 120_000,
        });
        count(
          replies,
          r.status === 200
            ? '200'
            : `${r.status} ${r.headers['swin-code'] ?? ''}${r.status === 503 ? ` retry-after=${r.headers['retry-after']}` : ''}`,
        );
      } catch (err) {
        count(replies, `client ${(err as Error).message}`);
      }
    }),
  );
  const status = readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  console.log(
    JSON.stringify({
      phase: 'kserve',
      env,
      body_mb: +(body.length / 1e6).toFixed(1),
      requests: 32,
      replies,
      seconds: +((performance.now() - t0) / 1000).toFixed(1),
      rss_before_mib: Math.round(before),
      rss_peak_mib: Math.round(hwmMiB(server.proc.pid!)),
      rss_after_mib: Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024),
    }),
  );
  server.proc.kill('SIGTERM');
  await server.exited;
}

if (phase === 'strips') await strips();
else if (phase === 'kserve') await kserve();
else {
  console.error('usage: npx tsx bench/cost-abuse.ts strips|kserve [--seconds N] [--env K=V ...]');
  process.exit(2);
}
