// A small in-memory model description for tests that need no engine:
// 8 x 8 inputs, 10 classes named class0..class9.
import type { ModelConfig } from '../../src/models/model-config.js';

export function fakeModelConfig(over: Partial<ModelConfig> & { size?: number } = {}): ModelConfig {
  const size = over.size ?? 8;
  const classes = 10;
  const cfg: ModelConfig = {
    name: 'fake',
    version: '1',
    architecture: {
      family: 'swinv2',
      img_size: size,
      patch_size: 2,
      window_size: 2,
      embed_dim: 8,
      depths: [1],
      num_heads: [1],
      mlp_ratio: 2,
      num_classes: classes,
    },
    preprocess: { mode: 'squash', resize: size, crop: size, kernel: 'nearest', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    labels: Array.from({ length: classes }, (_, i) => `class${i}`),
    input: { name: 'pixels', datatype: 'UINT8', shape: [-1, size, size, 3], layout: 'NHWC' },
    output: { name: 'logits', datatype: 'FP32', shape: [-1, classes] },
    batching: { max_batch_size: 8, max_queue_delay_ms: 2, max_queue_size: 64, instances: 1 },
    default_variant: 'fold',
    artifacts: { fold: { onnxruntime: 'fake.fold.onnx' }, unfold: { onnxruntime: 'fake.unfold.onnx' } },
    selftest: { input: 'selftest.u8', count: 2, expected_logits: 'selftest.json', tolerance: { fp32: 1e-4, fp16: 1e-2 } },
  };
  const { size: _size, ...rest } = over;
  return { ...cfg, ...rest };
}
