// The hostile-input corpus (test/fixtures/hostile/generate.ts) against the
// real HTTP app (buildApp + the core service, with a fake engine so the test
// is fast): each malformed or hostile request gets its 4xx and stable code
// with a well-formed error body and no stack trace, and after each one the
// process is still live and still classifies. Valid but unusual images are
// classified with finite scores.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type { BackendFactory } from '../src/backends/backend-factory.js';
import { loadConfig } from '../src/config.js';
import * as grpc from '@grpc/grpc-js';
import { ERRORS, type ErrorCode } from '../src/errors.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { hostileCorpus, unusualValidImages, type HostileCase } from './fixtures/hostile/generate.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { writeFakeModelDir, type ModelDir } from './helpers/reliability-model-dir.js';

const MAX_BODY_BYTES = 1 << 20;
const MAX_IMAGES = 8;

let dir: ModelDir;
let app: FastifyInstance;
let service: CoreInferenceService;
let hostile: HostileCase[];
let valid: HostileCase[];
let okPng: Buffer;
const outcomes: string[] = [];

before(async () => {
  dir = writeFakeModelDir();
  const factory: BackendFactory = async (req) => new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes });
  const config = loadConfig([], {
    MODELS_DIR: dir.root,
    MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    MAX_IMAGES_PER_REQUEST: String(MAX_IMAGES),
  });
  const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
  service = new CoreInferenceService(repo, config);
  app = await buildApp(config, service, { logger: false });
  hostile = await hostileCorpus({
    canaryUrl: 'http://127.0.0.1:9',
    canaryFile: '/nonexistent/swin-canary',
    maxBodyBytes: MAX_BODY_BYTES,
    maxImagesPerRequest: MAX_IMAGES,
  });
  valid = await unusualValidImages();
  okPng = valid[0].body;
});

after(async () => {
  await app.close();
  await service.close();
  dir.remove();
  console.log(`# corpus outcomes:\n${outcomes.map((o) => `#   ${o}`).join('\n')}`);
});

async function post(c: HostileCase) {
  return app.inject({
    method: 'POST',
    url: `/classify${c.query ? `?${c.query}` : ''}`,
    headers: { 'content-type': c.contentType },
    payload: c.body,
  });
}

async function stillHealthy(after: string): Promise<void> {
  const live = await app.inject({ method: 'GET', url: '/health/live' });
  assert.equal(live.statusCode, 200, `not live after ${after}`);
  const ok = await app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: okPng });
  assert.equal(ok.statusCode, 200, `cannot classify after ${after}: ${ok.body}`);
}

describe('hostile inputs: each gets its 4xx and stable code, and the server stays healthy', () => {
  test('corpus', async () => {
    assert.ok(hostile.length >= 40, `corpus has ${hostile.length} cases`);
    const wrong: string[] = [];
    for (const c of hostile) {
      const r = await post(c);
      const exp = c.expect as { status: number; code: string };
      let body: { statusCode?: number; code?: string; error?: string; message?: string } = {};
      try {
        body = r.json();
      } catch {
        // not JSON: reported below
      }
      outcomes.push(`${r.statusCode} ${body.code ?? '-'}  ${c.name}`);
      if (r.statusCode !== exp.status || body.code !== exp.code)
        wrong.push(`${c.name}: got ${r.statusCode} ${body.code ?? r.body.slice(0, 100)}, want ${exp.status} ${exp.code}`);
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${c.name}: error body shape`);
      assert.equal(body.statusCode, r.statusCode);
      assert.doesNotMatch(r.body, /\n\s+at |node:internal|\/src\//, `${c.name}: stack trace or path in the reply`);
      await stillHealthy(c.name);
    }
    assert.deepEqual(wrong, []);
  });
});

describe('valid but unusual images are classified', () => {
  test('corpus', async () => {
    const wrong: string[] = [];
    for (const c of valid) {
      const r = await post(c);
      outcomes.push(`${r.statusCode} ${r.statusCode === 200 ? 'classified' : r.json().code}  ${c.name}`);
      if (r.statusCode !== 200) {
        wrong.push(`${c.name}: ${r.statusCode} ${r.body.slice(0, 200)}`);
        continue;
      }
      const j = r.json() as { predictions: Array<Array<{ score: number; label: string }>> };
      assert.equal(j.predictions.length, 1);
      for (const p of j.predictions[0]) assert.ok(Number.isFinite(p.score) && p.score >= 0 && p.score <= 1);
    }
    assert.deepEqual(wrong, []);
  });
});

describe('hostile images over gRPC Predict: the same stable codes, as gRPC statuses', () => {
  test('corpus', async () => {
    const server = await startGrpcServer(
      service,
      { host: '127.0.0.1', port: 0, maxMessageBytes: MAX_BODY_BYTES },
      pino({ level: 'silent' }),
    );
    const client = new (loadProtos().classifier.swin.v1.Classifier)(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const predict = (images: Buffer[]) =>
      new Promise<grpc.ServiceError | null>((resolve) =>
        client.Predict({ images }, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null) => resolve(err)),
      );
    try {
      // Image-level cases: those whose body is one image and whose code comes from decoding.
      const imageCases = hostile.filter(
        (c) => !c.query && /^(image\/|application\/octet-stream)/.test(c.contentType) && c.body.length < MAX_BODY_BYTES,
      );
      assert.ok(imageCases.length >= 20, `${imageCases.length} image cases`);
      const wrong: string[] = [];
      for (const c of imageCases) {
        const exp = c.expect as { code: ErrorCode };
        const err = await predict([c.body]);
        const code = err?.metadata.get('swin-code')[0];
        if (err?.code !== ERRORS[exp.code].grpcStatus || code !== exp.code)
          wrong.push(`${c.name}: ${err ? grpc.status[err.code] : 'OK'} ${code}, want ${exp.code}`);
        assert.doesNotMatch(err?.details ?? '', /\n\s+at |node:internal/);
      }
      assert.deepEqual(wrong, []);
      // Still serving.
      assert.equal(await predict([okPng]), null);
    } finally {
      client.close();
      await server.close(1000);
    }
  });
});
