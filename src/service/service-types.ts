// What the protocol front ends (HTTP /classify, KServe v2 REST and gRPC,
// swin.v1 gRPC) need from the core. They depend on this interface only, so
// each front end stays a thin translation layer:
//   front end -> InferenceService -> batcher -> backend.
import type { BackendKind, Variant } from '../backends/backend.js';
import type { ModelConfig } from '../models/model-config.js';
import type { TraceContext } from '../observability/tracing.js';

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
  /** A start-up warm-up request (src/api/http/warmup.ts): served like any other, recorded in no metric. */
  warmup?: boolean;
  /**
   * classify: leave softmax/top-k to the caller, which gets `deferred` (the logits rows) and
   * empty `predictions`. Front-end worker threads ask for it, so the main thread spends no
   * time on it (src/api/workers/).
   */
  deferTopK?: boolean;
}

/** classify's logits when its caller asked for deferTopK: finish with finishTopK (postprocess.ts). */
export interface DeferredTopK {
  /** images x numClasses logits, row-major (a copy of the request's rows only). */
  logits: Float32Array;
  numClasses: number;
  k: number;
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

/** One row of the repository index: Triton's ModelIndex. */
export interface ModelIndexRow {
  name: string;
  version: string;
  state: 'READY' | 'UNAVAILABLE' | 'LOADING' | 'UNLOADING';
  reason: string;
}

/** KServe v2 repository extension, as Triton serves it. */
export interface ModelControl {
  /** none | explicit | poll (MODEL_CONTROL_MODE); load and unload throw SWIN_MODEL_CONTROL_DISABLED unless explicit. */
  readonly mode: string;
  index(readyOnly: boolean): Promise<ModelIndexRow[]>;
  /** Resolves once the new copies serve and the replaced ones drained; throws SWIN_MODEL_LOAD_FAILED (what failed; the rest took over). */
  load(name: string): Promise<void>;
  /** Resolves once the model's copies drained and released their engines. */
  unload(name: string): Promise<void>;
}

/** A decoder warning about one image (damaged data decoded as far as it goes). */
export interface ImageWarning {
  /** The image's position in the request, from 0. */
  image: number;
  warning: string;
}

export interface ClassifyResult {
  model: string;
  /** Version that answered (absent from services without versions). */
  version?: string;
  variant: Variant;
  backend: BackendKind;
  predictions: TopKEntry[][];
  /** deferTopK: the logits predictions are to be made from (predictions is then empty). */
  deferred?: DeferredTopK;
  /** Only when an image's decoder warned (DECODE_STRICT refuses those instead). */
  warnings?: ImageWarning[];
  timings: Timings;
}

export interface TensorResult {
  model: string;
  version?: string;
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
  /** The version this status describes (the one requests naming none get, unless one was asked for). */
  version: string;
  /** Every loaded version, newest first. */
  versions: string[];
  ready: boolean;
  /** Variant requests get when they name none. */
  active_variant: Variant | null;
  variants: VariantStatus[];
  config: ModelConfig;
}

export interface InferenceService {
  listModels(): ModelStatus[];
  /** Throws ServeError SWIN_MODEL_NOT_FOUND / SWIN_MODEL_VERSION_NOT_FOUND; no version: the one requests naming none get. */
  getModel(name: string, version?: string): ModelStatus;
  defaultModelName(): string;
  /** Encoded images (JPEG, PNG, ...) -> preprocessing -> batcher -> top-k. */
  classify(
    modelName: string | undefined,
    images: Buffer[],
    opts: RequestOptions & { variant?: Variant; topK?: number; version?: string },
  ): Promise<ClassifyResult>;
  /**
   * Encoded images -> the model's preprocessing (the same sharp path as classify) ->
   * uint8 RGB NHWC, images.length x H x W x 3 bytes. No inference. Used by KServe
   * BYTES inputs, which need logits rather than classify's top-k.
   * Throws the decode errors classify throws (SWIN_IMAGE_DECODE_FAILED, ...).
   */
  preprocess(modelName: string, images: Buffer[], opts: RequestOptions & { version?: string }): Promise<Uint8Array>;
  /** Already-preprocessed uint8 NHWC tensor (n x H x W x 3) -> logits. */
  inferTensor(
    modelName: string,
    pixels: Uint8Array,
    n: number,
    opts: RequestOptions & { variant?: Variant; version?: string },
  ): Promise<TensorResult>;
  /** The repository extension (index, load, unload); absent: model control is off. */
  readonly control?: ModelControl;
  /** Every configured model is serving. */
  isReady(): boolean;
  /** Stop admitting, finish everything accepted, release engines. */
  close(): Promise<void>;
}
