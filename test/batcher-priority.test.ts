// Priorities and queue policy in the batcher, on a manual clock and a manual
// engine: the test decides when each batch finishes and how much time passed,
// so orders and latencies are exact, whatever the machine's load.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Batcher, type BatcherOptions } from '../src/batching/batcher.js';
import { ServeError } from '../src/errors.js';

const IMG = 3; // bytes per image; byte 0 carries the request id

/** An engine whose batches finish only when the test says, each taking `ms` of the manual clock. */
class ManualEngine {
  clock = 0;
  readonly pending: { ids: number[]; finish(): void }[] = [];
  readonly seen: number[] = [];

  run = (images: Uint8Array, n: number): Promise<Float32Array> => {
    const ids = Array.from({ length: n }, (_, i) => images[i * IMG]);
    this.seen.push(...ids);
    return new Promise((resolve) => this.pending.push({ ids, finish: () => resolve(new Float32Array(n)) }));
  };

  /** Lets the running batch finish after ms, then lets the batcher start the next one. */
  async step(ms = 10): Promise<void> {
    this.clock += ms;
    const b = this.pending.shift();
    assert.ok(b, 'no batch is running');
    b.finish();
    await settle();
  }
}

/** Lets promise callbacks and the batcher's scheduling run (no time passes on the manual clock). */
const settle = () => new Promise<void>((r) => setImmediate(r));

function make(over: Partial<BatcherOptions>) {
  const engine = new ManualEngine();
  const batcher = new Batcher({
    model: 'prio',
    variant: 'fold',
    backend: 'onnxruntime',
    maxBatchSize: 4,
    maxQueueDelayMs: 0,
    maxQueueSize: 32,
    instances: 1,
    imageBytes: IMG,
    numClasses: 1,
    run: engine.run,
    now: () => engine.clock,
    ...over,
  });
  return { batcher, engine };
}

const image = (id: number) => new Uint8Array([id, 0, 0]);

async function failure(p: Promise<unknown>): Promise<ServeError> {
  const err = await p.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ServeError, `not a ServeError: ${err}`);
  return err;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
}

test('under a full queue, high-priority p99 is below low-priority p50; FIFO within each level', async () => {
  // The engine runs 4 images per 10 ms; 6 arrive per 10 ms (4 low, 2 high) for 50 steps.
  // Level 2 (low, the default) may hold 24 of the 32 queued images, so high is never crowded out.
  const { batcher, engine } = make({ priorityLevels: 2, policies: [{}, { maxQueueSize: 24 }] });
  const latency: Record<'high' | 'low', number[]> = { high: [], low: [] };
  const refused: Record<'high' | 'low', number> = { high: 0, low: 0 };
  const order: Record<'high' | 'low', number[]> = { high: [], low: [] };
  let id = 0;
  const all: Promise<void>[] = [];
  const send = (cls: 'high' | 'low') => {
    const me = id++;
    const t0 = engine.clock;
    all.push(
      batcher.submit(image(me % 256), 1, cls === 'high' ? { priority: 1 } : {}).then(
        () => {
          latency[cls].push(engine.clock - t0);
          order[cls].push(me);
        },
        (err: ServeError) => {
          assert.equal(err.code, 'SWIN_QUEUE_FULL');
          refused[cls]++;
        },
      ),
    );
  };
  for (let step = 0; step < 50; step++) {
    for (let i = 0; i < 4; i++) send('low');
    for (let i = 0; i < 2; i++) send('high');
    await settle();
    await engine.step(10);
  }
  while (engine.pending.length > 0) await engine.step(10);
  await Promise.all(all);
  await batcher.close();

  assert.equal(refused.high, 0);
  assert.ok(refused.low > 50, `only ${refused.low} low-priority requests refused: the queue never filled`);
  assert.equal(latency.high.length, 100);
  const highP99 = percentile(latency.high, 0.99);
  const lowP50 = percentile(latency.low, 0.5);
  console.log(`# manual clock: high p99 ${highP99} ms, low p50 ${lowP50} ms, low refused ${refused.low}`);
  assert.ok(highP99 < lowP50, `high p99 ${highP99} ms >= low p50 ${lowP50} ms`);
  // FIFO within a level: each level completes in submission order.
  for (const cls of ['high', 'low'] as const)
    assert.deepEqual(
      order[cls],
      [...order[cls]].sort((a, b) => a - b),
    );
});

test("timeout action reject: a request still queued when its level's default timeout passes is answered 504", async () => {
  const { batcher, engine } = make({
    maxBatchSize: 1,
    priorityLevels: 2,
    policies: [{}, { defaultTimeoutMs: 30, timeoutAction: 'reject' }],
  });
  const running = batcher.submit(image(1), 1);
  await settle();
  const late = failure(batcher.submit(image(2), 1)); // level 2: times out 30 ms after enqueue
  const urgent = batcher.submit(image(3), 1, { priority: 1 }); // level 1: no timeout
  engine.clock += 40; // the running batch takes 50 ms in all
  await engine.step(10);
  const err = await late;
  assert.deepEqual(
    [err.code, err.httpStatus, err.message],
    ['SWIN_DEADLINE_EXCEEDED', 504, 'Request deadline of 30 ms passed before inference finished'],
  );
  await engine.step(10);
  await Promise.all([running, urgent]);
  assert.deepEqual(engine.seen, [1, 3]);
  await batcher.close();
});

test("a request's own timeout overrides the default, capped at the level's maximum; override can be refused", async () => {
  const { batcher, engine } = make({
    maxBatchSize: 1,
    priorityLevels: 2,
    policies: [
      { defaultTimeoutMs: 1000, maxTimeoutMs: 25 },
      { defaultTimeoutMs: 15, allowTimeoutOverride: false },
    ],
  });
  const running = batcher.submit(image(1), 1, { priority: 1 });
  await settle();
  const capped = failure(batcher.submit(image(2), 1, { priority: 1, policyTimeoutMs: 5000 })); // asks 5 s, gets 25 ms
  const fixed = failure(batcher.submit(image(3), 1, { priority: 2, policyTimeoutMs: 5000 })); // level 2 ignores the override: 15 ms
  await engine.step(30);
  assert.deepEqual(
    (await Promise.all([capped, fixed])).map((e) => e.message),
    ['Request deadline of 25 ms passed before inference finished', 'Request deadline of 15 ms passed before inference finished'],
  );
  await running;
  assert.deepEqual(engine.seen, [1]);
  await batcher.close();
});

test("timeout action delay: a timed-out request runs after its level's others, still before lower levels", async () => {
  const { batcher, engine } = make({ maxBatchSize: 1, priorityLevels: 2, policies: [{ defaultTimeoutMs: 30, timeoutAction: 'delay' }] });
  const running = batcher.submit(image(1), 1, { priority: 1 });
  await settle();
  const slow = batcher.submit(image(2), 1, { priority: 1 }); // times out at 30 ms: delayed
  engine.clock += 20;
  const patient = batcher.submit(image(3), 1, { priority: 1, policyTimeoutMs: 1000 }); // enqueued at 20, no timeout before 1020
  const low = batcher.submit(image(4), 1, { priority: 2 });
  await engine.step(20); // now 40: request 2 has timed out, 3 has not
  await engine.step(10);
  await engine.step(10);
  await engine.step(10);
  await Promise.all([running, slow, patient, low]);
  assert.deepEqual(engine.seen, [1, 3, 2, 4]);
  await batcher.close();
});

test("priority out of range is a bad request, before any queueing or decoding; each level's limit applies to reserve()", async () => {
  const { batcher, engine } = make({ priorityLevels: 3, policies: [{ maxQueueSize: 2 }] });
  for (const p of [0, 4, 1.5]) {
    const err = await failure(batcher.submit(image(1), 1, { priority: p }));
    assert.deepEqual(
      [err.code, err.httpStatus, err.message],
      ['SWIN_BAD_REQUEST', 400, `Bad request: priority must be an integer from 1 to 3 (1 runs first), got ${p}`],
    );
    assert.throws(
      () => batcher.reserve(1, p),
      (e: ServeError) => e.code === 'SWIN_BAD_REQUEST',
    );
  }
  const release = batcher.reserve(2, 1);
  assert.throws(
    () => batcher.reserve(1, 1),
    (e: ServeError) =>
      e.code === 'SWIN_QUEUE_FULL' &&
      e.message === 'Queue of model prio at priority 1 is full (2 requests); retry later' &&
      JSON.stringify(e.metadata) === JSON.stringify({ model: 'prio', priority: '1', max_queue_size: '2' }),
  );
  batcher.reserve(1, 2)(); // other levels still admit
  release();
  assert.deepEqual(engine.seen, []);
  await batcher.close();
});
