// Admission by decode cost (issue 15): an image's cost is estimated from its
// header before any pixel is decoded; one above MAX_DECODE_COST_MS is refused
// with 413 SWIN_IMAGE_TOO_COSTLY on every protocol; expensive images share a
// budget with per-client turns, and a waiting decode whose request is gone is
// never run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { requestClient } from '../src/api/access/access-control.js';
import { estimateDecodeCost } from '../src/decode/decode-cost.js';
import type { ClassifierClient } from '../src/generated/swin/v1/Classifier.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { CHEAP_MS, DecodeGate } from '../src/decode/decode-gate.js';
import { ServeError } from '../src/errors.js';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { greyPng } from './helpers/http-bodies.js';
import { stripPng } from './helpers/strip-png.js';

let s: FakeService;
let strip: Buffer;
before(async () => {
  s = await fakeService({ env: { REQUEST_TIMEOUT_MS: '5000' } });
  strip = await stripPng(1, 25_000_000);
});
after(() => s.close());

test('the estimate tells a photo from a 1 x 25,000,000 strip, from the header alone', async () => {
  const meta = async (img: Buffer) => sharp(img).metadata();
  const photo = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#777' } })
    .jpeg()
    .toBuffer();
  assert.ok(estimateDecodeCost(await meta(photo)) < CHEAP_MS, 'a VGA JPEG is cheap');
  assert.ok(estimateDecodeCost(await meta(strip)) > 2000, 'the strip is above the default limit');
  const progressive = estimateDecodeCost({ format: 'jpeg', width: 4000, height: 3000, isProgressive: true });
  const baseline = estimateDecodeCost({ format: 'jpeg', width: 4000, height: 3000, isProgressive: false });
  assert.ok(progressive > 2 * baseline, `progressive ${progressive} vs baseline ${baseline}`);
});

test('16 concurrent 1 x 25 Mpx PNGs are refused up front; a normal request beside them is served at once', async () => {
  const normal = await greyPng(125);
  const started = Date.now();
  const post = (body: Buffer) =>
    s.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: body });
  const strips = Array.from({ length: 16 }, () => post(strip).then((r) => ({ r, ms: Date.now() - started })));
  const ok = await post(normal).then((r) => ({ r, ms: Date.now() - started }));
  const refused = await Promise.all(strips);
  assert.equal(ok.r.statusCode, 200);
  assert.ok(ok.ms < 1000, `the normal request took ${ok.ms} ms`);
  for (const { r, ms } of refused) {
    assert.equal(r.statusCode, 413);
    const body = r.json();
    assert.equal(body.code, 'SWIN_IMAGE_TOO_COSTLY');
    assert.match(body.message, /^Image 0 costs too much to decode: 1 x 25000000 png is estimated at \d+ ms of decoding, more than 2000$/);
    assert.ok(ms < 5000 + 1000, `refusal after ${ms} ms`);
  }
});

test('KServe REST with a BYTES input gets the same code', async () => {
  const body = { inputs: [{ name: 'pixels', shape: [1], datatype: 'BYTES', data: [strip.toString('base64')] }] };
  const r = await s.app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload: body });
  assert.equal(r.statusCode, 413);
  assert.equal(r.headers['swin-code'], 'SWIN_IMAGE_TOO_COSTLY');
});

test('gRPC Predict gets INVALID_ARGUMENT with the same code in swin-code', async () => {
  const server = await startGrpcServer(s.service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, pino({ level: 'silent' }));
  const protos = loadProtos();
  const client = new protos.classifier.swin.v1.Classifier(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as ClassifierClient;
  try {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.Predict({ images: [strip] }, (e) => (e ? resolve(e) : reject(new Error('no error')))),
    );
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(err.metadata.get('swin-code'), ['SWIN_IMAGE_TOO_COSTLY']);
    assert.match(err.details, /^Image 0 costs too much to decode/);
  } finally {
    client.close();
    await server.close(100);
  }
});

test('admitted strips take turns within the budget: a normal request is served beside 16 of them, none outlives its deadline by 1 s', async () => {
  // Each strip is estimated at about 0.5 s of decoding; a 600 ms budget admits one at a time.
  const t = await fakeService({ env: { MAX_DECODE_COST_MS: '100000', DECODE_COST_BUDGET_MS: '600', REQUEST_TIMEOUT_MS: '2500' } });
  let peak = 0;
  const watch = setInterval(() => (peak = Math.max(peak, t.service.decodeGate.inUse)), 2);
  try {
    const strip3m = await stripPng(1, 3_000_000);
    const post = (body: Buffer) => {
      const started = Date.now();
      return t.app
        .inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: body })
        .then((r) => ({ status: r.statusCode, code: r.json().code as string | undefined, ms: Date.now() - started }));
    };
    const strips = Array.from({ length: 16 }, () => post(strip3m));
    await new Promise((r) => setTimeout(r, 100));
    const normal = await post(await greyPng(125));
    const done = await Promise.all(strips);
    assert.equal(normal.status, 200);
    assert.ok(normal.ms < 1000, `the normal request took ${normal.ms} ms`);
    for (const r of done) {
      assert.ok(r.status === 200 || r.code === 'SWIN_DEADLINE_EXCEEDED', `${r.status} ${r.code}`);
      assert.ok(r.ms < 2500 + 1000, `a strip was answered after ${r.ms} ms`);
    }
    assert.ok(peak > 0 && peak <= 600, `estimated ms of strips decoding at once peaked at ${peak}`);
  } finally {
    clearInterval(watch);
    await t.close();
  }
});

test('MAX_DECODE_COST_MS raises the limit: the strip is then decoded', async () => {
  const t = await fakeService({ env: { MAX_DECODE_COST_MS: '100000' } });
  try {
    const small = await stripPng(1, 200_000); // same shape, a 25th of the rows: quick to decode
    const r = await t.app.inject({ method: 'POST', url: '/classify', headers: { 'content-type': 'image/png' }, payload: small });
    assert.equal(r.statusCode, 200);
  } finally {
    await t.close();
  }
});

test('decode turns go by the client the rate limiter names: API key, else address', () => {
  const byBearer = requestClient('Bearer k3y', undefined, '10.0.0.1');
  assert.match(byBearer, /^key:[0-9a-f]{16}$/);
  assert.equal(requestClient(undefined, 'k3y', '10.0.0.2'), byBearer, 'the same key from another address is the same client');
  assert.equal(requestClient(undefined, undefined, '10.0.0.1'), 'ip:10.0.0.1');
});

/** A gate's grants in order, with the waiters it refused. */
function gateRun(budgetMs: number) {
  const gate = new DecodeGate({ maxImageCostMs: 10_000, budgetMs });
  const order: string[] = [];
  const releases = new Map<string, () => void>();
  const ask = (
    name: string,
    cost: number,
    client: string,
    window = { deadline: Date.now() + 60_000, timeoutMs: 60_000 } as { deadline: number; timeoutMs: number; signal?: AbortSignal },
  ) =>
    gate.acquire(cost, client, window).then(
      (release) => {
        order.push(name);
        releases.set(name, release);
      },
      (err: ServeError) => {
        order.push(`${name}:${err.code}`);
      },
    );
  return { gate, order, releases, ask };
}

test('expensive decodes take turns per client within the budget; cheap ones never wait', async () => {
  const { gate, order, releases, ask } = gateRun(1000);
  const waits = [ask('a1', 900, 'A'), ask('a2', 900, 'A'), ask('a3', 900, 'A'), ask('b1', 900, 'B'), ask('cheap', CHEAP_MS - 1, 'A')];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ['a1', 'cheap'], 'one expensive decode fits; the cheap one does not queue');
  assert.equal(gate.waiting, 3);
  releases.get('a1')!();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order.slice(2), ['b1'], "client B goes before A's second image");
  releases.get('b1')!();
  await new Promise((r) => setImmediate(r));
  releases.get('a2')!();
  await Promise.all(waits.slice(0, 3));
  assert.deepEqual(order, ['a1', 'cheap', 'b1', 'a2', 'a3']);
  releases.get('a3')!();
  assert.equal(gate.inUse, 0);
});

test('a waiting decode whose request is cancelled or expires leaves the queue and is never granted', async () => {
  const { gate, order, releases, ask } = gateRun(1000);
  const ac = new AbortController();
  const first = ask('big', 900, 'A');
  const cancelled = ask('cancelled', 900, 'B', { deadline: Date.now() + 60_000, timeoutMs: 60_000, signal: ac.signal });
  const expiring = ask('expiring', 900, 'C', { deadline: Date.now() + 30, timeoutMs: 30 });
  const last = ask('last', 900, 'D');
  await first;
  ac.abort();
  await cancelled;
  await expiring;
  assert.deepEqual(order, ['big', 'cancelled:SWIN_CANCELLED', 'expiring:SWIN_DEADLINE_EXCEEDED']);
  assert.equal(gate.waiting, 1);
  releases.get('big')!();
  await last;
  assert.deepEqual(order.slice(3), ['last']);
  releases.get('last')!();
});
