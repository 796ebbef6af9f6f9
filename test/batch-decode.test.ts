// JPEGs decoded per batch on the engine's GPU (BATCH_DECODE): requests carry
// their JPEGs encoded through the batcher, a batch holding any goes to the
// backend's runImages as one list, images the device refuses are decoded with
// sharp and run again. The GPU is played by a backend whose runImages decodes
// with sharp; test/gpu/addon-gpu.test.ts runs the real one on the GPU host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import type { DeviceBatchResult, DeviceDecodeSpec } from '../src/backends/backend.js';
import { Batcher, type EncodedImages } from '../src/batching/batcher.js';
import { loadConfig } from '../src/config.js';
import { ServeError } from '../src/errors.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { decodedImages, droppedRequests, gpuBatchStageDuration } from '../src/observability/metrics.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { FakeBackend, fakeLogits, uniformImages } from './helpers/fake-backend.js';
import { fakeModelConfig } from './helpers/fake-model.js';
import { writeFakeModel } from './helpers/fake-service.js';

const SIZE = 8;
const IMG = SIZE * SIZE * 3;

/** A JPEG of one grey level (the fake engine's class is level / 25). */
function greyJpeg(level: number, width = 32): Promise<Buffer> {
  return sharp({ create: { width, height: 24, channels: 3, background: { r: level, g: level, b: level } } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

/** A FakeBackend that also "decodes on its device": sharp stands in for nvJPEG. JPEGs 13 pixels wide are refused. */
class DecodingBackend extends FakeBackend {
  readonly imageCalls: { jpeg: boolean[]; spec: DeviceDecodeSpec }[] = [];
  /** While set, runImages waits for it (to keep a batch running). */
  imageGate: Promise<void> | null = null;
  async runImages(images: Uint8Array[], jpeg: readonly boolean[], spec: DeviceDecodeSpec): Promise<DeviceBatchResult> {
    this.imageCalls.push({ jpeg: [...jpeg], spec });
    if (this.imageGate) await this.imageGate;
    const pixels = new Uint8Array(images.length * IMG);
    const decoded: boolean[] = [];
    const reasons: (string | null)[] = [];
    for (const [i, img] of images.entries()) {
      if (!jpeg[i]) {
        pixels.set(img, i * IMG);
      } else if ((await sharp(img).metadata()).width === 13) {
        decoded.push(false);
        reasons.push('refused for the test');
        continue;
      } else {
        pixels.set(await sharp(img).resize(SIZE, SIZE, { fit: 'fill' }).removeAlpha().raw().toBuffer(), i * IMG);
      }
      decoded.push(true);
      reasons.push(null);
    }
    const stages = { copyInMs: 0.1, decodeMs: 2, engineMs: 3, copyOutMs: 0.05, hostDecodeMs: 1.5, wallMs: 6 };
    return { logits: fakeLogits(pixels, images.length, IMG, this.numClasses), decoded, reasons, stages };
  }
}

function batcherOver(backend: DecodingBackend, withImages = true): Batcher {
  return new Batcher({
    model: 'batch-decode',
    variant: 'fold',
    backend: 'cuda',
    maxBatchSize: 4,
    maxQueueDelayMs: 5,
    maxQueueSize: 64,
    instances: 1,
    imageBytes: IMG,
    numClasses: 10,
    run: (x, n) => backend.run(x, n),
    ...(withImages && { runImages: (images: Uint8Array[], jpeg: boolean[]) => backend.runImages(images, jpeg, SPEC) }),
  });
}

const SPEC: DeviceDecodeSpec = { size: SIZE, mode: 'squash', resize: SIZE, kernel: 'nearest', maxPixels: 1e8 };

function top1(logits: Float32Array, row: number): number {
  const r = logits.subarray(row * 10, (row + 1) * 10);
  return r.indexOf(Math.max(...r));
}

test('the batcher sends a batch holding encoded requests to runImages as one list, in FIFO order, pixels beside JPEGs', async () => {
  const backend = new DecodingBackend({ imageBytes: IMG, kind: 'cuda', maxBatchSize: 4 });
  const b = batcherOver(backend);
  assert.equal(b.takesEncoded, true);
  const jpegs = [await greyJpeg(125), await greyJpeg(200), await greyJpeg(75, 13)]; // classes 5 and 8; the last refused
  const first = b.submit(uniformImages([50], IMG), 1); // pixels: class 2
  const second = b.submit({ images: jpegs, jpeg: [true, true, true] }, 3);
  const third = b.submit(uniformImages([225], IMG), 1); // class 9
  const [r1, r2, r3] = await Promise.all([first, second, third]);
  assert.deepEqual(
    backend.imageCalls.map((c) => c.jpeg),
    [[false, true, true, true]],
    'one batch of 4 (the limit); the pixel request after it runs next, through run()',
  );
  assert.deepEqual(backend.calls, [1], 'the last request, pixels only, went to run()');
  assert.equal(top1(r1.logits, 0), 2);
  assert.deepEqual([top1(r2.logits, 0), top1(r2.logits, 1)], [5, 8]);
  assert.equal(top1(r3.logits, 0), 9);
  assert.deepEqual(r2.decoded, [true, true, false], "the second request's own flags, refusal in its place");
  assert.deepEqual(r2.reasons, [null, null, 'refused for the test']);
  assert.equal(r1.decoded, undefined, 'a pixel request is told nothing about decoding');
  assert.equal(r2.batchSize, 4);
  await b.close();
});

test('pixels-only batches still go to run(); an encoded request larger than a batch is split and put back together', async () => {
  const backend = new DecodingBackend({ imageBytes: IMG, kind: 'cuda', maxBatchSize: 4 });
  const b = batcherOver(backend);
  await b.submit(uniformImages([0, 25], IMG), 2);
  assert.deepEqual(backend.calls, [2]);
  const levels = [25, 50, 75, 100, 125, 150];
  const jpegs = await Promise.all(levels.map((l, i) => greyJpeg(l, i === 4 ? 13 : 32)));
  const r = await b.submit({ images: jpegs, jpeg: jpegs.map(() => true) }, jpegs.length);
  assert.deepEqual(
    backend.imageCalls.map((c) => c.jpeg.length),
    [4, 2],
  );
  assert.deepEqual(r.decoded, [true, true, true, true, false, true], 'the refused JPEG is reported in its place');
  assert.equal(r.reasons?.[4], 'refused for the test');
  assert.deepEqual(
    [0, 1, 2, 3, 5].map((i) => top1(r.logits, i)),
    [1, 2, 3, 4, 6],
  );
  await b.close();
});

test('a batcher without runImages refuses encoded images with SWIN_BAD_TENSOR, and checks their pixel sizes', async () => {
  const backend = new DecodingBackend({ imageBytes: IMG, kind: 'cuda', maxBatchSize: 4 });
  const plain = batcherOver(backend, false);
  assert.equal(plain.takesEncoded, false);
  const enc: EncodedImages = { images: [await greyJpeg(100)], jpeg: [true] };
  await assert.rejects(plain.submit(enc, 1), (e: unknown) => e instanceof ServeError && e.code === 'SWIN_BAD_TENSOR');
  const b = batcherOver(backend);
  await assert.rejects(
    b.submit({ images: [new Uint8Array(5)], jpeg: [false] }, 1),
    (e: unknown) => e instanceof ServeError && e.code === 'SWIN_BAD_TENSOR' && /expected 192 bytes of pixels, got 5/.test(e.message),
  );
  await Promise.all([plain.close(), b.close()]);
});

/** The service over one DecodingBackend per variant (kind cuda), with `env` settings. */
async function serviceWith(env: Record<string, string>) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'swin-batch-decode-'));
  const cfg = { ...fakeModelConfig(), name: 'bd' };
  writeFakeModel(root, cfg);
  const config = loadConfig([], { MODELS_DIR: root, LOG_LEVEL: 'silent', SELFTEST_RETRY_MS: '600000', ...env });
  const backends: DecodingBackend[] = [];
  const repo = await ModelRepository.load({
    config,
    logger: pino({ level: 'silent' }),
    createBackend: async (req) => {
      const b = new DecodingBackend({ kind: 'cuda', variant: req.variant, imageBytes: IMG, maxBatchSize: req.opts.maxBatchSize });
      backends.push(b);
      return b;
    },
  });
  const service = new CoreInferenceService(repo, config);
  return {
    service,
    config,
    backends,
    async close() {
      await service.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** swin_gpu_batch_stage_seconds of the test model: observations and their sum. */
async function stageSeconds(stage: string): Promise<{ count: number; sum: number }> {
  const { values } = await gpuBatchStageDuration.get();
  const of = (name: string) =>
    values.filter((v) => v.metricName === name && v.labels.model === 'bd' && v.labels.stage === stage).reduce((a, v) => a + v.value, 0);
  return { count: of('swin_gpu_batch_stage_seconds_count'), sum: of('swin_gpu_batch_stage_seconds_sum') };
}

async function decodedCount(decoder: string): Promise<number> {
  const { values } = await decodedImages.get();
  return values.filter((v) => v.labels.model === 'bd' && v.labels.decoder === decoder).reduce((s, v) => s + v.value, 0);
}

test('the service sends JPEGs encoded, decodes the rest with sharp, and redoes what the device refused', async () => {
  const s = await serviceWith({});
  try {
    const active = s.backends.find((b) => b.imageCalls.length > 0);
    assert.ok(active, 'the engine decoded a warm-up JPEG at load');
    const warmCalls = active.imageCalls.length;
    const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 75, g: 75, b: 75 } } })
      .png()
      .toBuffer();
    const images = [await greyJpeg(125), png, await greyJpeg(200, 13)];
    const [gpu0, sharp0, engine0] = [await decodedCount('gpu'), await decodedCount('sharp'), await stageSeconds('engine')];
    const r = await s.service.classify('bd', images, { topK: 1 });
    assert.deepEqual(
      r.predictions.map((p) => p[0].label),
      ['class5', 'class3', 'class8'],
    );
    const calls = active.imageCalls.slice(warmCalls);
    assert.deepEqual(
      calls.map((c) => c.jpeg),
      [[true, false, true]],
      'one batch: two JPEGs encoded, the PNG as pixels; the refused JPEG then ran as pixels through run()',
    );
    assert.deepEqual(calls[0].spec, { size: 8, mode: 'squash', resize: 8, kernel: 'nearest', maxPixels: s.config.limits.maxImagePixels });
    assert.equal((await decodedCount('gpu')) - gpu0, 1);
    assert.equal((await decodedCount('sharp')) - sharp0, 2, 'the PNG and the refused JPEG');
    const engine = await stageSeconds('engine');
    assert.equal(engine.count - engine0.count, 1, 'one image batch: one observation per stage');
    assert.ok(Math.abs(engine.sum - engine0.sum - 0.003) < 1e-9, `engine stage ${engine.sum - engine0.sum} s`);
  } finally {
    await s.close();
  }
});

test('BATCH_DECODE=false, DECODE=cpu and DECODE_STRICT=true keep every image on the per-request path, with the same answers', async () => {
  const images = [await greyJpeg(50), await greyJpeg(175)];
  const labels: string[][] = [];
  const envs: Record<string, string>[] = [{ BATCH_DECODE: 'false' }, { DECODE: 'cpu' }, { DECODE_STRICT: 'true', DECODE: 'gpu' }, {}];
  for (const env of envs) {
    const s = await serviceWith(env);
    try {
      const r = await s.service.classify('bd', images, { topK: 1 });
      labels.push(r.predictions.map((p) => p[0].label));
      const encoded = s.backends.reduce((n, b) => n + b.imageCalls.length, 0);
      assert.equal(encoded > 0, Object.keys(env).length === 0, `runImages used with ${JSON.stringify(env)}`);
    } finally {
      await s.close();
    }
  }
  assert.deepEqual(labels, [
    ['class2', 'class7'],
    ['class2', 'class7'],
    ['class2', 'class7'],
    ['class2', 'class7'],
  ]);
});

test('an encoded request cancelled while queued is dropped once, like a pixel one; the batch running is untouched', async () => {
  const backend = new DecodingBackend({ imageBytes: IMG, kind: 'cuda', maxBatchSize: 4 });
  const b = batcherOver(backend);
  let open!: () => void;
  backend.imageGate = new Promise<void>((r) => (open = r));
  const running = b.submit({ images: [await greyJpeg(100)], jpeg: [true] }, 1);
  await new Promise((r) => setTimeout(r, 20)); // its batch is in runImages now
  const gone = new AbortController();
  const queued = b.submit({ images: [await greyJpeg(150), await greyJpeg(50)], jpeg: [true, true] }, 2, { signal: gone.signal });
  const dropped = async () =>
    (await droppedRequests.get()).values
      .filter((v) => v.labels.model === 'batch-decode' && v.labels.reason === 'cancelled')
      .reduce((a, v) => a + v.value, 0);
  const before = await dropped();
  gone.abort();
  await assert.rejects(queued, (e: unknown) => e instanceof ServeError && e.code === 'SWIN_CANCELLED');
  assert.equal((await dropped()) - before, 2, 'both of its images, once');
  open();
  const r = await running;
  assert.equal(top1(r.logits, 0), 4);
  assert.equal(backend.imageCalls.length, 1, 'the cancelled request never reached the engine');
  await b.close();
});

test('JPEGs sent encoded to a variant that meanwhile takes pixels only are decoded here, the rest kept: each image decoded once', async () => {
  const s = await serviceWith({});
  try {
    const repo = s.service.repository;
    const infer = repo.infer.bind(repo);
    let refusedOnce = false;
    // The race: the variant that takes JPEGs is replaced between decoding and queueing.
    repo.infer = async (m, variant, pixels, n, opts) => {
      if (!(pixels instanceof Uint8Array) && !refusedOnce) {
        refusedOnce = true;
        throw new ServeError('SWIN_BAD_TENSOR', 'this backend takes decoded pixels only');
      }
      return infer(m, variant, pixels, n, opts);
    };
    const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 75, g: 75, b: 75 } } })
      .png()
      .toBuffer();
    const [gpu0, sharp0] = [await decodedCount('gpu'), await decodedCount('sharp')];
    const r = await s.service.classify('bd', [await greyJpeg(200), png], { topK: 1 });
    assert.equal(refusedOnce, true);
    assert.deepEqual(
      r.predictions.map((p) => p[0].label),
      ['class8', 'class3'],
    );
    assert.equal((await decodedCount('sharp')) - sharp0, 2, 'the PNG once, the JPEG once');
    assert.equal((await decodedCount('gpu')) - gpu0, 0);
  } finally {
    await s.close();
  }
});
