// Access control wired into the real server (src/main.ts): TLS on both ports
// from certificate files, API keys on HTTP and gRPC, health public; and the
// unusual-but-valid images of the hostile corpus through the real model.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { loadProtos } from '../src/api/grpc/protos.js';
import { unusualValidImages } from './fixtures/hostile/generate.js';
import { within } from './helpers/timeout.js';
import { request, samplePng, startServer, type ServerProcess } from './helpers/reliability-harness.js';
import { selfSignedCert } from './helpers/security-certs.js';

const KEY = 'srv-key-5d0c7a';
let dir: string;
let ca: Buffer;
let server: ServerProcess;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'swin-srv-tls-'));
  const { certFile, keyFile } = selfSignedCert(dir);
  ca = readFileSync(certFile);
  server = await startServer({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, AUTH_API_KEYS: KEY, LOG_LEVEL: 'warn' }, 120_000, ca);
});

after(async () => {
  if (server) {
    server.proc.kill('SIGTERM');
    await within(server.exited, 20_000, 'timeout');
  }
  rmSync(dir, { recursive: true, force: true });
});

test('HTTPS with API keys: health public, /classify 401 without a key and 200 with one', async () => {
  const png = await samplePng();
  assert.equal((await request(server.url, { method: 'GET', path: '/health/live', ca })).status, 200);
  const denied = await request(server.url, { path: '/classify', body: png, contentType: 'image/png', ca });
  assert.equal(denied.status, 401);
  assert.equal(JSON.parse(denied.body).code, 'SWIN_UNAUTHENTICATED');
  const ok = await request(server.url, {
    path: '/classify',
    body: png,
    contentType: 'image/png',
    ca,
    headers: { authorization: `Bearer ${KEY}` },
  });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(JSON.parse(ok.body).predictions.length, 1);
  // The certificate is required: a client that does not trust it cannot connect.
  await assert.rejects(request(server.url, { method: 'GET', path: '/health/live' }), /self.signed|unable to verify/i);
});

test('gRPC over TLS with API keys: Predict UNAUTHENTICATED without a key, OK with one; health public', async () => {
  const protos = loadProtos();
  const creds = grpc.credentials.createSsl(ca);
  const target = `localhost:${server.grpcPort}`;
  const classifier = new protos.classifier.swin.v1.Classifier(target, creds);
  const Health = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, 'Health');
  const health = new Health(target, creds);
  const png = await samplePng();
  const predict = (md: grpc.Metadata) =>
    new Promise<{ err: grpc.ServiceError | null; res: unknown }>((resolve) =>
      classifier.Predict({ images: [png] }, md, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, res: unknown) =>
        resolve({ err, res }),
      ),
    );
  try {
    const denied = await predict(new grpc.Metadata());
    assert.equal(denied.err?.code, grpc.status.UNAUTHENTICATED);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${KEY}`);
    const ok = await predict(md);
    assert.equal(ok.err, null, ok.err?.details);
    assert.equal((ok.res as { predictions: unknown[] }).predictions.length, 1);
    const h = await new Promise<{ err: grpc.ServiceError | null; res: unknown }>((resolve) =>
      (health as unknown as { check: Function }).check(
        { service: '' },
        new grpc.Metadata(),
        { deadline: Date.now() + 5000 },
        (err: grpc.ServiceError | null, res: unknown) => resolve({ err, res }),
      ),
    );
    assert.equal(h.err, null, h.err?.details);
    assert.deepEqual(h.res, { status: 'SERVING' });
  } finally {
    classifier.close();
    health.close();
  }
});

test('unusual but valid images are classified by the real model', async () => {
  const wrong: string[] = [];
  for (const c of await unusualValidImages()) {
    const r = await request(server.url, { path: '/classify', body: c.body, contentType: c.contentType, ca, headers: { 'x-api-key': KEY } });
    if (r.status !== 200) wrong.push(`${c.name}: ${r.status} ${r.body.slice(0, 120)}`);
    else for (const p of JSON.parse(r.body).predictions[0]) assert.ok(Number.isFinite(p.score));
  }
  assert.deepEqual(wrong, []);
});
