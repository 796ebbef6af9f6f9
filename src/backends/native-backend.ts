// The `tensorrt` and `cuda` backends: engines of the native addon, one per GPU
// (Triton's instance group: `instances` per GPU, on the GPUs DEVICES names or
// every visible one). A batch goes to the GPU with the fewest batches in flight;
// each engine runs up to `instances` batches at once on its own threads, so
// run() never blocks the event loop. Each GPU's engine is also a Backend of its
// own (perDevice) so that every device is self-tested on its own, and one that
// fails is taken out (removeDevices) while the others serve. The addon is loaded
// on first use (src/native/addon.ts); where it is missing, nativeCapabilities()
// there says why and the factory falls back to onnxruntime.
import path from 'node:path';
import type { Backend, DeviceBatchResult, DeviceDecodeSpec, Variant } from './backend.js';
import type { ModelConfig } from '../models/model-config.js';
import { normaliseGpuInfo, setGpuInfoSource } from '../observability/metrics.js';
import { gpuInfo, loadAddon, type NativeEngine, type NativeLoadOptions } from '../native/addon.js';

export interface NativeBackendOptions {
  /** Batches in flight per GPU (execution contexts / streams per engine). */
  instances: number;
  /** One GPU only; by default one engine on every visible GPU. */
  deviceIndex?: number;
  /** GPUs to load on (the DEVICES setting); empty or absent: every visible GPU. */
  devices?: readonly number[];
  /** Cap below the engine's own maximum (0 or absent: the engine's). */
  maxBatchSize?: number;
  /** CUDA graph per batch size (default on). */
  cudaGraphs?: boolean;
  /** "fp32" asks an engine for its checking mode where it has one. */
  precision?: string;
  /**
   * Loads the engine of one GPU; default the addon's loadEngine. Tests pass the
   * addon's fault engines here to stand in for several GPUs.
   */
  loadEngine?: (deviceIndex: number, options: NativeLoadOptions) => Promise<NativeEngine>;
}

/** An Error whose `code` is one of the addon's ERR_* codes. */
export class NativeBackendError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'NativeBackendError';
  }
}

// The GPU gauges of src/observability/metrics.ts read the addon through this source: metrics is the
// bottom layer and imports nothing above it, so the native side registers itself.
setGpuInfoSource(async () => normaliseGpuInfo(await gpuInfo()));

/**
 * The arithmetic of the artifact actually loaded, which picks the self-test
 * tolerance. A CUDA engine reports its own (the file's weights, or fp32 when
 * asked for the checking mode). A TensorRT plan cannot tell which kernels its
 * builder was allowed (the plan reports only what it was given in `precision`),
 * so its name decides: engines/build_trt_plans.sh writes
 * <name>.<variant>.<fp16|fp32>.plan; a plan named otherwise may hold fp16
 * kernels and gets the fp16 bound (finite outputs and top-1 are still checked).
 */
export function loadedPrecision(kind: 'tensorrt' | 'cuda', artifactPath: string, reported: string): 'fp32' | 'fp16' {
  if (reported === 'fp16' || reported === 'fp32') return reported;
  const named = /\.(fp16|fp32)\.[^.]+$/.exec(path.basename(artifactPath))?.[1];
  if (named === 'fp16' || named === 'fp32') return named;
  return kind === 'tensorrt' ? 'fp16' : 'fp32';
}

/** One GPU's engine as a Backend: what the self-test runs on each device. */
class DeviceBackend implements Backend {
  readonly maxBatchSize: number;
  readonly device: string;
  constructor(
    readonly kind: 'tensorrt' | 'cuda',
    readonly variant: Variant,
    readonly precision: 'fp32' | 'fp16',
    readonly engine: NativeEngine,
  ) {
    this.maxBatchSize = engine.info.maxBatch;
    this.device = engine.info.device;
  }

  run(images: Uint8Array, n: number): Promise<Float32Array> {
    return this.engine.infer(images, n);
  }

  async runImages(images: Uint8Array[], jpeg: readonly boolean[], spec: DeviceDecodeSpec): Promise<DeviceBatchResult> {
    const r = await this.engine.inferImages(images, Uint8Array.from(jpeg, Number), spec);
    return { logits: r.logits, decoded: Array.from(r.decoded, (d) => d === 1), reasons: r.reasons, stages: r.stages };
  }

  dispose(): Promise<void> {
    return this.engine.dispose();
  }
}

class NativeBackend implements Backend {
  private parts: DeviceBackend[];
  private inflight: number[];
  private next = 0;

  /** Present when every GPU's engine decodes JPEGs into its own input (engine.info.imageBatches). */
  readonly runImages?: Backend['runImages'];

  constructor(
    readonly kind: 'tensorrt' | 'cuda',
    readonly variant: Variant,
    parts: DeviceBackend[],
    /** Devices whose engine did not load, and why. */
    readonly loadFailures: readonly { device: string; reason: string }[],
  ) {
    this.parts = parts;
    this.inflight = parts.map(() => 0);
    if (parts.every((p) => p.engine.info.imageBatches === true)) {
      this.runImages = (images, jpeg, spec) => this.onLeastLoaded((p) => p.runImages(images, jpeg, spec));
    }
  }

  get perDevice(): readonly Backend[] {
    return this.parts;
  }

  get maxBatchSize(): number {
    return Math.min(...this.parts.map((p) => p.maxBatchSize));
  }

  get device(): string {
    return this.parts.map((p) => p.device).join(', ');
  }

  /** fp16 when any device's engine computes in fp16. */
  get precision(): 'fp32' | 'fp16' {
    return this.parts.some((p) => p.precision === 'fp16') ? 'fp16' : 'fp32';
  }

  run(images: Uint8Array, n: number): Promise<Float32Array> {
    return this.onLeastLoaded((p) => p.run(images, n));
  }

  /** Runs `work` on the least loaded GPU; ties rotate so idle GPUs share single requests. */
  private async onLeastLoaded<T>(work: (part: DeviceBackend) => Promise<T>): Promise<T> {
    let best = -1;
    for (let k = 0; k < this.parts.length; k++) {
      const i = (this.next + k) % this.parts.length;
      if (best < 0 || this.inflight[i] < this.inflight[best]) best = i;
    }
    this.next = (best + 1) % this.parts.length;
    const part = this.parts[best];
    this.inflight[best]++;
    try {
      return await work(part);
    } finally {
      // the part may have been removed meanwhile
      const i = this.parts.indexOf(part);
      if (i >= 0) this.inflight[i]--;
    }
  }

  /** Stops sending batches to these devices (they failed their self-test) and releases their engines. */
  async removeDevices(gone: readonly Backend[]): Promise<void> {
    const keep = this.parts.map((p, i) => ({ p, n: this.inflight[i] })).filter(({ p }) => !gone.includes(p));
    if (keep.length === 0) throw new Error('removeDevices: at least one device must stay');
    const removed = this.parts.filter((p) => gone.includes(p));
    this.parts = keep.map(({ p }) => p);
    this.inflight = keep.map(({ n }) => n);
    this.next = 0;
    await Promise.allSettled(removed.map((p) => p.dispose()));
  }

  async dispose(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.dispose()));
  }
}

function rethrow(err: unknown): never {
  const e = err as { code?: unknown; message?: unknown };
  throw new NativeBackendError(typeof e.code === 'string' ? e.code : 'ERR_INTERNAL', String(e.message ?? err));
}

export async function createNativeBackend(
  kind: 'tensorrt' | 'cuda',
  artifactPath: string,
  model: ModelConfig,
  variant: Variant,
  opts: NativeBackendOptions,
): Promise<Backend> {
  let devices: number[];
  let loadEngine = opts.loadEngine;
  if (!loadEngine) {
    const load = loadAddon();
    if (!load.addon) throw new NativeBackendError('ERR_BACKEND_UNAVAILABLE', load.reason);
    const addon = load.addon;
    const caps = addon.capabilities();
    if (opts.deviceIndex === undefined && caps.gpus === 0) {
      throw new NativeBackendError('ERR_NO_DEVICE', caps.deviceReason ?? 'no GPU');
    }
    const missing = (opts.devices ?? []).filter((d) => d >= caps.gpus);
    if (opts.deviceIndex === undefined && missing.length > 0) {
      throw new NativeBackendError(
        'ERR_NO_DEVICE',
        `DEVICES names GPU ${missing.join(', ')}; this host has ${caps.gpus} (0..${caps.gpus - 1})`,
      );
    }
    devices = opts.deviceIndex !== undefined ? [opts.deviceIndex] : opts.devices?.length ? [...opts.devices] : [...Array(caps.gpus).keys()];
    loadEngine = (deviceIndex, options) => addon.loadEngine(kind, artifactPath, { ...options, deviceIndex });
  } else {
    devices = opts.deviceIndex !== undefined ? [opts.deviceIndex] : [...(opts.devices ?? [0])];
  }
  const settled = await Promise.allSettled(
    devices.map((deviceIndex) =>
      loadEngine(deviceIndex, {
        deviceIndex,
        instances: Math.max(1, opts.instances),
        maxBatch: opts.maxBatchSize ?? 0,
        cudaGraphs: opts.cudaGraphs ?? true,
        precision: opts.precision ?? '',
        inputName: model.input.name,
        outputName: model.output.name,
      }),
    ),
  );
  const engines = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  // A GPU whose engine does not load is left out and reported; the others serve.
  const loadFailures = settled.flatMap((s, i) =>
    s.status === 'rejected' ? [{ device: `GPU ${devices[i]}`, reason: String((s.reason as Error)?.message ?? s.reason) }] : [],
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (engines.length === 0 && failed) rethrow(failed.reason);
  // The engine must be the model that model.json describes.
  const size = model.architecture.img_size;
  const classes = model.architecture.num_classes;
  const bad = engines.find((e) => e.info.height !== size || e.info.width !== size || e.info.numClasses !== classes);
  if (bad) {
    await Promise.allSettled(engines.map((e) => e.dispose()));
    throw new NativeBackendError(
      'ERR_MODEL_MISMATCH',
      `${artifactPath} takes ${bad.info.height}x${bad.info.width} images and gives ${bad.info.numClasses} logits; ` +
        `model.json says ${size}x${size} and ${classes}`,
    );
  }
  const parts = engines.map((e) => new DeviceBackend(kind, variant, loadedPrecision(kind, artifactPath, e.info.precision), e));
  return new NativeBackend(kind, variant, parts, loadFailures);
}
