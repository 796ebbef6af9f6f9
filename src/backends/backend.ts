// The contract between the batcher and every execution engine.
// Engines take uint8 RGB NHWC images (sharp's raw output) and return logits;
// normalisation happens inside the engine, softmax and top-k after it.

export type BackendKind = 'onnxruntime' | 'tensorrt' | 'cuda';
export type BackendChoice = BackendKind | 'auto';
export type Variant = 'fold' | 'unfold';

export interface Backend {
  readonly kind: BackendKind;
  readonly variant: Variant;
  /** Largest batch one run() accepts. */
  readonly maxBatchSize: number;
  /** Human-readable device ("cpu", "NVIDIA H100 80GB HBM3 #0"). */
  readonly device: string;
  /**
   * Arithmetic of the artifact actually loaded; picks the self-test tolerance
   * (model.json selftest.tolerance). Default fp32.
   */
  readonly precision?: 'fp32' | 'fp16';
  /**
   * A backend that spreads batches over several GPUs: one Backend per GPU, each
   * self-tested on its own (src/models/selftest.ts selfTestDevices). Absent: one device.
   */
  readonly perDevice?: readonly Backend[];
  /** Takes these perDevice parts out of service (they failed their self-test) and releases them. */
  removeDevices?(parts: readonly Backend[]): Promise<void>;
  /** GPUs whose engine did not load, and why; the others serve. */
  readonly loadFailures?: readonly { device: string; reason: string }[];
  /**
   * Runs one batch. `images` holds n images, n*H*W*3 bytes, uint8 RGB NHWC.
   * Resolves to n*numClasses float32 logits, row-major.
   * Must not block the event loop for the duration of the inference.
   */
  run(images: Uint8Array, n: number): Promise<Float32Array>;
  /**
   * Runs one batch whose JPEGs the backend decodes on its own device (the cuda backend, with
   * nvJPEG): images[i] is a JPEG where jpeg[i], else H*W*3 pixels. decoded[i] false: the device
   * refused JPEG i and its row of logits is meaningless (the caller decodes it with sharp).
   * Absent where the backend cannot.
   */
  runImages?(images: Uint8Array[], jpeg: readonly boolean[], spec: DeviceDecodeSpec): Promise<DeviceBatchResult>;
  dispose(): Promise<void>;
}

/** How a backend that decodes on its device turns a JPEG into model input (the model's preprocess block). */
export interface DeviceDecodeSpec {
  size: number;
  mode: 'squash' | 'shorter_side_crop';
  resize: number;
  kernel: string;
  maxPixels: number;
}

export interface DeviceBatchResult {
  logits: Float32Array;
  /** Per image: true = its logits are real; false = a JPEG the device refused (reasons[i] says why). */
  decoded: boolean[];
  reasons: (string | null)[];
  /** Where the batch's time went, ms, where the backend measures it (the native addon's BatchStages). */
  stages?: { copyInMs: number; decodeMs: number; engineMs: number; copyOutMs: number; hostDecodeMs: number; wallMs: number };
}
