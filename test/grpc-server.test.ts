// The gRPC server over real loopback calls, with a fake InferenceService:
// swin.v1.Classifier/Predict, inference.GRPCInferenceService, health,
// reflection, and the failure cases (status, message, google.rpc.Status details
// and the deprecated swin-code trailer).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { pino } from 'pino';
import type { ClassifierClient } from '../src/generated/swin/v1/Classifier.js';
import type { GRPCInferenceServiceClient } from '../src/generated/inference/GRPCInferenceService.js';
import { startGrpcServer, type GrpcServerHandle } from '../src/api/grpc/grpc-server.js';
import { LOADER_OPTIONS, loadProtos } from '../src/api/grpc/protos.js';
import { STATUS_DETAILS_KEY, decodeStatusDetails } from '../src/api/grpc/status-details.js';
import { FakeService, H, W, uniformImage } from './helpers/kserve-fake-service.js';

const MAX_MESSAGE = 64 * 1024;
const service = new FakeService();
let server: GrpcServerHandle;
let classifier: ClassifierClient;
let kserve: GRPCInferenceServiceClient;
let target: string;

before(async () => {
  server = await startGrpcServer(
    service,
    { host: '127.0.0.1', port: 0, maxMessageBytes: MAX_MESSAGE, healthPollMs: 20 },
    pino({ level: 'silent' }),
  );
  target = `127.0.0.1:${server.port}`;
  const protos = loadProtos();
  const creds = grpc.credentials.createInsecure();
  // The client may send more than the server accepts, to test the server's limit.
  const clientOpts = { 'grpc.max_send_message_length': 16 << 20 };
  classifier = new protos.classifier.swin.v1.Classifier(target, creds, clientOpts);
  kserve = new protos.kserve.inference.GRPCInferenceService(target, creds, clientOpts);
});

after(async () => {
  classifier.close();
  kserve.close();
  await server.close(1000);
});

type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;

/** Promise of a unary call; rejects with the ServiceError. */
function call<T>(fn: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res as T))));
}

async function expectStatus(
  p: Promise<unknown>,
  code: grpc.status,
  details: string | RegExp,
  swinCode?: string,
): Promise<grpc.ServiceError> {
  const err = await p.then(
    () => assert.fail('the call succeeded'),
    (e: grpc.ServiceError) => e,
  );
  assert.equal(err.code, code, `status ${grpc.status[err.code]} (${err.details}), expected ${grpc.status[code]}`);
  if (typeof details === 'string') assert.equal(err.details, details);
  else assert.match(err.details, details);
  if (swinCode) {
    assert.deepEqual(err.metadata.get('swin-code'), [swinCode]);
    // The standard error model says the same: status, message, and our code as ErrorInfo.reason.
    const [bin] = err.metadata.get(STATUS_DETAILS_KEY);
    assert.ok(Buffer.isBuffer(bin), `no ${STATUS_DETAILS_KEY} trailer`);
    assert.deepEqual(decodeStatusDetails(bin), {
      code,
      message: err.details,
      errorInfo: { reason: swinCode, domain: 'swin-serve', metadata: {} },
    });
  }
  return err;
}

const img = (r: number, g: number, b: number) => Buffer.from(`rgb:${r},${g},${b}`);

test('Predict: per-image top-k with model, variant, backend and timings', async () => {
  const res = await call<any>((cb) => classifier.Predict({ images: [img(100, 50, 20), img(0, 30, 90)], model: 'fake', top_k: 2 }, cb));
  assert.equal(res.model, 'fake');
  assert.equal(res.variant, 'fold');
  assert.equal(res.backend, 'onnxruntime');
  assert.deepEqual(res.timings, { preprocess_ms: 1, queue_ms: 2, inference_ms: 3, total_ms: 6 });
  assert.deepEqual(
    res.predictions.map((p: any) => p.classes.map((c: any) => [c.label, c.index])),
    [
      [
        ['red', 0],
        ['green', 1],
      ],
      [
        ['blue', 2],
        ['green', 1],
      ],
    ],
  );
  const s = res.predictions[0].classes[0].score;
  assert.ok(Math.abs(s - 1 / (1 + Math.exp(-5) + Math.exp(-8))) < 1e-6, `score ${s}`);
  const opts = service.calls.at(-1)!.opts;
  assert.equal(opts.api, 'grpc');
  assert.equal(opts.topK, 2);
  // top_k 0 and an empty model mean the server's defaults.
  await call<any>((cb) => classifier.Predict({ images: [img(1, 2, 3)] }, cb));
  assert.equal(service.calls.at(-1)!.opts.topK, undefined);
  assert.deepEqual([service.calls.at(-1)!.opts.priority, service.calls.at(-1)!.opts.timeoutMs], [undefined, undefined]);
  // priority and timeout_ms reach the queue policy (0 = the model's defaults).
  await call<any>((cb) => classifier.Predict({ images: [img(1, 2, 3)], priority: 1, timeout_ms: 250 }, cb));
  assert.deepEqual([service.calls.at(-1)!.opts.priority, service.calls.at(-1)!.opts.timeoutMs], [1, 250]);
});

test('Predict errors: no image, unknown model, bad variant, bad top_k, undecodable image', async () => {
  await expectStatus(
    call((cb) => classifier.Predict({ images: [] }, cb)),
    grpc.status.INVALID_ARGUMENT,
    'The request carries no image: send the image bytes as the body, a multipart file, or base64 in JSON',
    'SWIN_EMPTY_BODY',
  );
  await expectStatus(
    call((cb) => classifier.Predict({ images: [img(1, 2, 3)], model: 'resnet' }, cb)),
    grpc.status.NOT_FOUND,
    'Unknown model resnet; loaded models: fake',
    'SWIN_MODEL_NOT_FOUND',
  );
  await expectStatus(
    call((cb) => classifier.Predict({ images: [img(1, 2, 3)], variant: 'fp16' }, cb)),
    grpc.status.NOT_FOUND,
    /^Model \S+ has no variant "fp16"; available: fold, unfold$/,
    'SWIN_VARIANT_NOT_FOUND',
  );
  await expectStatus(
    call((cb) => classifier.Predict({ images: [img(1, 2, 3)], top_k: 9 }, cb)),
    grpc.status.INVALID_ARGUMENT,
    'top_k must be an integer from 1 to 3, got 9',
    'SWIN_BAD_TOP_K',
  );
  await expectStatus(
    call((cb) => classifier.Predict({ images: [Buffer.from('GIF89a')] }, cb)),
    grpc.status.INVALID_ARGUMENT,
    'Image 0 could not be decoded: not a fake rgb: image',
    'SWIN_IMAGE_DECODE_FAILED',
  );
});

test('KServe: live, ready, server and model metadata, model config', async () => {
  assert.deepEqual(await call((cb) => kserve.ServerLive({}, cb)), { live: true });
  assert.deepEqual(await call((cb) => kserve.ServerReady({}, cb)), { ready: true });
  assert.deepEqual(await call((cb) => kserve.ModelReady({ name: 'fake' }, cb)), { ready: true });
  const meta: any = await call((cb) => kserve.ServerMetadata({}, cb));
  assert.equal(meta.name, 'swin-serve');
  assert.deepEqual(meta.extensions, ['binary_tensor_data', 'classification', 'model_configuration', 'model_repository']);
  assert.deepEqual(await call((cb) => kserve.ModelMetadata({ name: 'fake', version: '1' }, cb)), {
    name: 'fake',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [-1, H, W, 3] }],
    outputs: [
      { name: 'logits', datatype: 'FP32', shape: [-1, 3] },
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
    ],
  });
  const cfg: any = await call((cb) => kserve.ModelConfig({ name: 'fake' }, cb));
  assert.equal(cfg.config.max_batch_size, 8);
  assert.deepEqual(cfg.config.input, [{ name: 'pixels', data_type: 'TYPE_UINT8', format: 'FORMAT_NHWC', dims: [H, W, 3] }]);
  assert.deepEqual(cfg.config.dynamic_batching, { preferred_batch_size: [4, 8], max_queue_delay_microseconds: 2000 });
  await expectStatus(
    call((cb) => kserve.ModelMetadata({ name: 'fake', version: '2' }, cb)),
    grpc.status.NOT_FOUND,
    'Model fake has no version 2; available: 1',
    'SWIN_MODEL_VERSION_NOT_FOUND',
  );
  await expectStatus(
    call((cb) => kserve.ModelReady({ name: 'nope' }, cb)),
    grpc.status.NOT_FOUND,
    'Unknown model nope; loaded models: fake',
    'SWIN_MODEL_NOT_FOUND',
  );
});

const u8Input = (n: number) => ({ name: 'pixels', datatype: 'UINT8', shape: [n, H, W, 3] });

test('ModelInfer: UINT8 via raw_input_contents and typed contents; raw FP32 and BYTES outputs', async () => {
  const pixels = Buffer.concat([uniformImage(100, 50, 20), uniformImage(0, 30, 90)]);
  const res: any = await call((cb) =>
    kserve.ModelInfer(
      {
        model_name: 'fake',
        id: 'abc',
        inputs: [u8Input(2)],
        raw_input_contents: [pixels],
        outputs: [{ name: 'logits' }, { name: 'probabilities', parameters: { classification: { int64_param: 2 } } }],
      },
      cb,
    ),
  );
  assert.equal(res.id, 'abc');
  assert.equal(res.model_version, '1');
  assert.deepEqual(
    res.outputs.map((o: any) => [o.name, o.datatype, o.shape]),
    [
      ['logits', 'FP32', [2, 3]],
      ['probabilities', 'BYTES', [2, 2]],
    ],
  );
  const raw: Buffer = res.raw_output_contents[0];
  assert.deepEqual(
    Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length))).map((v) => Math.round(v * 1e4) / 1e4),
    [10, 5, 2, 0, 3, 9],
  );
  const strings: string[] = [];
  const b: Buffer = res.raw_output_contents[1];
  for (let off = 0; off < b.length; off += 4 + b.readUInt32LE(off))
    strings.push(b.subarray(off + 4, off + 4 + b.readUInt32LE(off)).toString());
  assert.deepEqual(
    strings.map((s) => s.split(':').slice(1).join(':')),
    ['0:red', '1:green', '2:blue', '1:green'],
  );

  const typed: any = await call((cb) =>
    kserve.ModelInfer(
      {
        model_name: 'fake',
        inputs: [{ ...u8Input(1), contents: { uint_contents: Array.from(uniformImage(0, 30, 90)) } }],
        outputs: [{ name: 'logits' }],
      },
      cb,
    ),
  );
  const t: Buffer = typed.raw_output_contents[0];
  assert.deepEqual(
    Array.from(new Float32Array(t.buffer.slice(t.byteOffset, t.byteOffset + t.length))).map((v) => Math.round(v * 1e4) / 1e4),
    [0, 3, 9],
  );
  assert.equal(service.calls.at(-1)!.opts.api, 'kserve_grpc');
});

test('ModelInfer: BYTES input (encoded images) in bytes_contents', async () => {
  const res: any = await call((cb) =>
    kserve.ModelInfer(
      {
        model_name: 'fake',
        inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [img(100, 50, 20)] } }],
        outputs: [{ name: 'logits', parameters: { classification: { int64_param: 1 } } }],
      },
      cb,
    ),
  );
  const b: Buffer = res.raw_output_contents[0];
  assert.equal(b.subarray(4).toString(), '10.000000:0:red');
});

test('ModelInfer errors: wrong shape, wrong datatype, unknown model, unknown output, raw/inputs mismatch', async () => {
  const px = Buffer.from(uniformImage(1, 2, 3));
  await expectStatus(
    call((cb) => kserve.ModelInfer({ model_name: 'fake', inputs: [{ ...u8Input(1), shape: [1, 8, 8, 3] }], raw_input_contents: [px] }, cb)),
    grpc.status.INVALID_ARGUMENT,
    "Bad input tensor: input 'pixels' has shape [1,8,8,3]; model fake takes UINT8 [N,4,4,3] (RGB NHWC) or BYTES [N] (encoded images)",
    'SWIN_BAD_TENSOR',
  );
  await expectStatus(
    call((cb) => kserve.ModelInfer({ model_name: 'fake', inputs: [{ ...u8Input(1), datatype: 'FP32' }], raw_input_contents: [px] }, cb)),
    grpc.status.INVALID_ARGUMENT,
    "Bad input tensor: input 'pixels' has datatype FP32; model fake takes UINT8 [N,4,4,3] (RGB NHWC) or BYTES [N] (encoded images)",
    'SWIN_BAD_TENSOR',
  );
  await expectStatus(
    call((cb) => kserve.ModelInfer({ model_name: 'fake', inputs: [u8Input(2)], raw_input_contents: [px] }, cb)),
    grpc.status.INVALID_ARGUMENT,
    "Bad input tensor: input 'pixels' with shape [2,4,4,3] needs 96 bytes of UINT8 data, got 48",
    'SWIN_BAD_TENSOR',
  );
  await expectStatus(
    call((cb) => kserve.ModelInfer({ model_name: 'swin-huge', inputs: [u8Input(1)], raw_input_contents: [px] }, cb)),
    grpc.status.NOT_FOUND,
    'Unknown model swin-huge; loaded models: fake',
    'SWIN_MODEL_NOT_FOUND',
  );
  await expectStatus(
    call((cb) =>
      kserve.ModelInfer({ model_name: 'fake', inputs: [u8Input(1)], raw_input_contents: [px], outputs: [{ name: 'embeddings' }] }, cb),
    ),
    grpc.status.INVALID_ARGUMENT,
    "Bad request: unknown output 'embeddings'; model fake gives 'logits', 'probabilities'",
    'SWIN_BAD_REQUEST',
  );
  await expectStatus(
    call((cb) => kserve.ModelInfer({ model_name: 'fake', inputs: [u8Input(1), u8Input(1)], raw_input_contents: [px] }, cb)),
    grpc.status.INVALID_ARGUMENT,
    'Bad input tensor: raw_input_contents has 1 entries for 2 inputs; use it for every input or for none',
    'SWIN_BAD_TENSOR',
  );
});

test('a message over maxMessageBytes is RESOURCE_EXHAUSTED and never reaches the service', async () => {
  const before = service.calls.length;
  const n = 2000; // 2000 x 48 bytes = 96 KB > 64 KiB
  await expectStatus(
    call((cb) => kserve.ModelInfer({ model_name: 'fake', inputs: [u8Input(n)], raw_input_contents: [Buffer.alloc(n * 48)] }, cb)),
    grpc.status.RESOURCE_EXHAUSTED,
    /Received message larger than max \(\d+ vs 65536\)/,
  );
  await expectStatus(
    call((cb) => classifier.Predict({ images: [Buffer.alloc(70_000)] }, cb)),
    grpc.status.RESOURCE_EXHAUSTED,
    /larger than max/,
  );
  assert.equal(service.calls.length, before);
});

test('the call deadline reaches the service; an expired request leaves the queue and never runs', async () => {
  service.delayMs = 2000;
  try {
    const deadline = Date.now() + 150;
    const started = Date.now();
    const err = await expectStatus(
      call((cb) => classifier.Predict({ images: [img(1, 2, 3)] }, new grpc.Metadata(), { deadline }, cb)),
      grpc.status.DEADLINE_EXCEEDED,
      /Deadline exceeded|deadline/i,
    );
    assert.ok(Date.now() - started < 1500, `the call took ${Date.now() - started} ms`);
    assert.ok(err);
    const rec = service.calls.at(-1)!;
    // grpc-timeout carries the time left when the call was sent; the server adds it to its
    // own clock on receipt, so its deadline trails the client's by the transit time.
    const skew = rec.opts.deadline! - deadline;
    assert.ok(skew > -5 && skew < 500, `service deadline off by ${skew} ms`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rec.ran, false, 'the request ran after its deadline');

    const inferDeadline = Date.now() + 150;
    await expectStatus(
      call((cb) =>
        kserve.ModelInfer(
          { model_name: 'fake', inputs: [u8Input(1)], raw_input_contents: [Buffer.from(uniformImage(1, 2, 3))] },
          new grpc.Metadata(),
          { deadline: inferDeadline },
          cb,
        ),
      ),
      grpc.status.DEADLINE_EXCEEDED,
      /deadline/i,
    );
    const inferRec = service.calls.at(-1)!;
    assert.equal(inferRec.method, 'inferTensor');
    const inferSkew = inferRec.opts.deadline! - inferDeadline;
    assert.ok(inferSkew > -5 && inferSkew < 500, `service deadline off by ${inferSkew} ms`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(inferRec.ran, false);
  } finally {
    service.delayMs = 0;
  }
});

test('a cancelled call aborts the request in the service', async () => {
  service.delayMs = 2000;
  try {
    const before = service.calls.length;
    const p = new Promise<grpc.ServiceError>((resolve) => {
      const c = classifier.Predict({ images: [img(1, 2, 3)] }, (err) => resolve(err!));
      setTimeout(() => c.cancel(), 100);
    });
    const err = await p;
    assert.equal(err.code, grpc.status.CANCELLED);
    // The server learns of the RST_STREAM shortly after.
    for (let i = 0; i < 50 && !service.calls[before]?.aborted; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(service.calls[before].aborted, true, 'the service never saw the abort');
    assert.equal(service.calls[before].ran, false);
  } finally {
    service.delayMs = 0;
  }
});

test('grpc.health.v1 follows service readiness', async () => {
  const def = loadSync(healthProtoPath, LOADER_OPTIONS);
  const Health = grpc.loadPackageDefinition(def).grpc as any;
  const health = new Health.health.v1.Health(target, grpc.credentials.createInsecure());
  try {
    assert.deepEqual(await call((cb) => health.Check({ service: '' }, cb)), { status: 'SERVING' });
    assert.deepEqual(await call((cb) => health.Check({ service: 'inference.GRPCInferenceService' }, cb)), { status: 'SERVING' });
    service.ready = false;
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await call((cb) => health.Check({ service: 'swin.v1.Classifier' }, cb)), { status: 'NOT_SERVING' });
    await expectStatus(
      call((cb) => health.Check({ service: 'nope.Service' }, cb)),
      grpc.status.NOT_FOUND,
      /.*/,
    );
  } finally {
    service.ready = true;
    health.close();
  }
});

test('server reflection lists our services and describes them', async () => {
  const require = createRequire(import.meta.url);
  const reflectionProto = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
  const def = loadSync(reflectionProto, LOADER_OPTIONS);
  const Reflection = (grpc.loadPackageDefinition(def) as any).grpc.reflection.v1.ServerReflection;
  const client = new Reflection(target, grpc.credentials.createInsecure());
  try {
    const ask = (req: object) =>
      new Promise<any>((resolve, reject) => {
        const stream = client.ServerReflectionInfo();
        stream.on('data', (res: any) => {
          resolve(res);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(req);
      });
    const list = await ask({ list_services: '' });
    const names = list.list_services_response.service.map((s: any) => s.name).sort();
    for (const s of ['grpc.health.v1.Health', 'inference.GRPCInferenceService', 'swin.v1.Classifier'])
      assert.ok(names.includes(s), `${s} missing from ${names}`);
    const file = await ask({ file_containing_symbol: 'swin.v1.Classifier' });
    assert.ok(file.file_descriptor_response.file_descriptor_proto.length > 0);
  } finally {
    client.close();
  }
});
