// ONNX Runtime on the CPU. Each of `instances` worker threads owns its own
// session (onnxruntime-node would otherwise run inference on the event loop);
// a batch goes to an idle worker, or waits for one. Threads per session:
// intraOpThreads (0 = the host's cores shared out among the instances, see
// sessionThreads) and interOpThreads.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Backend, Variant } from './backend.js';
import type { WorkerInit, WorkerReply } from './onnxruntime-worker.js';
import { startWorkerThread } from '../worker-thread.js';

export interface OnnxRuntimeOptions {
  path: string;
  variant: Variant;
  inputName: string;
  outputName: string;
  imgSize: number;
  numClasses: number;
  maxBatchSize: number;
  /** Worker threads, one session each; match the batcher's `instances`. */
  instances: number;
  intraOpThreads: number;
  interOpThreads: number;
}

/**
 * Intra-op threads of each session. 0 (the default) splits the cores among the instances
 * (at least one each) rather than letting every session take them all, which would
 * oversubscribe them. On 2 cores the service with two one-thread sessions served
 * swin-fmnist at 1.12x raw onnxruntime's one two-thread session (docs/benchmarks.md, section 4).
 */
export function sessionThreads(intraOpThreads: number, instances: number, cores = os.availableParallelism()): number {
  if (intraOpThreads > 0) return intraOpThreads;
  return Math.max(1, Math.floor(cores / Math.max(1, instances)));
}

interface Pending {
  resolve(logits: Float32Array): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  busy: boolean;
  pending: Map<number, Pending>;
}

// Under tsx (tests, `npm run dev`) this module is .ts and so is its worker; built, both are .js.
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './onnxruntime-worker.ts' : './onnxruntime-worker.js', import.meta.url);

export class OnnxRuntimeBackend implements Backend {
  readonly kind = 'onnxruntime' as const;
  readonly variant: Variant;
  readonly maxBatchSize: number;
  readonly device = 'cpu';
  readonly precision = 'fp32' as const;
  private readonly opts: OnnxRuntimeOptions;
  private readonly slots: Slot[] = [];
  private readonly waiting: Array<() => void> = [];
  private nextId = 1;
  private disposed = false;

  private constructor(opts: OnnxRuntimeOptions) {
    this.opts = opts;
    this.variant = opts.variant;
    this.maxBatchSize = opts.maxBatchSize;
  }

  static async create(opts: OnnxRuntimeOptions): Promise<OnnxRuntimeBackend> {
    const backend = new OnnxRuntimeBackend(opts);
    try {
      for (let i = 0; i < Math.max(1, opts.instances); i++) backend.slots.push(await backend.spawn());
    } catch (err) {
      await backend.dispose();
      throw err;
    }
    return backend;
  }

  private spawn(): Promise<Slot> {
    const init: WorkerInit = {
      path: this.opts.path,
      inputName: this.opts.inputName,
      outputName: this.opts.outputName,
      height: this.opts.imgSize,
      width: this.opts.imgSize,
      intraOpThreads: sessionThreads(this.opts.intraOpThreads, this.opts.instances),
      interOpThreads: this.opts.interOpThreads,
    };
    const worker = startWorkerThread(WORKER_URL, init);
    const slot: Slot = { worker, busy: false, pending: new Map() };
    return new Promise<Slot>((resolve, reject) => {
      const onFirst = (msg: WorkerReply) => {
        if ('type' in msg && msg.type === 'ready') {
          const missing = [this.opts.inputName]
            .filter((n) => !msg.inputNames.includes(n))
            .concat([this.opts.outputName].filter((n) => !msg.outputNames.includes(n)));
          if (missing.length > 0) {
            void worker.terminate();
            reject(
              new Error(`${this.opts.path}: no tensor named ${missing.join(', ')} (inputs ${msg.inputNames}, outputs ${msg.outputNames})`),
            );
            return;
          }
          worker.off('message', onFirst);
          worker.on('message', (m: WorkerReply) => this.onReply(slot, m));
          resolve(slot);
        } else if ('type' in msg && msg.type === 'init-error') {
          void worker.terminate();
          reject(new Error(`onnxruntime could not load ${this.opts.path}: ${msg.message}`));
        }
      };
      worker.on('message', onFirst);
      worker.once('error', (err) => {
        reject(err);
        this.failSlot(slot, err);
      });
      worker.once('exit', (code) => this.failSlot(slot, new Error(`onnxruntime worker exited with code ${code}`)));
    });
  }

  private onReply(slot: Slot, msg: WorkerReply): void {
    if (!('id' in msg)) return;
    const p = slot.pending.get(msg.id);
    if (!p) return;
    slot.pending.delete(msg.id);
    slot.busy = false;
    if ('error' in msg) p.reject(new Error(msg.error));
    else p.resolve(msg.logits);
    this.waiting.shift()?.();
  }

  /** A worker that died takes its batch with it; a fresh one replaces it. */
  private failSlot(slot: Slot, err: Error): void {
    for (const p of slot.pending.values()) p.reject(err);
    slot.pending.clear();
    const i = this.slots.indexOf(slot);
    if (i < 0 || this.disposed) return;
    this.slots.splice(i, 1);
    this.spawn().then(
      (s) => {
        this.slots.push(s);
        this.waiting.shift()?.();
      },
      () => undefined,
    );
  }

  async run(images: Uint8Array, n: number): Promise<Float32Array> {
    if (this.disposed) throw new Error('onnxruntime backend is disposed');
    const bytes = this.opts.imgSize * this.opts.imgSize * 3;
    if (images.length !== n * bytes) throw new Error(`expected ${n} x ${bytes} bytes, got ${images.length}`);
    let slot = this.slots.find((s) => !s.busy);
    while (!slot) {
      await new Promise<void>((r) => this.waiting.push(r));
      if (this.disposed) throw new Error('onnxruntime backend is disposed');
      slot = this.slots.find((s) => !s.busy);
    }
    slot.busy = true;
    const id = this.nextId++;
    // The worker gets its own copy, transferred rather than cloned a second time. Not
    // images.slice(): on a Buffer that is a view of the same memory (often Node's shared
    // pool, which Node 22+ refuses to transfer: "Cannot transfer object of unsupported type").
    const copy = new Uint8Array(images);
    const logits = await new Promise<Float32Array>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, images: copy, n }, [copy.buffer]);
    });
    if (logits.length !== n * this.opts.numClasses) {
      throw new Error(`onnxruntime returned ${logits.length} logits for ${n} x ${this.opts.numClasses}`);
    }
    return logits;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const slots = this.slots.splice(0, this.slots.length);
    for (const w of this.waiting.splice(0, this.waiting.length)) w();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
