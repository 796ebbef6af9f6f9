// A Backend without an engine, for tests of the batcher, the model repository
// and the HTTP layer. Its logits are a function of each image's mean byte value
// m: logit[c] = -|m - 25c| / 8, so a uniform grey image of value 25c is class c
// and every caller can check it got its own row back.
import type { Backend, BackendKind, Variant } from '../../src/backends/backend.js';

export type FakeMode = 'ok' | 'nan' | 'throw';

export interface FakeBackendOptions {
  variant?: Variant;
  kind?: BackendKind;
  maxBatchSize?: number;
  numClasses?: number;
  imageBytes: number;
  /** Milliseconds each run takes (a timer: the event loop stays free). */
  delayMs?: number;
  mode?: FakeMode;
}

export function fakeLogits(images: Uint8Array, n: number, imageBytes: number, numClasses: number): Float32Array {
  const out = new Float32Array(n * numClasses);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let b = i * imageBytes; b < (i + 1) * imageBytes; b++) sum += images[b];
    const mean = sum / imageBytes;
    for (let c = 0; c < numClasses; c++) out[i * numClasses + c] = -Math.abs(mean - 25 * c) / 8;
  }
  return out;
}

export class FakeBackend implements Backend {
  readonly kind: BackendKind;
  readonly variant: Variant;
  readonly maxBatchSize: number;
  readonly device = 'fake';
  readonly numClasses: number;
  readonly imageBytes: number;
  mode: FakeMode;
  delayMs: number;
  /** Batch sizes in the order run() was called. */
  readonly calls: number[] = [];
  /** First byte of every image the engine saw, in order (ids in batcher tests). */
  readonly seen: number[] = [];
  running = 0;
  maxRunning = 0;
  disposed = false;
  private gates: Array<() => void> = [];
  private gated = false;

  constructor(o: FakeBackendOptions) {
    this.kind = o.kind ?? 'onnxruntime';
    this.variant = o.variant ?? 'fold';
    this.maxBatchSize = o.maxBatchSize ?? 8;
    this.numClasses = o.numClasses ?? 10;
    this.imageBytes = o.imageBytes;
    this.delayMs = o.delayMs ?? 0;
    this.mode = o.mode ?? 'ok';
  }

  /** While held, run() waits until release() (to fill queues deterministically). */
  hold(): void {
    this.gated = true;
  }

  release(): void {
    this.gated = false;
    const g = this.gates;
    this.gates = [];
    for (const f of g) f();
  }

  async run(images: Uint8Array, n: number): Promise<Float32Array> {
    this.calls.push(n);
    for (let i = 0; i < n; i++) this.seen.push(images[i * this.imageBytes]);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      if (this.gated) await new Promise<void>((r) => this.gates.push(r));
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.mode === 'throw') throw new Error('fake engine failure');
      const out = fakeLogits(images, n, this.imageBytes, this.numClasses);
      if (this.mode === 'nan') out[0] = Number.NaN;
      return out;
    } finally {
      this.running--;
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

/** n images of imageBytes bytes, image i filled with values[i]. */
export function uniformImages(values: number[], imageBytes: number): Uint8Array {
  const out = new Uint8Array(values.length * imageBytes);
  values.forEach((v, i) => out.fill(v, i * imageBytes, (i + 1) * imageBytes));
  return out;
}
