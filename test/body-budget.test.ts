// Memory of request bodies (issue 15): BODY_MEMORY_BUDGET_BYTES bounds the
// bytes of bodies in flight (503 SWIN_MEMORY_BUDGET with Retry-After beyond
// it, charged before the body is read), and KServe JSON UINT8 data is read
// straight into bytes (src/api/kserve/json-uint8-data.ts) instead of JS arrays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildApp } from '../src/api/http/app.js';
import { BodyBudget } from '../src/api/body-budget.js';
import { bodyCharge } from '../src/api/http/body-budget.js';
import { PLACEHOLDER, extractUint8Data } from '../src/api/kserve/json-uint8-data.js';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { ClassifierClient } from '../src/generated/swin/v1/Classifier.js';
import { grpcBodyBudgetInterceptor, messageBytes } from '../src/api/grpc/grpc-body-budget.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { fakeService } from './helpers/fake-service.js';
import { FakeService } from './helpers/kserve-fake-service.js';

/** JSON.parse of the extracted text, with the placeholders put back as flat number arrays. */
function viaExtract(json: string): unknown {
  const { text, arrays } = extractUint8Data(Buffer.from(json), 0);
  return JSON.parse(text, (_k, v) =>
    typeof v === 'string' && v.startsWith(PLACEHOLDER) ? Array.from(arrays[Number(v.slice(PLACEHOLDER.length))]) : v,
  );
}

/** JSON.parse with every "data" array flattened, as parseInferBody flattens it. */
function viaParse(json: string): unknown {
  return JSON.parse(json, (k, v) => (k === 'data' && Array.isArray(v) ? v.flat(Infinity) : v));
}

test('UINT8 data arrays read from the bytes equal what JSON.parse gives; anything else is left to JSON.parse', () => {
  const cases = [
    '{"inputs":[{"name":"pixels","data":[[[1,2,3],[4,5,6]],[[0,255,7],[8,9,10]]]}]}',
    '{ "data" : [ 1 , 2 ,\n 3 ] , "x": "data" }',
    '{"id":"\\"data\\": [1,2]","inputs":[{"data":[]}]}',
    '{"inputs":[{"data":[1.5,2]},{"data":[-1,2]},{"data":[256]},{"data":[1e2]},{"data":["a"]},{"data":[[1],[2,[3]]]}]}',
    '{"a":{"data":[7]},"data":[0,0,0]}',
  ];
  for (const json of cases) assert.deepEqual(viaExtract(json), viaParse(json), json);
  // Not JSON stays not JSON: JSON.parse sees the original text and refuses it.
  for (const bad of ['{"data":[1,,2]}', '{"data":[01]}', '{"data":[1 2]}', '{"data":[1,]}', '{"data":[[1]', '{"data":[1]]}']) {
    assert.throws(() => JSON.parse(extractUint8Data(Buffer.from(bad), 0).text), SyntaxError, bad);
  }
  const extracted = extractUint8Data(Buffer.from(cases[0]), 0);
  assert.equal(extracted.arrays.length, 1);
  assert.ok(!extracted.text.includes('255'), 'the numbers left the text');
});

test('a large KServe JSON UINT8 request is served as its binary-extension twin', async () => {
  const s = await fakeService();
  try {
    const size = 8; // the fake model's input side
    const n = 60; // 60 x 8 x 8 x 3 = 11,520 elements, about 46 KB of JSON: past the 16 KiB extraction threshold
    const flat = Array.from({ length: n * size * size * 3 }, (_, i) => (i < size * size * 3 ? 125 : 50));
    const json = await s.app.inject({
      method: 'POST',
      url: '/v2/models/fake/infer',
      payload: { inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [n, size, size, 3], data: flat }] },
    });
    const head = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [n, size, size, 3], parameters: { binary_data_size: flat.length } }],
      }),
    );
    const binary = await s.app.inject({
      method: 'POST',
      url: '/v2/models/fake/infer',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) },
      payload: Buffer.concat([head, Buffer.from(flat)]),
    });
    assert.equal(json.statusCode, 200, json.body);
    assert.equal(binary.statusCode, 200, binary.body);
    assert.deepEqual(json.json(), binary.json());
  } finally {
    await s.close();
  }
});

test('bodies in flight stay within BODY_MEMORY_BUDGET_BYTES; the excess gets 503 SWIN_MEMORY_BUDGET with Retry-After', async () => {
  const s = await fakeService({ delayMs: 300 });
  const budget = new BodyBudget(1_000_000);
  let peak = 0;
  const take = budget.take.bind(budget);
  budget.take = (bytes) => {
    const give = take(bytes);
    peak = Math.max(peak, budget.inFlight);
    return give;
  };
  const app = await buildApp(s.config, s.service, { logger: false, bodyBudget: budget });
  try {
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const size = 8;
    const body = JSON.stringify({
      inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, size, size, 3], data: Array(size * size * 3).fill(125) }],
      parameters: { pad: 'x'.repeat(150_000) },
    });
    assert.equal(bodyCharge({ 'content-length': String(body.length), 'content-type': 'application/json' }, 1 << 30), 2 * body.length);
    const replies = await Promise.all(
      Array.from({ length: 8 }, () =>
        fetch(`${url}/v2/models/fake/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(async (r) => ({
          status: r.status,
          code: r.headers.get('swin-code'),
          retry: r.headers.get('retry-after'),
          text: await r.text(),
        })),
      ),
    );
    const ok = replies.filter((r) => r.status === 200).length;
    const refused = replies.filter((r) => r.status === 503);
    assert.equal(ok + refused.length, 8, JSON.stringify(replies.map((r) => r.status)));
    assert.ok(ok >= 1 && refused.length >= 1, `${ok} served, ${refused.length} refused`);
    for (const r of refused) {
      assert.equal(r.code, 'SWIN_MEMORY_BUDGET');
      assert.equal(r.retry, '1');
      assert.match(r.text, /memory budget of 1000000 bytes/);
    }
    assert.ok(peak <= 1_000_000, `peak ${peak} bytes in flight`);
    assert.equal(budget.inFlight, 0, 'every charge was given back');
  } finally {
    await app.close();
    await s.close();
  }
});

test('gRPC calls are charged their message: over the budget, UNAVAILABLE SWIN_MEMORY_BUDGET before the handler runs', async () => {
  const service = new FakeService();
  service.delayMs = 300;
  // One byte: a call is admitted only when nothing else is in flight (one body larger than the budget goes alone).
  const budget = new BodyBudget(1);
  const server = await startGrpcServer(
    service,
    { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20, interceptors: [grpcBodyBudgetInterceptor(budget)] },
    pino({ level: 'silent' }),
  );
  const client = new (loadProtos().classifier.swin.v1.Classifier)(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as ClassifierClient;
  try {
    const image = Buffer.from('rgb:200,0,0');
    assert.equal(messageBytes({ images: [image, Buffer.alloc(100)], model: 'ab', top_k: 3, n: [1, 2] }), 11 + 100 + 2 + 8 + 16);
    const calls = await Promise.all(
      Array.from(
        { length: 6 },
        () =>
          new Promise<{ code: grpc.status; swin?: string }>((resolve) =>
            client.Predict({ images: [image] }, (err) =>
              resolve(err ? { code: err.code, swin: String(err.metadata.get('swin-code')[0]) } : { code: grpc.status.OK }),
            ),
          ),
      ),
    );
    const ok = calls.filter((c) => c.code === grpc.status.OK).length;
    const refused = calls.filter((c) => c.code === grpc.status.UNAVAILABLE && c.swin === 'SWIN_MEMORY_BUDGET').length;
    assert.equal(ok + refused, 6, JSON.stringify(calls));
    assert.ok(ok >= 1 && refused >= 1, `${ok} served, ${refused} refused`);
    assert.equal(service.calls.length, ok, 'refused calls never reached the service');
    assert.equal(budget.inFlight, 0, 'every charge was given back');
  } finally {
    client.close();
    await server.close(100);
  }
});
