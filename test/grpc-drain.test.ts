// gRPC side of graceful shutdown (issue 15): close() stops taking calls, lets a
// call already running finish OK (tryShutdown, GOAWAY), and cancels what is
// still running at the grace period (forceShutdown).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { ClassifierClient } from '../src/generated/swin/v1/Classifier.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { FakeService } from './helpers/kserve-fake-service.js';

async function withServer(delayMs: number, run: (client: ClassifierClient, close: (graceMs: number) => Promise<void>) => Promise<void>) {
  const service = new FakeService();
  service.delayMs = delayMs;
  const server = await startGrpcServer(service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, pino({ level: 'silent' }));
  const client = new (loadProtos().classifier.swin.v1.Classifier)(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as ClassifierClient;
  try {
    await run(client, (g) => server.close(g));
  } finally {
    client.close();
    await server.close(10);
  }
}

const predict = (client: ClassifierClient) =>
  new Promise<grpc.status>((resolve) =>
    client.Predict({ images: [Buffer.from('rgb:200,0,0')] }, (err) => resolve(err ? err.code : grpc.status.OK)),
  );

test('a call running at close completes OK; close resolves after it', async () => {
  await withServer(300, async (client, close) => {
    await predict(client); // connected, warm
    const running = predict(client);
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await close(5000);
    assert.equal(await running, grpc.status.OK);
    assert.ok(Date.now() - started < 5000, 'closed without waiting for the grace period');
  });
});

test('a call still running at the grace period is cancelled', async () => {
  await withServer(5000, async (client, close) => {
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
    const running = predict(client);
    await new Promise((r) => setTimeout(r, 50));
    await close(200);
    assert.notEqual(await running, grpc.status.OK);
  });
});
