// FRONTEND_WORKERS > 0: HTTP and gRPC parsing on worker threads, one scheduler on
// the main thread. Each worker runs the whole front end (src/api/front-end.ts) in
// front of a ServiceProxy and listens on the service's ports with SO_REUSEPORT;
// the kernel spreads connections over the workers. Main answers the workers'
// service calls with the one CoreInferenceService (so one batcher per model and
// one queue per GPU), pushes the state the synchronous calls read, aggregates
// /metrics over every thread, fans out SIGHUP's reload and closes the workers
// first on shutdown. A worker that dies is replaced; its calls already on main
// finish and their replies are dropped.
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import client from 'prom-client';
import type { BaseLogger } from 'pino';
import type { Config } from '../../config.js';
import { ServeError } from '../../errors.js';
import { bodyBytesInFlight, registry } from '../../observability/metrics.js';
import { importTraceContext } from '../../observability/tracing.js';
import type { ImageWarning, InferenceService, ModelStatus } from '../../service/service-types.js';
import { startWorkerThread } from '../../worker-thread.js';
import { RateLimiter } from '../access/token-bucket.js';
import { BodyBudget } from '../body-budget.js';
import { toWire, type MainToWorker, type ServiceState, type WorkerToMain } from './protocol.js';
import type { WireOptions } from './service-proxy.js';

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './front-end-worker.ts' : './front-end-worker.js', import.meta.url);
/** How often main compares the service's state with the one the workers have. */
const STATE_POLL_MS = 200;
/** A worker that does not answer a metrics collection within this is left out of that scrape. */
const COLLECT_TIMEOUT_MS = 2000;
/** A worker that dies is replaced after 1 s, doubling with each death in the last 5 minutes, up to 30 s. */
const RESTART_BASE_MS = 1000;
const RESTART_MAX_MS = 30_000;
const RESTART_WINDOW_MS = 5 * 60_000;

export interface FrontEndWorkerData {
  index: number;
  argv: string[];
  env: Record<string, string | undefined>;
  /** The shared counter of BODY_MEMORY_BUDGET_BYTES (BodyBudget over a SharedArrayBuffer). */
  budget: SharedArrayBuffer;
  state: ServiceState;
}

interface Slot {
  index: number;
  worker: Worker;
  /** Main's AbortController per call still running for this worker. */
  aborts: Map<number, AbortController>;
  collects: Map<number, (metrics: unknown[]) => void>;
  /** Resolves when the thread has ended, however it ended. */
  exited: Promise<void>;
  /** Its metrics at the last scrape: stand in when it misses one, and are kept once it has ended. */
  lastMetrics: unknown[] | null;
  ended: boolean;
}

/** The ServiceState of `service` now. */
export function serviceState(service: InferenceService): ServiceState {
  const models = service.listModels().map((m) => {
    const versions: Record<string, ModelStatus> = {};
    for (const v of m.versions) {
      try {
        versions[v] = service.getModel(m.name, v);
      } catch {
        // unloaded between the two calls: left out
      }
    }
    return { name: m.name, current: m, versions };
  });
  return { ready: service.isReady(), defaultModel: service.defaultModelName(), models, controlMode: service.control?.mode ?? null };
}

/** Rejects (EADDRINUSE, ...) when `port` cannot be bound without SO_REUSEPORT; port 0 always passes. */
function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err) => reject(new Error(`port ${port} on ${host}: ${(err as Error).message}`)));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export class FrontEndWorkers {
  private readonly slots: Slot[] = [];
  private lastState = '';
  /** model + version pairs of the last state pushed: a reply from another version pushes a fresh state first. */
  private pushedVersions = new Set<string>();
  private closing = false;
  private nextCollect = 1;
  /** Metrics of threads that have ended (counters must not go back when a worker dies). */
  private retired: unknown[][] = [];
  /** When each worker index died lately: the replacement's backoff. */
  private readonly deaths = new Map<number, number[]>();
  private readonly poll: NodeJS.Timeout;
  /** RATE_LIMIT_RPS's buckets, one set for every worker (they ask here for each request's token). */
  private readonly tokens: RateLimiter | null;
  /** The ports every worker listens on (the first worker's, when the configuration says 0). */
  ports = { http: 0, grpc: 0 };

  private constructor(
    config: Config,
    private readonly service: InferenceService,
    private readonly shared: SharedArrayBuffer,
    private readonly base: Omit<FrontEndWorkerData, 'index' | 'state' | 'budget'>,
    private readonly logger: BaseLogger,
  ) {
    this.tokens = config.access.rateLimitRps > 0 ? new RateLimiter(config.access.rateLimitRps, config.access.rateLimitBurst) : null;
    this.poll = setInterval(() => this.pushState(), STATE_POLL_MS);
    this.poll.unref();
  }

  /**
   * Starts `config.frontendWorkers` workers (each builds its front end and sends its warm-up
   * requests), then opens their listeners: the first on the configured ports, the others on
   * the ports it got. Rejects (and stops the workers) when one fails to start.
   */
  static async start(
    config: Config,
    service: InferenceService,
    argv: string[],
    env: Record<string, string | undefined>,
    logger: BaseLogger,
  ): Promise<FrontEndWorkers> {
    // SO_REUSEPORT would let this process share a port another one (of the same user) holds, and
    // split its traffic silently: a port in use is refused here, as without workers.
    await Promise.all([config.port, config.grpcPort].map((p) => assertPortFree(config.host, p)));
    const pool = new FrontEndWorkers(config, service, BodyBudget.sharedCounter(), { argv, env }, logger);
    try {
      const started = await Promise.all(Array.from({ length: config.frontendWorkers }, (_, i) => pool.spawn(i)));
      const [first, ...rest] = started;
      pool.ports = await pool.listen(first, config.port, config.grpcPort);
      await Promise.all(rest.map((s) => pool.listen(s, pool.ports.http, pool.ports.grpc)));
      return pool;
    } catch (err) {
      await pool.terminate();
      throw err;
    }
  }

  /** The worker threads now serving (tests, diagnostics). */
  threads(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /** Shutdown has begun: the workers' readiness answers 503 from now on. */
  drain(): void {
    this.pushState();
  }

  /** SIGHUP: each worker reads the API keys and certificate again (and logs the outcome). */
  reload(): void {
    for (const s of this.slots) this.post(s, { t: 'reload' });
  }

  /** Every worker stops accepting and answers what it has read; resolves when all have exited. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    clearInterval(this.poll);
    this.pushState();
    await Promise.all(
      this.slots.map((s) => {
        this.post(s, { t: 'close', graceMs });
        const timer = setTimeout(() => void s.worker.terminate(), graceMs + 1000);
        return s.exited.finally(() => clearTimeout(timer));
      }),
    );
  }

  /** /metrics: main's registry and every worker's (their process-wide metrics left out), summed. */
  async metricsText(): Promise<string> {
    bodyBytesInFlight.set(new BodyBudget(0, this.shared).inFlight);
    const own = await registry.getMetricsAsJSON();
    const theirs = await Promise.all(this.slots.map((s) => this.collect(s)));
    if (this.retired.length > 8) this.retired = [await client.AggregatorRegistry.aggregate(this.retired).getMetricsAsJSON()];
    return client.AggregatorRegistry.aggregate([own, ...theirs.filter((m) => m !== null), ...this.retired]).metrics();
  }

  private async terminate(): Promise<void> {
    this.closing = true;
    clearInterval(this.poll);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(index: number): Promise<Slot> {
    const data: FrontEndWorkerData = { ...this.base, index, budget: this.shared, state: serviceState(this.service) };
    const worker = startWorkerThread(WORKER_URL, data);
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const slot: Slot = { index, worker, aborts: new Map(), collects: new Map(), exited, lastMetrics: null, ended: false };
    void exited.then(() => (slot.ended = true));
    this.slots[index] = slot;
    return new Promise<Slot>((resolve, reject) => {
      const onStart = (msg: WorkerToMain) => {
        if (msg.t === 'warmed') {
          slot.worker.off('message', onStart);
          resolve(slot);
        } else if (msg.t === 'failed') reject(new Error(`front-end worker ${index} did not start: ${msg.message}`));
      };
      slot.worker.on('message', onStart);
      slot.worker.on('message', (msg: WorkerToMain) => this.onMessage(slot, msg));
      slot.worker.once('error', (err) => {
        this.logger.error({ frontEndWorker: index, err }, 'front-end worker failed');
        reject(err);
      });
      slot.worker.once('exit', (code) => {
        reject(new Error(`front-end worker ${index} exited (code ${code}) before it was ready`));
        this.onExit(slot, code);
      });
    });
  }

  private listen(s: Slot, http: number, grpc: number): Promise<{ http: number; grpc: number }> {
    return new Promise((resolve, reject) => {
      const onMsg = (msg: WorkerToMain) => {
        if (msg.t === 'listening') {
          s.worker.off('message', onMsg);
          resolve({ http: msg.http, grpc: msg.grpc });
        } else if (msg.t === 'failed') reject(new Error(`front-end worker ${s.index} could not listen: ${msg.message}`));
      };
      s.worker.on('message', onMsg);
      void s.exited.then(() => reject(new Error(`front-end worker ${s.index} exited before it listened`)));
      this.post(s, { t: 'listen', http, grpc });
    });
  }

  private onExit(s: Slot, code: number): void {
    for (const ac of s.aborts.values()) ac.abort();
    if (s.lastMetrics) this.retired.push(s.lastMetrics);
    if (this.closing || this.slots[s.index] !== s || this.ports.http === 0) return; // closing, replaced, or still starting
    // A worker that died while serving: its connections are gone; a new one takes its place, after a
    // delay that grows while replacements keep dying (an unreadable certificate, say).
    const now = Date.now();
    const recent = (this.deaths.get(s.index) ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
    recent.push(now);
    this.deaths.set(s.index, recent);
    const delayMs = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (recent.length - 1));
    this.logger.error({ frontEndWorker: s.index, code, delayMs }, 'a front-end worker exited; starting another');
    const timer = setTimeout(() => {
      if (this.closing) return;
      this.spawn(s.index)
        .then((fresh) =>
          this.listen(fresh, this.ports.http, this.ports.grpc).catch(async (err: unknown) => {
            await fresh.worker.terminate(); // its exit schedules the next try
            throw err;
          }),
        )
        .then(
          () => this.logger.info({ frontEndWorker: s.index }, 'front-end worker replaced'),
          (err: unknown) => this.logger.error({ frontEndWorker: s.index, err }, 'a front-end worker could not be replaced'),
        );
    }, delayMs);
    timer.unref();
  }

  private onMessage(s: Slot, msg: WorkerToMain): void {
    switch (msg.t) {
      case 'call':
        void this.serve(s, msg.id, msg.op, msg.args);
        break;
      case 'abort':
        s.aborts.get(msg.id)?.abort();
        break;
      case 'collected':
        s.collects.get(msg.id)?.(msg.metrics);
        break;
      default:
        break;
    }
  }

  private async serve(s: Slot, id: number, op: string, args: unknown[]): Promise<void> {
    const ac = new AbortController();
    s.aborts.set(id, ac);
    const warnings: ImageWarning[] = [];
    const opts = (o: unknown) => {
      const { trace, ...rest } = o as WireOptions;
      return {
        ...rest,
        trace: importTraceContext(trace),
        signal: ac.signal,
        onWarning: (w: ImageWarning) => warnings.push(w),
      };
    };
    try {
      const svc = this.service;
      let value: unknown;
      switch (op) {
        case 'classify': {
          const r = await svc.classify(args[0] as string | undefined, (args[1] as Uint8Array[]).map(asBuffer), opts(args[2]));
          // The worker makes the predictions with this version's labels: it must know the version (messages keep their order).
          if (!this.pushedVersions.has(`${r.model}\0${r.version}`)) this.pushState();
          value = r;
          break;
        }
        case 'preprocess':
          value = await svc.preprocess(args[0] as string, (args[1] as Uint8Array[]).map(asBuffer), opts(args[2]));
          break;
        case 'inferTensor':
          value = await svc.inferTensor(args[0] as string, args[1] as Uint8Array, args[2] as number, opts(args[3]));
          break;
        case 'index':
          value = await svc.control!.index(args[0] as boolean);
          break;
        case 'load':
        case 'unload':
          try {
            await svc.control![op](args[0] as string);
          } finally {
            // The worker that asked sees the change (or the part that took) in its next synchronous call.
            this.pushState();
          }
          break;
        case 'metrics':
          value = await this.metricsText();
          break;
        case 'rateLimit':
          value = this.tokens?.take(args[0] as string) ?? { allowed: true, retryAfterSeconds: 0 };
          break;
        default:
          throw new Error(`unknown call ${op}`);
      }
      this.post(s, { t: 'reply', id, value, ...(warnings.length > 0 && { warnings }) });
    } catch (err) {
      // A fault of ours is logged here, with main's stack; the worker's reply then names the code only.
      if (!(err instanceof ServeError)) this.logger.error({ err, op, frontEndWorker: s.index }, 'a front-end worker call failed on main');
      this.post(s, { t: 'error', id, error: toWire(err) });
    } finally {
      s.aborts.delete(id);
    }
  }

  private collect(s: Slot): Promise<unknown[] | null> {
    if (s.ended) return Promise.resolve(null); // its last metrics are with the retired ones
    const id = this.nextCollect++;
    return new Promise((resolve) => {
      // A worker that misses the scrape (busy, or gone) counts with what it had at the last one.
      const timer = setTimeout(() => {
        s.collects.delete(id);
        resolve(s.lastMetrics);
      }, COLLECT_TIMEOUT_MS);
      s.collects.set(id, (metrics) => {
        clearTimeout(timer);
        s.collects.delete(id);
        s.lastMetrics = metrics;
        resolve(metrics);
      });
      this.post(s, { t: 'collect', id });
    });
  }

  private pushState(): void {
    let state: ServiceState;
    try {
      state = serviceState(this.service);
    } catch (err) {
      this.logger.warn({ err }, 'front-end workers: the service state could not be read; they keep the last one');
      return;
    }
    const text = JSON.stringify(state);
    if (text === this.lastState) return;
    this.lastState = text;
    this.pushedVersions = new Set(state.models.flatMap((m) => Object.keys(m.versions).map((v) => `${m.name}\0${v}`)));
    for (const s of this.slots) this.post(s, { t: 'state', state });
  }

  private post(s: Slot, msg: MainToWorker): void {
    s.worker.postMessage(msg);
  }
}
