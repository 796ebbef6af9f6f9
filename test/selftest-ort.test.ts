// The committed model's ONNX graphs, run by onnxruntime-node, reproduce the
// committed PyTorch reference logits (no PyTorch needed), for both variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { OnnxRuntimeBackend } from '../src/backends/onnxruntime-backend.js';
import { readModelConfig } from '../src/models/model-json.js';
import { compareLogits, loadSelfTest, runSelfTest } from '../src/models/selftest.js';

const DIR = path.resolve('engines/models/swin-fmnist');

for (const variant of ['fold', 'unfold'] as const) {
  test(`swin-fmnist ${variant}: onnxruntime matches the reference logits to <= 1e-4`, async () => {
    const cfg = await readModelConfig(DIR);
    const data = await loadSelfTest(DIR, cfg);
    const backend = await OnnxRuntimeBackend.create({
      path: path.join(DIR, cfg.artifacts[variant]!.onnxruntime!),
      variant,
      inputName: cfg.input.name,
      outputName: cfg.output.name,
      imgSize: cfg.architecture.img_size,
      numClasses: cfg.architecture.num_classes,
      maxBatchSize: cfg.batching.max_batch_size,
      instances: 1,
      intraOpThreads: 0,
      interOpThreads: 1,
    });
    try {
      const r = await runSelfTest(backend, data);
      assert.equal(r.ok, true, r.reason);
      assert.ok(r.maxAbsDiff <= 1e-4, `max abs diff ${r.maxAbsDiff}`);
      assert.equal(r.top1Agreement, 1);
    } finally {
      await backend.dispose();
    }
  });
}

test('the self-test comparison rejects NaN, drift beyond tolerance and a top-1 change', async () => {
  const cfg = await readModelConfig(DIR);
  const data = await loadSelfTest(DIR, cfg);
  const exact = Float32Array.from(data.expected);
  assert.equal(compareLogits(exact, data, 1e-4).ok, true);
  const nan = Float32Array.from(exact);
  nan[3] = Number.NaN;
  assert.equal(compareLogits(nan, data, 1e-4).failure, 'non_finite');
  const drift = Float32Array.from(exact);
  drift[0] += 1e-3;
  assert.equal(compareLogits(drift, data, 1e-4).failure, 'mismatch');
  // Swap the top two classes of image 0 but stay within a (huge) tolerance: top-1 still has to agree.
  const swapped = Float32Array.from(exact);
  const row = Array.from(swapped.subarray(0, data.numClasses));
  const order = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
  swapped[order[0][1]] = order[1][0];
  swapped[order[1][1]] = order[0][0];
  assert.equal(compareLogits(swapped, data, 1e6).failure, 'top1');
});
