// SIGTERM while closed-loop clients keep sending, on the real server process: what
// the clients got, what the server logged as accepted and answered, and how it
// exited (test/reliability-shutdown.test.ts, test/frontend-workers.test.ts).
import http from 'node:http';
import { within } from './timeout.js';
import { request, samplePng, startServer } from './reliability-harness.js';

export const DRAIN_TIMEOUT_MS = 20_000;

export interface ShutdownResult {
  clientOutcomes: Record<string, number>;
  serverIncoming: number;
  serverCompleted: number;
  lost: number;
  completedOk: number;
  clientOk: number;
  /** Accepted before the server logged the signal, answered after it: the work the drain had to finish. */
  inFlightAtSignal: number;
  exitCode: number | string;
  exitMs: number;
}

export async function shutdownUnderLoad(opts: { workers: number; loadMs: number; env?: Record<string, string> }): Promise<ShutdownResult> {
  const server = await startServer({ DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS), LOG_LEVEL: 'debug', ...opts.env });
  const image = await samplePng();
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.workers });
  const outcomes: Record<string, number> = {};
  const count = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
  let stop = false;
  let sigtermAt = 0;
  const hardEnd = Date.now() + opts.loadMs + DRAIN_TIMEOUT_MS + 10_000;
  const workers = Array.from({ length: opts.workers }, async () => {
    while (!stop && Date.now() < hardEnd) {
      try {
        const r = await request(server.url, {
          path: '/classify',
          body: image,
          contentType: 'image/png',
          agent,
          timeoutMs: DRAIN_TIMEOUT_MS + 5000,
        });
        const code = r.status === 200 ? '200' : `${r.status} ${(JSON.parse(r.body) as { code?: string }).code ?? ''}`;
        count(code);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        count(`client ${code}`);
        // Refused: the listener is gone; stop this worker.
        if (code === 'ECONNREFUSED') return;
      }
    }
  });
  await new Promise((r) => setTimeout(r, opts.loadMs));
  sigtermAt = Date.now();
  server.proc.kill('SIGTERM');
  const exitCode = await within(server.exited, DRAIN_TIMEOUT_MS + 10_000, 'timeout');
  const exitMs = Date.now() - sigtermAt;
  stop = true;
  if (exitCode === 'timeout') server.proc.kill('SIGKILL');
  await Promise.all(workers);
  agent.destroy();

  const incoming = new Map<string, number>();
  const completed = new Map<string, { status: number; time: number }>();
  let signalAt = Infinity;
  for (const line of server.logs().split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: { msg?: string; time?: number; reqId?: string; req?: { url?: string }; status?: number };
    try {
      j = JSON.parse(line);
    } catch {
      continue;
    }
    if (j.msg?.startsWith('shutting down')) signalAt = Math.min(signalAt, j.time ?? Infinity);
    if (j.reqId === undefined) continue;
    if (j.msg === 'incoming request' && j.req?.url?.startsWith('/classify')) incoming.set(j.reqId, j.time ?? 0);
    if (j.msg === 'request completed' && incoming.has(j.reqId)) completed.set(j.reqId, { status: j.status ?? 0, time: j.time ?? 0 });
  }
  const inFlightAtSignal = [...incoming].filter(([id, t]) => t < signalAt && (completed.get(id)?.time ?? Infinity) >= signalAt).length;
  const lost = [...incoming.keys()].filter((id) => !completed.has(id)).length;
  return {
    clientOutcomes: outcomes,
    serverIncoming: incoming.size,
    serverCompleted: completed.size,
    lost,
    completedOk: [...completed.values()].filter((c) => c.status === 200).length,
    clientOk: outcomes['200'] ?? 0,
    inFlightAtSignal,
    exitCode,
    exitMs,
  };
}
