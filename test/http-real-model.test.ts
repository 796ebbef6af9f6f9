// End to end with the committed swin-fmnist model on onnxruntime: the model's
// self-test images, encoded as PNG and sent to POST /classify, come back with
// the softmax of the committed PyTorch reference logits, on both variants.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import sharp from 'sharp';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { loadSelfTest } from '../src/models/selftest.js';
import { topK } from '../src/service/postprocess.js';

const MODEL_DIR = path.resolve('engines/models/swin-fmnist');
let app: FastifyInstance;
let service: CoreInferenceService;

before(async () => {
  const config = loadConfig([], {
    MODELS_DIR: path.dirname(MODEL_DIR),
    MODELS: 'swin-fmnist',
    BACKEND: 'onnxruntime',
    LOG_LEVEL: 'silent',
  });
  service = new CoreInferenceService(await ModelRepository.load({ config, logger: pino({ level: 'silent' }) }), config);
  app = await buildApp(config, service, { logger: false });
});
after(async () => {
  await app.close();
  await service.close();
});

test('both variants serve and /health/ready is 200', async () => {
  const m = (await app.inject({ method: 'GET', url: '/models/swin-fmnist' })).json();
  assert.deepEqual(
    m.variants.map((v: { variant: string; ready: boolean; backend: string }) => [v.variant, v.ready, v.backend]),
    [
      ['fold', true, 'onnxruntime'],
      ['unfold', true, 'onnxruntime'],
    ],
  );
  assert.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200);
});

for (const variant of ['fold', 'unfold']) {
  test(`${variant}: PNGs of the self-test images get the reference softmax scores through HTTP`, async () => {
    const cfg = service.getModel('swin-fmnist').config;
    const data = await loadSelfTest(MODEL_DIR, cfg);
    const size = cfg.architecture.img_size;
    const k = cfg.architecture.num_classes;
    for (let i = 0; i < data.count; i++) {
      const raw = Buffer.from(data.images.subarray(i * size * size * 3, (i + 1) * size * size * 3));
      // Same size in and out: the resize is the identity, so the engine sees exactly the reference input.
      const png = await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toBuffer();
      const res = await app.inject({
        method: 'POST',
        url: `/classify?variant=${variant}&top_k=${k}`,
        headers: { 'content-type': 'image/png' },
        payload: png,
      });
      assert.equal(res.statusCode, 200, res.body);
      const got = res.json().predictions[0] as Array<{ index: number; score: number; label: string }>;
      const want = topK(data.expected, i, k, k, cfg.labels);
      assert.equal(got[0].index, want[0].index, `image ${i}: top-1`);
      for (const w of want) {
        const g = got.find((p) => p.index === w.index)!;
        assert.equal(g.label, w.label);
        assert.ok(Math.abs(g.score - w.score) <= 1e-4, `image ${i} class ${w.index}: ${g.score} vs ${w.score}`);
      }
    }
  });
}

test('preprocess (KServe BYTES inputs) refuses more images than MAX_IMAGES_PER_REQUEST, as /classify does', async () => {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
  const max = loadConfig([], {}).limits.maxImagesPerRequest;
  await assert.rejects(
    service.preprocess('swin-fmnist', Array(max + 1).fill(png), {}),
    (err: { code?: string }) => err.code === 'SWIN_TOO_MANY_IMAGES',
  );
  await assert.rejects(service.preprocess('swin-fmnist', [], {}), (err: { code?: string }) => err.code === 'SWIN_EMPTY_BODY');
  const pixels = await service.preprocess('swin-fmnist', [png], {});
  assert.equal(pixels.length, 256 * 256 * 3);
});
