// An InferenceService without batcher or engine, for the KServe and gRPC
// front-end tests. Model "fake": 4x4 RGB input named "pixels", 3 classes.
// Logits are a function of the pixels, so a test can compute what it expects:
//   logit[c] = mean of channel c over the image / 10
// Encoded images are "rgb:R,G,B" strings that "decode" to a uniform image;
// anything else fails to decode. With delayMs set, every call waits that long
// while honouring the request's deadline and AbortSignal, and records whether
// it would have reached the engine. A request's timeoutMs acts as a "reject" queue policy.
import { ServeError } from '../../src/errors.js';
import type { ClassifyResult, InferenceService, ModelStatus, RequestOptions, TensorResult } from '../../src/service/service-types.js';
import type { ModelConfig } from '../../src/models/model-config.js';
import type { Variant } from '../../src/backends/backend.js';

export const H = 4;
export const W = 4;
export const LABELS = ['red', 'green', 'blue'];

export const FAKE_CONFIG: ModelConfig = {
  name: 'fake',
  version: '1',
  architecture: {
    family: 'swinv2',
    img_size: H,
    patch_size: 2,
    window_size: 2,
    embed_dim: 8,
    depths: [1],
    num_heads: [1],
    mlp_ratio: 4,
    num_classes: 3,
  },
  preprocess: { mode: 'squash', resize: H, crop: H, kernel: 'linear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  labels: LABELS,
  input: { name: 'pixels', datatype: 'UINT8', shape: [-1, H, W, 3], layout: 'NHWC' },
  output: { name: 'logits', datatype: 'FP32', shape: [-1, 3] },
  batching: { max_batch_size: 8, max_queue_delay_ms: 2, max_queue_size: 64, instances: 1, preferred_batch_sizes: [4, 8] },
  default_variant: 'fold',
  artifacts: { fold: { onnxruntime: 'fake.fold.onnx' } },
  selftest: { input: 'x.u8', count: 1, expected_logits: 'x.json', tolerance: { fp32: 1e-4, fp16: 1e-2 } },
};

export function fakeLogits(pixels: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n * 3);
  const px = H * W;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      let sum = 0;
      for (let p = 0; p < px; p++) sum += pixels[(i * px + p) * 3 + c];
      out[i * 3 + c] = sum / px / 10;
    }
  }
  return out;
}

export function uniformImage(r: number, g: number, b: number): Uint8Array {
  const out = new Uint8Array(H * W * 3);
  for (let p = 0; p < H * W; p++) out.set([r, g, b], p * 3);
  return out;
}

export interface RecordedCall {
  method: 'classify' | 'preprocess' | 'inferTensor';
  opts: RequestOptions & { variant?: Variant; topK?: number };
  /** The call got past its wait and would have run on the engine. */
  ran: boolean;
  /** The AbortSignal fired while the call waited. */
  aborted: boolean;
}

export class FakeService implements InferenceService {
  ready = true;
  delayMs = 0;
  readonly calls: RecordedCall[] = [];

  listModels(): ModelStatus[] {
    return [this.status()];
  }

  getModel(name: string): ModelStatus {
    if (name !== 'fake') throw new ServeError('SWIN_MODEL_NOT_FOUND', name, 'fake');
    return this.status();
  }

  defaultModelName(): string {
    return 'fake';
  }

  async classify(
    modelName: string | undefined,
    images: Buffer[],
    opts: RequestOptions & { variant?: Variant; topK?: number },
  ): Promise<ClassifyResult> {
    this.getModel(modelName ?? 'fake');
    const topK = opts.topK ?? 2;
    if (!Number.isInteger(topK) || topK < 1 || topK > 3) throw new ServeError('SWIN_BAD_TOP_K', 3, topK);
    const pixels = decode(images);
    await this.wait('classify', opts);
    const logits = fakeLogits(pixels, images.length);
    const predictions = images.map((_, i) => {
      const row = Array.from(logits.subarray(i * 3, i * 3 + 3));
      const max = Math.max(...row);
      const exps = row.map((v) => Math.exp(v - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      return row
        .map((_, index) => ({ label: LABELS[index], index, score: exps[index] / sum }))
        .sort((a, b) => b.score - a.score)
        .slice(0, topK);
    });
    return {
      model: 'fake',
      variant: opts.variant ?? 'fold',
      backend: 'onnxruntime',
      predictions,
      timings: { preprocess_ms: 1, queue_ms: 2, inference_ms: 3, total_ms: 6 },
    };
  }

  async preprocess(modelName: string, images: Buffer[], opts: RequestOptions): Promise<Uint8Array> {
    this.getModel(modelName);
    const pixels = decode(images);
    this.calls.push({ method: 'preprocess', opts, ran: true, aborted: false });
    return pixels;
  }

  async inferTensor(modelName: string, pixels: Uint8Array, n: number, opts: RequestOptions & { variant?: Variant }): Promise<TensorResult> {
    this.getModel(modelName);
    if (pixels.length !== n * H * W * 3) throw new ServeError('SWIN_BAD_TENSOR', `expected ${n * H * W * 3} bytes`);
    await this.wait('inferTensor', opts);
    return { model: 'fake', variant: opts.variant ?? 'fold', backend: 'onnxruntime', logits: fakeLogits(pixels, n), n, numClasses: 3 };
  }

  isReady(): boolean {
    return this.ready;
  }

  async close(): Promise<void> {}

  private status(): ModelStatus {
    return {
      name: 'fake',
      version: '1',
      versions: ['1'],
      ready: this.ready,
      active_variant: 'fold',
      variants: [{ variant: 'fold', backend: 'onnxruntime', ready: this.ready }],
      config: FAKE_CONFIG,
    };
  }

  /** Waits delayMs like a queued request: leaves early on abort or deadline, as the batcher does. */
  private async wait(method: RecordedCall['method'], opts: RecordedCall['opts']): Promise<void> {
    const rec: RecordedCall = { method, opts, ran: false, aborted: false };
    this.calls.push(rec);
    if (this.delayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: ServeError) => {
          clearTimeout(timer);
          clearTimeout(deadlineTimer);
          opts.signal?.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve();
        };
        const onAbort = () => {
          rec.aborted = true;
          done(new ServeError('SWIN_CANCELLED'));
        };
        const timer = setTimeout(() => done(), this.delayMs);
        // The request's policy timeout acts as the default policy's "reject" would.
        const left = Math.min(opts.deadline === undefined ? Infinity : opts.deadline - Date.now(), opts.timeoutMs ?? Infinity);
        const deadlineTimer = setTimeout(
          () => done(new ServeError('SWIN_DEADLINE_EXCEEDED', Math.round(left))),
          Math.min(Math.max(left, 0), 2 ** 31 - 1),
        );
        if (opts.signal?.aborted) onAbort();
        else opts.signal?.addEventListener('abort', onAbort);
      });
    }
    rec.ran = true;
  }
}

function decode(images: Buffer[]): Uint8Array {
  const out = new Uint8Array(images.length * H * W * 3);
  images.forEach((img, i) => {
    const m = /^rgb:(\d+),(\d+),(\d+)$/.exec(img.toString('latin1'));
    if (!m) throw new ServeError('SWIN_IMAGE_DECODE_FAILED', i, 'not a fake rgb: image');
    out.set(uniformImage(Number(m[1]), Number(m[2]), Number(m[3])), i * H * W * 3);
  });
  return out;
}
