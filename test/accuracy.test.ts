// Fashion-MNIST test images, encoded as PNG and as JPEG (quality 90), sent
// through the HTTP API of a real listener on loopback with the committed
// swin-fmnist model on onnxruntime, against PyTorch fp32 predictions for the
// same images (test/fixtures/accuracy/swin-fmnist.reference.json, written by
// `python -m swintools.reference_predictions` in engines/): the served top-1
// must agree with PyTorch's on >= 99% of the images, and its accuracy must be
// within 0.3 points of PyTorch's, for each format.
// ACCURACY_IMAGES (default 1000, at most the reference's count) sets how many images are used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { fashionMnistAvailable, readFashionMnistTest } from './helpers/fashion-mnist.js';

const MODEL_DIR = path.resolve('engines/models/swin-fmnist');
const COUNT = Number(process.env.ACCURACY_IMAGES ?? 1000);
const CONCURRENCY = 16;

const REFERENCE = path.resolve('test/fixtures/accuracy/swin-fmnist.reference.json');
const MIN_AGREEMENT = 0.99;
const MAX_ACCURACY_GAP = 0.003;

interface Reference {
  weights_sha256: string;
  count: number;
  labels: number[];
  accuracy: Record<'png' | 'jpeg', number>;
  predictions: Record<'png' | 'jpeg', number[]>;
}

/** The committed PyTorch reference; it must describe the served weights and the test's images. */
function readReference(labels: number[]): Reference {
  const ref = JSON.parse(readFileSync(REFERENCE, 'utf8')) as Reference;
  const weights = path.join(MODEL_DIR, 'swin-fmnist.safetensors');
  const sha = createHash('sha256').update(readFileSync(weights)).digest('hex');
  const regenerate = '(cd engines && python -m swintools.reference_predictions): see engines/README.md';
  assert.equal(ref.weights_sha256, sha, `${REFERENCE} was made from other weights than ${weights}; regenerate it ${regenerate}`);
  assert.ok(
    labels.length <= ref.count,
    `the reference covers ${ref.count} images, ACCURACY_IMAGES asks for ${labels.length}; regenerate it with --count ${regenerate}`,
  );
  assert.deepEqual(ref.labels.slice(0, labels.length), labels, 'the reference was made for other images');
  return ref;
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

const available = fashionMnistAvailable();
// scripts/test.sh sets SWIN_REQUIRE_TOOLS: there a missing data set is a failure, not a skip.
const skip = !available && !process.env.SWIN_REQUIRE_TOOLS ? 'Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)' : false;

test(
  `top-1 over HTTP on ${COUNT} Fashion-MNIST test images (PNG and JPEG q90) agrees with PyTorch fp32 on the same images`,
  { skip, timeout: 20 * 60_000 },
  async () => {
    assert.ok(available, 'Fashion-MNIST is required here (SWIN_REQUIRE_TOOLS): apt-get install dataset-fashion-mnist');
    const { images, labels } = readFashionMnistTest(COUNT);
    const reference = readReference(labels);
    // CPU-friendly batching (docs/benchmarks.md section 5) keeps this test to a few minutes on 2 cores;
    // batches of up to 4 still mix different requests' images in one engine run.
    const config = loadConfig([], {
      MODELS_DIR: path.dirname(MODEL_DIR),
      MODELS: 'swin-fmnist',
      BACKEND: 'onnxruntime',
      LOG_LEVEL: 'silent',
      MAX_BATCH_SIZE: '4',
      INSTANCES: '2',
      ORT_INTRA_OP_THREADS: '1',
    });
    const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }) });
    const service = new CoreInferenceService(repo, config);
    const app = await buildApp(config, service, { logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const encode = (raw: Buffer) => sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w');
      const png = await Promise.all(images.map((r) => encode(r).png().toBuffer()));
      const jpeg = await Promise.all(images.map((r) => encode(r).jpeg({ quality: 90 }).toBuffer()));

      for (const [name, encoded] of [
        ['png', png],
        ['jpeg', jpeg],
      ] as const) {
        const served: number[] = new Array(COUNT);
        const started = Date.now();
        await pool(
          encoded.map((body, i) => ({ body, i })),
          CONCURRENCY,
          async ({ body, i }) => {
            const res = await fetch(`${base}/classify?top_k=1`, {
              method: 'POST',
              headers: { 'content-type': `image/${name}` },
              body: new Uint8Array(body),
            });
            const json = (await res.json()) as { predictions: Array<Array<{ index: number }>> };
            assert.equal(res.status, 200, JSON.stringify(json));
            served[i] = json.predictions[0][0].index;
          },
        );
        const want = reference.predictions[name].slice(0, COUNT);
        const agree = served.filter((p, i) => p === want[i]).length / COUNT;
        const accuracy = served.filter((p, i) => p === labels[i]).length / COUNT;
        const refAccuracy = want.filter((p, i) => p === labels[i]).length / COUNT;
        console.log(
          `# ${name}: top-1 ${(100 * accuracy).toFixed(2)}% (PyTorch ${(100 * refAccuracy).toFixed(2)}%), ` +
            `agreement ${(100 * agree).toFixed(1)}% on ${COUNT} images in ${((Date.now() - started) / 1000).toFixed(1)} s`,
        );
        assert.ok(
          agree >= MIN_AGREEMENT,
          `${name}: served top-1 agrees with PyTorch on ${(100 * agree).toFixed(1)}% of the images (< ${100 * MIN_AGREEMENT}%)`,
        );
        assert.ok(
          Math.abs(accuracy - refAccuracy) <= MAX_ACCURACY_GAP + 1e-9,
          `${name}: ${(100 * accuracy).toFixed(2)}% vs PyTorch ${(100 * refAccuracy).toFixed(2)}%: off by more than ${100 * MAX_ACCURACY_GAP} points`,
        );
      }
    } finally {
      await app.close();
      await service.close();
    }
  },
);
