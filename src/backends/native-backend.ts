// The `tensorrt` and `cuda` backends: engines of the native addon, one per GPU.
// A batch goes to the GPU with the fewest batches in flight; each engine runs
// up to `instances` batches at once on its own threads, so run() never blocks
// the event loop. The addon is loaded on first use; where it is missing,
// nativeCapabilities() says why and the factory falls back to onnxruntime.
import type { Backend, Variant } from './backend.js';
import type { ModelConfig } from '../model-config.js';
import { loadAddon, type NativeEngine, type NativeGpuInfo } from './native-addon.js';

export interface NativeCapabilities {
  tensorrt: boolean;
  cuda: boolean;
  gpus: number;
  /** Why a kind is unavailable, when one is. */
  reason?: string;
}

export interface NativeBackendOptions {
  /** Batches in flight per GPU (execution contexts / streams per engine). */
  instances: number;
  /** One GPU only; by default one engine on every visible GPU. */
  deviceIndex?: number;
  /** Cap below the engine's own maximum (0 or absent: the engine's). */
  maxBatchSize?: number;
  /** CUDA graph per batch size (default on). */
  cudaGraphs?: boolean;
  /** "fp32" asks an engine for its checking mode where it has one. */
  precision?: string;
}

/** An Error whose `code` is one of the addon's ERR_* codes. */
export class NativeBackendError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'NativeBackendError';
  }
}

export function nativeCapabilities(): NativeCapabilities {
  const load = loadAddon();
  if (!load.addon) return { tensorrt: false, cuda: false, gpus: 0, reason: load.reason };
  const caps = load.addon.capabilities();
  const reasons = [
    caps.reasons.tensorrt && `tensorrt: ${caps.reasons.tensorrt}`,
    caps.reasons.cuda && `cuda: ${caps.reasons.cuda}`,
  ].filter(Boolean);
  return {
    tensorrt: caps.backends.tensorrt,
    cuda: caps.backends.cuda,
    gpus: caps.gpus,
    ...(reasons.length ? { reason: reasons.join('; ') } : {}),
  };
}

/** Per-GPU memory and load for metrics; [] without the addon or a GPU. */
export async function gpuInfo(): Promise<NativeGpuInfo[]> {
  const load = loadAddon();
  if (!load.addon || load.addon.capabilities().gpus === 0) return [];
  return load.addon.gpuInfo();
}

class NativeBackend implements Backend {
  readonly maxBatchSize: number;
  readonly device: string;
  /** The engine file's arithmetic; picks the self-test tolerance (fp16 engines get model.json's fp16 bound). */
  readonly precision: 'fp32' | 'fp16';
  private readonly inflight: number[];
  private next = 0;

  constructor(
    readonly kind: 'tensorrt' | 'cuda',
    readonly variant: Variant,
    private readonly engines: NativeEngine[],
  ) {
    this.maxBatchSize = Math.min(...engines.map((e) => e.info.maxBatch));
    this.device = engines.map((e) => e.info.device).join(', ');
    this.precision = engines[0]?.info.precision === 'fp16' ? 'fp16' : 'fp32';
    this.inflight = engines.map(() => 0);
  }

  async run(images: Uint8Array, n: number): Promise<Float32Array> {
    // Least loaded GPU; ties rotate so idle GPUs share single requests.
    let best = -1;
    for (let k = 0; k < this.engines.length; k++) {
      const i = (this.next + k) % this.engines.length;
      if (best < 0 || this.inflight[i] < this.inflight[best]) best = i;
    }
    this.next = (best + 1) % this.engines.length;
    this.inflight[best]++;
    try {
      return await this.engines[best].infer(images, n);
    } finally {
      this.inflight[best]--;
    }
  }

  async dispose(): Promise<void> {
    await Promise.all(this.engines.map((e) => e.dispose()));
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
  const load = loadAddon();
  if (!load.addon) throw new NativeBackendError('ERR_BACKEND_UNAVAILABLE', load.reason);
  const addon = load.addon;
  const caps = addon.capabilities();
  if (opts.deviceIndex === undefined && caps.gpus === 0) {
    throw new NativeBackendError('ERR_NO_DEVICE', caps.deviceReason ?? 'no GPU');
  }
  const devices = opts.deviceIndex !== undefined ? [opts.deviceIndex] : [...Array(caps.gpus).keys()];
  const settled = await Promise.allSettled(
    devices.map((deviceIndex) =>
      addon.loadEngine(kind, artifactPath, {
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
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.allSettled(engines.map((e) => e.dispose()));
    rethrow(failed.reason);
  }
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
  return new NativeBackend(kind, variant, engines);
}
