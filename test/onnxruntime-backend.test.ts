// The onnxruntime backend runs sessions on worker threads: the event loop stays
// free during inference, instances run side by side, and bad setups fail clearly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { OnnxRuntimeBackend, sessionThreads, type OnnxRuntimeOptions } from '../src/backends/onnxruntime-backend.js';
import { readModelConfig } from '../src/models/model-json.js';
import { loadSelfTest } from '../src/models/selftest.js';

const DIR = path.resolve('engines/models/swin-fmnist');

async function options(over: Partial<OnnxRuntimeOptions> = {}): Promise<OnnxRuntimeOptions> {
  const cfg = await readModelConfig(DIR);
  return {
    path: path.join(DIR, cfg.artifacts.unfold!.onnxruntime!),
    variant: 'unfold',
    inputName: cfg.input.name,
    outputName: cfg.output.name,
    imgSize: cfg.architecture.img_size,
    numClasses: cfg.architecture.num_classes,
    maxBatchSize: 8,
    instances: 1,
    intraOpThreads: 1,
    interOpThreads: 1,
    ...over,
  };
}

test('the event loop keeps running while a batch executes', async () => {
  const backend = await OnnxRuntimeBackend.create(await options());
  try {
    const cfg = await readModelConfig(DIR);
    const { images } = await loadSelfTest(DIR, cfg);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    const logits = await backend.run(images, cfg.selftest.count);
    const ms = performance.now() - started;
    clearInterval(timer);
    assert.equal(logits.length, cfg.selftest.count * 10);
    // A blocked loop would fire the interval at most once; a free one fires it many times.
    assert.ok(ticks >= Math.min(10, ms / 20), `only ${ticks} timer ticks in ${ms.toFixed(0)} ms`);
  } finally {
    await backend.dispose();
  }
});

test('the caller keeps its pixels: a Buffer viewing a larger ArrayBuffer is copied for the worker, never detached (Node 22+ refuses to transfer pooled memory)', async () => {
  const backend = await OnnxRuntimeBackend.create(await options());
  try {
    const cfg = await readModelConfig(DIR);
    const { images } = await loadSelfTest(DIR, cfg);
    const one = images.subarray(0, images.length / cfg.selftest.count);
    const want = await backend.run(new Uint8Array(one), 1);
    // A Buffer that views a larger ArrayBuffer, as Buffer.concat and pooled allocations give.
    const big = Buffer.alloc(one.length + 64);
    big.set(one, 32);
    const view = big.subarray(32, 32 + one.length);
    assert.deepEqual(await backend.run(view, 1), want);
    assert.equal(big.byteLength, one.length + 64, "the caller's memory was not transferred away");
    assert.ok(Buffer.from(view).equals(Buffer.from(one)));
  } finally {
    await backend.dispose();
  }
});

test('ORT_INTRA_OP_THREADS=0 shares the cores out among the instances; a set value is kept', () => {
  assert.equal(sessionThreads(0, 2, 2), 1);
  assert.equal(sessionThreads(0, 1, 2), 2);
  assert.equal(sessionThreads(0, 2, 16), 8);
  assert.equal(sessionThreads(0, 3, 16), 5);
  assert.equal(sessionThreads(0, 4, 2), 1, 'at least one thread each');
  assert.equal(sessionThreads(3, 2, 2), 3, 'an explicit setting wins');
});

// The backend's own bookkeeping (private): which worker holds a batch, and who waits for one.
type Inside = { slots: Array<{ busy: boolean; pending: Map<number, unknown> }>; waiting: unknown[] };
const inside = (b: OnnxRuntimeBackend) => b as unknown as Inside;

test('two instances run batches side by side and agree; one instance makes the second batch wait', async () => {
  const cfg = await readModelConfig(DIR);
  const { images } = await loadSelfTest(DIR, cfg);
  const one = images.subarray(0, images.length / cfg.selftest.count);
  for (const instances of [2, 1]) {
    const backend = await OnnxRuntimeBackend.create(await options({ instances }));
    try {
      const runs = [backend.run(one, 1), backend.run(one, 1)];
      // run() hands a batch to an idle worker before its first await, so right after the two
      // calls each batch is either posted to a worker or queued for one.
      const { slots, waiting } = inside(backend);
      const inFlight = slots.map((s) => s.pending.size);
      if (instances === 2) {
        assert.deepEqual(inFlight, [1, 1], 'each worker holds one of the two batches at the same time');
        assert.equal(waiting.length, 0);
      } else {
        assert.deepEqual(inFlight, [1]);
        assert.equal(waiting.length, 1, 'with one instance the second batch waits for the first');
      }
      const [a, b] = await Promise.all(runs);
      assert.deepEqual(a, b);
    } finally {
      await backend.dispose();
    }
  }
});

test('a wrong tensor name or a missing file fails at load with a clear message', async () => {
  await assert.rejects(OnnxRuntimeBackend.create(await options({ inputName: 'pixels' })), /no tensor named pixels/);
  await assert.rejects(
    OnnxRuntimeBackend.create(await options({ path: '/nonexistent/model.onnx' })),
    /onnxruntime could not load \/nonexistent\/model.onnx/,
  );
});

test('a disposed backend refuses work', async () => {
  const backend = await OnnxRuntimeBackend.create(await options());
  await backend.dispose();
  await assert.rejects(backend.run(new Uint8Array(256 * 256 * 3), 1), /disposed/);
});
