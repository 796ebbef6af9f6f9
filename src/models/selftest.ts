// The load-time (and recovery) self-test of one engine: run the model's
// reference images and compare with the PyTorch fp32 logits committed next to
// model.json. An engine passes when every output is finite, the largest
// absolute difference is within the tolerance for its precision, and top-1
// agrees on every image. The seed project shipped folded TensorRT engines that
// answered NaN; this is what keeps such an engine out of service.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Backend, BackendKind } from '../backends/backend.js';
import type { ModelConfig } from './model-config.js';

export interface SelfTestData {
  /** count x H x W x 3 uint8 */
  images: Uint8Array;
  count: number;
  /** count x numClasses float32 */
  expected: Float32Array;
  numClasses: number;
  tolerance: { fp32: number; fp16: number };
}

export interface SelfTestResult {
  ok: boolean;
  /** One line for logs and /models when !ok. */
  reason?: string;
  /** Metric label when !ok: non_finite | mismatch | top1 | error. */
  failure?: 'non_finite' | 'mismatch' | 'top1' | 'error';
  maxAbsDiff: number;
  tolerance: number;
  top1Agreement: number;
}

export async function loadSelfTest(dir: string, cfg: ModelConfig): Promise<SelfTestData> {
  const { selftest, architecture } = cfg;
  const size = architecture.img_size;
  const numClasses = architecture.num_classes;
  const images = new Uint8Array(await readFile(path.resolve(dir, selftest.input)));
  if (images.length !== selftest.count * size * size * 3) {
    throw new Error(`${selftest.input}: ${images.length} bytes, expected ${selftest.count} x ${size} x ${size} x 3`);
  }
  const rows = JSON.parse(await readFile(path.resolve(dir, selftest.expected_logits), 'utf8')) as unknown;
  if (!Array.isArray(rows) || rows.length !== selftest.count || !rows.every((r) => Array.isArray(r) && r.length === numClasses)) {
    throw new Error(`${selftest.expected_logits}: expected ${selftest.count} rows of ${numClasses} numbers`);
  }
  const expected = Float32Array.from((rows as number[][]).flat());
  return { images, count: selftest.count, expected, numClasses, tolerance: selftest.tolerance };
}

function argmax(a: Float32Array, row: number, k: number): number {
  let best = 0;
  for (let i = 1; i < k; i++) if (a[row * k + i] > a[row * k + best]) best = i;
  return best;
}

/** Compares logits with the reference; exported for tests and for the recovery path. */
export function compareLogits(got: Float32Array, data: SelfTestData, tolerance: number): SelfTestResult {
  const k = data.numClasses;
  let maxAbsDiff = 0;
  let nonFinite = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) nonFinite++;
    else maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i] - data.expected[i]));
  }
  let agree = 0;
  for (let r = 0; r < data.count; r++) if (argmax(got, r, k) === argmax(data.expected, r, k)) agree++;
  const top1Agreement = agree / data.count;
  const base = { maxAbsDiff, tolerance, top1Agreement };
  if (nonFinite > 0) return { ...base, ok: false, failure: 'non_finite', reason: `${nonFinite} of ${got.length} logits are not finite` };
  if (maxAbsDiff > tolerance) {
    return {
      ...base,
      ok: false,
      failure: 'mismatch',
      reason: `max abs diff ${maxAbsDiff.toExponential(2)} to the reference exceeds ${tolerance}`,
    };
  }
  if (agree < data.count)
    return {
      ...base,
      ok: false,
      failure: 'top1',
      reason: `top-1 differs from the reference on ${data.count - agree} of ${data.count} images`,
    };
  return { ...base, ok: true };
}

/** A device left out of a multi-GPU backend: its engine did not load or failed its self-test. */
export interface DeviceLeftOut {
  device: string;
  reason: string;
  /** Metric label: load_error, or the self-test failure. */
  failure: 'load_error' | NonNullable<SelfTestResult['failure']>;
}

export interface DevicesSelfTest {
  /** ok when at least one device passed; the devices that failed are then removed from the backend. */
  result: SelfTestResult;
  /** Every device left out (load failures included), for logs, metrics and /models. */
  leftOut: DeviceLeftOut[];
}

/**
 * Self-tests every device of a backend on its own (backend.perDevice), so that
 * one GPU answering wrong cannot hide behind another answering right. Devices
 * that fail are removed from the backend and reported; the rest serve. A
 * backend with no perDevice parts is tested as one.
 */
export async function selfTestDevices(backend: Backend, data: SelfTestData): Promise<DevicesSelfTest> {
  const loadFailures: DeviceLeftOut[] = (backend.loadFailures ?? []).map((f) => ({ ...f, failure: 'load_error' }));
  const parts = backend.perDevice;
  if (!parts || parts.length === 0) return { result: await runSelfTest(backend, data), leftOut: loadFailures };
  const results = await Promise.all(parts.map((p) => runSelfTest(p, data)));
  const failed = parts.filter((_, i) => !results[i].ok);
  const leftOut = [
    ...loadFailures,
    ...failed.map((p) => {
      const r = results[parts.indexOf(p)];
      return { device: p.device, reason: r.reason!, failure: r.failure! };
    }),
  ];
  const passed = results.filter((r) => r.ok);
  if (passed.length === 0) {
    const reason = parts.length === 1 ? results[0].reason : parts.map((p, i) => `${p.device}: ${results[i].reason}`).join('; ');
    return { result: { ...results[0], reason }, leftOut };
  }
  if (failed.length > 0) await backend.removeDevices!(failed);
  return {
    result: {
      ok: true,
      maxAbsDiff: Math.max(...passed.map((r) => r.maxAbsDiff)),
      tolerance: Math.max(...passed.map((r) => r.tolerance)),
      top1Agreement: Math.min(...passed.map((r) => r.top1Agreement)),
    },
    leftOut,
  };
}

export async function runSelfTest(backend: Backend, data: SelfTestData): Promise<SelfTestResult> {
  const tolerance = backend.precision === 'fp16' ? data.tolerance.fp16 : data.tolerance.fp32;
  const bytes = data.images.length / data.count;
  const got = new Float32Array(data.count * data.numClasses);
  try {
    for (let start = 0; start < data.count; start += backend.maxBatchSize) {
      const n = Math.min(backend.maxBatchSize, data.count - start);
      const out = await backend.run(data.images.subarray(start * bytes, (start + n) * bytes), n);
      if (out.length !== n * data.numClasses) throw new Error(`returned ${out.length} logits for ${n} x ${data.numClasses}`);
      got.set(out, start * data.numClasses);
    }
  } catch (err) {
    return {
      ok: false,
      failure: 'error',
      reason: `engine failed: ${(err as Error).message}`,
      maxAbsDiff: NaN,
      tolerance,
      top1Agreement: 0,
    };
  }
  return compareLogits(got, data, tolerance);
}

export interface WarmupResult {
  ok: boolean;
  reason?: string;
  /** Batch sizes run, in order (each `instances` times at once). */
  sizes: number[];
  ms: number;
}

/**
 * Sizes warmed when model.json has no `warmup`. The GPU engines build state per batch size
 * (the cuda engine captures a CUDA graph the first time it sees a size; TensorRT picks
 * tactics per shape), and the batcher forms any size from 1 to its maximum, so every size
 * is run. onnxruntime on the CPU keeps no per-size compiled state worth the wait; one run
 * at the largest size grows each session's memory arena to what it will need.
 */
export function defaultWarmupSizes(kind: BackendKind, maxBatchSize: number): number[] {
  if (kind === 'onnxruntime') return [maxBatchSize];
  return Array.from({ length: maxBatchSize }, (_, i) => i + 1);
}

/**
 * Runs each batch size `instances` times at once (so every execution context or session
 * of the engine sees it), with the self-test images repeated to fill the batch; fails on
 * an engine error, a wrong output length or non-finite logits. Sizes above the engine's
 * maxBatchSize are capped to it.
 */
export async function runWarmup(backend: Backend, data: SelfTestData, sizes: readonly number[], instances: number): Promise<WarmupResult> {
  const start = performance.now();
  const bytes = data.images.length / data.count;
  const done: number[] = [];
  for (const want of sizes) {
    const n = Math.min(want, backend.maxBatchSize);
    const batch = new Uint8Array(n * bytes);
    for (let i = 0; i < n; i++) batch.set(data.images.subarray((i % data.count) * bytes, ((i % data.count) + 1) * bytes), i * bytes);
    try {
      const outs = await Promise.all(Array.from({ length: Math.max(1, instances) }, () => backend.run(batch, n)));
      for (const out of outs) {
        if (out.length !== n * data.numClasses) throw new Error(`returned ${out.length} logits for ${n} x ${data.numClasses}`);
        if (!out.every(Number.isFinite)) throw new Error(`non-finite logits at batch size ${n}`);
      }
    } catch (err) {
      return {
        ok: false,
        reason: `warm-up at batch size ${n} failed: ${(err as Error).message}`,
        sizes: done,
        ms: performance.now() - start,
      };
    }
    done.push(n);
  }
  return { ok: true, sizes: done, ms: performance.now() - start };
}
