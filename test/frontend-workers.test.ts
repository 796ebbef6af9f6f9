// FRONTEND_WORKERS: HTTP and gRPC on worker threads in front of the one service on
// the main thread (src/api/workers/). The same answers and errors as the main
// thread's own front end, /metrics summed over every thread, the body budget shared,
// a client that leaves cancels its request on main, the configuration refused where
// it cannot work, and no accepted request lost on SIGTERM.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { MessageChannel } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import sharp from 'sharp';
import { BodyBudget } from '../src/api/body-budget.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { FrontEndWorkers } from '../src/api/workers/front-end-workers.js';
import type { WorkerToMain } from '../src/api/workers/protocol.js';
import { ServiceProxy } from '../src/api/workers/service-proxy.js';
import { ConfigError, loadConfig } from '../src/config.js';
import type { ClassifyResult } from '../src/service/service-types.js';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { request, startServer } from './helpers/reliability-harness.js';
import { selfSignedCert } from './helpers/security-certs.js';
import { versionedRepo } from './helpers/versioned-models.js';
import { shutdownUnderLoad } from './helpers/shutdown-under-load.js';

let fake: FakeService;
let workers: FrontEndWorkers;
let base: string;
let png: Buffer;
/** What the pool of `before` logged (main thread's lines only). */
const poolLog: string[] = [];

const ENV = { LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: '0', GRPC_PORT: '0', WARMUP_REQUESTS: 'true' };

before(async () => {
  // A slow engine (60 ms a batch), so that a request can be cancelled while it waits.
  fake = await fakeService({ env: ENV, delayMs: 60 });
  const config = loadConfig(['--frontend-workers', '2'], { ...ENV, MODELS_DIR: fake.config.modelsDir });
  const logStream = { write: (line: string) => void poolLog.push(line) };
  workers = await FrontEndWorkers.start(
    config,
    fake.service,
    ['--frontend-workers', '2'],
    { ...ENV, MODELS_DIR: fake.config.modelsDir },
    pino({ level: 'info' }, logStream),
  );
  base = `http://127.0.0.1:${workers.ports.http}`;
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 125, g: 125, b: 125 } } })
    .png()
    .toBuffer();
});

after(async () => {
  await workers.close(1000);
  await fake.close();
});

/** A POST on a fresh connection (no keep-alive), so the kernel spreads them over the workers. */
function post(path: string, body: Buffer, contentType = 'image/png'): Promise<{ status: number; body: string }> {
  return fetch(base + path, {
    method: 'POST',
    body: new Uint8Array(body),
    headers: { 'content-type': contentType, connection: 'close' },
  }).then(async (r) => ({ status: r.status, body: await r.text() }));
}

test('classify through the workers answers what the main thread would, top-k made on the worker', async () => {
  const direct = await fake.app.inject({
    method: 'POST',
    url: '/classify?top_k=3',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });
  assert.equal(direct.statusCode, 200);
  const want = (JSON.parse(direct.body) as ClassifyResult).predictions;
  for (let i = 0; i < 6; i++) {
    const r = await post('/classify?top_k=3', png);
    assert.equal(r.status, 200, r.body);
    const got = JSON.parse(r.body) as ClassifyResult & { deferred?: unknown };
    assert.deepEqual(got.predictions, want);
    assert.equal(got.deferred, undefined, 'the logits stay inside the service');
    assert.equal(got.model, 'fake');
  }
});

test('errors keep their code and status through a worker', async () => {
  const unknown = await post('/classify?model=nope', png);
  assert.equal(unknown.status, 404);
  assert.equal(JSON.parse(unknown.body).code, 'SWIN_MODEL_NOT_FOUND');
  const topK = await post('/classify?top_k=99', png);
  assert.equal(topK.status, 400);
  assert.equal(JSON.parse(topK.body).code, 'SWIN_BAD_TOP_K');
  const notImage = await post('/classify', Buffer.from('not an image at all'), 'application/octet-stream');
  assert.equal(notImage.status >= 400 && notImage.status < 500, true, notImage.body);
  const models = await fetch(`${base}/models/fake?version=7`);
  assert.equal(models.status, 404);
  assert.equal(((await models.json()) as { code: string }).code, 'SWIN_MODEL_VERSION_NOT_FOUND');
  for (const v of ['constructor', '__proto__', 'toString']) {
    const r = await fetch(`${base}/models/fake?version=${v}`);
    assert.equal(r.status, 404, `version ${v}`);
  }
  const ready = await fetch(`${base}/health/ready`);
  assert.equal(ready.status, 200);
});

test('the proxy sends each image to main in a buffer of its own size, not the pool it was cut from', async () => {
  const { port1, port2 } = new MessageChannel();
  const proxy = new ServiceProxy(port1, { ready: true, defaultModel: 'fake', models: [], controlMode: null });
  const got = new Promise<WorkerToMain>((resolve) => port2.once('message', resolve));
  const small = Buffer.from('a small image'); // a view into Node's shared pool
  assert.ok(small.buffer.byteLength > small.byteLength);
  void proxy.classify('fake', [small], {}).catch(() => undefined);
  const msg = await got;
  assert.equal(msg.t, 'call');
  const sent = (msg as { args: unknown[] }).args[1] as Uint8Array[];
  assert.equal(sent[0].buffer.byteLength, small.byteLength);
  assert.equal(Buffer.from(sent[0]).toString(), 'a small image');
  port1.close();
  port2.close();
});

test('gRPC Predict through the workers', async () => {
  const protos = loadProtos();
  const client = new protos.classifier.swin.v1.Classifier(`127.0.0.1:${workers.ports.grpc}`, grpc.credentials.createInsecure());
  try {
    const res = await new Promise<{ predictions: { classes: { label: string }[] }[] }>((resolve, reject) =>
      client.Predict({ images: [png, png], model: 'fake', top_k: 2 }, (err: grpc.ServiceError | null, r?: unknown) =>
        err ? reject(err) : resolve(r as never),
      ),
    );
    assert.equal(res.predictions.length, 2);
    assert.equal(res.predictions[0].classes.length, 2);
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.Predict({ images: [png], model: 'nope' }, (e: grpc.ServiceError | null) => resolve(e!)),
    );
    assert.equal(err.code, grpc.status.NOT_FOUND);
  } finally {
    client.close();
  }
});

function metricValue(text: string, line: RegExp): number {
  return text
    .split('\n')
    .filter((l) => line.test(l))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

test('/metrics sums every thread: requests counted in the workers, process metrics once', async () => {
  const okLine = /^swin_requests_total\{api="http",model="fake",code="OK"\}/;
  const before0 = metricValue(await (await fetch(`${base}/metrics`)).text(), okLine);
  await Promise.all(Array.from({ length: 12 }, () => post('/classify', png)));
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.equal(metricValue(text, okLine) - before0, 12);
  assert.equal(text.split('\n').filter((l) => l.startsWith('process_cpu_seconds_total ')).length, 1);
  // Batches run on main: its histogram is in the same text.
  assert.match(text, /^swin_batch_size_bucket\{/m);
});

test('a client that leaves cancels its request on main', async () => {
  const dropped = async () => metricValue(await (await fetch(`${base}/metrics`)).text(), /^swin_dropped_requests_total\{/);
  const d0 = await dropped();
  // Enough requests that some wait behind the 60 ms batches, each aborted after 20 ms.
  await Promise.all(
    Array.from({ length: 24 }, async () => {
      const req = http.request(`${base}/classify`, { method: 'POST', headers: { 'content-type': 'image/png' } });
      req.on('error', () => undefined);
      req.end(png);
      await new Promise((r) => setTimeout(r, 20));
      req.destroy();
    }),
  );
  await new Promise((r) => setTimeout(r, 400));
  assert.ok((await dropped()) > d0, 'no request left the queue when its client went away');
});

test('the body budget is one counter for every thread', () => {
  const shared = BodyBudget.sharedCounter();
  const a = new BodyBudget(100, shared);
  const b = new BodyBudget(100, shared);
  const give = a.take(70);
  assert.ok(give);
  assert.equal(b.inFlight, 70);
  assert.equal(b.take(40), null, 'over the budget across threads');
  const small = b.take(30);
  assert.ok(small);
  give();
  give();
  small();
  assert.equal(a.inFlight, 0, 'each charge given back once');
});

test('FRONTEND_WORKERS: flag, prefixed variable, default, bad values', () => {
  assert.throws(() => loadConfig(['--frontend-workers', '-1'], {}), ConfigError);
  assert.throws(() => loadConfig(['--frontend-workers', '65'], {}), ConfigError);
  assert.equal(loadConfig([], { SWIN_FRONTEND_WORKERS: '3' }).frontendWorkers, 3);
  assert.equal(loadConfig([], {}).frontendWorkers, 0);
});

test('rate limits are one set of buckets for every worker, over HTTP and gRPC', async () => {
  const env = { ...ENV, MODELS_DIR: fake.config.modelsDir, WARMUP_REQUESTS: 'false', RATE_LIMIT_RPS: '0.01', RATE_LIMIT_BURST: '5' };
  const argv = ['--frontend-workers', '3'];
  const pool = await FrontEndWorkers.start(loadConfig(argv, env), fake.service, argv, env, pino({ level: 'silent' }));
  try {
    // Fresh connections spread over the 3 workers; one client (127.0.0.1) has 5 tokens in all.
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await fetch(`http://127.0.0.1:${pool.ports.http}/classify`, {
        method: 'POST',
        body: new Uint8Array(png),
        headers: { 'content-type': 'image/png', connection: 'close' },
      });
      codes.push(r.status);
      if (r.status === 429) assert.ok(Number(r.headers.get('retry-after')) >= 1);
      await r.arrayBuffer();
    }
    assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
    const protos = loadProtos();
    const client = new protos.classifier.swin.v1.Classifier(`127.0.0.1:${pool.ports.grpc}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.Predict({ images: [png], model: 'fake' }, (e: grpc.ServiceError | null) => resolve(e)),
      );
      assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED, 'the same client is out of tokens over gRPC too');
    } finally {
      client.close();
    }
  } finally {
    await pool.close(1000);
  }
});

test('a client gone while its rate-limit token comes from main gives its body charge back', async () => {
  const env = { ...ENV, MODELS_DIR: fake.config.modelsDir, WARMUP_REQUESTS: 'false', RATE_LIMIT_RPS: '1000', RATE_LIMIT_BURST: '1000' };
  const argv = ['--frontend-workers', '1'];
  const pool = await FrontEndWorkers.start(loadConfig(argv, env), fake.service, argv, env, pino({ level: 'silent' }));
  try {
    for (let i = 0; i < 10; i++) {
      const s = net.connect(pool.ports.http, '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      s.write('POST /classify HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\ncontent-length: 1000000\r\n\r\n');
      await new Promise((r) => setTimeout(r, 5));
      s.destroy();
      // Main busy: the worker's token answer comes after the client has gone.
      const t = Date.now();
      while (Date.now() - t < 40);
    }
    await new Promise((r) => setTimeout(r, 300));
    const text = await (await fetch(`http://127.0.0.1:${pool.ports.http}/metrics`)).text();
    assert.equal(metricValue(text, /^swin_body_bytes_in_flight /), 0, 'charges of gone clients were kept');
  } finally {
    await pool.close(1000);
  }
});

test('SIGTERM under load with front-end workers: exit 0, zero accepted requests lost', { timeout: 180_000 }, async () => {
  const r = await shutdownUnderLoad({ workers: 16, loadMs: 3000, env: { FRONTEND_WORKERS: '2' } });
  assert.equal(r.exitCode, 0, JSON.stringify(r));
  const all = JSON.stringify(r);
  assert.ok(r.inFlightAtSignal >= 4, `only ${r.inFlightAtSignal} requests were in flight at SIGTERM: the drain was not exercised (${all})`);
  assert.equal(r.lost, 0, `requests the server accepted but never answered (${all})`);
  assert.equal(r.clientOk, r.completedOk, `every 200 the server sent reached a client (${all})`);
});

test('the repository extension through a worker: unload and load reach main, and the next request sees the change', async () => {
  const r = await versionedRepo({ a: [1], b: [4] }, { MODEL_CONTROL_MODE: 'explicit', MODELS: 'a' });
  const env = { ...ENV, MODELS_DIR: r.root, MODEL_CONTROL_MODE: 'explicit', WARMUP_REQUESTS: 'false' };
  const argv = ['--frontend-workers', '2'];
  const pool = await FrontEndWorkers.start(loadConfig(argv, env), r.service, argv, env, pino({ level: 'silent' }));
  const url = `http://127.0.0.1:${pool.ports.http}`;
  const json = (path: string, body?: unknown) =>
    fetch(url + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as unknown }));
  try {
    assert.deepEqual((await json('/v2/repository/index', { ready: true })).body, [{ name: 'a', version: '1', state: 'READY', reason: '' }]);
    assert.equal((await json('/models/b')).status, 404);
    const load = await json('/v2/repository/models/b/load', {});
    assert.equal(load.status, 200, JSON.stringify(load.body));
    // Any worker, at once: main pushed the new state before it answered the load.
    for (let i = 0; i < 4; i++) assert.equal(((await json('/models/b')).body as { version: string }).version, '4');
    const unload = await json('/v2/repository/models/a/unload', {});
    assert.equal(unload.status, 200, JSON.stringify(unload.body));
    for (let i = 0; i < 4; i++) assert.equal((await json('/models/a')).status, 404);
    const refused = await json('/v2/repository/models/nope/load', {});
    assert.ok(refused.status >= 400, JSON.stringify(refused.body));
  } finally {
    await pool.close(1000);
    await r.close();
  }
});

test('TLS with front-end workers: HTTPS and gRPC over TLS, SIGHUP reaches every worker', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'swin-workers-tls-'));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  const a = selfSignedCert(join(dir, 'a'));
  const b = selfSignedCert(join(dir, 'b'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  copyFileSync(a.certFile, certFile);
  copyFileSync(a.keyFile, keyFile);
  const caA = readFileSync(a.certFile);
  const caB = readFileSync(b.certFile);
  const server = await startServer(
    { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, FRONTEND_WORKERS: '2', LOG_LEVEL: 'info' },
    90_000,
    caA,
  );
  const opts = { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' };
  const Client = loadProtos().kserve.inference.GRPCInferenceService;
  const ready = (ca: Buffer) => {
    const c = new Client(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createSsl(ca), opts);
    return new Promise<boolean>((resolve, reject) =>
      c.ServerReady({}, { deadline: Date.now() + 10_000 }, (err, res) => (c.close(), err ? reject(err) : resolve(res!.ready))),
    );
  };
  const https = (ca: Buffer) => request(server.url, { method: 'GET', path: '/health/ready', ca, timeoutMs: 5000 });
  try {
    assert.equal((await https(caA)).status, 200);
    assert.equal(await ready(caA), true);
    copyFileSync(b.certFile, certFile);
    copyFileSync(b.keyFile, keyFile);
    server.proc.kill('SIGHUP');
    const reloaded = () => server.logs().split('SIGHUP: API keys and HTTPS certificate reloaded').length - 1;
    for (let i = 0; i < 300 && reloaded() < 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(reloaded(), 2, 'each of the 2 workers reloaded');
    // New connections, whichever worker takes them, present the second certificate.
    for (let i = 0; i < 4; i++) {
      assert.equal((await https(caB)).status, 200);
      assert.equal(await ready(caB), true);
    }
    await assert.rejects(https(caA));
  } finally {
    server.proc.kill('SIGTERM');
    await Promise.race([server.exited, new Promise((r) => setTimeout(r, 20_000))]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker that dies is replaced on the same ports; the other keeps serving meanwhile', async () => {
  const okLine = /^swin_requests_total\{api="http",model="fake",code="OK"\}/;
  const answered = async () => metricValue(await (await fetch(`${base}/metrics`)).text(), okLine);
  // 16 fresh connections: both workers count some (all on one: a chance of 1 in 32,768).
  for (let i = 0; i < 16; i++) assert.equal((await post('/classify', png)).status, 200);
  const before0 = await answered();
  const [victim, other] = workers.threads();
  await victim.terminate();
  // Until the replacement listens, the survivor takes every connection.
  for (let i = 0; i < 3; i++) assert.equal((await post('/classify', png)).status, 200);
  for (let i = 0; i < 200 && !poolLog.some((l) => l.includes('front-end worker replaced')); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(poolLog.some((l) => l.includes('a front-end worker exited; starting another')));
  assert.ok(
    poolLog.some((l) => l.includes('front-end worker replaced')),
    'the replacement did not listen',
  );
  const [fresh, same] = workers.threads();
  assert.notEqual(fresh, victim, 'a new thread took its place');
  assert.equal(same, other);
  for (let i = 0; i < 6; i++) assert.equal((await post('/classify', png)).status, 200);
  // The dead thread's counts stay in the sum: the counter does not go back.
  assert.ok((await answered()) >= before0 + 9, 'requests counted by the dead worker were dropped from /metrics');
});

test('a port another process holds is refused, not shared through SO_REUSEPORT', async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
  const taken = (holder.address() as net.AddressInfo).port;
  const env = { ...ENV, MODELS_DIR: fake.config.modelsDir, PORT: String(taken), WARMUP_REQUESTS: 'false' };
  const argv = ['--frontend-workers', '1'];
  try {
    await assert.rejects(FrontEndWorkers.start(loadConfig(argv, env), fake.service, argv, env, pino({ level: 'silent' })), /EADDRINUSE/);
  } finally {
    holder.close();
  }
});
