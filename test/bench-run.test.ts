// Short bounded runs of the benchmark against local fake servers: an HTTP
// /classify that answers after 5 ms and refuses every 10th request with 503,
// and a gRPC swin.v1.Classifier on loopback. (Node timers may fire up to a ms
// early against performance.now(), hence the 0.9 on the 5 ms floors.)
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { parseBenchArgs } from '../bench/loadgen/args.js';
import { runBench } from '../bench/loadgen/cli.js';
import { HttpTarget } from '../bench/loadgen/http-target.js';
import { loadImages } from '../bench/loadgen/images.js';
import { runStep, type StepResult } from '../bench/loadgen/load.js';
import { mergeSteps, shares } from '../bench/loadgen/procs.js';
import { LatencyHistogram } from '../bench/loadgen/stats.js';

const DELAY_MS = 5;
let dir: string;
let server: http.Server;
let port: number;
let served = 0;
const bodies = new Set<string>();
const sink = new Writable({ write: (_c, _e, cb) => cb() });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bench-test-'));
  // Three distinct "images": the fake server never decodes them.
  for (let i = 0; i < 3; i++) await writeFile(join(dir, `img${i}.jpg`), Buffer.alloc(1000 + i * 100, i + 1));
  await writeFile(join(dir, 'notes.txt'), 'not an image');
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const n = ++served;
      setTimeout(() => {
        if (req.url?.split('?')[0] !== '/classify' || req.headers['content-type'] !== 'image/jpeg') {
          res.writeHead(404).end();
          return;
        }
        bodies.add(`${body.length}:${body[0]}:${req.url}`);
        if (n % 10 === 0) {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ statusCode: 503, code: 'SWIN_QUEUE_FULL', error: 'Service Unavailable', message: 'full' }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ model: 'm', predictions: [[{ label: `class${body[0]}`, index: 0, score: 0.9 }]] }));
        }
      }, DELAY_MS);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

test('images: only image files, sorted, with their content type', async () => {
  const imgs = await loadImages(dir);
  assert.deepEqual(
    imgs.map((i) => i.name),
    ['img0.jpg', 'img1.jpg', 'img2.jpg'],
  );
  assert.equal(imgs[1].data.length, 1100);
  assert.equal(imgs[0].mime, 'image/jpeg');
  await assert.rejects(loadImages(join(dir, 'missing')), /cannot read image folder/);
});

test('closed loop: throughput bounded by concurrency / service time, 503s counted by code', async () => {
  const images = await loadImages(dir);
  const target = new HttpTarget({ url: `http://127.0.0.1:${port}`, path: '/classify', model: 'm1', topK: 2, timeoutMs: 5000, check: true });
  target.setConnections(4);
  const t0 = Date.now();
  const r = await runStep(target, images, { mode: 'closed', concurrency: 4, warmupS: 0.3, durationS: 1, timeoutMs: 5000, seed: 1 });
  const wall = (Date.now() - t0) / 1000;
  await target.close();

  assert.ok(wall < 1.3 + 0.5, `step took ${wall}s, should end by itself after warm-up + window`);
  assert.equal(r.requests, r.ok + r.error_count);
  const errorShare = r.error_count / r.requests;
  assert.ok(errorShare > 0.07 && errorShare < 0.13, `error share ${errorShare}`);
  assert.deepEqual(Object.keys(r.errors), ['HTTP 503 SWIN_QUEUE_FULL']);
  // 4 in flight, each >= 5 ms: at most 800 requests/s
  assert.ok(r.throughput_rps <= (4 / (DELAY_MS / 1000)) * 1.02, `throughput ${r.throughput_rps}`);
  assert.ok(r.throughput_rps > 100, `throughput ${r.throughput_rps}`);
  assert.ok(r.latency.p50_ms >= DELAY_MS * 0.9, `p50 ${r.latency.p50_ms}`);
  assert.ok(r.latency.p99_ms >= r.latency.p50_ms && r.latency.max_ms >= r.latency.p99_ms);
  assert.equal(r.latency.count, r.ok);
  // --check counted top-1 labels; every image was sent with its bytes and the query string
  assert.deepEqual(Object.keys(r.top1 ?? {}).sort(), ['class1', 'class2', 'class3']);
  for (const b of ['1000:1', '1100:2', '1200:3']) assert.ok(bodies.has(`${b}:/classify?model=m1&top_k=2`), `missing ${b}`);
});

test('open loop: constant arrivals send rate x window requests, latency from schedule', async () => {
  const images = await loadImages(dir);
  const target = new HttpTarget({ url: `http://127.0.0.1:${port}`, path: '/classify', timeoutMs: 5000, check: false });
  target.setConnections(64);
  const r = await runStep(target, images, {
    mode: 'open',
    rate: 200,
    arrival: 'constant',
    warmupS: 0.2,
    durationS: 1,
    timeoutMs: 5000,
    seed: 1,
  });
  await target.close();
  assert.ok(r.requests >= 190 && r.requests <= 210, `requests ${r.requests}`);
  assert.ok(r.latency.min_ms >= DELAY_MS * 0.9, `min ${r.latency.min_ms}`);
  assert.equal(r.rate, 200);
  assert.equal(r.concurrency, null);
});

test('open loop: requests beyond --max-in-flight are not sent and counted as client_overload', async () => {
  const images = await loadImages(dir);
  const target = new HttpTarget({ url: `http://127.0.0.1:${port}`, path: '/classify', timeoutMs: 5000, check: false });
  target.setConnections(2);
  const r = await runStep(target, images, {
    mode: 'open',
    rate: 2000,
    arrival: 'poisson',
    maxInFlight: 2,
    warmupS: 0,
    durationS: 0.5,
    timeoutMs: 5000,
    seed: 3,
  });
  await target.close();
  assert.ok((r.errors.client_overload ?? 0) > 500, JSON.stringify(r.errors));
  assert.ok(r.ok < 0.5 * (2 / (DELAY_MS / 1000)) + 20, `ok ${r.ok}`);
});

test('a refused connection is an error code, not a crash', async () => {
  const images = await loadImages(dir);
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const target = new HttpTarget({ url: `http://127.0.0.1:${deadPort}`, path: '/classify', timeoutMs: 1000, check: false });
  const r = await runStep(target, images, { mode: 'closed', concurrency: 1, warmupS: 0, durationS: 0.2, timeoutMs: 1000, seed: 1 });
  await target.close();
  assert.equal(r.ok, 0);
  assert.ok((r.errors.ECONNREFUSED ?? 0) > 0, JSON.stringify(r.errors));
});

test('runBench writes JSON and CSV with one row per step', async () => {
  const json = join(dir, 'out', 'r.json');
  const csv = join(dir, 'out', 'r.csv');
  const o = parseBenchArgs([
    '--url',
    `http://127.0.0.1:${port}`,
    '--images',
    dir,
    '--concurrency',
    '1,2',
    '--warmup',
    '100ms',
    '--duration',
    '300ms',
    '--json',
    json,
    '--csv',
    csv,
    '--progress',
    '0',
    '--label',
    'fake',
  ]);
  const report = await runBench(o, sink);
  assert.equal(report.steps.length, 2);
  const parsed = JSON.parse(await readFile(json, 'utf8'));
  assert.equal(parsed.label, 'fake');
  assert.deepEqual(
    parsed.steps.map((s: { concurrency: number }) => s.concurrency),
    [1, 2],
  );
  assert.equal(parsed.images.count, 3);
  assert.ok(parsed.steps[1].histogram_us.length > 0);
  const lines = (await readFile(csv, 'utf8')).trim().split('\n');
  assert.equal(lines.length, 3);
  assert.ok(lines[0].startsWith('label,api,mode,concurrency,rate'));
  assert.ok(lines[1].startsWith('fake,http,closed,1,'));
});

test('gRPC Predict: replies and status codes with the swin-code trailer', async () => {
  const def = await protoLoader.load('proto/swin/v1/classifier.proto', { keepCase: true, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { swin: { v1: { Classifier: { service: grpc.ServiceDefinition } } } };
  let calls = 0;
  const gserver = new grpc.Server();
  gserver.addService(pkg.swin.v1.Classifier.service, {
    Predict: (call: grpc.ServerUnaryCall<{ images: Buffer[]; model: string; top_k: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      calls++;
      const { images, model, top_k } = call.request;
      if (calls % 5 === 0) {
        const md = new grpc.Metadata();
        md.set('swin-code', 'SWIN_QUEUE_FULL');
        cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'full', metadata: md });
        return;
      }
      const label = `${model}-${top_k}-${images.length}-${images[0][0]}`;
      setTimeout(() => cb(null, { model, predictions: [{ classes: [{ label, index: 0, score: 1 }] }] }), 2);
    },
  });
  const gport = await new Promise<number>((res, rej) =>
    gserver.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  try {
    const o = parseBenchArgs([
      '--api',
      'grpc',
      '--grpc-target',
      `127.0.0.1:${gport}`,
      '--images',
      dir,
      '--model',
      'mm',
      '--top-k',
      '3',
      '--concurrency',
      '3',
      '--warmup',
      '100ms',
      '--duration',
      '500ms',
      '--progress',
      '0',
      '--check',
    ]);
    const report = await runBench(o, sink);
    const s = report.steps[0];
    assert.ok(s.ok > 20, `ok ${s.ok}`);
    assert.deepEqual(Object.keys(s.errors), ['grpc RESOURCE_EXHAUSTED SWIN_QUEUE_FULL']);
    assert.deepEqual(Object.keys(s.top1 ?? {}).sort(), ['mm-3-1-1', 'mm-3-1-2', 'mm-3-1-3']);
  } finally {
    gserver.forceShutdown();
  }
});

test('--procs spreads a step over load processes and merges their histograms exactly', async () => {
  // mergeSteps against one histogram of all the latencies
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  const all = new LatencyHistogram();
  for (let i = 0; i < 500; i++) {
    const us = 800 + ((i * 7919) % 40_000);
    (i % 3 ? a : b).record(us);
    all.record(us);
  }
  const step = (h: LatencyHistogram, ok: number): StepResult => ({
    mode: 'closed',
    concurrency: 2,
    rate: null,
    arrival: null,
    warmup_s: 0,
    window_s: 2,
    requests: ok + 1,
    ok,
    error_count: 1,
    errors: { timeout: 1 },
    throughput_rps: ok / 2,
    latency: h.summary(),
    client_cpu_pct: 40,
    histogram_us: h.toSparse(),
  });
  const merged = mergeSteps([step(a, a.count), step(b, b.count)], 4);
  assert.deepEqual(
    [merged.latency.p50_ms, merged.latency.p99_ms, merged.latency.max_ms, merged.latency.min_ms, merged.ok],
    [all.summary().p50_ms, all.summary().p99_ms, all.summary().max_ms, all.summary().min_ms, 500],
  );
  assert.deepEqual(merged.errors, { timeout: 2 });
  assert.equal(merged.client_cpu_pct, 80);
  assert.equal(merged.concurrency, 4);
  assert.deepEqual(shares(7, 3), [3, 2, 2]);
  assert.deepEqual(shares(2, 3), [1, 1]);

  // A real run: 4 in flight over 3 processes against the 5 ms server.
  const before = served;
  const o = parseBenchArgs([
    '--url',
    `http://127.0.0.1:${port}`,
    '--images',
    dir,
    '--concurrency',
    '4',
    '--procs',
    '3',
    '--warmup',
    '200ms',
    '--duration',
    '800ms',
    '--progress',
    '0',
  ]);
  const report = await runBench(o, sink);
  const r = report.steps[0];
  assert.equal(r.processes, 3);
  assert.equal(r.concurrency, 4);
  assert.equal(r.latency.count, r.ok);
  assert.ok(r.ok > 100, `ok ${r.ok}`);
  assert.ok(r.throughput_rps <= (4 / (DELAY_MS / 1000)) * 1.02, `throughput ${r.throughput_rps}`);
  assert.ok(r.latency.p50_ms >= DELAY_MS * 0.9, `p50 ${r.latency.p50_ms}`);
  assert.ok(served - before >= r.requests, 'the server saw every request the processes counted');
});
