// What the protocol front ends (HTTP /classify, KServe v2 REST and gRPC,
// swin.v1 gRPC) need from the core. They depend on this interface only, so
// each front end stays a thin translation layer:
//   front end -> InferenceService -> batcher -> backend.
import type { BackendKind, Variant } from './backends/backend.js';
import type { ModelConfig } from './model-config.js';
import type { TraceContext } from './tracing.js';

export interface RequestOptions {
  /** Absolute time (Date.now() ms) after which the request must not run; default from config. */
  deadline?: number;
  /** Aborted when the client goes away; a queued request then leaves the queue. */
  signal?: AbortSignal;
  /** For metrics labels: "http", "grpc", "kserve_http", "kserve_grpc". */
  api?: string;
  /** Priority level, 1 runs first; default: the model's default_priority_level (docs/api.md#priorities-and-timeouts). */
  priority?: number;
  /** The request's timeout under its level's queue policy, ms (reject: 504 after it; delay: behind its level). */
  timeoutMs?: number;
  /** The request's span context when tracing is on (src/tracing.ts). */
  trace?: TraceContext;
  /** Who sent it (remote address), for fair turns among expensive decodes (src/decode-gate.ts). */
  client?: string;
  /** Called for each decoder warning about one of its images (front ends without a `warnings` field: KServe). */
  onWarning?: (warning: ImageWarning) => void;
}

export interface TopKEntry {
  label: string;
  index: number;
  /** softmax probability */
  score: number;
}

export interface Timings {
  preprocess_ms: number;
  queue_ms: number;
  inference_ms: number;
  total_ms: number;
}

/** A decoder warning about one image (damaged data decoded as far as it goes). */
export interface ImageWarning {
  /** The image's position in the request, from 0. */
  image: number;
  warning: string;
}

export interface ClassifyResult {
  model: string;
  variant: Variant;
  backend: BackendKind;
  predictions: TopKEntry[][];
  /** Only when an image's decoder warned (DECODE_STRICT refuses those instead). */
  warnings?: ImageWarning[];
  timings: Timings;
}

export interface TensorResult {
  model: string;
  variant: Variant;
  backend: BackendKind;
  /** n x num_classes logits, row-major */
  logits: Float32Array;
  n: number;
  numClasses: number;
}

/** One GPU of a multi-GPU variant: serving, or left out (its engine did not load or failed its self-test). */
export interface DeviceStatus {
  device: string;
  ready: boolean;
  reason?: string;
}

export interface VariantStatus {
  variant: Variant;
  backend: BackendKind | null;
  ready: boolean;
  /** Why it is not ready (failed self-test, load error), if it is not. */
  reason?: string;
  /** Native GPU backends: each device and whether it serves. */
  devices?: DeviceStatus[];
}

export interface ModelStatus {
  name: string;
  version: string;
  ready: boolean;
  /** Variant requests get when they name none. */
  active_variant: Variant | null;
  variants: VariantStatus[];
  config: ModelConfig;
}

export interface InferenceService {
  listModels(): ModelStatus[];
  /** Throws ServeError SWIN_MODEL_NOT_FOUND. */
  getModel(name: string): ModelStatus;
  defaultModelName(): string;
  /** Encoded images (JPEG, PNG, ...) -> preprocessing -> batcher -> top-k. */
  classify(
    modelName: string | undefined,
    images: Buffer[],
    opts: RequestOptions & { variant?: Variant; topK?: number },
  ): Promise<ClassifyResult>;
  /**
   * Encoded images -> the model's preprocessing (the same sharp path as classify) ->
   * uint8 RGB NHWC, images.length x H x W x 3 bytes. No inference. Used by KServe
   * BYTES inputs, which need logits rather than classify's top-k.
   * Throws the decode errors classify throws (SWIN_IMAGE_DECODE_FAILED, ...).
   */
  preprocess(modelName: string, images: Buffer[], opts: RequestOptions): Promise<Uint8Array>;
  /** Already-preprocessed uint8 NHWC tensor (n x H x W x 3) -> logits. */
  inferTensor(
    modelName: string,
    pixels: Uint8Array,
    n: number,
    opts: RequestOptions & { variant?: Variant },
  ): Promise<TensorResult>;
  /** Every configured model is serving. */
  isReady(): boolean;
  /** Stop admitting, finish everything accepted, release engines. */
  close(): Promise<void>;
}
