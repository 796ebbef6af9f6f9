// Expired and cancelled requests never reach the engine: the engine here
// records the first byte of every image it runs (each request sends a
// uniform grey image of its own value), and swin_dropped_requests_total
// counts what the batcher dropped. Runs through the real service
// (preprocess -> repository -> batcher) with a counting fake engine that is
// held busy so requests queue behind it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import type { BackendFactory } from '../src/backends/backend-factory.js';
import { loadConfig } from '../src/config.js';
import { ServeError } from '../src/errors.js';
import { CoreInferenceService } from '../src/inference-service.js';
import { registry } from '../src/metrics.js';
import { ModelRepository } from '../src/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { writeFakeModelDir, type ModelDir } from './reliability-model-dir.js';

let dir: ModelDir;
let engine: FakeBackend;
let service: CoreInferenceService;

before(async () => {
  dir = writeFakeModelDir();
  const factory: BackendFactory = async (req) => {
    const b = new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes, maxBatchSize: 1 });
    if (req.variant === 'fold') engine = b;
    return b;
  };
  // One batch of one image at a time: everything else waits in the queue.
  const config = loadConfig([], { MODELS_DIR: dir.root, VARIANT: 'fold', MAX_BATCH_SIZE: '1', INSTANCES: '1', MAX_QUEUE_DELAY_MS: '0' });
  const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
  service = new CoreInferenceService(repo, config);
});
after(async () => {
  engine.release();
  await service.close();
  dir.remove();
});

const greyPng = (v: number) => sharp({ create: { width: 8, height: 8, channels: 3, background: { r: v, g: v, b: v } } }).png().toBuffer();

async function dropped(reason: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'swin_dropped_requests_total');
  return Number(m?.values.find((v) => v.labels.model === 'fake' && v.labels.reason === reason)?.value ?? 0);
}

test('expired and cancelled requests leave the queue and never reach the engine', async () => {
  engine.seen.length = 0;
  const deadlineBefore = await dropped('deadline');
  const cancelledBefore = await dropped('cancelled');
  engine.hold();
  // 1. A request that occupies the engine.
  const blocker = service.classify(undefined, [await greyPng(10)], {});
  await new Promise((r) => setTimeout(r, 50));
  // 2. Five requests with a 100 ms deadline, five that the client abandons, two that wait normally.
  const expiring = await Promise.all([31, 32, 33, 34, 35].map(greyPng));
  const cancelling = await Promise.all([61, 62, 63, 64, 65].map(greyPng));
  const normal = await Promise.all([91, 92].map(greyPng));
  const controllers = cancelling.map(() => new AbortController());
  const pExpiring = Promise.allSettled(expiring.map((img) => service.classify(undefined, [img], { deadline: Date.now() + 100 })));
  const pCancelling = Promise.allSettled(cancelling.map((img, i) => service.classify(undefined, [img], { signal: controllers[i].signal })));
  const pNormal = normal.map((img) => service.classify(undefined, [img], {}));
  await new Promise((r) => setTimeout(r, 50));
  for (const c of controllers) c.abort();
  const expired = await pExpiring;
  const cancelled = await pCancelling;
  // 3. Let the engine go: the blocker and the two normal requests run, nothing else.
  engine.release();
  await blocker;
  const done = await Promise.all(pNormal);
  for (const r of expired) {
    assert.equal(r.status, 'rejected');
    const e = (r as PromiseRejectedResult).reason as ServeError;
    assert.equal(e.code, 'SWIN_DEADLINE_EXCEEDED');
    assert.equal(e.httpStatus, 504);
  }
  for (const r of cancelled) {
    assert.equal(r.status, 'rejected');
    assert.equal(((r as PromiseRejectedResult).reason as ServeError).code, 'SWIN_CANCELLED');
  }
  assert.equal(done.length, 2);
  // 91 and 92 are decoded concurrently, so either may enter the queue first.
  assert.deepEqual([...engine.seen].sort((a, b) => a - b), [10, 91, 92], 'the engine saw only the requests that were still wanted');
  assert.equal((await dropped('deadline')) - deadlineBefore, 5);
  assert.equal((await dropped('cancelled')) - cancelledBefore, 5);
});

test('a request whose deadline passed during preprocessing never reaches the engine', async () => {
  engine.seen.length = 0;
  const before = await dropped('deadline');
  await assert.rejects(service.classify(undefined, [await greyPng(77)], { deadline: Date.now() - 1 }), (e: ServeError) => e.code === 'SWIN_DEADLINE_EXCEEDED');
  assert.deepEqual(engine.seen, []);
  assert.equal((await dropped('deadline')) - before, 1);
});

test('a request cancelled during preprocessing never reaches the engine and is counted', async () => {
  engine.seen.length = 0;
  const before = await dropped('cancelled');
  const c = new AbortController();
  const p = service.classify(undefined, [await greyPng(78)], { signal: c.signal });
  c.abort(); // preprocessing (sharp, on the thread pool) has not finished yet
  await assert.rejects(p, (e: ServeError) => e.code === 'SWIN_CANCELLED');
  assert.deepEqual(engine.seen, []);
  assert.equal((await dropped('cancelled')) - before, 1);
});
