// WARMUP_REQUESTS (issue 16, first request after ready): before the listeners
// open, the server sends POST /classify through its own route
// (src/api/http/warmup.ts): raw JPEG, multipart with one and two JPEGs, JSON,
// raw PNG. They reach the engine at batch sizes 1 and 2 but leave no metric,
// log line or rate-limit charge, and need no API key; clients' requests are
// still counted, logged, authenticated and limited. Off, nothing is sent.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/api/http/app.js';
import { sendWarmupRequests } from '../src/api/http/warmup.js';
import { registry } from '../src/observability/metrics.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { writeFakeModelDir, type ModelDir } from './helpers/reliability-model-dir.js';
import { request, startServer } from './helpers/reliability-harness.js';
import { within } from './helpers/timeout.js';

/** Series a request leaves behind: request, image, decode, queue, batch and latency metrics. */
const RECORDED =
  /^swin_(requests_total|request_duration_seconds_count|images_total|decoded_images_total|preprocess_duration_seconds_count|queue_duration_seconds_count|batch_size_count|inference_duration_seconds_count)\{/;

async function recordedSeries(): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((l) => RECORDED.test(l));
}

let dir: ModelDir;
let service: CoreInferenceService;
let engine: FakeBackend;
/** What reached service.classify: images and the warm-up mark. */
const calls: { images: number; warmup?: boolean }[] = [];
const apps: FastifyInstance[] = [];

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { MODELS_DIR: dir.root, VARIANT: 'fold', MAX_QUEUE_DELAY_MS: '1', INSTANCES: '1', SELFTEST_RETRY_MS: '3600000', ...extra };
}

/** The app over the shared service, logging at debug into `lines`. */
async function appWith(extra: Record<string, string>, lines: string[]): Promise<FastifyInstance> {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const app = await buildApp(loadConfig([], env(extra)), service, { loggerInstance: pino({ level: 'debug' }, sink) });
  apps.push(app);
  return app;
}

before(async () => {
  dir = writeFakeModelDir();
  const config = loadConfig([], env());
  const repo = await ModelRepository.load({
    config,
    logger: pino({ level: 'silent' }),
    createBackend: async (req) => {
      const b = new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes, maxBatchSize: 8 });
      if (req.variant === 'fold') engine = b;
      return b;
    },
  });
  service = new CoreInferenceService(repo, config);
  const classify = service.classify.bind(service);
  service.classify = (model, images, opts) => {
    calls.push({ images: images.length, warmup: opts.warmup });
    return classify(model, images, opts);
  };
});

after(async () => {
  for (const app of apps) await app.close();
  await service.close();
  dir.remove();
});

test('warm-up requests run every body format through the route to the engine, and are recorded nowhere', async () => {
  const lines: string[] = [];
  // API keys on: the warm-up needs none.
  const app = await appWith({ AUTH_API_KEYS: 'key-one' }, lines);
  const engineBefore = engine.calls.length;
  const outcome = await sendWarmupRequests(app, service, { warmupRequests: true, acceptedFormats: ['jpeg', 'png'] });
  assert.ok(outcome);
  assert.deepEqual(outcome.failed, []);
  assert.equal(outcome.sent, 5);
  assert.deepEqual(calls.splice(0), [
    { images: 1, warmup: true }, // raw JPEG
    { images: 1, warmup: true }, // multipart x1
    { images: 2, warmup: true }, // multipart x2
    { images: 1, warmup: true }, // JSON
    { images: 1, warmup: true }, // raw PNG
  ]);
  assert.deepEqual(engine.calls.slice(engineBefore), [1, 1, 2, 1, 1]);

  assert.deepEqual(await recordedSeries(), []);
  assert.deepEqual(
    lines.filter((l) => /request completed|incoming request/.test(l)),
    [],
  );

  // A client's request is counted and logged, and still needs its key.
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 25, g: 25, b: 25 } } })
    .png()
    .toBuffer();
  const client = { method: 'POST' as const, url: '/classify', headers: { 'content-type': 'image/png' }, payload: png };
  assert.equal((await app.inject(client)).statusCode, 401);
  const ok = await app.inject({ ...client, headers: { ...client.headers, authorization: 'Bearer key-one' } });
  assert.equal(ok.statusCode, 200, ok.body);
  const series = await recordedSeries();
  assert.ok(series.includes('swin_requests_total{api="http",model="fake",code="OK"} 1'), series.join('\n'));
  assert.ok(series.includes('swin_images_total{api="http",model="fake",variant="fold",backend="onnxruntime"} 1'), series.join('\n'));
  assert.equal(lines.filter((l) => /request completed/.test(l)).length, 2);
});

test("warm-up requests take nothing from the rate limiter's buckets", async () => {
  const app = await appWith({ RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '1' }, []);
  const outcome = await sendWarmupRequests(app, service, { warmupRequests: true, acceptedFormats: ['jpeg', 'png'] });
  assert.deepEqual(outcome?.failed, []);
  assert.equal(outcome?.sent, 5);
  calls.splice(0);
  // Same address as the warm-up (127.0.0.1): its burst of one is still there, and then spent.
  assert.equal((await app.inject({ method: 'GET', url: '/models' })).statusCode, 200);
  assert.equal((await app.inject({ method: 'GET', url: '/models' })).statusCode, 429);
});

test('WARMUP_REQUESTS off: nothing is sent', async () => {
  assert.equal(loadConfig([], env({ WARMUP_REQUESTS: 'false' })).warmupRequests, false);
  assert.equal(loadConfig([], env()).warmupRequests, true);
  const app = await appWith({}, []);
  const engineBefore = engine.calls.length;
  assert.equal(await sendWarmupRequests(app, service, { warmupRequests: false, acceptedFormats: ['jpeg', 'png'] }), null);
  assert.deepEqual(calls, []);
  assert.equal(engine.calls.length, engineBefore);
});

test('the real server warms up before ready; its metrics and access log show no request', { timeout: 120_000 }, async () => {
  const server = await startServer({ LOG_LEVEL: 'info' });
  try {
    const scrape = await request(server.url, { method: 'GET', path: '/metrics' });
    assert.equal(scrape.status, 200);
    assert.deepEqual(
      scrape.body.split('\n').filter((l) => RECORDED.test(l)),
      [],
    );
    const logs = server.logs().split('\n').filter(Boolean);
    const warm = logs.filter((l) => l.includes('warm-up requests sent')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(warm.length, 1, server.logs().slice(-3000));
    assert.equal(warm[0].requests, 5);
    assert.equal(warm[0].failed, 0);
    assert.deepEqual(
      logs.filter((l) => l.includes('request completed')),
      [],
    );
    // Before the listener: the line comes before "Server listening".
    assert.ok(logs.findIndex((l) => l.includes('warm-up requests sent')) < logs.findIndex((l) => l.includes('Server listening')));
  } finally {
    server.proc.kill('SIGTERM');
    await within(server.exited, 20_000, 'timeout');
  }
});

test('the real server with SWIN_WARMUP_REQUESTS=false sends none', { timeout: 120_000 }, async () => {
  const server = await startServer({ LOG_LEVEL: 'info', SWIN_WARMUP_REQUESTS: 'false' });
  try {
    assert.equal((await request(server.url, { method: 'GET', path: '/health/ready' })).status, 200);
    assert.doesNotMatch(server.logs(), /warm-up request/);
  } finally {
    server.proc.kill('SIGTERM');
    await within(server.exited, 20_000, 'timeout');
  }
});
