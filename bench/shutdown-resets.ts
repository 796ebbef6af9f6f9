// Issue 15's shutdown acceptance on the real server: SIGTERM at a random point
// of a burst, --runs times (default 50), each on a fresh process. Clients are
// keep-alive, 12 at a time in a closed loop; every request records when it was
// fully written (the client's 'finish') and how it ended. A request written
// before the signal must be answered 200 or 503; one written after may also be
// refused (the listener is gone).
//   npx tsx bench/shutdown-resets.ts [--runs 50] [--env K=V ...]
import http from 'node:http';
import sharp from 'sharp';
import { startServer } from '../test/helpers/reliability-harness.js';

const args = process.argv.slice(2);
const runs = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 50;
const env: Record<string, string> = {};
for (let i = 0; i < args.length; i++)
  if (args[i] === '--env') {
    const [k, ...v] = args[++i].split('=');
    env[k] = v.join('=');
  }

interface Outcome {
  writtenAt: number;
  result: string;
}

async function run(
  seed: number,
  image: Buffer,
): Promise<{ before: Record<string, number>; after: Record<string, number>; exit: number | string; exitMs: number }> {
  const server = await startServer({ LOG_LEVEL: 'warn', DRAIN_TIMEOUT_MS: '20000', ...env });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 12 });
  const outcomes: Outcome[] = [];
  let stop = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const o: Outcome = { writtenAt: Infinity, result: '' };
      outcomes.push(o);
      const req = http.request(
        { host: '127.0.0.1', port: server.port, path: '/classify', method: 'POST', agent, headers: { 'content-type': 'image/png' } },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            o.result = res.statusCode === 200 ? '200' : `${res.statusCode} ${(JSON.parse(body) as { code?: string }).code}`;
            resolve();
          });
          res.on('error', (e: NodeJS.ErrnoException) => {
            o.result = `client ${e.code ?? e.message}`;
            resolve();
          });
        },
      );
      req.on('finish', () => (o.writtenAt = performance.now()));
      req.on('error', (e: NodeJS.ErrnoException) => {
        o.result = `client ${e.code ?? e.message}`;
        if (e.code === 'ECONNREFUSED') stop = true;
        resolve();
      });
      req.end(image);
    });
  const workers = Array.from({ length: 12 }, async () => {
    while (!stop) await one();
  });
  // A pseudo-random moment 50-1550 ms into the burst, different each run.
  await new Promise((r) => setTimeout(r, 50 + ((seed * 104_729) % 1500)));
  const signalAt = performance.now();
  server.proc.kill('SIGTERM');
  const exit = await server.exited;
  const exitMs = performance.now() - signalAt;
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  const before: Record<string, number> = {};
  const after: Record<string, number> = {};
  for (const o of outcomes) {
    const into = o.writtenAt < signalAt ? before : after;
    into[o.result] = (into[o.result] ?? 0) + 1;
  }
  return { before, after, exit, exitMs };
}

const image = await sharp({ create: { width: 28, height: 28, channels: 3, background: '#666' } })
  .png()
  .toBuffer();
const total: Record<string, number> = {};
let badRuns = 0;
for (let i = 1; i <= runs; i++) {
  const r = await run(i, image);
  for (const [k, v] of Object.entries(r.before)) total[k] = (total[k] ?? 0) + v;
  const bad = Object.keys(r.before).filter((k) => !/^(200|503 SWIN_SHUTTING_DOWN)$/.test(k));
  if (bad.length > 0 || r.exit !== 0) badRuns++;
  console.log(
    JSON.stringify({ run: i, written_before_signal: r.before, after_signal: r.after, exit: r.exit, exit_ms: Math.round(r.exitMs) }),
  );
}
console.log(JSON.stringify({ runs, written_before_signal: total, bad_runs: badRuns }));
