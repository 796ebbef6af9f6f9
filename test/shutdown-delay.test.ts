// SHUTDOWN_DELAY_MS (issue 15): on SIGTERM the real server reports not ready at
// once but keeps serving for the delay (the pre-stop sleep for hosts without a
// pre-stop hook), then closes its listeners and exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { within } from './helpers/timeout.js';
import { request, samplePng, startServer } from './helpers/reliability-harness.js';

test('SIGTERM with SHUTDOWN_DELAY_MS: not ready, still classifying, then closed and exit 0', { timeout: 120_000 }, async () => {
  const server = await startServer({ SHUTDOWN_DELAY_MS: '3000', DRAIN_TIMEOUT_MS: '10000', LOG_LEVEL: 'warn' });
  try {
    const image = await samplePng();
    const signalled = Date.now();
    server.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200)); // the signal is handled
    const ready = await request(server.url, { method: 'GET', path: '/health/ready' });
    assert.equal(ready.status, 503);
    const served = await request(server.url, { path: '/classify', body: image, contentType: 'image/png' });
    assert.equal(served.status, 200, served.body);
    assert.ok(Date.now() - signalled < 3000, 'both answered within the delay');
    const code = await within(server.exited, 15_000, 'timeout');
    assert.equal(code, 0);
    assert.ok(Date.now() - signalled >= 3000, `exited ${Date.now() - signalled} ms after SIGTERM, before the delay was over`);
    await assert.rejects(request(server.url, { method: 'GET', path: '/health/live', timeoutMs: 1000 }), { code: 'ECONNREFUSED' });
  } finally {
    server.proc.kill('SIGKILL');
  }
});
