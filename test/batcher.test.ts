import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, type BatcherOptions } from '../src/batching/batcher.js';
import { ServeError } from '../src/errors.js';
import { droppedRequests } from '../src/observability/metrics.js';
import { FakeBackend, uniformImages } from './helpers/fake-backend.js';

const IMG = 12; // bytes per image: 2 x 2 x 3
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function make(over: Partial<BatcherOptions> = {}, backend = new FakeBackend({ imageBytes: IMG })) {
  const batcher = new Batcher({
    model: 'test-model',
    variant: 'fold',
    backend: 'onnxruntime',
    maxBatchSize: 4,
    maxQueueDelayMs: 20,
    maxQueueSize: 100,
    instances: 1,
    imageBytes: IMG,
    numClasses: 10,
    run: (x, n) => backend.run(x, n),
    ...over,
  });
  return { batcher, backend };
}

/** The class the fake engine assigns: argmax of the row. */
function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<ServeError> {
  const err = await p.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ServeError, `not a ServeError: ${err}`);
  assert.equal(err.code, code);
  return err;
}

async function dropped(reason: string): Promise<number> {
  const { values } = await droppedRequests.get();
  return values.filter((v) => v.labels.model === 'test-model' && v.labels.reason === reason).reduce((s, v) => s + v.value, 0);
}

test('a full batch runs at once; the remainder runs when the delay passes', async () => {
  const { batcher, backend } = make({ maxQueueDelayMs: 200 });
  const t0 = Date.now();
  const ps = [0, 1, 2, 3, 4, 5].map((c) => batcher.submit(uniformImages([25 * c], IMG), 1));
  await Promise.all(ps.slice(0, 4));
  assert.ok(Date.now() - t0 < 150, 'full batch should not wait for the delay');
  assert.deepEqual(backend.calls, [4]);
  await Promise.all(ps);
  assert.deepEqual(backend.calls, [4, 2]);
  assert.ok(Date.now() - t0 >= 190, 'partial batch waits out max_queue_delay_ms');
});

test('a lone request waits max_queue_delay_ms for company, then runs alone', async () => {
  const { batcher, backend } = make({ maxQueueDelayMs: 80 });
  const p = batcher.submit(uniformImages([50], IMG), 1);
  await sleep(20);
  assert.deepEqual(backend.calls, []);
  const r = await p;
  assert.deepEqual(backend.calls, [1]);
  assert.ok(r.queueMs >= 75, `queued ${r.queueMs} ms`);
  assert.equal(argmax(r.logits), 2);
});

test('every caller gets its own rows, in submission order', async () => {
  const { batcher, backend } = make({ maxBatchSize: 8, maxQueueDelayMs: 10 });
  const classes = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
  const results = await Promise.all(classes.map((c) => batcher.submit(uniformImages([25 * c], IMG), 1)));
  assert.deepEqual(
    results.map((r) => argmax(r.logits)),
    classes,
  );
  assert.deepEqual(
    backend.seen,
    classes.map((c) => 25 * c),
  );
  assert.deepEqual(backend.calls, [8, 2]);
  for (const r of results) assert.equal(r.logits.length, 10);
});

test('a multi-image request larger than max_batch_size is split and reassembled in order', async () => {
  const { batcher, backend } = make({ maxBatchSize: 4, maxQueueDelayMs: 0 });
  const classes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const r = await batcher.submit(
    uniformImages(
      classes.map((c) => 25 * c),
      IMG,
    ),
    classes.length,
  );
  assert.deepEqual(backend.calls, [4, 4, 2]);
  const got = classes.map((_, i) => argmax(r.logits.subarray(i * 10, (i + 1) * 10)));
  assert.deepEqual(got, classes);
});

test('an expired request is answered 504 and never reaches the engine', async () => {
  const { batcher, backend } = make({ maxQueueDelayMs: 0 });
  backend.hold();
  const before = await dropped('deadline');
  const first = batcher.submit(uniformImages([1], IMG), 1);
  const late = batcher.submit(uniformImages([2], IMG), 1, { deadline: Date.now() + 30 });
  const err = await rejectsWith(late, 'SWIN_DEADLINE_EXCEEDED');
  assert.equal(err.httpStatus, 504);
  backend.release();
  await first;
  await sleep(10);
  assert.deepEqual(backend.seen, [1]);
  assert.equal((await dropped('deadline')) - before, 1);
  await rejectsWith(batcher.submit(uniformImages([3], IMG), 1, { deadline: Date.now() - 1 }), 'SWIN_DEADLINE_EXCEEDED');
  assert.deepEqual(backend.seen, [1]);
});

test('a full queue refuses with SWIN_QUEUE_FULL and a Retry-After', async () => {
  const { batcher, backend } = make({ maxQueueDelayMs: 0, maxQueueSize: 3 });
  backend.hold();
  const running = batcher.submit(uniformImages([0], IMG), 1); // leaves the queue, runs (held)
  await sleep(5);
  const queued = [1, 2, 3].map((v) => batcher.submit(uniformImages([v], IMG), 1));
  assert.equal(batcher.queueLength, 3);
  const err = await rejectsWith(batcher.submit(uniformImages([4], IMG), 1), 'SWIN_QUEUE_FULL');
  assert.equal(err.httpStatus, 503);
  assert.ok((err.retryAfterSeconds ?? 0) >= 1);
  backend.release();
  await Promise.all([running, ...queued]);
  assert.deepEqual(backend.seen, [0, 1, 2, 3]);
});

test('aborting the signal takes a queued request out of the queue', async () => {
  const { batcher, backend } = make({ maxQueueDelayMs: 0 });
  backend.hold();
  const before = await dropped('cancelled');
  const running = batcher.submit(uniformImages([7], IMG), 1);
  await sleep(5);
  const ac = new AbortController();
  const gone = batcher.submit(uniformImages([8], IMG), 1, { signal: ac.signal });
  const stays = batcher.submit(uniformImages([9], IMG), 1);
  ac.abort();
  await rejectsWith(gone, 'SWIN_CANCELLED');
  assert.equal(batcher.queueLength, 1);
  backend.release();
  await Promise.all([running, stays]);
  assert.deepEqual(backend.seen, [7, 9]);
  assert.equal((await dropped('cancelled')) - before, 1);
});

test('`instances` bounds the batches in flight', async () => {
  const backend = new FakeBackend({ imageBytes: IMG, delayMs: 40 });
  const { batcher } = make({ maxBatchSize: 1, maxQueueDelayMs: 0, instances: 2 }, backend);
  await Promise.all([0, 1, 2, 3, 4, 5].map((v) => batcher.submit(uniformImages([v], IMG), 1)));
  assert.equal(backend.maxRunning, 2);
  assert.equal(backend.calls.length, 6);
});

test('an engine error fails exactly that batch; the next batch is served', async () => {
  const errors: string[] = [];
  const { batcher, backend } = make({ maxQueueDelayMs: 5, onBatchError: (e) => errors.push(e.code) });
  backend.mode = 'throw';
  const failed = [1, 2].map((v) => batcher.submit(uniformImages([v], IMG), 1));
  for (const p of failed) {
    const err = await rejectsWith(p, 'SWIN_INFERENCE_FAILED');
    assert.match(err.message, /fake engine failure/);
  }
  assert.deepEqual(errors, ['SWIN_INFERENCE_FAILED']);
  backend.mode = 'ok';
  const ok = await batcher.submit(uniformImages([75], IMG), 1);
  assert.equal(argmax(ok.logits), 3);
});

test('an engine that returns the wrong number of logits is an inference failure', async () => {
  const { batcher } = make({ maxQueueDelayMs: 0, run: async () => new Float32Array(3) });
  await rejectsWith(batcher.submit(uniformImages([1], IMG), 1), 'SWIN_INFERENCE_FAILED');
});

test('a preferred batch size runs without waiting for the delay', async () => {
  const { batcher, backend } = make({ maxBatchSize: 8, maxQueueDelayMs: 5000, preferredBatchSizes: [2] });
  const t0 = Date.now();
  await Promise.all([1, 2].map((v) => batcher.submit(uniformImages([v], IMG), 1)));
  assert.ok(Date.now() - t0 < 1000);
  assert.deepEqual(backend.calls, [2]);
});

test('close() finishes everything accepted and refuses new work', async () => {
  const { batcher, backend } = make({ maxQueueDelayMs: 10_000 });
  const accepted = [1, 2, 3].map((v) => batcher.submit(uniformImages([v], IMG), 1));
  const closed = batcher.close();
  await rejectsWith(batcher.submit(uniformImages([4], IMG), 1), 'SWIN_SHUTTING_DOWN');
  await closed;
  await Promise.all(accepted);
  assert.deepEqual(backend.seen, [1, 2, 3]);
});

test('withdrawQueued rejects waiting requests and leaves running ones alone', async () => {
  const { batcher, backend } = make({ maxQueueDelayMs: 0 });
  backend.hold();
  const running = batcher.submit(uniformImages([1], IMG), 1);
  await sleep(5);
  const waiting = batcher.submit(uniformImages([2], IMG), 1);
  assert.equal(
    batcher.withdrawQueued(() => new ServeError('SWIN_MODEL_NOT_READY', 'm', 'withdrawn')),
    1,
  );
  await rejectsWith(waiting, 'SWIN_MODEL_NOT_READY');
  backend.release();
  await running;
  assert.deepEqual(backend.seen, [1]);
});

test('bad tensor sizes are refused before queueing', async () => {
  const { batcher, backend } = make();
  await rejectsWith(batcher.submit(new Uint8Array(IMG + 1), 1), 'SWIN_BAD_TENSOR');
  await rejectsWith(batcher.submit(new Uint8Array(0), 0), 'SWIN_BAD_TENSOR');
  assert.deepEqual(backend.calls, []);
});
