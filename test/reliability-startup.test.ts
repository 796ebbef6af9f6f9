// The real server (src/main.ts) with a model whose engine files are corrupt:
// it starts, stays live, says why the model is not ready, and answers
// classification with 503 SWIN_MODEL_NOT_READY instead of exiting.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { within } from './helpers/timeout.js';
import { ROOT, request, samplePng, startServer } from './helpers/reliability-harness.js';

test('an engine that fails to load leaves the server up, live and not ready', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'swin-broken-models-'));
  const src = join(ROOT, 'engines/models/swin-fmnist');
  const dst = join(root, 'swin-fmnist');
  mkdirSync(dst);
  for (const f of ['model.json', 'swin-fmnist.selftest.u8', 'swin-fmnist.selftest.logits.json']) copyFileSync(join(src, f), join(dst, f));
  writeFileSync(join(dst, 'swin-fmnist.fold.onnx'), Buffer.from('not an onnx model'));
  writeFileSync(join(dst, 'swin-fmnist.unfold.onnx'), Buffer.alloc(0));
  // Retries far apart, so the test sees the state after the first load.
  const server = await startServer({ MODELS_DIR: root, SELFTEST_RETRY_MS: '600000', LOG_LEVEL: 'warn' }, 90_000, undefined, '/health/live');
  try {
    const ready = await request(server.url, { method: 'GET', path: '/health/ready' });
    assert.equal(ready.status, 503);
    assert.deepEqual(JSON.parse(ready.body).models, { 'swin-fmnist': false });
    const model = JSON.parse((await request(server.url, { method: 'GET', path: '/models/swin-fmnist' })).body);
    assert.equal(JSON.stringify(model).includes('failed to load'), true, JSON.stringify(model).slice(0, 500));
    const r = await request(server.url, { path: '/classify', body: await samplePng(), contentType: 'image/png' });
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.body).code, 'SWIN_MODEL_NOT_READY');
    assert.ok(r.headers['retry-after'] !== undefined);
    assert.match(server.logs(), /failed to load/);
    assert.equal(server.proc.exitCode, null, 'still running');
  } finally {
    server.proc.kill('SIGTERM');
    await within(server.exited, 20_000, 'timeout');
    rmSync(root, { recursive: true, force: true });
  }
});
