// Graceful HTTP close (issue 15, src/api/http/graceful-close.ts): a request fully
// written before shutdown begins is read and answered (200, or 503
// SWIN_SHUTTING_DOWN with Connection: close), never reset; an idle keep-alive
// connection's next request gets that 503; close() still ends promptly.
// The full count (50 SIGTERMs to the real server) is bench/shutdown-resets.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../src/api/http/app.js';
import { fakeService } from './helpers/fake-service.js';
import { greyPng } from './helpers/http-bodies.js';

test('an idle keep-alive connection gets 503 SWIN_SHUTTING_DOWN with Connection: close on its next request', async () => {
  const s = await fakeService();
  const app = await buildApp(s.config, s.service, { logger: false });
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let received = '';
    sock.on('data', (d) => (received += d.toString('latin1')));
    const get = 'GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n';
    sock.write(get);
    while (!received.includes('"ok"')) await new Promise((r) => setTimeout(r, 5));
    assert.match(received, /^HTTP\/1\.1 200/);
    received = '';
    const closed = app.close();
    sock.write(get); // written after close began, on the idle connection: read and answered
    const ended = new Promise((r) => sock.once('close', r));
    await closed;
    await ended;
    assert.match(received, /^HTTP\/1\.1 503/);
    assert.match(received, /\r\nconnection: close\r\n/i);
    assert.match(received, /"code":"SWIN_SHUTTING_DOWN"/);
  } finally {
    await s.close();
  }
});

interface Outcome {
  writtenAt: number;
  result: string;
}

/** One run: keep-alive clients in a closed loop, close() at a random moment; every request's outcome and when it was fully written. */
async function burstThenClose(image: Buffer, seed: number): Promise<{ closeAt: number; outcomes: Outcome[] }> {
  const s = await fakeService({ delayMs: 20 });
  const app = await buildApp(s.config, s.service, { logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const outcomes: Outcome[] = [];
  let closeAt = Infinity;
  let stop = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const o: Outcome = { writtenAt: Infinity, result: '' };
      outcomes.push(o);
      const req = http.request(
        { host: '127.0.0.1', port, path: '/classify', method: 'POST', agent, headers: { 'content-type': 'image/png' } },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            o.result = res.statusCode === 200 ? '200' : `${res.statusCode} ${(JSON.parse(body) as { code: string }).code}`;
            resolve();
          });
          res.on('error', (e: NodeJS.ErrnoException) => {
            o.result = `client ${e.code ?? e.message}`;
            resolve();
          });
        },
      );
      req.on('finish', () => (o.writtenAt = performance.now()));
      req.on('error', (e: NodeJS.ErrnoException) => {
        o.result = `client ${e.code ?? e.message}`;
        if (e.code === 'ECONNREFUSED') stop = true;
        resolve();
      });
      req.end(image);
    });
  const workers = Array.from({ length: 8 }, async () => {
    while (!stop) await one();
  });
  const delay = 100 + ((seed * 7919) % 400); // 100-499 ms into the burst, different each run
  await new Promise((r) => setTimeout(r, delay));
  closeAt = performance.now();
  await app.close();
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  await s.close();
  return { closeAt, outcomes };
}

test('close at random points of a burst, 10 runs: no request written before it is reset; all answered 200 or 503', async (t) => {
  const image = await greyPng(125);
  let before = 0;
  let refusedAfter = 0;
  for (let run = 1; run <= 10; run++) {
    const { closeAt, outcomes } = await burstThenClose(image, run);
    for (const o of outcomes) {
      if (o.writtenAt < closeAt) {
        before++;
        assert.match(
          o.result,
          /^(200|503 SWIN_SHUTTING_DOWN)$/,
          `run ${run}: a request written ${(closeAt - o.writtenAt).toFixed(1)} ms before close got ${o.result}`,
        );
      } else if (o.result.startsWith('client')) {
        refusedAfter++;
      }
    }
  }
  t.diagnostic(`${before} requests written before close, all answered; ${refusedAfter} sent after it refused`);
  assert.ok(before > 50, `only ${before} requests were written before close`);
});
