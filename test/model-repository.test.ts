// Variant self-tests and faults: a variant that fails at load is refused and
// the other serves; one that returns non-finite logits at run time is taken
// out of service, the other takes over, and it comes back after passing its
// self-test again; a client that disconnects leaves the queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fakeService } from './helpers/fake-service.js';
import { greyPng } from './helpers/http-bodies.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metric(app: { inject: (o: object) => Promise<{ body: string }> }, pattern: RegExp): Promise<number> {
  const { body } = await app.inject({ method: 'GET', url: '/metrics' });
  const m = body.match(pattern);
  return m ? Number(m[1]) : NaN;
}

test('a variant that fails its load-time self-test is refused; the other serves', async () => {
  const s = await fakeService({ modes: { fold: 'nan' } });
  try {
    const m = (await s.app.inject({ method: 'GET', url: '/models/fake' })).json();
    assert.equal(m.ready, true);
    assert.equal(m.active_variant, 'unfold');
    assert.deepEqual(m.variants[0], {
      variant: 'fold',
      backend: null,
      ready: false,
      reason: 'onnxruntime failed its self-test: 1 of 20 logits are not finite',
    });
    const res = await s.app.inject({
      method: 'POST',
      url: '/classify',
      headers: { 'content-type': 'image/png' },
      payload: await greyPng(25),
    });
    assert.equal(res.json().variant, 'unfold');
    const explicit = await s.app.inject({
      method: 'POST',
      url: '/classify?variant=fold',
      headers: { 'content-type': 'image/png' },
      payload: await greyPng(25),
    });
    assert.deepEqual(explicit.json(), {
      statusCode: 503,
      code: 'SWIN_MODEL_NOT_READY',
      error: 'Service Unavailable',
      message: 'Model fake is not ready: variant fold: onnxruntime failed its self-test: 1 of 20 logits are not finite',
    });
    assert.ok(
      (await metric(
        s.app,
        /swin_selftest_failures_total\{model="fake",variant="fold",backend="onnxruntime",reason="non_finite"\} (\d+)/,
      )) >= 1,
    );
    assert.equal(await metric(s.app, /swin_model_ready\{model="fake",variant="fold",backend="onnxruntime"\} (\d+)/), 0);
    assert.equal((await s.app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200);
  } finally {
    await s.close();
  }
});

test('when no variant passes, the server stays up and the model is not ready', async () => {
  const s = await fakeService({ modes: { fold: 'nan', unfold: 'throw' } });
  try {
    const ready = await s.app.inject({ method: 'GET', url: '/health/ready' });
    assert.deepEqual([ready.statusCode, ready.json()], [503, { status: 'not_ready', models: { fake: false } }]);
    assert.equal((await s.app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200);
    const res = await s.app.inject({
      method: 'POST',
      url: '/classify',
      headers: { 'content-type': 'image/png' },
      payload: await greyPng(25),
    });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().code, 'SWIN_MODEL_NOT_READY');
    assert.match(
      res.json().message,
      /fold: onnxruntime failed its self-test: 1 of 20 logits are not finite; unfold: onnxruntime failed its self-test: engine failed: fake engine failure/,
    );
  } finally {
    await s.close();
  }
});

test('non-finite logits at run time: 500 for that batch, the other variant takes over, the failed one recovers', async () => {
  const s = await fakeService({ env: { SELFTEST_RETRY_MS: '100' } });
  try {
    const fold = s.backends.get('fold')!;
    const png = await greyPng(75);
    const classify = () => s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png });
    const before = await metric(
      s.app,
      /swin_backend_errors_total\{model="fake",variant="fold",backend="onnxruntime",reason="non_finite"\} (\d+)/,
    );
    fold.mode = 'nan';
    const bad = await classify();
    assert.deepEqual(bad.json(), {
      statusCode: 500,
      code: 'SWIN_NON_FINITE_OUTPUT',
      error: 'Internal Server Error',
      message: 'Model fake (fold on onnxruntime) returned non-finite logits; the variant was taken out of service',
    });
    const after = await metric(
      s.app,
      /swin_backend_errors_total\{model="fake",variant="fold",backend="onnxruntime",reason="non_finite"\} (\d+)/,
    );
    assert.equal(after - (Number.isNaN(before) ? 0 : before), 1);
    const next = await classify();
    assert.equal(next.statusCode, 200);
    assert.equal(next.json().variant, 'unfold');
    assert.equal(next.json().predictions[0][0].label, 'class3');
    const m = (await s.app.inject({ method: 'GET', url: '/models/fake' })).json();
    assert.equal(m.active_variant, 'unfold');
    assert.equal(m.variants[0].ready, false);
    assert.match(m.variants[0].reason, /^taken out of service: Model fake \(fold on onnxruntime\) returned non-finite logits/);
    // The engine heals; the periodic re-test puts fold back as the preferred variant.
    fold.mode = 'ok';
    for (let i = 0; i < 50 && s.service.getModel('fake').active_variant !== 'fold'; i++) await sleep(20);
    assert.equal(s.service.getModel('fake').active_variant, 'fold');
    assert.equal((await classify()).json().variant, 'fold');
  } finally {
    await s.close();
  }
});

test('an engine exception fails its batch with SWIN_INFERENCE_FAILED and the other variant serves', async () => {
  const s = await fakeService();
  try {
    s.backends.get('fold')!.mode = 'throw';
    const png = await greyPng(75);
    const bad = await s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png });
    assert.deepEqual(bad.json(), {
      statusCode: 500,
      code: 'SWIN_INFERENCE_FAILED',
      error: 'Internal Server Error',
      message: 'Inference failed on model fake: fake engine failure',
    });
    const good = await s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png });
    assert.equal(good.json().variant, 'unfold');
  } finally {
    await s.close();
  }
});

test('a client that disconnects while queued never reaches the engine', async () => {
  const s = await fakeService({ env: { MAX_BATCH_SIZE: '1', MAX_QUEUE_DELAY_MS: '0' } });
  try {
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = s.app.server.address() as AddressInfo;
    const fold = s.backends.get('fold')!;
    fold.hold();
    const send = (grey: number) =>
      new Promise<{ req: http.ClientRequest; done: Promise<number> }>((resolveReq) => {
        greyPng(grey).then((png) => {
          const req = http.request({
            port,
            host: '127.0.0.1',
            method: 'POST',
            path: '/classify',
            headers: { 'content-type': 'image/png' },
          });
          const done = new Promise<number>((resolve) => {
            req.on('response', (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            });
            req.on('error', () => resolve(-1));
          });
          req.end(png);
          resolveReq({ req, done });
        });
      });
    const first = await send(25); // runs (held)
    while (fold.running === 0) await sleep(2);
    const batcher = s.service.repository.get('fake').variants.get('fold')!.batcher!;
    const second = await send(200); // queued
    while (batcher.queueLength === 0) await sleep(2);
    second.req.destroy();
    for (let i = 0; i < 100 && batcher.queueLength > 0; i++) await sleep(5);
    assert.equal(batcher.queueLength, 0, 'the cancelled request left the queue');
    fold.release();
    assert.equal(await first.done, 200);
    assert.equal(await second.done, -1);
    assert.equal(fold.seen.at(-1), 25);
    assert.equal(fold.seen.includes(200), false);
    assert.ok((await metric(s.app, /swin_dropped_requests_total\{model="fake",reason="cancelled"\} (\d+)/)) >= 1);
  } finally {
    await s.close();
  }
});
