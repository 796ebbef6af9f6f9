// The InferenceService a front-end worker thread gives its HTTP and gRPC
// servers: the asynchronous calls go to the main thread's service over the
// worker's port; the synchronous ones (readiness, model list and status) answer
// from the last ServiceState main pushed. A client that goes away aborts its
// call on main too (the request leaves the batcher's queue there).
import type { MessagePort } from 'node:worker_threads';
import type { TakeResult } from '../access/token-bucket.js';
import type { Variant } from '../../backends/backend.js';
import { ServeError } from '../../errors.js';
import { exportTraceContext } from '../../observability/tracing.js';
import { finishTopK } from '../../service/postprocess.js';
import type {
  ClassifyResult,
  InferenceService,
  ModelControl,
  ModelIndexRow,
  ModelStatus,
  RequestOptions,
  TensorResult,
} from '../../service/service-types.js';
import { fromWire, type CallOp, type MainToWorker, type ServiceState, type WorkerToMain } from './protocol.js';

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  onWarning?: RequestOptions['onWarning'];
}

/** RequestOptions as they cross to main: no signal (an `abort` message instead), no callback, the trace as headers. */
type CallOptions = RequestOptions & { variant?: Variant; topK?: number; version?: string };
export type WireOptions = Omit<CallOptions, 'signal' | 'onWarning' | 'trace'> & { trace?: Record<string, string> };

/**
 * The images as they go to main: structured clone copies a view's whole ArrayBuffer, and small
 * Buffers are views into Node's shared 8 KiB pool (or a body's larger chunk), so a view that does
 * not span its buffer is first copied to its own size.
 */
function ownBuffers(images: Uint8Array[]): Uint8Array[] {
  return images.map((u) => (u.byteOffset === 0 && u.byteLength === u.buffer.byteLength ? u : new Uint8Array(u)));
}

function wireOptions(opts: CallOptions): WireOptions {
  const { signal: _signal, onWarning: _onWarning, trace, ...rest } = opts;
  return { ...rest, ...(trace !== undefined && { trace: exportTraceContext(trace) }) };
}

export class ServiceProxy implements InferenceService {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private state: ServiceState;
  readonly control?: ModelControl;

  constructor(
    private readonly port: MessagePort,
    initial: ServiceState,
  ) {
    this.state = initial;
    if (initial.controlMode !== null) {
      const mode = initial.controlMode;
      this.control = {
        mode,
        index: (readyOnly) => this.call('index', [readyOnly], undefined) as Promise<ModelIndexRow[]>,
        load: (name) => this.call('load', [name], undefined) as Promise<void>,
        unload: (name) => this.call('unload', [name], undefined) as Promise<void>,
      };
    }
  }

  /** Main's replies and state; the worker routes every MainToWorker message of these kinds here. */
  handle(msg: MainToWorker): boolean {
    if (msg.t === 'state') {
      this.state = msg.state;
      return true;
    }
    if (msg.t !== 'reply' && msg.t !== 'error') return false;
    const p = this.pending.get(msg.id);
    if (!p) return true;
    this.pending.delete(msg.id);
    if (msg.t === 'error') p.reject(fromWire(msg.error));
    else {
      for (const w of msg.warnings ?? []) p.onWarning?.(w);
      p.resolve(msg.value);
    }
    return true;
  }

  /** Aggregated /metrics text of the whole process (main collects every thread's). */
  metricsText(): Promise<string> {
    return this.call('metrics', [], undefined) as Promise<string>;
  }

  /** A token of RATE_LIMIT_RPS for this client from main's buckets (one set for every thread). */
  takeToken(client: string): Promise<TakeResult> {
    return this.call('rateLimit', [client], undefined) as Promise<TakeResult>;
  }

  private call(op: CallOp, args: unknown[], opts: RequestOptions | undefined): Promise<unknown> {
    const signal = opts?.signal;
    if (signal?.aborted) return Promise.reject(new ServeError('SWIN_CANCELLED'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.post({ t: 'abort', id });
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
        onWarning: opts?.onWarning,
      });
      this.post({ t: 'call', id, op, args });
    });
  }

  private post(msg: WorkerToMain): void {
    this.port.postMessage(msg);
  }

  listModels(): ModelStatus[] {
    return this.state.models.map((m) => m.current);
  }

  getModel(name: string, version?: string): ModelStatus {
    const m = this.state.models.find((x) => x.name === name);
    if (!m)
      throw new ServeError(
        'SWIN_MODEL_NOT_FOUND',
        JSON.stringify(name).slice(0, 100),
        this.state.models.map((x) => x.name).join(', ') || 'none',
      );
    if (version !== undefined && version !== '') {
      const s = Object.hasOwn(m.versions, version) ? m.versions[version] : undefined;
      if (!s)
        throw new ServeError(
          'SWIN_MODEL_VERSION_NOT_FOUND',
          name,
          JSON.stringify(version).slice(0, 50),
          Object.keys(m.versions).join(', ') || 'none',
        );
      return s;
    }
    return m.current;
  }

  private labelsOf(model: string, version: string | undefined): readonly string[] {
    const m = this.state.models.find((x) => x.name === model);
    const status = (version !== undefined && m && Object.hasOwn(m.versions, version) && m.versions[version]) || m?.current;
    return status?.config.labels ?? [];
  }

  defaultModelName(): string {
    return this.state.defaultModel;
  }

  isReady(): boolean {
    return this.state.ready;
  }

  async classify(
    modelName: string | undefined,
    images: Buffer[],
    opts: RequestOptions & { variant?: Variant; topK?: number; version?: string },
  ): Promise<ClassifyResult> {
    // Softmax/top-k here, on this thread, not on main's (deferTopK).
    const r = (await this.call(
      'classify',
      [modelName, ownBuffers(images), { ...wireOptions(opts), deferTopK: true }],
      opts,
    )) as ClassifyResult;
    return finishTopK(r, this.labelsOf(r.model, r.version));
  }

  preprocess(modelName: string, images: Buffer[], opts: RequestOptions & { version?: string }): Promise<Uint8Array> {
    return this.call('preprocess', [modelName, ownBuffers(images), wireOptions(opts)], opts) as Promise<Uint8Array>;
  }

  inferTensor(
    modelName: string,
    pixels: Uint8Array,
    n: number,
    opts: RequestOptions & { variant?: Variant; version?: string },
  ): Promise<TensorResult> {
    return this.call('inferTensor', [modelName, ...ownBuffers([pixels]), n, wireOptions(opts)], opts) as Promise<TensorResult>;
  }

  /** The worker's servers close themselves; main closes the service. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
