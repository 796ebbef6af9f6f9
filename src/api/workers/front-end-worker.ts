// A front-end worker thread (FRONTEND_WORKERS): the HTTP app and gRPC server of
// src/api/front-end.ts in front of a ServiceProxy whose calls main's service
// answers. Started by FrontEndWorkers (front-end-workers.ts), which tells it when
// to listen (after its warm-up requests) and when to close.
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { LOG_REDACT_PATHS } from '../access/http-access.js';
import { BodyBudget } from '../body-budget.js';
import { buildFrontEnd, type FrontEnd } from '../front-end.js';
import { loadConfig } from '../../config.js';
import { registry } from '../../observability/metrics.js';
import { initTracing, shutdownTracing } from '../../observability/tracing.js';
import type { FrontEndWorkerData } from './front-end-workers.js';
import type { MainToWorker, WorkerToMain } from './protocol.js';
import { ServiceProxy } from './service-proxy.js';

/** Metrics of the whole process, reported by main alone (a worker's would be counted once per thread). */
const PROCESS_WIDE = /^(process_|nodejs_|swin_body_bytes_in_flight$)/;

const data = workerData as FrontEndWorkerData;
const port = parentPort!;
const post = (msg: WorkerToMain) => port.postMessage(msg);
const config = loadConfig(data.argv, data.env);
// Written to fd 1 like main's, asynchronously. Ended before the thread exits: a line
// still being written when the thread ends would be lost (flushSync skips it).
const logDest = pino.destination({ dest: 1, sync: false });
const logger = pino({ level: config.logLevel, redact: LOG_REDACT_PATHS }, logDest).child({ frontEndWorker: data.index });
initTracing(data.env);
const proxy = new ServiceProxy(port, data.state);
let frontEnd: FrontEnd | null = null;

port.on('message', (msg: MainToWorker) => {
  if (proxy.handle(msg)) return;
  void control(msg).catch((err: unknown) => {
    logger.error({ err }, `front-end worker: ${msg.t} failed`);
    post({ t: 'failed', message: (err as Error).message });
  });
});

async function control(msg: MainToWorker): Promise<void> {
  switch (msg.t) {
    case 'listen': {
      const ports = await frontEnd!.listen(msg.http, msg.grpc);
      post({ t: 'listening', ...ports });
      break;
    }
    case 'collect': {
      const metrics = (await registry.getMetricsAsJSON()).filter((m) => !PROCESS_WIDE.test(m.name));
      post({ t: 'collected', id: msg.id, metrics });
      break;
    }
    case 'reload':
      frontEnd!.reload(data.env);
      break;
    case 'close':
      await frontEnd?.close(msg.graceMs);
      await shutdownTracing().catch(() => undefined);
      await endLog();
      post({ t: 'closed' });
      process.exit(0); // ends this thread only
      break;
    default:
      break;
  }
}

/** Waits for the line being written and writes the rest; fd 1 itself stays open for main. */
function endLog(): Promise<void> {
  return new Promise((resolve) => {
    logDest.once('close', () => resolve());
    logDest.once('error', () => resolve());
    logDest.end();
  });
}

try {
  frontEnd = await buildFrontEnd(config, proxy, {
    logger,
    bodyBudget: new BodyBudget(config.bodyMemoryBudgetBytes, data.budget),
    reusePort: true,
    metricsText: () => proxy.metricsText(),
    tokens: { take: (client) => proxy.takeToken(client) },
  });
  post({ t: 'warmed' });
} catch (err) {
  post({ t: 'failed', message: (err as Error).message });
}
