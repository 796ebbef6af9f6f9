// DECODE_PROCESSES: sharp in child processes (src/decode/decode-pool.ts) must give the
// in-process path's bytes and errors, lose no accepted image when a child dies,
// and serve /classify with the same answers.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import sharp from 'sharp';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { DecodePool } from '../src/decode/decode-pool.js';
import { ServeError } from '../src/errors.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { decodedImages, registry } from '../src/observability/metrics.js';
import { Preprocessor } from '../src/decode/preprocess.js';
import { fakeModelConfig } from './helpers/fake-model.js';

const ACCEPTED = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'];
const squash = new Preprocessor(fakeModelConfig({ size: 16 }), { maxImagePixels: 1_000_000, acceptedFormats: ACCEPTED });
const cropModel = fakeModelConfig({ size: 12 });
cropModel.preprocess = { ...cropModel.preprocess, mode: 'shorter_side_crop', resize: 14, kernel: 'cubic' };
const crop = new Preprocessor(cropModel, { maxImagePixels: 1_000_000, acceptedFormats: ['jpeg', 'png'] });

/** A photograph-like image (a gradient with noise), so that resize kernels and chroma matter. */
async function picture(w: number, h: number, seed: number, format: 'jpeg' | 'png' | 'webp'): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = (((i % (w * 3)) * 255) / (w * 3) + (s % 40)) & 0xff;
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    [format]()
    .toBuffer();
}

const pools: DecodePool[] = [];
function pool(n: number, exits?: unknown[]): DecodePool {
  const p = new DecodePool(n, { onExit: (info) => exits?.push(info) });
  pools.push(p);
  return p;
}
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

test('children give the in-process bytes for every format and both preprocessing modes', async () => {
  const p = pool(2);
  await p.ready();
  assert.equal(p.pids.length, 2);
  assert.ok(p.pids.every((pid) => pid > 0 && pid !== process.pid));
  const images = await Promise.all([
    picture(40, 30, 1, 'jpeg'),
    picture(31, 47, 2, 'png'),
    picture(64, 20, 3, 'webp'),
    picture(9, 9, 4, 'jpeg'),
  ]);
  for (const local of [squash, crop]) {
    const usable = local === crop ? images.filter((_, i) => i !== 2) : images;
    const want = await local.many(usable);
    const got = await p.preprocessor(local).many(usable);
    assert.equal(got.length, usable.length * local.imageBytes);
    assert.ok(Buffer.from(got).equals(Buffer.from(want)), 'same bytes as in process');
    assert.ok(Buffer.from(await p.preprocessor(local).one(usable[1], 1)).equals(await local.one(usable[1], 1)));
  }
});

test('errors come back as the in-process ServeErrors: code, status, message', async () => {
  const p = pool(1);
  const jpeg = await picture(20, 20, 5, 'jpeg');
  const cases: [Preprocessor, Buffer][] = [
    [squash, Buffer.concat([jpeg.subarray(0, 120), Buffer.alloc(40, 0x55)])], // corrupt: 400
    [squash, Buffer.from('GIF89a not really a gif at all, just text')], // damaged: 400
    [squash, Buffer.from('plain text, no image format')], // unknown format: 415
    [crop, await picture(20, 20, 6, 'webp')], // format not accepted by this model: 415
    [new Preprocessor(fakeModelConfig({ size: 8 }), { maxImagePixels: 100, acceptedFormats: ACCEPTED }), jpeg], // too many pixels: 413
  ];
  for (const [local, input] of cases) {
    const want = await local.one(input, 3).then(
      () => null,
      (e: unknown) => e,
    );
    const got = await p
      .preprocessor(local)
      .one(input, 3)
      .then(
        () => null,
        (e: unknown) => e,
      );
    assert.ok(want instanceof ServeError, String(want));
    assert.ok(got instanceof ServeError, String(got));
    assert.equal(got.code, want.code);
    assert.equal(got.httpStatus, want.httpStatus);
    // libvips' detail after the last colon can differ between runs (see gpu-decode.test.ts)
    assert.equal(got.message.split(':').slice(0, 2).join(':'), want.message.split(':').slice(0, 2).join(':'));
  }
});

test('a child killed with images in flight: every image still comes back right, and the child is replaced', async () => {
  const exits: Array<{ requeued: number; replaced: boolean; signal: string | null }> = [];
  const p = pool(2, exits);
  await p.ready();
  const before = p.pids;
  const images = await Promise.all(Array.from({ length: 40 }, (_, i) => picture(300, 200, 10 + i, 'jpeg')));
  const want = await squash.many(images);
  const running = p.preprocessor(squash).many(images);
  process.kill(before[0], 'SIGKILL');
  const got = await running;
  assert.ok(Buffer.from(got).equals(Buffer.from(want)), 'no image lost or changed');
  assert.equal(exits.length, 1);
  assert.equal(exits[0].signal, 'SIGKILL');
  assert.ok(exits[0].requeued > 0, 'the killed child had images in flight');
  assert.equal(exits[0].replaced, true);
  await p.ready();
  assert.equal(p.pids.length, 2);
  assert.ok(!p.pids.includes(before[0]) && p.pids.includes(before[1]));
  assert.ok(Buffer.from(await p.preprocessor(squash).one(images[0])).equals(await squash.one(images[0])), 'the replacement works');
});

test('after close, images are decoded in process', async () => {
  const p = pool(1);
  await p.close();
  const img = await picture(20, 10, 7, 'png');
  assert.equal(p.pids.length, 0);
  assert.ok(Buffer.from(await p.preprocessor(squash).one(img)).equals(await squash.one(img)));
});

test('DECODE_PROCESSES is a non-negative integer, 0 by default', () => {
  assert.equal(loadConfig([], {}).decodeProcesses, 0);
  assert.equal(loadConfig(['--decode-processes', '3'], {}).decodeProcesses, 3);
  assert.equal(loadConfig([], { DECODE_PROCESSES: '2' }).decodeProcesses, 2);
  assert.throws(() => loadConfig([], { DECODE_PROCESSES: '-1' }), /DECODE_PROCESSES/);
  assert.throws(() => loadConfig([], { DECODE_PROCESSES: 'many' }), /DECODE_PROCESSES/);
});

test('/classify with DECODE_PROCESSES=2 answers as in process, and counts the images as sharp-decoded', async (t) => {
  const dir = path.resolve('engines/models');
  const base = { MODELS_DIR: dir, MODELS: 'swin-fmnist', BACKEND: 'onnxruntime', LOG_LEVEL: 'silent' };
  const run = async (env: Record<string, string>) => {
    const config = loadConfig([], { ...base, ...env });
    const service = new CoreInferenceService(await ModelRepository.load({ config, logger: pino({ level: 'silent' }) }), config);
    const app = await buildApp(config, service, { logger: false });
    t.after(async () => {
      await app.close();
      await service.close();
    });
    return { service, app };
  };
  const inProcess = await run({});
  const spread = await run({ DECODE_PROCESSES: '2' });
  assert.equal(inProcess.service.decodePool, null);
  assert.equal(spread.service.decodePool?.size, 2);
  const counted = async () =>
    (await decodedImages.get()).values
      .filter((v) => v.labels.model === 'swin-fmnist' && v.labels.decoder === 'sharp')
      .reduce((a, v) => a + v.value, 0);
  const before = await counted();
  const images = await Promise.all([picture(28, 28, 20, 'png'), picture(120, 90, 21, 'jpeg'), picture(64, 64, 22, 'webp')]);
  for (const img of images) {
    const ask = (app: typeof spread.app) =>
      app.inject({ method: 'POST', url: '/classify?top_k=10', headers: { 'content-type': 'application/octet-stream' }, payload: img });
    const [a, b] = await Promise.all([ask(inProcess.app), ask(spread.app)]);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(b.statusCode, 200, b.body);
    assert.deepEqual(b.json().predictions, a.json().predictions);
  }
  assert.equal((await counted()) - before, 2 * images.length);
  const bad = await spread.app.inject({
    method: 'POST',
    url: '/classify',
    headers: { 'content-type': 'image/jpeg' },
    payload: Buffer.from([0xff, 0xd8, 0xff, 0, 1, 2]),
  });
  assert.equal(bad.statusCode, 400, bad.body);
  assert.equal(bad.json().code, 'SWIN_IMAGE_DECODE_FAILED');
  assert.match(await registry.metrics(), /swin_decoded_images_total\{model="swin-fmnist",decoder="sharp"\}/);
});
