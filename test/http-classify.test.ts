import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { topK } from '../src/service/postprocess.js';
import { fakeLogits, uniformImages } from './helpers/fake-backend.js';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { greyPng, multipart } from './helpers/http-bodies.js';

let s: FakeService;
before(async () => {
  s = await fakeService();
});
after(() => s.close());

/** What the fake engine answers for a uniform grey image, through the same softmax/top-k. */
function expectedTop(grey: number, k: number) {
  const bytes = 8 * 8 * 3;
  return topK(
    fakeLogits(uniformImages([grey], bytes), 1, bytes, 10),
    0,
    10,
    k,
    Array.from({ length: 10 }, (_, i) => `class${i}`),
  );
}

test('a raw PNG body is classified; the reply names model, version, variant, backend, predictions, timings', async () => {
  const res = await s.app.inject({
    method: 'POST',
    url: '/classify?top_k=3',
    headers: { 'content-type': 'image/png' },
    payload: await greyPng(75),
  });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json();
  assert.deepEqual(Object.keys(body).sort(), ['backend', 'model', 'predictions', 'timings', 'variant', 'version']);
  assert.equal(body.model, 'fake');
  assert.equal(body.version, '1');
  assert.equal(body.variant, 'fold');
  assert.equal(body.backend, 'onnxruntime');
  assert.equal(body.predictions.length, 1);
  const want = expectedTop(75, 3);
  assert.deepEqual(
    body.predictions[0].map((p: { label: string; index: number }) => [p.label, p.index]),
    want.map((p) => [p.label, p.index]),
  );
  body.predictions[0].forEach((p: { score: number }, i: number) => assert.ok(Math.abs(p.score - want[i].score) < 1e-12));
  assert.deepEqual(Object.keys(body.timings).sort(), ['inference_ms', 'preprocess_ms', 'queue_ms', 'total_ms']);
  assert.match(res.headers['x-request-id'] as string, /^[\w-]+$/);
});

test('application/octet-stream is accepted as a raw image body', async () => {
  const res = await s.app.inject({
    method: 'POST',
    url: '/classify',
    headers: { 'content-type': 'application/octet-stream' },
    payload: await greyPng(200),
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.json().predictions[0][0].label, 'class8');
  assert.equal(res.json().predictions[0].length, 5, 'default top_k is 5');
});

test('multipart with several images answers one list per image, in order, with form fields', async () => {
  const form = multipart([
    { name: 'image', file: await greyPng(25) },
    { name: 'image', file: await greyPng(225) },
    { name: 'image', file: await greyPng(100) },
    { name: 'top_k', value: '1' },
    { name: 'variant', value: 'unfold' },
  ]);
  const res = await s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': form.contentType }, payload: form.body });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json();
  assert.equal(body.variant, 'unfold');
  assert.deepEqual(
    body.predictions.map((p: Array<{ label: string }>) => p.map((x) => x.label)),
    [['class1'], ['class9'], ['class4']],
  );
});

test('JSON with base64 images (plain and data: URL) and fields', async () => {
  const a = (await greyPng(50)).toString('base64');
  const b = `data:image/png;base64,${(await greyPng(150)).toString('base64')}`;
  const res = await s.app.inject({ method: 'POST', url: '/classify', payload: { images: [a, b], model: 'fake', top_k: 2 } });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(
    res.json().predictions.map((p: Array<{ index: number }>) => p.map((x) => x.index)),
    [
      [2, 1],
      [6, 5],
    ],
  );
});

test('a query parameter overrides the body field', async () => {
  const res = await s.app.inject({
    method: 'POST',
    url: '/classify?top_k=1',
    payload: { images: [(await greyPng(0)).toString('base64')], top_k: 4 },
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.json().predictions[0].length, 1);
});

test('GET /models and /models/:name describe the loaded model', async () => {
  const list = await s.app.inject({ method: 'GET', url: '/models' });
  assert.equal(list.statusCode, 200);
  const [m] = list.json().models;
  assert.equal(m.name, 'fake');
  assert.equal(m.ready, true);
  assert.equal(m.active_variant, 'fold');
  assert.deepEqual(m.variants, [
    { variant: 'fold', backend: 'onnxruntime', ready: true },
    { variant: 'unfold', backend: 'onnxruntime', ready: true },
  ]);
  assert.equal(m.labels_count, 10);
  assert.deepEqual(m.input, { name: 'pixels', datatype: 'UINT8', shape: [-1, 8, 8, 3], layout: 'NHWC' });
  assert.deepEqual(m.batching, { max_batch_size: 8, max_queue_delay_ms: 2, max_queue_size: 64, instances: 1 });
  const one = await s.app.inject({ method: 'GET', url: '/models/fake' });
  assert.deepEqual(one.json(), m);
});

test('health endpoints', async () => {
  const live = await s.app.inject({ method: 'GET', url: '/health/live' });
  assert.deepEqual([live.statusCode, live.json()], [200, { status: 'ok' }]);
  const ready = await s.app.inject({ method: 'GET', url: '/health/ready' });
  assert.deepEqual([ready.statusCode, ready.json()], [200, { status: 'ready', models: { fake: true } }]);
});

test('/metrics counts requests by api, model and code', async () => {
  await s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: await greyPng(10) });
  await s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: Buffer.from('nope') });
  const res = await s.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'] as string, /^text\/plain/);
  assert.match(res.body, /swin_requests_total\{api="http",model="fake",code="OK"\} [1-9]/);
  assert.match(res.body, /swin_requests_total\{api="http",model="fake",code="SWIN_UNSUPPORTED_MEDIA_TYPE"\} [1-9]/);
  assert.match(res.body, /swin_images_total\{api="http",model="fake",variant="fold",backend="onnxruntime"\} [1-9]/);
  assert.match(res.body, /swin_model_ready\{model="fake",variant="fold",backend="onnxruntime"\} 1/);
  assert.match(res.body, /swin_batch_size_bucket\{le="1",model="fake",variant="fold",backend="onnxruntime"\} [1-9]/);
});

test('/openapi.json documents the routes and the body types of /classify', async () => {
  const res = await s.app.inject({ method: 'GET', url: '/openapi.json' });
  assert.equal(res.statusCode, 200);
  const doc = res.json();
  assert.equal(doc.openapi, '3.0.3');
  for (const p of ['/classify', '/models', '/models/{name}', '/health/live', '/health/ready', '/metrics'])
    assert.ok(doc.paths[p], `missing ${p}`);
  const content = doc.paths['/classify'].post.requestBody.content;
  assert.deepEqual(Object.keys(content).sort(), [
    'application/json',
    'application/octet-stream',
    'image/jpeg',
    'image/png',
    'multipart/form-data',
  ]);
  assert.ok(doc.paths['/classify'].post.responses['415']);
  assert.equal(doc.paths['/openapi.json'], undefined);
});
