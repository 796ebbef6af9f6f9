// Logging under overload: a 1,000-request burst over HTTP /classify, KServe
// REST, swin.v1 Predict and KServe gRPC against an 8-image queue. Every
// request gets exactly one log line with its W3C trace id; successes are
// info, queue-full refusals warn, and no line carries a stack trace or sits
// at error level. Then one engine failure (our fault): one error line, with
// the stack.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import sharp from 'sharp';
import type { BackendFactory } from '../src/backends/backend-factory.js';
import { loadConfig } from '../src/config.js';
import { startGrpcServer, type GrpcServerHandle } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { writeFakeModelDir, type ModelDir } from './helpers/reliability-model-dir.js';

let dir: ModelDir;
let lines: string[] = [];
let service: CoreInferenceService;
let app: Awaited<ReturnType<typeof buildApp>>;
let server: GrpcServerHandle;
let engine: FakeBackend;
let protos: ReturnType<typeof loadProtos>;

before(async () => {
  dir = writeFakeModelDir();
  const factory: BackendFactory = async (req) => {
    const b = new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes, maxBatchSize: 4 });
    if (req.variant === 'fold') engine = b;
    return b;
  };
  const config = loadConfig([], {
    MODELS_DIR: dir.root,
    VARIANT: 'fold',
    MAX_QUEUE_SIZE: '8',
    MAX_BATCH_SIZE: '4',
    INSTANCES: '1',
    MAX_QUEUE_DELAY_MS: '1',
    SELFTEST_RETRY_MS: '3600000',
  });
  const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
  service = new CoreInferenceService(repo, config);
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l: string) => l.length > 0),
      );
      cb();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  app = await buildApp(config, service, { loggerInstance: logger });
  server = await startGrpcServer(service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, logger);
  protos = loadProtos();
});
after(async () => {
  await app.close();
  await server.close(1000);
  await service.close();
  dir.remove();
});

const traceparent = (traceId: string) => `00-${traceId}-${randomBytes(8).toString('hex')}-01`;

interface Sent {
  api: string;
  traceId: string;
  outcome: string;
}

test('a 1,000-request overload burst: one line per request with its trace id, refusals at warn, no stack traces', async () => {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#444' } })
    .png()
    .toBuffer();
  const target = `127.0.0.1:${server.port}`;
  const classifier = new protos.classifier.swin.v1.Classifier(target, grpc.credentials.createInsecure());
  const kserve = new protos.kserve.inference.GRPCInferenceService(target, grpc.credentials.createInsecure());
  engine.delayMs = 5;
  lines = [];
  const grpcOutcome = (resolve: (s: string) => void) => (err: grpc.ServiceError | null) =>
    resolve(err ? `${grpc.status[err.code]} ${err.metadata.get('swin-code')[0]}` : 'OK');
  const one = async (i: number): Promise<Sent> => {
    const traceId = randomBytes(16).toString('hex');
    const tp = traceparent(traceId);
    const md = new grpc.Metadata();
    md.set('traceparent', tp);
    const deadline = Date.now() + 60_000;
    switch (i % 4) {
      case 0: {
        const r = await app.inject({
          method: 'POST',
          url: '/classify',
          headers: { 'content-type': 'image/png', traceparent: tp },
          payload: png,
        });
        return { api: 'http', traceId, outcome: r.statusCode === 200 ? 'OK' : `${r.statusCode} ${r.json().code}` };
      }
      case 1: {
        const payload = { inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: [png.toString('base64')] }] };
        const r = await app.inject({ method: 'POST', url: '/v2/models/fake/infer', headers: { traceparent: tp }, payload });
        return { api: 'kserve_http', traceId, outcome: r.statusCode === 200 ? 'OK' : `${r.statusCode} ${r.headers['swin-code']}` };
      }
      case 2:
        return {
          api: 'grpc',
          traceId,
          outcome: await new Promise<string>((res) => classifier.Predict({ images: [png] }, md, { deadline }, grpcOutcome(res))),
        };
      default: {
        const req = {
          model_name: 'fake',
          inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, 8, 8, 3] }],
          raw_input_contents: [Buffer.alloc(dir.imageBytes, 9)],
        };
        return {
          api: 'kserve_grpc',
          traceId,
          outcome: await new Promise<string>((res) => kserve.ModelInfer(req, md, { deadline }, grpcOutcome(res))),
        };
      }
    }
  };
  try {
    const sent = await Promise.all(Array.from({ length: 1000 }, (_, i) => one(i)));
    const outcomes: Record<string, number> = {};
    for (const s of sent) outcomes[`${s.api} ${s.outcome}`] = (outcomes[`${s.api} ${s.outcome}`] ?? 0) + 1;
    console.log(`# outcomes: ${JSON.stringify(outcomes)}`);
    for (const key of Object.keys(outcomes)) assert.match(key, /^\w+ (OK|503 SWIN_QUEUE_FULL|UNAVAILABLE SWIN_QUEUE_FULL)$/);
    const refused = sent.filter((s) => s.outcome !== 'OK').length;
    assert.ok(refused > 500, `only ${refused} of 1000 refused: the burst did not overload the queue`);

    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const requestLines = parsed.filter((j) => j.msg === 'request completed');
    // Nothing else was logged during the burst, and one line per request, found by its trace id.
    assert.deepEqual(
      parsed.filter((j) => j.msg !== 'request completed'),
      [],
    );
    assert.equal(requestLines.length, 1000);
    const byTrace = new Map(requestLines.map((j) => [j.trace_id, j]));
    for (const s of sent) {
      const j = byTrace.get(s.traceId);
      assert.ok(j, `no line for ${s.api} request ${s.traceId}`);
      assert.equal(j.api, s.api);
      assert.equal(j.code, s.outcome === 'OK' ? 'OK' : 'SWIN_QUEUE_FULL');
      assert.equal(j.level, s.outcome === 'OK' ? 30 : 40);
    }
    for (const l of lines) assert.doesNotMatch(l, /"stack"|"err"|\\n\s+at /, 'a stack trace was logged');
  } finally {
    classifier.close();
    kserve.close();
    engine.delayMs = 0;
  }

  // Our fault: one line at error level, with the error and its stack.
  lines = [];
  engine.mode = 'throw';
  try {
    const r = await app.inject({
      method: 'POST',
      url: '/classify',
      headers: { 'content-type': 'image/png', traceparent: traceparent('4bf92f3577b34da6a3ce929d0e0e4736') },
      payload: png,
    });
    assert.equal(r.statusCode, 500);
  } finally {
    engine.mode = 'ok';
  }
  const failed = lines.map((l) => JSON.parse(l)).filter((j) => j.msg === 'request completed');
  assert.equal(failed.length, 1);
  assert.deepEqual(
    {
      level: failed[0].level,
      code: failed[0].code,
      status: failed[0].status,
      trace_id: failed[0].trace_id,
      api: failed[0].api,
      url: failed[0].url,
      model: failed[0].model,
    },
    {
      level: 50,
      code: 'SWIN_INFERENCE_FAILED',
      status: 500,
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      api: 'http',
      url: '/classify',
      model: 'fake',
    },
  );
  assert.match(failed[0].err.stack, /\n\s+at /);
});
