// Warm-up at load: after its self-test every engine runs each batch size it
// will be given (or model.json's `warmup` list), once per instance, before the
// variant serves; a fault engine counts the sizes it saw. A variant whose
// warm-up fails is refused like one that fails its self-test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { BackendKind, Variant } from '../src/backends/backend.js';
import { loadConfig } from '../src/config.js';
import type { ModelConfig } from '../src/models/model-config.js';
import { ModelConfigError, validateModelConfig } from '../src/models/model-json.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { fakeModelConfig } from './helpers/fake-model.js';
import { writeFakeModel } from './helpers/fake-service.js';

/** Loads the fake model with engines that report `kind`; returns each variant's engine. */
async function load(kind: BackendKind, over: Partial<ModelConfig>, failAt?: number) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'swin-warmup-'));
  const cfg = { ...fakeModelConfig(), ...over };
  writeFakeModel(root, cfg);
  const engines = new Map<Variant, FakeBackend>();
  const repo = await ModelRepository.load({
    config: loadConfig([], { MODELS_DIR: root, LOG_LEVEL: 'silent', SELFTEST_RETRY_MS: '600000' }),
    logger: pino({ level: 'silent' }),
    createBackend: async (req) => {
      const b = new FakeBackend({ kind, variant: req.variant, imageBytes: 8 * 8 * 3, maxBatchSize: req.opts.maxBatchSize });
      if (failAt !== undefined) {
        const run = b.run.bind(b);
        b.run = async (images, n) => (n === failAt ? Promise.reject(new Error('engine fault')) : run(images, n));
      }
      engines.set(req.variant, b);
      return b;
    },
  });
  return {
    repo,
    engines,
    async close() {
      await repo.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

test('a GPU engine is run at every batch size from 1 to the batch limit, once per instance, before it serves', async () => {
  const r = await load('cuda', { batching: { max_batch_size: 4, max_queue_delay_ms: 2, max_queue_size: 64, instances: 2 } });
  try {
    // The self-test (2 images in one run), then sizes 1..4, each twice at once (2 instances).
    for (const v of ['fold', 'unfold'] as const) assert.deepEqual(r.engines.get(v)!.calls, [2, 1, 1, 2, 2, 3, 3, 4, 4], v);
    assert.equal(r.repo.isReady(), true);
  } finally {
    await r.close();
  }
});

test('onnxruntime is warmed at its largest batch only', async () => {
  const r = await load('onnxruntime', {});
  try {
    assert.deepEqual(r.engines.get('fold')!.calls, [2, 8]);
  } finally {
    await r.close();
  }
});

test('model.json warmup lists the sizes; [] turns warm-up off; sizes are capped at the batch limit', async () => {
  const r = await load('cuda', { warmup: [6, 1, 32] });
  try {
    assert.deepEqual(r.engines.get('unfold')!.calls, [2, 6, 1, 8]);
  } finally {
    await r.close();
  }
  const off = await load('cuda', { warmup: [] });
  try {
    assert.deepEqual(off.engines.get('unfold')!.calls, [2]);
  } finally {
    await off.close();
  }
});

test('a variant whose warm-up fails is refused with the batch size named', async () => {
  const r = await load('cuda', { batching: { max_batch_size: 4, max_queue_delay_ms: 2, max_queue_size: 64, instances: 1 } }, 3);
  try {
    assert.equal(r.repo.isReady(), false);
    assert.deepEqual(r.repo.status('fake').variants, [
      { variant: 'fold', backend: null, ready: false, reason: 'onnxruntime warm-up at batch size 3 failed: engine fault' },
      { variant: 'unfold', backend: null, ready: false, reason: 'onnxruntime warm-up at batch size 3 failed: engine fault' },
    ]);
    assert.equal(r.engines.get('fold')!.disposed, true);
  } finally {
    await r.close();
  }
});

test('model.json warmup must list positive integers', () => {
  assert.throws(
    () => validateModelConfig({ ...fakeModelConfig(), warmup: [1, 0] }, 'model.json'),
    (e: unknown) => e instanceof ModelConfigError && e.message === 'model.json: warmup must be an array of positive integers (batch sizes)',
  );
});
