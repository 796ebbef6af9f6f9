// Logs never contain image bytes or keys, and replies never contain stack
// traces: the app's pino output is captured at trace level while requests
// carry API keys (valid and invalid) and images with a recognisable marker
// (in a PNG text chunk, raw, multipart and base64), some of which fail in
// decoding and some in a faulty engine.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import { LOG_REDACT_PATHS } from '../src/api/access/http-access.js';
import type { BackendFactory } from '../src/backends/backend-factory.js';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { writeFakeModelDir, type ModelDir } from './helpers/reliability-model-dir.js';

const KEY = 'sk-live-KEYMARKER-9c1e5b7d';
const WRONG = 'sk-WRONGKEYMARKER-0000';
const MARKER = 'IMGMARKER-4f2a9d';

let dir: ModelDir;
let logs = '';
let service: CoreInferenceService;
let app: Awaited<ReturnType<typeof buildApp>>;
let engine: FakeBackend;

before(async () => {
  dir = writeFakeModelDir();
  const factory: BackendFactory = async (req) => {
    const b = new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes });
    if (req.variant === 'fold') engine = b;
    return b;
  };
  const config = loadConfig([], { MODELS_DIR: dir.root, AUTH_API_KEYS: KEY, VARIANT: 'fold', SELFTEST_RETRY_MS: '3600000' });
  const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
  service = new CoreInferenceService(repo, config);
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  app = await buildApp(config, service, { loggerInstance: pino({ level: 'trace', redact: LOG_REDACT_PATHS }, sink) });
});
after(async () => {
  await app.close();
  await service.close();
  dir.remove();
});

/** A PNG whose text chunk holds the marker (libvips keeps it as metadata). */
async function markedPng(): Promise<Buffer> {
  return sharp({ create: { width: 8, height: 8, channels: 3, background: '#555' } })
    .png()
    .withMetadata({ exif: { IFD0: { ImageDescription: MARKER } } })
    .toBuffer();
}

test('keys and image bytes never reach the logs; replies carry no stack traces', async () => {
  const png = await markedPng();
  assert.ok(png.includes(MARKER), 'the marker is inside the image bytes');
  const b64 = png.toString('base64');
  const boundary = 'b0undary';
  const multipart = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${MARKER}.png"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const auth = { authorization: `Bearer ${KEY}` };
  const replies = [
    await app.inject({ method: 'POST', url: '/classify', headers: { ...auth, 'content-type': 'image/png' }, payload: png }),
    await app.inject({
      method: 'POST',
      url: '/classify',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      payload: JSON.stringify({ images: [b64] }),
    }),
    await app.inject({
      method: 'POST',
      url: '/classify',
      headers: { ...auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload: multipart,
    }),
    // decode failure
    await app.inject({
      method: 'POST',
      url: '/classify',
      headers: { ...auth, 'content-type': 'image/png' },
      payload: png.subarray(0, png.length - 30),
    }),
    // wrong keys
    await app.inject({
      method: 'POST',
      url: '/classify',
      headers: { authorization: `Bearer ${WRONG}`, 'content-type': 'image/png' },
      payload: png,
    }),
    await app.inject({
      method: 'POST',
      url: '/classify',
      headers: { 'x-api-key': WRONG, cookie: `session=${WRONG}`, 'content-type': 'image/png' },
      payload: png,
    }),
  ];
  assert.deepEqual(
    replies.map((r) => r.statusCode),
    [200, 200, 200, 400, 401, 401],
  );
  // An engine failure: logged at error level with the error, still no image bytes.
  engine.mode = 'throw';
  const failed = await app.inject({ method: 'POST', url: '/classify', headers: { ...auth, 'content-type': 'image/png' }, payload: png });
  assert.equal(failed.statusCode, 500);

  for (const r of [...replies, failed]) {
    assert.doesNotMatch(r.body, /\n\s+at |node:internal|\.ts:\d+/, 'no stack trace in a reply');
    assert.ok(!r.body.includes(KEY) && !r.body.includes(WRONG), 'no key echoed in a reply');
  }
  assert.ok(logs.length > 1000, 'logs were captured');
  assert.match(logs, /"level":50/, 'the engine failure was logged at error level');
  if (process.env.SWIN_DUMP_LOGS) console.log(logs);
  for (const secret of [KEY, WRONG, MARKER, b64.slice(0, 40), b64.slice(200, 240), png.subarray(0, 64).toString('latin1')]) {
    assert.ok(!logs.includes(secret), `logs contain ${JSON.stringify(secret.slice(0, 20))}`);
  }
});
