// Deadlines and disconnects reach decoding: an expired or abandoned request is
// not decoded at all, and one whose decode outlasts its deadline is answered
// 504 at the deadline, not when the decoder finishes. The decoder here never
// finishes until the test lets it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ServeError } from '../src/errors.js';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { greyPng } from './helpers/http-bodies.js';
import { stripPng } from './helpers/strip-png.js';

let s: FakeService;
let calls = 0;
const stuck: Array<() => void> = [];
before(async () => {
  s = await fakeService({ env: { REQUEST_TIMEOUT_MS: '300' } });
  s.service.decoder.many = () => {
    calls++;
    return new Promise((_, reject) => stuck.push(() => reject(new Error('released by the test'))));
  };
});
after(async () => {
  for (const release of stuck) release();
  await s.close();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return err instanceof ServeError ? err.code : String(err);
  }
}

test('expired or cancelled before decoding: nothing is decoded', async () => {
  const png = await greyPng(125);
  const before = calls;
  assert.equal(await codeOf(s.service.classify(undefined, [png], { deadline: Date.now() - 1 })), 'SWIN_DEADLINE_EXCEEDED');
  assert.equal(await codeOf(s.service.classify(undefined, [png], { signal: AbortSignal.abort() })), 'SWIN_CANCELLED');
  assert.equal(await codeOf(s.service.preprocess('fake', [png], { signal: AbortSignal.abort() })), 'SWIN_CANCELLED');
  assert.equal(calls, before);
});

test('a decode that outlasts the deadline is answered 504 at the deadline; a disconnect answers at once', async (t) => {
  const png = await greyPng(125);
  const started = Date.now();
  const res = await s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: png });
  const ms = Date.now() - started;
  t.diagnostic(`504 after ${ms} ms with REQUEST_TIMEOUT_MS=300`);
  assert.deepEqual(
    { status: res.statusCode, body: res.json() },
    {
      status: 504,
      body: {
        statusCode: 504,
        code: 'SWIN_DEADLINE_EXCEEDED',
        error: 'Gateway Timeout',
        message: 'Request deadline of 300 ms passed before inference finished',
      },
    },
  );
  assert.ok(ms < 1300, `answered after ${ms} ms`);

  const ac = new AbortController();
  const pending = codeOf(s.service.classify(undefined, [png], { signal: ac.signal, deadline: Date.now() + 60_000 }));
  ac.abort();
  assert.equal(await pending, 'SWIN_CANCELLED');
});

test('a decode still running at the deadline is answered 504, not 499, with or without decode processes', async (t) => {
  // The deadline aborts the running decode's signal; the code must say "deadline", not
  // "cancelled" (CI once saw a 499 here). A 1 x 3,000,000 strip decodes for about half a second.
  const strip = await stripPng(1, 3_000_000);
  for (const processes of ['0', '1']) {
    const d = await fakeService({ env: { REQUEST_TIMEOUT_MS: '150', MAX_DECODE_COST_MS: '100000', DECODE_PROCESSES: processes } });
    try {
      const codes: string[] = [];
      for (let i = 0; i < 4; i++) {
        codes.push(await codeOf(d.service.classify(undefined, [strip], {})));
      }
      t.diagnostic(`DECODE_PROCESSES=${processes}: ${codes.join(' ')}`);
      assert.deepEqual(codes, Array(4).fill('SWIN_DEADLINE_EXCEEDED'));
    } finally {
      await d.close();
    }
  }
});
