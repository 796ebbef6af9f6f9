// KServe v2 REST on a fastify app with a fake InferenceService (fastify.inject).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import http from 'node:http';
import { registerKServeRoutes } from '../src/api/kserve/kserve-http.js';
import { registry } from '../src/observability/metrics.js';
import { FakeService, H, W, uniformImage } from './helpers/kserve-fake-service.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

async function appWith(service = new FakeService(), bodyLimit = 1 << 20): Promise<{ app: FastifyInstance; service: FakeService }> {
  const app = Fastify({ bodyLimit });
  registerKServeRoutes(app, service);
  await app.ready();
  return { app, service };
}

function closeTo(actual: number[], expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `length ${actual.length} vs ${expected.length}`);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tol, `element ${i}: ${a} vs ${expected[i]}`));
}

function softmax(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Binary tensor extension: JSON header, then the tensors. */
function binaryBody(header: object, ...blobs: Buffer[]): { payload: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    payload: Buffer.concat([json, ...blobs]),
    headers: { 'inference-header-content-length': String(json.length), 'content-type': 'application/octet-stream' },
  };
}

function splitBinaryReply(body: Buffer, headerLength: string): { json: any; rest: Buffer } {
  const n = Number(headerLength);
  return { json: JSON.parse(body.subarray(0, n).toString('utf8')), rest: body.subarray(n) };
}

const pixelsInput = (n: number, data: number[]) => ({ name: 'pixels', datatype: 'UINT8', shape: [n, H, W, 3], data });

test('health, server metadata, model metadata, readiness and config', async () => {
  const { app, service } = await appWith();
  assert.deepEqual((await app.inject('/v2/health/live')).json(), { live: true });
  let r = await app.inject('/v2/health/ready');
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), { ready: true });
  assert.deepEqual((await app.inject('/v2')).json(), {
    name: 'swin-serve',
    version: pkg.version,
    extensions: ['binary_tensor_data', 'classification', 'model_configuration', 'model_repository'],
  });
  const metadata = {
    name: 'fake',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [-1, H, W, 3] }],
    outputs: [
      { name: 'logits', datatype: 'FP32', shape: [-1, 3] },
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
    ],
  };
  assert.deepEqual((await app.inject('/v2/models/fake')).json(), metadata);
  assert.deepEqual((await app.inject('/v2/models/fake/versions/1')).json(), metadata);
  assert.deepEqual((await app.inject('/v2/models/fake/ready')).json(), { name: 'fake', ready: true });
  assert.deepEqual((await app.inject('/v2/models/fake/config')).json(), {
    name: 'fake',
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    max_batch_size: 8,
    input: [{ name: 'pixels', data_type: 'TYPE_UINT8', format: 'FORMAT_NHWC', dims: [H, W, 3] }],
    output: [
      { name: 'logits', data_type: 'TYPE_FP32', dims: [3] },
      { name: 'probabilities', data_type: 'TYPE_FP32', dims: [3] },
    ],
    dynamic_batching: { preferred_batch_size: [4, 8], max_queue_delay_microseconds: 2000 },
  });

  service.ready = false;
  r = await app.inject('/v2/health/ready');
  assert.equal(r.statusCode, 400);
  assert.deepEqual(r.json(), { ready: false });
  r = await app.inject('/v2/models/fake/versions/1/ready');
  assert.equal(r.statusCode, 400);
  assert.deepEqual(r.json(), { name: 'fake', ready: false });
  await app.close();
});

test('unknown model, unknown version and unknown route answer KServe error bodies', async () => {
  const { app } = await appWith();
  let r = await app.inject('/v2/models/nope');
  assert.equal(r.statusCode, 404);
  assert.equal(r.headers['swin-code'], 'SWIN_MODEL_NOT_FOUND');
  assert.deepEqual(r.json(), { error: 'Unknown model nope; loaded models: fake' });
  r = await app.inject('/v2/models/fake/versions/7/ready');
  assert.equal(r.statusCode, 404);
  assert.deepEqual(r.json(), { error: 'Model fake has no version 7; available: 1' });
  r = await app.inject({
    method: 'POST',
    url: '/v2/models/nope/infer',
    payload: { inputs: [pixelsInput(1, Array.from(uniformImage(1, 2, 3)))] },
  });
  assert.equal(r.statusCode, 404);
  assert.deepEqual(r.json(), { error: 'Unknown model nope; loaded models: fake' });
  r = await app.inject('/v2/nothing/here');
  assert.equal(r.statusCode, 404);
  assert.deepEqual(r.json(), { error: 'Route GET /v2/nothing/here not found' });
  await app.close();
});

test('JSON UINT8 [N,H,W,3] in, logits and probabilities out (nested or flat data)', async () => {
  const { app, service } = await appWith();
  const a = Array.from(uniformImage(100, 50, 20));
  const b = Array.from(uniformImage(0, 30, 90));
  const r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: { id: 'req-1', inputs: [{ ...pixelsInput(2, []), data: [a, b] }] },
  });
  assert.equal(r.statusCode, 200, r.body);
  const body = r.json();
  assert.equal(body.model_name, 'fake');
  assert.equal(body.model_version, '1');
  assert.equal(body.id, 'req-1');
  assert.deepEqual(
    body.outputs.map((o: any) => [o.name, o.datatype, o.shape]),
    [
      ['logits', 'FP32', [2, 3]],
      ['probabilities', 'FP32', [2, 3]],
    ],
  );
  closeTo(body.outputs[0].data, [10, 5, 2, 0, 3, 9], 1e-5);
  closeTo(body.outputs[1].data, [...softmax([10, 5, 2]), ...softmax([0, 3, 9])], 1e-6);
  assert.equal(service.calls.at(-1)?.opts.api, 'kserve_http');
  await app.close();
});

test('classification extension: top-k "value:index:label" of the requested output', async () => {
  const { app } = await appWith();
  const r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/versions/1/infer',
    payload: {
      inputs: [pixelsInput(1, Array.from(uniformImage(100, 50, 20)))],
      outputs: [
        { name: 'logits', parameters: { classification: 2 } },
        { name: 'probabilities', parameters: { classification: 1 } },
      ],
    },
  });
  assert.equal(r.statusCode, 200, r.body);
  const p = softmax([10, 5, 2])[0].toFixed(6);
  assert.deepEqual(r.json().outputs, [
    { name: 'logits', datatype: 'BYTES', shape: [1, 2], data: ['10.000000:0:red', '5.000000:1:green'] },
    { name: 'probabilities', datatype: 'BYTES', shape: [1, 1], data: [`${p}:0:red`] },
  ]);
  await app.close();
});

test('binary tensor extension: UINT8 in, FP32 and BYTES out as binary', async () => {
  const { app } = await appWith();
  const img = Buffer.from(uniformImage(0, 30, 90));
  const { payload, headers } = binaryBody(
    {
      inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, H, W, 3], parameters: { binary_data_size: img.length } }],
      outputs: [
        { name: 'logits', parameters: { binary_data: true } },
        { name: 'probabilities', parameters: { classification: 1, binary_data: true } },
      ],
    },
    img,
  );
  const r = await app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload, headers });
  assert.equal(r.statusCode, 200, r.body);
  const { json, rest } = splitBinaryReply(r.rawPayload, r.headers['inference-header-content-length'] as string);
  assert.deepEqual(json.outputs, [
    { name: 'logits', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } },
    { name: 'probabilities', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: rest.length - 12 } },
  ]);
  closeTo(Array.from(new Float32Array(rest.buffer.slice(rest.byteOffset, rest.byteOffset + 12))), [0, 3, 9], 1e-5);
  const label = rest.subarray(16).toString();
  assert.equal(rest.readUInt32LE(12), label.length);
  assert.equal(label, `${softmax([0, 3, 9])[2].toFixed(6)}:2:blue`);
  await app.close();
});

test('binary_data_output makes every output binary', async () => {
  const { app } = await appWith();
  const img = Buffer.from(uniformImage(100, 50, 20));
  const { payload, headers } = binaryBody(
    {
      parameters: { binary_data_output: true },
      inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, H, W, 3], parameters: { binary_data_size: img.length } }],
    },
    img,
  );
  const r = await app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload, headers });
  assert.equal(r.statusCode, 200, r.body);
  const { json, rest } = splitBinaryReply(r.rawPayload, r.headers['inference-header-content-length'] as string);
  assert.deepEqual(
    json.outputs.map((o: any) => o.parameters),
    [{ binary_data_size: 12 }, { binary_data_size: 12 }],
  );
  assert.equal(rest.length, 24);
  await app.close();
});

test('BYTES input: encoded images as base64 in JSON and length-prefixed in binary', async () => {
  const { app, service } = await appWith();
  const enc = [Buffer.from('rgb:100,50,20'), Buffer.from('rgb:0,30,90')];
  let r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: {
      inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [2], data: enc.map((b) => b.toString('base64')) }],
      outputs: [{ name: 'logits' }],
    },
  });
  assert.equal(r.statusCode, 200, r.body);
  closeTo(r.json().outputs[0].data, [10, 5, 2, 0, 3, 9], 1e-5);
  assert.deepEqual(
    service.calls.map((c) => c.method),
    ['preprocess', 'inferTensor'],
  );

  const blob = Buffer.concat(
    enc.flatMap((b) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return [len, b];
    }),
  );
  const { payload, headers } = binaryBody(
    {
      inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [2, 1], parameters: { binary_data_size: blob.length } }],
      outputs: [{ name: 'logits', parameters: { classification: 1 } }],
    },
    blob,
  );
  r = await app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload, headers });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json().outputs[0].data, ['10.000000:0:red', '9.000000:2:blue']);

  r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: { inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: ['not an image!'] }] },
  });
  assert.equal(r.statusCode, 400);
  assert.deepEqual(r.json(), { error: "Image 0 of input 'pixels' is not valid base64" });
  r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: { inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: [Buffer.from('jpeg?').toString('base64')] }] },
  });
  assert.equal(r.statusCode, 400);
  assert.equal(r.headers['swin-code'], 'SWIN_IMAGE_DECODE_FAILED');
  await app.close();
});

test('bad tensors and requests get 400 with a message that says what is wrong', async () => {
  const { app } = await appWith();
  const cases: Array<[object, string]> = [
    [
      { inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, 5, W, 3], data: [] }] },
      "Bad input tensor: input 'pixels' has shape [1,5,4,3]; model fake takes UINT8 [N,4,4,3] (RGB NHWC) or BYTES [N] (encoded images)",
    ],
    [
      { inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, H, W, 3], data: [] }] },
      "Bad input tensor: input 'pixels' has datatype FP32; model fake takes UINT8 [N,4,4,3] (RGB NHWC) or BYTES [N] (encoded images)",
    ],
    [{ inputs: [pixelsInput(1, [1, 2, 3])] }, "Bad input tensor: input 'pixels' with shape [1,4,4,3] needs 48 bytes of UINT8 data, got 3"],
    [{ inputs: [pixelsInput(1, Array(48).fill(256))] }, "Bad input tensor: input 'pixels': UINT8 element 0 is 256, not an integer 0..255"],
    [{ inputs: [{ ...pixelsInput(1, []), name: 'image' }] }, "Bad input tensor: unknown input 'image'; model fake takes 'pixels'"],
    [
      { inputs: [pixelsInput(1, Array(48).fill(0)), pixelsInput(1, Array(48).fill(0))] },
      "Bad input tensor: model fake takes exactly one input, 'pixels'; the request has 2",
    ],
    [
      { inputs: [pixelsInput(1, Array(48).fill(0))], outputs: [{ name: 'scores' }] },
      "Bad request: unknown output 'scores'; model fake gives 'logits', 'probabilities'",
    ],
    [
      { inputs: [pixelsInput(1, Array(48).fill(0))], outputs: [{ name: 'logits', parameters: { classification: 4 } }] },
      "Bad request: output 'logits': classification must be an integer from 1 to 3, got 4",
    ],
    [{ inputs: [] }, 'Bad request: the inference request needs a non-empty "inputs" array'],
    [
      { inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [65], data: Array(65).fill('cmdiOjEsMiwz') }] },
      'At most 64 images per request, got 65',
    ],
  ];
  for (const [payload, error] of cases) {
    const r = await app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload });
    assert.equal(r.statusCode, 400, JSON.stringify(payload).slice(0, 120));
    assert.deepEqual(r.json(), { error });
  }
  const r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: '{"inputs": [',
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(r.statusCode, 400);
  assert.match(r.json().error, /^Bad request: the inference request header is not valid JSON/);
  const bad = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: Buffer.from('{}xyz'),
    headers: { 'inference-header-content-length': '99' },
  });
  assert.equal(bad.statusCode, 400);
  assert.deepEqual(bad.json(), { error: 'Bad request: Inference-Header-Content-Length "99" is not a length within the 5-byte body' });
  await app.close();
});

test('a body over the limit is 413 with the limit in the message', async () => {
  const { app } = await appWith(new FakeService(), 2000);
  const r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: { inputs: [pixelsInput(100, Array(100 * 48).fill(7))] },
  });
  assert.equal(r.statusCode, 413);
  assert.deepEqual(r.json(), { error: 'Request body larger than 2000 bytes' });
  await app.close();
});

test('parameters priority and timeout (microseconds) reach the queue policy; a request past its timeout never runs', async () => {
  const service = new FakeService();
  service.delayMs = 500;
  const { app } = await appWith(service);
  const r = await app.inject({
    method: 'POST',
    url: '/v2/models/fake/infer',
    payload: { parameters: { timeout: 50_000, priority: 1 }, inputs: [pixelsInput(1, Array(48).fill(0))] },
  });
  assert.equal(r.statusCode, 504);
  assert.equal(r.headers['swin-code'], 'SWIN_DEADLINE_EXCEEDED');
  const call = service.calls.at(-1)!;
  assert.deepEqual([call.opts.timeoutMs, call.opts.priority], [50, 1]);
  assert.equal(call.ran, false);
  for (const [parameters, error] of [
    [{ priority: -1 }, "Bad request: parameter priority must be a whole number (1 runs first; 0 or absent: the model's default), got -1"],
    [
      { timeout: 'soon' },
      'Bad request: parameter timeout (microseconds) must be a number >= 0 (0 or absent: the model\'s default), got "soon"',
    ],
  ] as const) {
    const bad = await app.inject({
      method: 'POST',
      url: '/v2/models/fake/infer',
      payload: { parameters, inputs: [pixelsInput(1, Array(48).fill(0))] },
    });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(bad.json(), { error });
  }
  await app.close();
});

test('a client that goes away aborts its queued request', async () => {
  const service = new FakeService();
  service.delayMs = 5000;
  const { app } = await appWith(service);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as import('node:net').AddressInfo;
  const body = JSON.stringify({ inputs: [pixelsInput(1, Array(48).fill(0))] });
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/v2/models/fake/infer',
    headers: { 'content-type': 'application/json' },
  });
  req.on('error', () => {});
  req.end(body);
  for (let i = 0; i < 100 && service.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(service.calls.length, 1, 'the request never reached the service');
  req.destroy();
  for (let i = 0; i < 100 && !service.calls[0].aborted; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(service.calls[0].aborted, true, 'the service never saw the abort');
  assert.equal(service.calls[0].ran, false);
  await app.close();
});

test('infer requests are counted in swin_requests_total by api, model and code', async () => {
  const { app } = await appWith();
  const count = async (code: string) => {
    const m = await registry.getSingleMetric('swin_requests_total')!.get();
    return m.values.find((v) => v.labels.api === 'kserve_http' && v.labels.model === 'fake' && v.labels.code === code)?.value ?? 0;
  };
  const ok0 = await count('OK');
  const bad0 = await count('SWIN_BAD_TENSOR');
  await app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload: { inputs: [pixelsInput(1, Array(48).fill(0))] } });
  await app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload: { inputs: [pixelsInput(1, [1])] } });
  assert.equal(await count('OK'), ok0 + 1);
  assert.equal(await count('SWIN_BAD_TENSOR'), bad0 + 1);
  await app.close();
});

test('unknown model names share the "unknown" metrics label', async () => {
  const { app } = await appWith();
  const count = async (model: string) => {
    const m = await registry.getSingleMetric('swin_requests_total')!.get();
    return m.values.filter((v) => v.labels.api === 'kserve_http' && v.labels.model === model).reduce((a, v) => a + v.value, 0);
  };
  const unknown0 = await count('unknown');
  await app.inject({ method: 'POST', url: '/v2/models/random-name-123/infer', payload: { inputs: [pixelsInput(1, Array(48).fill(0))] } });
  assert.equal(await count('unknown'), unknown0 + 1);
  assert.equal(await count('random-name-123'), 0);
  await app.close();
});
