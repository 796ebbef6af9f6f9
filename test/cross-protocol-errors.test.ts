// One answer per question: the same bad request sent through POST /classify, KServe REST
// (/v2/models/<m>/infer), gRPC swin.v1.Classifier/Predict and KServe gRPC ModelInfer gets
// the same stable code, and the HTTP and gRPC statuses the error table gives that code.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import sharp from 'sharp';
import type { ClassifierClient } from '../src/generated/swin/v1/Classifier.js';
import type { GRPCInferenceServiceClient } from '../src/generated/inference/GRPCInferenceService.js';
import { ERRORS, type ErrorCode } from '../src/errors.js';
import { startGrpcServer, type GrpcServerHandle } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { STATUS_DETAILS_KEY, decodeStatusDetails } from '../src/api/grpc/status-details.js';
import { fakeService, type FakeService } from './helpers/fake-service.js';

let svc: FakeService;
let grpcServer: GrpcServerHandle;
let classifier: ClassifierClient;
let kserve: GRPCInferenceServiceClient;
let png: Buffer;
const MODEL = 'fake';
const MAX_IMAGES = 3;

before(async () => {
  svc = await fakeService({ env: { MAX_IMAGES_PER_REQUEST: String(MAX_IMAGES) } });
  grpcServer = await startGrpcServer(svc.service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, pino({ level: 'silent' }));
  const protos = loadProtos();
  const target = `127.0.0.1:${grpcServer.port}`;
  classifier = new protos.classifier.swin.v1.Classifier(target, grpc.credentials.createInsecure());
  kserve = new protos.kserve.inference.GRPCInferenceService(target, grpc.credentials.createInsecure());
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .png()
    .toBuffer();
});

after(async () => {
  classifier.close();
  kserve.close();
  await grpcServer.close(1000);
  await svc.close();
});

/** One bad request, said in each protocol's terms. */
interface BadRequest {
  model?: string;
  variant?: string;
  images: Buffer[];
}

interface Answer {
  protocol: string;
  status: number | string;
  code: string | undefined;
}

async function viaClassify(r: BadRequest): Promise<Answer> {
  const q = new URLSearchParams();
  if (r.model) q.set('model', r.model);
  if (r.variant) q.set('variant', r.variant);
  const res = await svc.app.inject({
    method: 'POST',
    url: `/classify?${q}`,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ images: r.images.map((b) => b.toString('base64')) }),
  });
  return { protocol: 'POST /classify', status: res.statusCode, code: res.json().code };
}

async function viaKserveRest(r: BadRequest): Promise<Answer> {
  const res = await svc.app.inject({
    method: 'POST',
    url: `/v2/models/${r.model ?? MODEL}/infer`,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({
      inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [r.images.length], data: r.images.map((b) => b.toString('base64')) }],
      ...(r.variant ? { parameters: { variant: r.variant } } : {}),
    }),
  });
  return { protocol: 'KServe REST', status: res.statusCode, code: res.headers['swin-code'] as string | undefined };
}

function grpcAnswer(protocol: string, call: (cb: (err: grpc.ServiceError | null) => void) => void): Promise<Answer> {
  return new Promise((resolve) =>
    call((err) => {
      if (!err) return resolve({ protocol, status: 'OK', code: undefined });
      const [bin] = err.metadata.get(STATUS_DETAILS_KEY);
      const reason = Buffer.isBuffer(bin) ? decodeStatusDetails(bin).errorInfo?.reason : undefined;
      resolve({ protocol, status: grpc.status[err.code], code: reason });
    }),
  );
}

function viaPredict(r: BadRequest): Promise<Answer> {
  return grpcAnswer('gRPC Predict', (cb) => classifier.Predict({ images: r.images, model: r.model ?? '', variant: r.variant ?? '' }, cb));
}

function viaModelInfer(r: BadRequest): Promise<Answer> {
  return grpcAnswer('KServe gRPC ModelInfer', (cb) =>
    kserve.ModelInfer(
      {
        model_name: r.model ?? MODEL,
        inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [r.images.length], contents: { bytes_contents: r.images } }],
        parameters: r.variant ? { variant: { string_param: r.variant } } : {},
      },
      cb,
    ),
  );
}

async function expectEverywhere(r: BadRequest, code: ErrorCode): Promise<void> {
  const answers = await Promise.all([viaClassify(r), viaKserveRest(r), viaPredict(r), viaModelInfer(r)]);
  const want = ERRORS[code];
  const expected = answers.map((a) => ({
    protocol: a.protocol,
    status: a.protocol.startsWith('KServe gRPC') || a.protocol.startsWith('gRPC') ? grpc.status[want.grpcStatus] : want.httpStatus,
    code,
  }));
  assert.deepEqual(answers, expected);
}

test('a good request succeeds on all four protocols (the harness itself works)', async () => {
  const answers = await Promise.all([viaPredict({ images: [png] }), viaModelInfer({ images: [png] })]);
  assert.deepEqual(
    answers.map((a) => a.status),
    ['OK', 'OK'],
  );
  for (const via of [viaClassify, viaKserveRest]) assert.equal((await via({ images: [png] })).status, 200);
});

test('unknown variant: SWIN_VARIANT_NOT_FOUND (404 / NOT_FOUND) on every protocol', async () => {
  await expectEverywhere({ variant: 'sideways', images: [png] }, 'SWIN_VARIANT_NOT_FOUND');
});

test('unknown model: SWIN_MODEL_NOT_FOUND on every protocol', async () => {
  await expectEverywhere({ model: 'no-such-model', images: [png] }, 'SWIN_MODEL_NOT_FOUND');
});

test('bytes of no image format: SWIN_UNSUPPORTED_MEDIA_TYPE on every protocol', async () => {
  await expectEverywhere({ images: [Buffer.from('definitely not a PNG or JPEG')] }, 'SWIN_UNSUPPORTED_MEDIA_TYPE');
});

test('a PNG cut short: SWIN_IMAGE_DECODE_FAILED on every protocol', async () => {
  await expectEverywhere({ images: [png.subarray(0, 40)] }, 'SWIN_IMAGE_DECODE_FAILED');
});

test('more images than the server takes: SWIN_TOO_MANY_IMAGES on every protocol', async () => {
  await expectEverywhere({ images: Array.from({ length: MAX_IMAGES + 1 }, () => png) }, 'SWIN_TOO_MANY_IMAGES');
});
