// Graceful shutdown under load, on the real server process: SIGTERM while
// closed-loop clients keep sending. The server must stop accepting, answer
// every request it accepted, and exit 0 within the drain timeout.
//
// "Accepted" is measured on the server side: the server logs "incoming request"
// (debug) and "request completed" (its one line per request, src/observability/request-log.ts)
// per request id, so lost = incoming without completed. Client side, every request ends as a reply (200, or 503
// SWIN_SHUTTING_DOWN) or as a connection refused/reset that the server never
// logged as incoming.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DRAIN_TIMEOUT_MS, shutdownUnderLoad } from './helpers/shutdown-under-load.js';

test('SIGTERM under load: exit 0 within the drain timeout, zero accepted requests lost', { timeout: 180_000 }, async () => {
  const r = await shutdownUnderLoad({ workers: 16, loadMs: 3000 });
  console.log(JSON.stringify(r));
  assert.equal(r.exitCode, 0);
  assert.ok(r.exitMs < DRAIN_TIMEOUT_MS, `exit took ${r.exitMs} ms`);
  assert.ok(r.inFlightAtSignal >= 4, `only ${r.inFlightAtSignal} requests were in flight at SIGTERM: the drain was not exercised`);
  assert.equal(r.lost, 0, 'requests the server accepted but never answered');
  assert.equal(r.clientOk, r.completedOk, 'every 200 the server sent reached a client');
  const allowed = /^(200|503 SWIN_SHUTTING_DOWN|client (ECONNREFUSED|ECONNRESET|socket hang up|EPIPE))$/;
  for (const k of Object.keys(r.clientOutcomes)) assert.match(k, allowed);
});
