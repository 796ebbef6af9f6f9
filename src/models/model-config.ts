// Types of engines/models/<name>/model.json: the one description of a model
// shared by the Python tools (which write it) and the service (which reads it).
// docs/model-json.md documents every field. Paths inside are relative to the
// model's folder.
import type { BackendKind, Variant } from '../backends/backend.js';

export interface ArchitectureConfig {
  family: 'swin' | 'swinv2';
  /** timm model name it corresponds to, if any (e.g. "swinv2_base_window16_256"). */
  timm_name?: string;
  img_size: number;
  patch_size: number;
  window_size: number;
  embed_dim: number;
  depths: number[];
  num_heads: number[];
  mlp_ratio: number;
  num_classes: number;
}

export interface PreprocessConfig {
  /**
   * "squash": resize to exactly size x size ignoring aspect ratio.
   * "shorter_side_crop": resize the shorter side to `resize`, then centre-crop `crop` x `crop`
   * (timm's eval transform: resize = crop / crop_pct).
   */
  mode: 'squash' | 'shorter_side_crop';
  resize: number;
  crop: number;
  /** sharp resize kernel; the training/reference pipeline must use the same one. */
  kernel: 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';
  /** Per-channel mean and std on the 0..1 scale, RGB order; applied inside the engine. */
  mean: [number, number, number];
  std: [number, number, number];
  /** RGB 0..255 that transparent pixels are flattened onto; default white [255, 255, 255]. */
  background?: [number, number, number];
}

export interface BatchingConfig {
  max_batch_size: number;
  max_queue_delay_ms: number;
  max_queue_size: number;
  /** Batches in flight at once for this model. */
  instances: number;
  preferred_batch_sizes?: number[];
  /** Priority levels 1..priority_levels, 1 runs first (Triton's dynamic_batching.priority_levels); default 1. */
  priority_levels?: number;
  /** Level of requests that name none; default priority_levels (the lowest). */
  default_priority_level?: number;
  /** Queue policy of every level without its own. */
  default_queue_policy?: QueuePolicyConfig;
  /** Queue policy per level, keyed by the level ("1"). */
  priority_queue_policy?: Record<string, QueuePolicyConfig>;
}

/** What a priority level's queue admits and how long its requests may wait (docs/model-json.md). */
export interface QueuePolicyConfig {
  /** Most images queued at this level; 0 (default) = only max_queue_size. */
  max_queue_size?: number;
  /** Timeout of a request that names none, ms; 0 (default) = none. */
  default_timeout_ms?: number;
  /** Longest timeout a request may ask for, ms; 0 (default) = no cap. */
  max_timeout_ms?: number;
  /** Whether a request's timeout replaces default_timeout_ms; default true. */
  allow_timeout_override?: boolean;
  /** "reject" (default): 504 when the timeout passes; "delay": the request goes behind its level. */
  timeout_action?: 'reject' | 'delay';
}

/** Files per backend for one variant; a backend without a file cannot serve it. */
export type VariantArtifacts = Partial<Record<BackendKind, string>>;

export interface SelfTestConfig {
  /** Raw uint8 NHWC bytes of `count` images of img_size x img_size x 3. */
  input: string;
  count: number;
  /** JSON file: number[][] of expected logits, count x num_classes (PyTorch fp32). */
  expected_logits: string;
  /** Largest allowed max-abs difference to the expected logits, by engine precision. */
  tolerance: { fp32: number; fp16: number };
}

export interface ModelConfig {
  name: string;
  version: string;
  description?: string;
  architecture: ArchitectureConfig;
  preprocess: PreprocessConfig;
  labels: string[];
  input: { name: string; datatype: 'UINT8'; shape: [number, number, number, number]; layout: 'NHWC' };
  output: { name: string; datatype: 'FP32'; shape: [number, number] };
  batching: BatchingConfig;
  /** Variant served first; the other takes over if this one fails its self-test. */
  default_variant: Variant;
  artifacts: Partial<Record<Variant, VariantArtifacts>>;
  selftest: SelfTestConfig;
  /**
   * Batch sizes run once per instance after the self-test and before the variant serves, so
   * kernels, CUDA graphs and memory arenas exist before /health/ready. Absent: every size
   * from 1 to the batch size in effect on tensorrt/cuda, only that largest size on
   * onnxruntime (src/selftest.ts defaultWarmupSizes). [] turns warm-up off.
   */
  warmup?: number[];
  /**
   * Which numeric version folders (<model>/<n>/) serve, Triton's version_policy:
   * {"latest": {"num_versions": N}}, {"specific": {"versions": [1, 3]}} or {"all": {}}.
   * Absent: the latest one. Ignored by a model without version folders.
   */
  version_policy?: VersionPolicy;
}

export type VersionPolicy = { latest: { num_versions: number } } | { specific: { versions: number[] } } | { all: Record<string, never> };
