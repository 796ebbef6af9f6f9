// Access layer on its own: API keys (HTTP and gRPC), rate limiting, CORS, TLS
// from certificate files. The wiring into the real app is pinned by
// security-app.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import Fastify, { type FastifyInstance } from 'fastify';
import { HealthImplementation, service as healthService } from 'grpc-health-check';
import { ACCESS_DEFAULTS, accessConfigFromEnv, type AccessConfig } from '../src/api/access/access-config.js';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/api/http/app.js';
import { FakeService } from './helpers/kserve-fake-service.js';
import { ApiKeyChecker, presentedKey } from '../src/api/access/api-keys.js';
import { grpcAccessInterceptor } from '../src/api/access/grpc-access.js';
import { registerAccessControl } from '../src/api/access/http-access.js';
import { grpcServerCredentials, readTlsFiles } from '../src/api/access/tls.js';
import { RateLimiter } from '../src/api/access/token-bucket.js';
import { httpErrorBody, toServeError } from '../src/errors.js';
import { selfSignedCert } from './helpers/security-certs.js';

const KEY = 'k-0123456789abcdef';
const cfg = (over: Partial<AccessConfig>): AccessConfig => ({ ...ACCESS_DEFAULTS, ...over });

describe('api keys', () => {
  test('accepts exactly the configured keys', () => {
    const c = new ApiKeyChecker([KEY, 'second']);
    assert.equal(c.enabled, true);
    assert.equal(c.check(KEY), true);
    assert.equal(c.check('second'), true);
    assert.equal(c.check(KEY + 'x'), false);
    assert.equal(c.check(KEY.slice(0, -1)), false);
    assert.equal(c.check(''), false);
    assert.equal(c.check(undefined), false);
    assert.equal(new ApiKeyChecker([]).enabled, false);
  });
  test('reads Bearer and x-api-key headers', () => {
    assert.equal(presentedKey('Bearer abc', undefined), 'abc');
    assert.equal(presentedKey('bearer   abc ', undefined), 'abc');
    assert.equal(presentedKey('Basic abc', undefined), undefined);
    assert.equal(presentedKey(undefined, 'xyz'), 'xyz');
    assert.equal(presentedKey(['Bearer a', 'Bearer b'], undefined), 'a');
    assert.equal(presentedKey(undefined, undefined), undefined);
  });
  test('key ids do not contain the key', () => {
    const id = ApiKeyChecker.keyId(KEY);
    assert.match(id, /^key:[0-9a-f]{16}$/);
    assert.ok(!id.includes(KEY));
  });
});

describe('access config from environment', () => {
  test('defaults: everything off, health public', () => {
    const c = accessConfigFromEnv({});
    assert.deepEqual(c, { ...ACCESS_DEFAULTS, rateLimitBurst: 1, tlsCertFile: undefined, tlsKeyFile: undefined });
  });
  test('keys from the variable and the file, merged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swin-keys-'));
    try {
      writeFileSync(join(dir, 'keys'), '# ops\nfile-key-1\n\n  file-key-2  \n');
      const c = accessConfigFromEnv({
        AUTH_API_KEYS: 'a, b',
        AUTH_API_KEYS_FILE: join(dir, 'keys'),
        AUTH_PUBLIC_HEALTH: 'false',
        RATE_LIMIT_RPS: '5',
        CORS_ORIGINS: 'https://a.example, https://b.example',
      });
      assert.deepEqual(c.apiKeys, ['a', 'b', 'file-key-1', 'file-key-2']);
      assert.equal(c.publicHealth, false);
      assert.equal(c.rateLimitRps, 5);
      assert.equal(c.rateLimitBurst, 5);
      assert.deepEqual(c.corsOrigins, ['https://a.example', 'https://b.example']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('rejects invalid values, naming the variable', () => {
    assert.throws(() => accessConfigFromEnv({ RATE_LIMIT_RPS: '-1' }), /RATE_LIMIT_RPS/);
    assert.throws(() => accessConfigFromEnv({ AUTH_PUBLIC_HEALTH: 'maybe' }), /AUTH_PUBLIC_HEALTH/);
    assert.throws(() => accessConfigFromEnv({ TLS_CERT_FILE: '/x.pem' }), /TLS_KEY_FILE/);
    assert.throws(() => accessConfigFromEnv({ AUTH_API_KEYS_FILE: '/nonexistent/keys' }), /ENOENT/);
  });
});

describe('token bucket', () => {
  test('burst, refusal with Retry-After, refill', () => {
    let now = 0;
    const rl = new RateLimiter(2, 3, 100, () => now);
    for (let i = 0; i < 3; i++) assert.equal(rl.take('a').allowed, true);
    assert.deepEqual(rl.take('a'), { allowed: false, retryAfterSeconds: 1 });
    assert.equal(rl.take('b').allowed, true, 'buckets are per client');
    now += 500; // +1 token at 2/s
    assert.equal(rl.take('a').allowed, true);
    assert.equal(rl.take('a').allowed, false);
    now += 10_000;
    for (let i = 0; i < 3; i++) assert.equal(rl.take('a').allowed, true, 'refills only up to burst');
    assert.equal(rl.take('a').allowed, false);
  });
  test('slow refill gives a Retry-After of several seconds', () => {
    const now = 0;
    const rl = new RateLimiter(0.25, 1, 100, () => now);
    assert.equal(rl.take('a').allowed, true);
    assert.deepEqual(rl.take('a'), { allowed: false, retryAfterSeconds: 4 });
  });
  test('the client table stays bounded', () => {
    let now = 0;
    const rl = new RateLimiter(1, 1, 1000, () => now);
    for (let i = 0; i < 50_000; i++) {
      rl.take('ip:' + i);
      now += 0.01;
    }
    assert.ok(rl.size <= 1000, `size ${rl.size}`);
  });
});

/** A bare fastify app with the one-error-handler convention of the real app. */
async function appWith(c: AccessConfig): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.setErrorHandler((err, _req, reply) => {
    const e = toServeError(err);
    void reply.code(e.httpStatus).send(httpErrorBody(e));
  });
  await registerAccessControl(app, c);
  app.get('/health/live', async () => ({ status: 'live' }));
  app.get('/metrics', async () => 'ok');
  app.post('/classify', async () => ({ ok: true }));
  return app;
}

describe('HTTP access control', () => {
  test('auth off by default: everything answers', async () => {
    const app = await appWith(cfg({}));
    const r = await app.inject({ method: 'POST', url: '/classify' });
    assert.equal(r.statusCode, 200);
    await app.close();
  });

  test('auth on: 401 SWIN_UNAUTHENTICATED without or with a wrong key, 200 with Bearer or x-api-key', async () => {
    const app = await appWith(cfg({ apiKeys: [KEY] }));
    const none = await app.inject({ method: 'POST', url: '/classify' });
    assert.equal(none.statusCode, 401);
    assert.deepEqual(none.json(), {
      statusCode: 401,
      code: 'SWIN_UNAUTHENTICATED',
      error: 'Unauthorized',
      message: 'Missing or invalid API key',
    });
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    const wrong = await app.inject({ method: 'POST', url: '/classify', headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.statusCode, 401);
    assert.ok(!wrong.body.includes('nope'), 'the presented key is not echoed');
    assert.equal((await app.inject({ method: 'POST', url: '/classify', headers: { authorization: `Bearer ${KEY}` } })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/classify', headers: { 'x-api-key': KEY } })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200, 'health public by default');
    assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200, 'metrics public by default');
    assert.equal((await app.inject({ method: 'GET', url: '/nope' })).statusCode, 401, 'unknown routes do not reveal themselves');
    await app.close();
  });

  test('health and metrics behind auth when so configured', async () => {
    const app = await appWith(cfg({ apiKeys: [KEY], publicHealth: false, publicMetrics: false }));
    assert.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'GET', url: '/health/live?x=1' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-api-key': KEY } })).statusCode, 200);
    await app.close();
  });

  test('rate limiting: 429 SWIN_RATE_LIMITED with Retry-After past the burst, per client, probes exempt', async () => {
    const app = await appWith(cfg({ rateLimitRps: 1, rateLimitBurst: 3 }));
    const codes: number[] = [];
    let last;
    for (let i = 0; i < 5; i++) {
      last = await app.inject({ method: 'POST', url: '/classify', remoteAddress: '10.0.0.1' });
      codes.push(last.statusCode);
    }
    assert.deepEqual(codes, [200, 200, 200, 429, 429]);
    assert.equal(last!.headers['retry-after'], '1');
    assert.equal(last!.json().code, 'SWIN_RATE_LIMITED');
    assert.equal((await app.inject({ method: 'POST', url: '/classify', remoteAddress: '10.0.0.2' })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/health/live', remoteAddress: '10.0.0.1' })).statusCode, 200);
    await app.close();
  });

  test('TRUST_PROXY: behind a listed proxy each X-Forwarded-For client has its own bucket; others cannot spoof one', async () => {
    // Through buildApp, which hands TRUST_PROXY to Fastify (the helper above builds a bare Fastify).
    const config = loadConfig([], { TRUST_PROXY: '10.9.0.0/16', RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '1', LOG_LEVEL: 'silent' });
    const app = await buildApp(config, new FakeService(), { logger: false });
    const ask = (remoteAddress: string, xff?: string) =>
      app
        .inject({
          method: 'GET',
          url: '/models',
          remoteAddress,
          headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
        })
        .then((r) => r.statusCode);
    // Through the proxy 10.9.0.5: two clients, one token each.
    assert.deepEqual([await ask('10.9.0.5', '203.0.113.1'), await ask('10.9.0.5', '203.0.113.1')], [200, 429]);
    assert.equal(await ask('10.9.0.5', '203.0.113.2'), 200, 'another client behind the same proxy');
    assert.equal(await ask('10.9.0.5', '203.0.113.2, 10.9.0.7'), 429, 'a chain of trusted proxies ends at the same client');
    // A direct client that is not a listed proxy: its X-Forwarded-For is ignored.
    assert.deepEqual([await ask('198.51.100.7', '203.0.113.3'), await ask('198.51.100.7', '203.0.113.4')], [200, 429]);
    await app.close();
    assert.deepEqual(accessConfigFromEnv({ TRUST_PROXY: '10.0.0.1, fd00::/8,192.168.0.0/16' }).trustProxy, [
      '10.0.0.1',
      'fd00::/8',
      '192.168.0.0/16',
    ]);
    for (const bad of ['10.0.0.0/33', 'proxy.local', '10.0.0.1/8/1', 'fd00::/129']) {
      assert.throws(() => accessConfigFromEnv({ TRUST_PROXY: bad }), /TRUST_PROXY/, bad);
    }
  });

  test('rate limiting with auth: buckets per key; failed attempts charged to the address', async () => {
    const app = await appWith(cfg({ apiKeys: [KEY, 'other'], rateLimitRps: 1, rateLimitBurst: 2 }));
    const ask = (headers: Record<string, string>, remoteAddress = '10.0.0.9') =>
      app.inject({ method: 'POST', url: '/classify', headers, remoteAddress }).then((r) => r.statusCode);
    assert.deepEqual([await ask({ 'x-api-key': KEY }), await ask({ 'x-api-key': KEY }), await ask({ 'x-api-key': KEY })], [200, 200, 429]);
    assert.equal(await ask({ 'x-api-key': 'other' }), 200, 'another key from the same address has its own bucket');
    assert.deepEqual(
      [await ask({ 'x-api-key': 'guess1' }), await ask({ 'x-api-key': 'guess2' }), await ask({ 'x-api-key': 'guess3' })],
      [401, 401, 429],
    );
    await app.close();
  });

  test('CORS off by default: no Access-Control headers', async () => {
    const app = await appWith(cfg({}));
    const r = await app.inject({ method: 'POST', url: '/classify', headers: { origin: 'https://evil.example' } });
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    const pre = await app.inject({
      method: 'OPTIONS',
      url: '/classify',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    await app.close();
  });

  test('CORS allow-list: listed origins only; preflight needs no key', async () => {
    const app = await appWith(cfg({ apiKeys: [KEY], corsOrigins: ['https://ui.example'] }));
    const ok = await app.inject({ method: 'POST', url: '/classify', headers: { origin: 'https://ui.example', 'x-api-key': KEY } });
    assert.equal(ok.headers['access-control-allow-origin'], 'https://ui.example');
    const other = await app.inject({ method: 'POST', url: '/classify', headers: { origin: 'https://evil.example', 'x-api-key': KEY } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const pre = await app.inject({
      method: 'OPTIONS',
      url: '/classify',
      headers: { origin: 'https://ui.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://ui.example');
    assert.match(String(pre.headers['access-control-allow-headers']), /x-api-key/);
    await app.close();
  });
});

// A unary test service with raw-bytes messages, so no .proto is needed.
const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
    originalName: 'echo',
  },
};

async function startGrpc(
  c: AccessConfig,
  creds = grpc.ServerCredentials.createInsecure(),
): Promise<{ server: grpc.Server; port: number; handled: () => number }> {
  let handled = 0;
  const server = new grpc.Server({ interceptors: [grpcAccessInterceptor(c)] });
  server.addService(echoService, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      handled++;
      cb(null, call.request);
    },
  });
  new HealthImplementation({ '': 'SERVING' }).addToServer(server);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
  return { server, port, handled: () => handled };
}

const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');
const HealthClient = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, 'Health');

function unary(
  client: grpc.Client,
  method: string,
  req: unknown,
  md = new grpc.Metadata(),
): Promise<{ err: grpc.ServiceError | null; res: unknown }> {
  return new Promise((resolve) => {
    (client as unknown as Record<string, Function>)[method](
      req,
      md,
      { deadline: Date.now() + 5000 },
      (err: grpc.ServiceError | null, res: unknown) => resolve({ err, res }),
    );
  });
}

describe('gRPC access control', () => {
  test('UNAUTHENTICATED without a key, handler never called; OK with Bearer or x-api-key; health public', async () => {
    const { server, port, handled } = await startGrpc(cfg({ apiKeys: [KEY] }));
    const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const health = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const none = await unary(client, 'Echo', Buffer.from('hi'));
      assert.equal(none.err?.code, grpc.status.UNAUTHENTICATED);
      assert.equal(none.err?.details, 'Missing or invalid API key');
      assert.equal(none.err?.metadata.get('swin-code')[0], 'SWIN_UNAUTHENTICATED');
      const wrongMd = new grpc.Metadata();
      wrongMd.set('authorization', 'Bearer wrong');
      assert.equal((await unary(client, 'Echo', Buffer.from('hi'), wrongMd)).err?.code, grpc.status.UNAUTHENTICATED);
      assert.equal(handled(), 0);
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${KEY}`);
      const ok = await unary(client, 'Echo', Buffer.from('hi'), md);
      assert.equal(ok.err, null);
      assert.equal(Buffer.from(ok.res as Buffer).toString(), 'hi');
      const md2 = new grpc.Metadata();
      md2.set('x-api-key', KEY);
      assert.equal((await unary(client, 'Echo', Buffer.from('x'), md2)).err, null);
      assert.equal(handled(), 2);
      const h = await unary(health, 'check', { service: '' });
      assert.equal(h.err, null);
      assert.deepEqual(h.res, { status: 'SERVING' });
    } finally {
      client.close();
      health.close();
      server.forceShutdown();
    }
  });

  test('health behind auth when AUTH_PUBLIC_HEALTH=false', async () => {
    const { server, port } = await startGrpc(cfg({ apiKeys: [KEY], publicHealth: false }));
    const health = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      assert.equal((await unary(health, 'check', { service: '' })).err?.code, grpc.status.UNAUTHENTICATED);
    } finally {
      health.close();
      server.forceShutdown();
    }
  });

  test('RESOURCE_EXHAUSTED with retry pushback past the burst', async () => {
    const { server, port, handled } = await startGrpc(cfg({ rateLimitRps: 0.5, rateLimitBurst: 2 }));
    const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const codes = [];
      let last;
      for (let i = 0; i < 4; i++) {
        last = await unary(client, 'Echo', Buffer.from('x'));
        codes.push(last.err?.code ?? grpc.status.OK);
      }
      assert.deepEqual(codes, [grpc.status.OK, grpc.status.OK, grpc.status.RESOURCE_EXHAUSTED, grpc.status.RESOURCE_EXHAUSTED]);
      assert.equal(last!.err?.metadata.get('retry-after')[0], '2');
      assert.equal(last!.err?.metadata.get('grpc-retry-pushback-ms')[0], '2000');
      assert.equal(handled(), 2);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});

describe('TLS from certificate files', () => {
  let dir: string;
  let certFile: string;
  let keyFile: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'swin-tls-'));
    ({ certFile, keyFile } = selfSignedCert(dir));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('HTTPS serves with the configured certificate', async () => {
    const app = Fastify({ https: readTlsFiles({ tlsCertFile: certFile, tlsKeyFile: keyFile })! });
    app.get('/health/live', async () => ({ status: 'live' }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (app.server.address() as { port: number }).port;
      const ca = readFileSync(certFile);
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, path: '/health/live', ca, servername: 'localhost' }, (res) => {
            let s = '';
            res.on('data', (d) => (s += d));
            res.on('end', () => resolve(s));
          })
          .on('error', reject);
      });
      assert.deepEqual(JSON.parse(body), { status: 'live' });
      // A client that does not trust the certificate is refused by the handshake.
      await assert.rejects(
        new Promise((resolve, reject) => https.get({ host: '127.0.0.1', port, path: '/health/live' }, resolve).on('error', reject)),
        /self-signed|unable to verify|self signed/i,
      );
    } finally {
      await app.close();
    }
  });

  test('gRPC serves TLS with the configured certificate', async () => {
    const { server, port } = await startGrpc(cfg({}), grpcServerCredentials({ tlsCertFile: certFile, tlsKeyFile: keyFile }));
    const ca = readFileSync(certFile);
    const client = new EchoClient(`localhost:${port}`, grpc.credentials.createSsl(ca));
    const plain = new EchoClient(`localhost:${port}`, grpc.credentials.createInsecure());
    try {
      const ok = await unary(client, 'Echo', Buffer.from('tls'));
      assert.equal(ok.err, null);
      assert.equal(Buffer.from(ok.res as Buffer).toString(), 'tls');
      const bad = await unary(plain, 'Echo', Buffer.from('x'));
      assert.equal(bad.err?.code, grpc.status.UNAVAILABLE, 'plaintext clients cannot talk to the TLS port');
    } finally {
      client.close();
      plain.close();
      server.forceShutdown();
    }
  });
});

describe('HTTP methods', () => {
  test('a known path under another method is 405 with Allow, before the body is read; unknown paths stay 404', async () => {
    const app = await appWith(cfg({}));
    app.get('/models/:name', async () => ({}));
    const trace = await app.inject({ method: 'TRACE', url: '/classify' });
    assert.equal(trace.statusCode, 405);
    assert.equal(trace.headers.allow, 'POST');
    assert.equal(trace.json().code, 'SWIN_METHOD_NOT_ALLOWED');
    const put = await app.inject({
      method: 'PUT',
      url: '/models/abc?x=1',
      headers: { 'content-type': 'application/x-nothing' },
      payload: 'zzz',
    });
    assert.equal(put.statusCode, 405);
    assert.equal(put.headers.allow, 'GET, HEAD');
    assert.equal((await app.inject({ method: 'GET', url: '/models/abc' })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/models/abc/extra' })).statusCode, 404);
    await app.close();
  });

  test('with CORS on, the preflight catch-all does not turn unknown paths into 405', async () => {
    const app = await appWith(cfg({ corsOrigins: ['https://ui.example'] }));
    assert.equal((await app.inject({ method: 'GET', url: '/nope' })).statusCode, 404);
    assert.equal((await app.inject({ method: 'DELETE', url: '/classify' })).statusCode, 405);
    await app.close();
  });
});
