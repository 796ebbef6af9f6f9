// Slow clients meet HEADERS_TIMEOUT_MS, BODY_TIMEOUT_MS and IDLE_TIMEOUT_MS at
// their configured values (small ones here, so the test takes seconds), and the
// 408 carries the error table's body.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { fakeService, type FakeService } from './helpers/fake-service.js';

let s: FakeService;
let port: number;
before(async () => {
  s = await fakeService({ env: { HEADERS_TIMEOUT_MS: '1000', BODY_TIMEOUT_MS: '2000', IDLE_TIMEOUT_MS: '1000' } });
  await s.app.listen({ port: 0, host: '127.0.0.1' });
  port = (s.app.server.address() as net.AddressInfo).port;
});
after(() => s.close());

/** Connects, writes `first`, then one byte of `trickle` every 100 ms until the server closes; resolves with what it answered and when. */
function slowClient(first: string, trickle = ''): Promise<{ reply: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const sock = net.connect(port, '127.0.0.1', () => sock.write(first));
    let reply = '';
    let i = 0;
    const timer = setInterval(() => {
      if (i < trickle.length && sock.writable) sock.write(trickle[i++]);
    }, 100);
    sock.on('data', (d) => (reply += d.toString()));
    sock.on('error', () => {}); // the server may reset after its reply; 'close' still follows
    sock.on('close', () => {
      clearInterval(timer);
      resolve({ reply, ms: Date.now() - started });
    });
    sock.setTimeout(15_000, () => {
      clearInterval(timer);
      sock.destroy();
      reject(new Error('server never closed the connection'));
    });
  });
}

function bodyOf(reply: string): unknown {
  return JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
}

test('a body sent at 10 bytes/s is cut at BODY_TIMEOUT_MS with 408 SWIN_REQUEST_TIMEOUT', async (t) => {
  const { reply, ms } = await slowClient(
    'POST /classify HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n',
    'x'.repeat(1000),
  );
  assert.match(reply, /^HTTP\/1.1 408 Request Timeout\r\n/);
  assert.deepEqual(bodyOf(reply), {
    statusCode: 408,
    code: 'SWIN_REQUEST_TIMEOUT',
    error: 'Request Timeout',
    message: 'The request body did not arrive within 2000 ms',
  });
  t.diagnostic(`${ms} ms`);
  assert.ok(ms >= 1900 && ms <= 4000, `cut after ${ms} ms; configured 2000 ms`);
});

test('headers sent at 10 bytes/s are cut at HEADERS_TIMEOUT_MS', async (t) => {
  const { reply, ms } = await slowClient('GET /health/live HTTP/1.1\r\n', 'X-Slow: ' + 'y'.repeat(200));
  assert.match(reply, /^HTTP\/1.1 408 Request Timeout\r\n/);
  assert.deepEqual(bodyOf(reply), {
    statusCode: 408,
    code: 'SWIN_REQUEST_TIMEOUT',
    error: 'Request Timeout',
    message: 'The request headers did not arrive within 1000 ms',
  });
  t.diagnostic(`${ms} ms`);
  assert.ok(ms >= 900 && ms <= 3000, `cut after ${ms} ms; configured 1000 ms`);
});

test('an idle keep-alive connection is closed at IDLE_TIMEOUT_MS', async (t) => {
  const { reply, ms } = await slowClient('GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n');
  assert.match(reply, /^HTTP\/1.1 200 OK\r\n/);
  assert.match(reply, /\{"status":"ok"\}$/);
  t.diagnostic(`${ms} ms`);
  assert.ok(ms >= 900 && ms <= 3000, `closed after ${ms} ms; configured 1000 ms`);
});
