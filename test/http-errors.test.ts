// Every bad input gets its status and stable code as an exact JSON body, and
// the server keeps serving afterwards.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { greyPng, multipart } from './helpers/http-bodies.js';

let s: FakeService;
before(async () => {
  s = await fakeService({ env: { MAX_IMAGE_PIXELS: '1000000', MAX_BODY_BYTES: '200000', MAX_IMAGES_PER_REQUEST: '4' } });
});
after(() => s.close());

const FORMATS = 'jpeg, png, webp, gif, tiff, avif';
const CONTENT_TYPES = 'image/*, application/octet-stream, multipart/form-data, application/json';

async function post(url: string, payload: unknown, contentType?: string) {
  const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
  return s.app.inject({ method: 'POST', url, headers, payload: payload as string });
}

function expectError(res: { statusCode: number; json(): unknown }, statusCode: number, code: string, error: string, message: string) {
  assert.deepEqual({ status: res.statusCode, body: res.json() }, { status: statusCode, body: { statusCode, code, error, message } });
}

async function stillServing() {
  const res = await post('/classify', await greyPng(125), 'image/png');
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.json().predictions[0][0].label, 'class5');
}

const EMPTY = 'The request carries no image: send the image bytes as the body, a multipart file, or base64 in JSON';

test('empty bodies', async () => {
  expectError(await post('/classify', Buffer.alloc(0), 'image/png'), 400, 'SWIN_EMPTY_BODY', 'Bad Request', EMPTY);
  expectError(await s.app.inject({ method: 'POST', url: '/classify' }), 400, 'SWIN_EMPTY_BODY', 'Bad Request', EMPTY);
  expectError(await post('/classify', '', 'application/json'), 400, 'SWIN_EMPTY_BODY', 'Bad Request', EMPTY);
  expectError(await post('/classify', { images: [] }), 400, 'SWIN_EMPTY_BODY', 'Bad Request', EMPTY);
  const form = multipart([{ name: 'top_k', value: '1' }]);
  expectError(await post('/classify', form.body, form.contentType), 400, 'SWIN_EMPTY_BODY', 'Bad Request', EMPTY);
  await stillServing();
});

test('truncated and corrupt images', async () => {
  const jpeg = await sharp({
    create: { width: 64, height: 64, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
  })
    .jpeg()
    .toBuffer();
  expectError(
    await post('/classify', jpeg.subarray(0, jpeg.length >> 1), 'image/jpeg'),
    400,
    'SWIN_IMAGE_DECODE_FAILED',
    'Bad Request',
    'Image 0 could not be decoded: VipsJpeg: premature end of JPEG image',
  );
  const png = await greyPng(10, 64);
  const corrupt = Buffer.from(png);
  corrupt.fill(0x42, 40, 80); // inside the IDAT chunk
  const res = await post('/classify', corrupt, 'image/png');
  assert.equal(res.statusCode, 400, res.body);
  assert.equal(res.json().code, 'SWIN_IMAGE_DECODE_FAILED');
  await stillServing();
});

test('unsupported formats: random bytes, SVG', async () => {
  expectError(
    await post('/classify', Buffer.from('this is not an image at all'), 'image/png'),
    415,
    'SWIN_UNSUPPORTED_MEDIA_TYPE',
    'Unsupported Media Type',
    `Unsupported content type or image format unknown; accepted: ${FORMATS}`,
  );
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image href="file:///etc/passwd"/></svg>';
  expectError(
    await post('/classify', Buffer.from(svg), 'image/svg+xml'),
    415,
    'SWIN_UNSUPPORTED_MEDIA_TYPE',
    'Unsupported Media Type',
    `Unsupported content type or image format svg/xml; accepted: ${FORMATS}`,
  );
  await stillServing();
});

test('too many pixels, too many bytes', async () => {
  const big = await sharp({ create: { width: 2000, height: 1000, channels: 3, background: '#fff' } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  expectError(
    await post('/classify', big, 'image/png'),
    413,
    'SWIN_IMAGE_TOO_LARGE',
    'Payload Too Large',
    'Image 0 is too large: 2000 x 1000 pixels is more than 1000000',
  );
  expectError(
    await post('/classify', Buffer.alloc(300_000, 1), 'image/png'),
    413,
    'SWIN_PAYLOAD_TOO_LARGE',
    'Payload Too Large',
    'Request body larger than 200000 bytes',
  );
  expectError(
    await post('/classify', { images: ['A'.repeat(300_000)] }),
    413,
    'SWIN_PAYLOAD_TOO_LARGE',
    'Payload Too Large',
    'Request body larger than 200000 bytes',
  );
  await stillServing();
});

test('wrong content types', async () => {
  expectError(
    await post('/classify', 'hello', 'text/plain'),
    415,
    'SWIN_UNSUPPORTED_MEDIA_TYPE',
    'Unsupported Media Type',
    `Unsupported content type or image format text/plain; accepted: ${CONTENT_TYPES}`,
  );
  expectError(
    await post('/classify', '<a/>', 'application/xml'),
    415,
    'SWIN_UNSUPPORTED_MEDIA_TYPE',
    'Unsupported Media Type',
    `Unsupported content type or image format application/xml; accepted: ${CONTENT_TYPES}`,
  );
  await stillServing();
});

test('unknown model and variant', async () => {
  const png = await greyPng(10);
  expectError(
    await post('/classify?model=resnet', png, 'image/png'),
    404,
    'SWIN_MODEL_NOT_FOUND',
    'Not Found',
    'Unknown model "resnet"; loaded models: fake',
  );
  expectError(
    await post('/classify?variant=sideways', png, 'image/png'),
    404,
    'SWIN_VARIANT_NOT_FOUND',
    'Not Found',
    'Model fake has no variant sideways; available: fold, unfold',
  );
  const form = multipart([
    { name: 'image', file: png },
    { name: 'variant', value: 'half' },
  ]);
  expectError(
    await post('/classify', form.body, form.contentType),
    404,
    'SWIN_VARIANT_NOT_FOUND',
    'Not Found',
    'Model fake has no variant "half"; available: fold, unfold',
  );
  expectError(
    await s.app.inject({ method: 'GET', url: '/models/resnet' }),
    404,
    'SWIN_MODEL_NOT_FOUND',
    'Not Found',
    'Unknown model "resnet"; loaded models: fake',
  );
  expectError(
    await s.app.inject({ method: 'GET', url: '/nowhere?x=1' }),
    404,
    'SWIN_NOT_FOUND',
    'Not Found',
    'Route GET /nowhere not found',
  );
  await stillServing();
});

test('bad top_k', async () => {
  const png = await greyPng(10);
  for (const [q, got] of [
    ['0', '0'],
    ['abc', 'abc'],
    ['1.5', '1.5'],
    ['-3', '-3'],
  ]) {
    expectError(
      await post(`/classify?top_k=${q}`, png, 'image/png'),
      400,
      'SWIN_BAD_TOP_K',
      'Bad Request',
      `top_k must be an integer from 1 to 10, got ${got}`,
    );
  }
  expectError(
    await post('/classify?top_k=11', png, 'image/png'),
    400,
    'SWIN_BAD_TOP_K',
    'Bad Request',
    'top_k must be an integer from 1 to 10, got 11',
  );
  expectError(
    await post('/classify', { images: [png.toString('base64')], top_k: 0 }),
    400,
    'SWIN_BAD_TOP_K',
    'Bad Request',
    'top_k must be an integer from 1 to 10, got 0',
  );
  await stillServing();
});

test('too many images, bad base64, bad JSON', async () => {
  const b64 = (await greyPng(10)).toString('base64');
  expectError(
    await post('/classify', { images: [b64, b64, b64, b64, b64] }),
    400,
    'SWIN_TOO_MANY_IMAGES',
    'Bad Request',
    'At most 4 images per request, got 5',
  );
  const png = await greyPng(10);
  const form = multipart([1, 2, 3, 4, 5].map(() => ({ name: 'image', file: png })));
  expectError(
    await post('/classify', form.body, form.contentType),
    400,
    'SWIN_TOO_MANY_IMAGES',
    'Bad Request',
    'At most 4 images per request, got more than 4',
  );
  expectError(
    await post('/classify', { images: [b64, 'not base64!'] }),
    400,
    'SWIN_BAD_BASE64',
    'Bad Request',
    'Image 1 is not valid base64',
  );
  expectError(
    await post('/classify', '{"images": [', 'application/json'),
    400,
    'SWIN_BAD_REQUEST',
    'Bad Request',
    'Bad request: the body is not valid JSON',
  );
  expectError(
    await post('/classify', { pictures: [b64] }),
    400,
    'SWIN_UNKNOWN_FIELD',
    'Bad Request',
    'Unknown JSON field "pictures"; accepted: images, model, variant, version, top_k, priority, timeout_ms',
  );
  await stillServing();
});

test('a full queue answers 503 with Retry-After; the admitted requests complete', async () => {
  const q = await fakeService({ env: { MAX_QUEUE_SIZE: '1', MAX_BATCH_SIZE: '1', MAX_QUEUE_DELAY_MS: '0' } });
  try {
    const fold = q.backends.get('fold')!;
    fold.hold();
    const png = await greyPng(50);
    const send = () => q.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png });
    const first = send();
    while (fold.running === 0) await new Promise((r) => setTimeout(r, 2));
    const second = send();
    while (q.service.repository.get('fake').variants.get('fold')!.batcher!.queueLength === 0) await new Promise((r) => setTimeout(r, 2));
    const third = await send();
    assert.equal(third.statusCode, 503);
    assert.ok(Number(third.headers['retry-after']) >= 1);
    expectError(third, 503, 'SWIN_QUEUE_FULL', 'Service Unavailable', 'Queue of model fake is full (1 requests); retry later');
    fold.release();
    assert.deepEqual([(await first).statusCode, (await second).statusCode], [200, 200]);
  } finally {
    await q.close();
  }
});

test('a request past its deadline is answered 504', async () => {
  const q = await fakeService({ env: { REQUEST_TIMEOUT_MS: '100' } });
  try {
    q.backends.get('fold')!.hold();
    const res = await q.app.inject({
      method: 'POST',
      url: '/classify',
      headers: { 'content-type': 'image/png' },
      payload: await greyPng(50),
    });
    expectError(res, 504, 'SWIN_DEADLINE_EXCEEDED', 'Gateway Timeout', 'Request deadline of 100 ms passed before inference finished');
    q.backends.get('fold')!.release();
  } finally {
    await q.close();
  }
});
