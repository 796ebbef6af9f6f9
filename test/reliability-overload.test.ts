// Overload, short form (scripts/overload.ts measures the real server and the
// latency numbers): 300 concurrent requests against a slow engine behind a
// 16-image queue. Beyond capacity the only answer is 503 SWIN_QUEUE_FULL with
// Retry-After; every admitted request is answered 200 and run exactly once;
// the queue never holds more than its limit (what bounds admitted latency);
// the server is healthy afterwards. Then the same
// with per-client rate limiting: 429 SWIN_RATE_LIMITED with Retry-After.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import sharp from 'sharp';
import type { BackendFactory } from '../src/backends/backend-factory.js';
import { loadConfig } from '../src/config.js';
import * as grpc from '@grpc/grpc-js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { STATUS_DETAILS_KEY, decodeStatusDetails } from '../src/api/grpc/status-details.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { writeFakeModelDir } from './helpers/reliability-model-dir.js';

const dir = writeFakeModelDir();
after(() => dir.remove());

async function appWith(
  env: Record<string, string>,
): Promise<{ app: FastifyInstance; service: CoreInferenceService; engines: FakeBackend[] }> {
  const engines: FakeBackend[] = [];
  const factory: BackendFactory = async (req) => {
    const b = new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes, maxBatchSize: 4 });
    engines.push(b);
    return b;
  };
  const config = loadConfig([], { MODELS_DIR: dir.root, VARIANT: 'fold', ...env });
  const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
  const service = new CoreInferenceService(repo, config);
  const app = await buildApp(config, service, { logger: false });
  return { app, service, engines };
}

test('10x overload: 200 or 503 SWIN_QUEUE_FULL with Retry-After, nothing else; healthy afterwards', async () => {
  const { app, service, engines } = await appWith({ MAX_QUEUE_SIZE: '16', MAX_BATCH_SIZE: '4', INSTANCES: '1', MAX_QUEUE_DELAY_MS: '1' });
  const fold = engines.find((e) => e.variant === 'fold')!;
  fold.delayMs = 20;
  fold.calls.length = 0;
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#444' } })
    .png()
    .toBuffer();
  const batcher = service.repository.get('fake').variants.get('fold')!.batcher!;
  let maxDepth = 0;
  const sampler = setInterval(() => (maxDepth = Math.max(maxDepth, batcher.queueLength)), 1);
  try {
    const replies = await Promise.all(
      Array.from({ length: 300 }, () =>
        app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png }),
      ),
    );
    const counts: Record<string, number> = {};
    for (const r of replies) {
      const key = r.statusCode === 200 ? '200' : `${r.statusCode} ${r.json().code}`;
      counts[key] = (counts[key] ?? 0) + 1;
      if (r.statusCode === 503) assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
    }
    clearInterval(sampler);
    console.log(`# outcomes: ${JSON.stringify(counts)}, max queue depth ${maxDepth}`);
    assert.deepEqual(Object.keys(counts).sort(), ['200', '503 SWIN_QUEUE_FULL']);
    assert.ok(counts['503 SWIN_QUEUE_FULL'] > 200, 'most of a 10x burst is refused');
    // Every admitted request ran exactly once; the engine ran nothing else.
    assert.equal(
      fold.calls.reduce((a, n) => a + n, 0),
      counts['200'],
    );
    assert.ok(Math.max(...fold.calls) <= 4);
    // What bounds an admitted request's latency: it never waits behind more than a full queue.
    assert.ok(maxDepth <= 16, `queue held ${maxDepth} images`);
    assert.ok(maxDepth >= 4, `the queue should have filled (max ${maxDepth})`);
    assert.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200);
    assert.equal(
      (await app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png })).statusCode,
      200,
    );
  } finally {
    clearInterval(sampler);
    await app.close();
    await service.close();
  }
});

test('per-client rate limit: 429 SWIN_RATE_LIMITED with Retry-After beyond the burst, other clients unaffected', async () => {
  const { app, service } = await appWith({ RATE_LIMIT_RPS: '2', RATE_LIMIT_BURST: '5' });
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#444' } })
    .png()
    .toBuffer();
  try {
    const burst = await Promise.all(
      Array.from({ length: 50 }, () =>
        app.inject({
          method: 'POST',
          url: '/classify',
          headers: { 'content-type': 'image/png' },
          payload: png,
          remoteAddress: '192.0.2.7',
        }),
      ),
    );
    const codes = burst.map((r) => r.statusCode);
    assert.equal(codes.filter((c) => c === 200).length, 5);
    assert.equal(codes.filter((c) => c === 429).length, 45);
    for (const r of burst.filter((x) => x.statusCode === 429)) {
      assert.equal(r.json().code, 'SWIN_RATE_LIMITED');
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
    }
    const other = await app.inject({
      method: 'POST',
      url: '/classify',
      headers: { 'content-type': 'image/png' },
      payload: png,
      remoteAddress: '192.0.2.8',
    });
    assert.equal(other.statusCode, 200);
  } finally {
    await app.close();
    await service.close();
  }
});

test('gRPC Predict at 10x: OK or UNAVAILABLE with ErrorInfo, RetryInfo and retry pushback, nothing else', async () => {
  const { app, service, engines } = await appWith({ MAX_QUEUE_SIZE: '16', MAX_BATCH_SIZE: '4', INSTANCES: '1', MAX_QUEUE_DELAY_MS: '1' });
  await app.close();
  const fold = engines.find((e) => e.variant === 'fold')!;
  fold.delayMs = 20;
  const server = await startGrpcServer(service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, pino({ level: 'silent' }));
  const client = new (loadProtos().classifier.swin.v1.Classifier)(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#444' } })
    .png()
    .toBuffer();
  try {
    const results = await Promise.all(
      Array.from(
        { length: 200 },
        () =>
          new Promise<{ code: number; retry?: unknown; details?: unknown; message?: string }>((resolve) =>
            client.Predict({ images: [png] }, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null) =>
              resolve(
                err
                  ? {
                      code: err.code,
                      retry: err.metadata.get('retry-after')[0],
                      details: decodeStatusDetails(err.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer),
                      message: err.details,
                    }
                  : { code: grpc.status.OK },
              ),
            ),
          ),
      ),
    );
    const counts: Record<string, number> = {};
    for (const r of results) counts[grpc.status[r.code]] = (counts[grpc.status[r.code]] ?? 0) + 1;
    console.log(`# gRPC outcomes: ${JSON.stringify(counts)}`);
    assert.deepEqual(Object.keys(counts).sort(), ['OK', 'UNAVAILABLE']);
    for (const r of results.filter((x) => x.code === grpc.status.UNAVAILABLE)) {
      assert.match(String(r.retry), /^[1-9]\d*$/);
      assert.deepEqual(r.details, {
        code: grpc.status.UNAVAILABLE,
        message: r.message,
        errorInfo: { reason: 'SWIN_QUEUE_FULL', domain: 'swin-serve', metadata: { model: 'fake', max_queue_size: '16' } },
        retryDelaySeconds: Number(r.retry),
      });
    }
  } finally {
    client.close();
    await server.close(1000);
    await service.close();
  }
});

test('admission happens before decoding: no more images are decoded than the queue can take (KServe BYTES too)', async () => {
  const { app, service, engines } = await appWith({ MAX_QUEUE_SIZE: '8', MAX_BATCH_SIZE: '4', INSTANCES: '1', MAX_QUEUE_DELAY_MS: '1' });
  const fold = engines.find((e) => e.variant === 'fold')!;
  fold.hold();
  const m = service.repository.get('fake');
  let decoded = 0;
  const many = m.preprocessor.many.bind(m.preprocessor);
  m.preprocessor.many = async (imgs: Buffer[]) => {
    decoded += imgs.length;
    return many(imgs);
  };
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#444' } })
    .png()
    .toBuffer();
  try {
    // All 100 arrive at once while the engine is held: 4 run, 8 queue, the rest are refused
    // undecoded; half of them as /classify, half as KServe v2 infer with a BYTES input.
    const kserve = { inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: [png.toString('base64')] }] };
    const replies = Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        i % 2 === 0
          ? app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png })
          : app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload: kserve }),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    fold.release();
    const codes = (await replies).map((r) => r.statusCode);
    assert.ok(decoded <= 8 + 4, `decoded ${decoded} images for a queue of 8 and a batch of 4`);
    assert.equal(codes.filter((c) => c === 200).length + codes.filter((c) => c === 503).length, 100, codes.join(' '));
    assert.ok(
      codes.some((c, i) => i % 2 === 1 && c === 503),
      'KServe requests are refused too',
    );
  } finally {
    await app.close();
    await service.close();
  }
});
