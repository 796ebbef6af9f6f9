// Priorities and queue policy from model.json and settings, through the real
// service and HTTP app (fake engine): /classify?priority=N jumps the queue of
// a held engine, each level's queue limit holds, unknown levels are 400, and
// the settings override model.json.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateModelConfig } from '../src/models/model-json.js';
import { fakeModelConfig } from './helpers/fake-model.js';
import { fakeService } from './helpers/fake-service.js';
import { greyPng } from './helpers/http-bodies.js';

const batching = {
  ...fakeModelConfig().batching,
  max_queue_delay_ms: 0,
  priority_levels: 2,
  default_priority_level: 2,
  priority_queue_policy: { '2': { max_queue_size: 2 } },
};

/** Resolves once the condition holds, re-checking after every turn of the event loop. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

test('/classify?priority=1 runs before queued default-priority requests; level 2 holds at most 2 queued images', async () => {
  const s = await fakeService({ model: { batching } });
  const engine = s.backends.get('fold')!;
  const batcher = s.service.repository.get('fake').variants.get('fold')!.batcher!;
  try {
    engine.hold();
    engine.seen.length = 0;
    const post = async (grey: number, query = '') =>
      s.app.inject({ method: 'POST', url: `/classify${query}`, headers: { 'content-type': 'image/png' }, payload: await greyPng(grey) });
    const running = post(10);
    await until(() => engine.calls.length > 0 && engine.seen.length === 1);
    // One at a time: decoding finishes in any order, and FIFO is by arrival in the queue.
    const low = [post(20)];
    await until(() => batcher.queueLength === 1);
    low.push(post(30));
    await until(() => batcher.queueLength === 2);
    const refused = await post(40);
    assert.equal(refused.statusCode, 503);
    assert.deepEqual(refused.json(), {
      statusCode: 503,
      code: 'SWIN_QUEUE_FULL',
      error: 'Service Unavailable',
      message: 'Queue of model fake at priority 2 is full (2 requests); retry later',
    });
    const high = post(50, '?priority=1&timeout_ms=60000');
    await until(() => batcher.queueLength === 3);
    engine.release();
    const replies = await Promise.all([running, ...low, high]);
    assert.deepEqual(
      replies.map((r) => r.statusCode),
      [200, 200, 200, 200],
    );
    assert.deepEqual(engine.seen, [10, 50, 20, 30]);

    const bad = await post(60, '?priority=3');
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(bad.json(), {
      statusCode: 400,
      code: 'SWIN_BAD_REQUEST',
      error: 'Bad Request',
      message: 'Bad request: priority must be an integer from 1 to 2 (1 runs first), got 3',
    });
  } finally {
    engine.release();
    await s.close();
  }
});

test("settings override model.json's priority levels and default queue policy (shown by GET /models/:name)", async () => {
  const s = await fakeService({
    model: { batching },
    env: { PRIORITY_LEVELS: '3', DEFAULT_PRIORITY_LEVEL: '1', DEFAULT_TIMEOUT_MS: '250', MAX_TIMEOUT_MS: '1000', TIMEOUT_ACTION: 'delay' },
  });
  try {
    const r = await s.app.inject({ method: 'GET', url: '/models/fake' });
    assert.equal(r.statusCode, 200);
    const b = r.json().batching;
    assert.deepEqual(
      {
        priority_levels: b.priority_levels,
        default_priority_level: b.default_priority_level,
        default_queue_policy: b.default_queue_policy,
        priority_queue_policy: b.priority_queue_policy,
      },
      {
        priority_levels: 3,
        default_priority_level: 1,
        default_queue_policy: { default_timeout_ms: 250, max_timeout_ms: 1000, timeout_action: 'delay' },
        priority_queue_policy: { '2': { max_queue_size: 2 } },
      },
    );
    const ok = await s.app.inject({
      method: 'POST',
      url: '/classify?priority=3',
      headers: { 'content-type': 'image/png' },
      payload: await greyPng(70),
    });
    assert.equal(ok.statusCode, 200, ok.body);
  } finally {
    await s.close();
  }
});

test('model.json: a wrong priority or queue policy fails at load, naming each field', () => {
  const raw = {
    ...fakeModelConfig(),
    batching: {
      ...fakeModelConfig().batching,
      priority_levels: 2,
      default_priority_level: 3,
      default_queue_policy: { timeout_action: 'drop', max_timeout_ms: -1 },
      priority_queue_policy: { '3': {}, '1': { allow_timeout_override: 'yes', max_queue: 4 } },
    },
  };
  assert.throws(() => validateModelConfig(raw, 'model.json'), {
    name: 'ModelConfigError',
    message:
      'model.json: batching.default_priority_level must be within 1..priority_levels; ' +
      'batching.default_queue_policy.max_timeout_ms must be a number >= 0; batching.default_queue_policy.timeout_action must be one of reject, delay; ' +
      'batching.priority_queue_policy.1.max_queue is not a queue policy field; batching.priority_queue_policy.1.allow_timeout_override must be true or false; ' +
      'batching.priority_queue_policy.3 is not a level within 1..priority_levels',
  });
});
