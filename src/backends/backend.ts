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
  /** Arithmetic precision; picks the self-test tolerance (model.json selftest.tolerance). Default fp32. */
  readonly precision?: 'fp32' | 'fp16';
  /**
   * Runs one batch. `images` holds n images, n*H*W*3 bytes, uint8 RGB NHWC.
   * Resolves to n*numClasses float32 logits, row-major.
   * Must not block the event loop for the duration of the inference.
   */
  run(images: Uint8Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}
