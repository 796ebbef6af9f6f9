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
import { CoreInferenceService } from '../src/service/inference-service.js';
import { registry } from '../src/observability/metrics.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { within } from './helpers/timeout.js';
import { writeFakeModelDir, type ModelDir } from './helpers/reliability-model-dir.js';

let dir: ModelDir;
let engine: FakeBackend;
let service: CoreInferenceService;
let repo: ModelRepository;

before(async () => {
  dir = writeFakeModelDir();
  const factory: BackendFactory = async (req) => {
    const b = new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes, maxBatchSize: 1 });
    if (req.variant === 'fold') engine = b;
    return b;
  };
  // One batch of one image at a time: everything else waits in the queue.
  const config = loadConfig([], { MODELS_DIR: dir.root, VARIANT: 'fold', MAX_BATCH_SIZE: '1', INSTANCES: '1', MAX_QUEUE_DELAY_MS: '0' });
  repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
  service = new CoreInferenceService(repo, config);
});
after(async () => {
  engine.release();
  await service.close();
  dir.remove();
});

const greyPng = (v: number) =>
  sharp({ create: { width: 8, height: 8, channels: 3, background: { r: v, g: v, b: v } } })
    .png()
    .toBuffer();

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
  assert.deepEqual(
    [...engine.seen].sort((a, b) => a - b),
    [10, 91, 92],
    'the engine saw only the requests that were still wanted',
  );
  assert.equal((await dropped('deadline')) - deadlineBefore, 5);
  assert.equal((await dropped('cancelled')) - cancelledBefore, 5);
});

/**
 * Runs `during` while the model's preprocessor is decoding a request's image (after sharp
 * finished, before the pixels go on), then lets the request go on. Resolves once the hook ran.
 * (The service decodes image by image, through the decode cost gate: `one`, not `many`.)
 */
function duringPreprocessing(during: () => Promise<void> | void): { ran: Promise<void>; restore: () => void } {
  const pre = repo.get('fake').preprocessor;
  const real = pre.one;
  let ran!: () => void;
  const hookRan = new Promise<void>((r) => (ran = r));
  pre.one = async (...args: Parameters<typeof real>) => {
    const pixels = await real.apply(pre, args);
    await during();
    ran();
    return pixels;
  };
  return { ran: hookRan, restore: () => (pre.one = real) };
}

test('a request whose deadline passed during preprocessing never reaches the engine', async () => {
  engine.seen.length = 0;
  const before = await dropped('deadline');
  const deadline = Date.now() + 200;
  let timer: NodeJS.Timeout | undefined;
  let leftAtDecode = NaN;
  const hook = duringPreprocessing(async () => {
    leftAtDecode = deadline - Date.now();
    // Hold the decoded request until its deadline has passed (the wait is the deadline itself).
    await new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()) + 5)));
  });
  try {
    await assert.rejects(
      service.classify(undefined, [await greyPng(77)], { deadline }),
      (e: ServeError) => e.code === 'SWIN_DEADLINE_EXCEEDED',
    );
    assert.equal(await within(hook.ran, 5000, 'not run'), undefined, "the request went through the model's preprocessor");
  } finally {
    clearTimeout(timer);
    hook.restore();
  }
  assert.ok(leftAtDecode > 0, `the deadline was still ahead when preprocessing ran (${leftAtDecode} ms left)`);
  assert.deepEqual(engine.seen, []);
  assert.equal((await dropped('deadline')) - before, 1);
});

test('a request cancelled during preprocessing never reaches the engine and is counted', async () => {
  engine.seen.length = 0;
  const before = await dropped('cancelled');
  const c = new AbortController();
  const hook = duringPreprocessing(() => c.abort());
  try {
    await assert.rejects(
      service.classify(undefined, [await greyPng(78)], { signal: c.signal }),
      (e: ServeError) => e.code === 'SWIN_CANCELLED',
    );
    assert.equal(await within(hook.ran, 5000, 'not run'), undefined, "the request went through the model's preprocessor");
  } finally {
    hook.restore();
  }
  assert.deepEqual(engine.seen, []);
  assert.equal((await dropped('cancelled')) - before, 1);
});
