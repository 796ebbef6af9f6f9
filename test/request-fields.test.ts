// Unknown query parameters and JSON/multipart fields are refused with 400
// SWIN_UNKNOWN_FIELD naming them, on /classify and KServe REST alike.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { greyPng, multipart } from './helpers/http-bodies.js';

let s: FakeService;
before(async () => {
  s = await fakeService();
});
after(() => s.close());

function expect400(res: { statusCode: number; json(): unknown }, message: string) {
  assert.deepEqual(
    { status: res.statusCode, body: res.json() },
    {
      status: 400,
      body: { statusCode: 400, code: 'SWIN_UNKNOWN_FIELD', error: 'Bad Request', message },
    },
  );
}

test('?topK=3 is refused naming topK; ?top_k=3 is served', async () => {
  const png = await greyPng(125);
  const post = (url: string) => s.app.inject({ method: 'POST', url, headers: { 'content-type': 'image/png' }, payload: png });
  expect400(
    await post('/classify?topK=3'),
    'Unknown query parameter "topK"; accepted: model, variant, version, top_k, priority, timeout_ms',
  );
  expect400(
    await post('/classify?topK=3&modle=x&top_k=2'),
    'Unknown query parameters "topK", "modle"; accepted: model, variant, version, top_k, priority, timeout_ms',
  );
  const ok = await post('/classify?top_k=3');
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().predictions[0].length, 3);
});

test('routes without query parameters take none', async () => {
  expect400(await s.app.inject({ method: 'GET', url: '/models?verbose=1' }), 'Unknown query parameter "verbose"; accepted: none');
  assert.equal((await s.app.inject({ method: 'GET', url: '/models' })).statusCode, 200);
});

test('unknown JSON and multipart fields of /classify', async () => {
  const b64 = (await greyPng(125)).toString('base64');
  expect400(
    await s.app.inject({ method: 'POST', url: '/classify', payload: { images: [b64], topk: 3 } }),
    'Unknown JSON field "topk"; accepted: images, model, variant, version, top_k, priority, timeout_ms',
  );
  const form = multipart([
    { name: 'image', file: await greyPng(125) },
    { name: 'topK', value: '3' },
  ]);
  expect400(
    await s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': form.contentType }, payload: form.body }),
    'Unknown multipart field "topK"; accepted: model, variant, version, top_k, priority, timeout_ms',
  );
});

test('KServe REST: unknown query parameters and request, input and output fields', async () => {
  const infer = (body: unknown, query = '') =>
    s.app.inject({
      method: 'POST',
      url: `/v2/models/fake/infer${query}`,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  const input = { name: 'pixels', datatype: 'UINT8', shape: [1, 1, 1, 3], data: [0, 0, 0] };
  const cases: Array<[unknown, string, string]> = [
    [{ inputs: [input] }, '?timeout=5', 'Unknown query parameter "timeout"; accepted: none'],
    [{ inputs: [input], priority: 1 }, '', 'Unknown field of the inference request: "priority"; accepted: id, parameters, inputs, outputs'],
    [
      { inputs: [{ ...input, contents: {} }] },
      '',
      'Unknown field of inputs[0]: "contents"; accepted: name, shape, datatype, parameters, data',
    ],
    [
      { inputs: [input], outputs: [{ name: 'logits', binary_data: true }] },
      '',
      'Unknown field of outputs[0]: "binary_data"; accepted: name, parameters',
    ],
  ];
  for (const [body, query, error] of cases) {
    const res = await infer(body, query);
    assert.deepEqual(
      { status: res.statusCode, code: res.headers['swin-code'], body: res.json() },
      { status: 400, code: 'SWIN_UNKNOWN_FIELD', body: { error } },
    );
  }
});
