// Types of engines/models/<name>/model.json: the one description of a model
// shared by the Python tools (which write it) and the service (which reads it).
// docs/model-json.md documents every field. Paths inside are relative to the
// model's folder.
import type { BackendKind, Variant } from './backends/backend.js';

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
}
