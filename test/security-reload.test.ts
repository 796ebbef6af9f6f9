// SIGHUP reloads the API-key file and the HTTPS certificate without a restart:
// a keep-alive connection opened before the reload goes on working, new
// connections get the new certificate, and the new keys replace the old ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { AccessController } from '../src/api/access/access-control.js';
import { ACCESS_DEFAULTS } from '../src/api/access/access-config.js';
import { startServer, type ServerProcess } from './helpers/reliability-harness.js';
import type { ServeError } from '../src/errors.js';
import { selfSignedCert } from './helpers/security-certs.js';

test('AccessController.reloadKeys replaces the accepted keys', () => {
  const a = new AccessController({ ...ACCESS_DEFAULTS, apiKeys: ['old'] });
  const req = (key: string) => a.check({ kind: 'api', authorization: `Bearer ${key}`, xApiKey: undefined, remoteAddress: '1.2.3.4' });
  assert.equal(req('old'), null);
  a.reloadKeys(['new']);
  assert.equal(req('new'), null);
  assert.equal((req('old') as ServeError | null)?.code, 'SWIN_UNAUTHENTICATED');
});

function get(
  port: number,
  agent: https.Agent,
  ca: Buffer,
  key: string,
): Promise<{ status: number; socket: TLSSocket; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/models', agent, ca, servername: 'localhost', headers: { authorization: `Bearer ${key}` } },
      (res) => {
        const socket = res.socket as TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, socket, fingerprint }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test(
  'SIGHUP: the connection open before the reload survives; new connections see the new certificate and keys',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swin-reload-'));
    const first = join(dir, 'a');
    const second = join(dir, 'b');
    mkdirSync(first);
    mkdirSync(second);
    const a = selfSignedCert(first);
    const b = selfSignedCert(second);
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    copyFileSync(a.certFile, certFile);
    copyFileSync(a.keyFile, keyFile);
    const keysFile = join(dir, 'keys');
    writeFileSync(keysFile, 'old-key\n');
    const caA = readFileSync(a.certFile);
    const caB = readFileSync(b.certFile);
    let server: ServerProcess | undefined;
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      server = await startServer(
        { SWIN_TLS_CERT_FILE: certFile, SWIN_TLS_KEY_FILE: keyFile, SWIN_AUTH_API_KEYS_FILE: keysFile, LOG_LEVEL: 'info' },
        90_000,
        caA,
        '/health/live',
      );
      const before = await get(server.port, agent, caA, 'old-key');
      assert.equal(before.status, 200);
      copyFileSync(b.certFile, certFile);
      copyFileSync(b.keyFile, keyFile);
      writeFileSync(keysFile, 'new-key\n');
      server.proc.kill('SIGHUP');
      for (let i = 0; i < 100 && !server.logs().includes('SIGHUP: API keys and HTTPS certificate reloaded'); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(server.logs(), /SIGHUP: API keys and HTTPS certificate reloaded/);
      // The same TLS socket, still trusted under the first certificate, carries the next request.
      const after = await get(server.port, agent, caA, 'new-key');
      assert.equal(after.status, 200);
      assert.equal(after.socket, before.socket, 'the keep-alive connection was kept');
      assert.equal(after.fingerprint, before.fingerprint);
      assert.equal((await get(server.port, agent, caA, 'old-key')).status, 401);
      // A new connection gets the second certificate (it fails against the first CA).
      const fresh = new https.Agent({ keepAlive: false });
      const next = await get(server.port, fresh, caB, 'new-key');
      assert.equal(next.status, 200);
      assert.notEqual(next.fingerprint, before.fingerprint);
      await assert.rejects(get(server.port, fresh, caA, 'new-key'));
      fresh.destroy();
    } finally {
      agent.destroy();
      if (server) {
        server.proc.kill('SIGTERM');
        await Promise.race([server.exited, new Promise((r) => setTimeout(r, 20_000))]);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('gRPC: a new certificate reaches new handshakes; the connection open before it keeps working', { timeout: 60_000 }, async () => {
  const { startGrpcServer } = await import('../src/api/grpc/grpc-server.js');
  const { grpcServerTls, readTlsFiles } = await import('../src/api/access/tls.js');
  const { loadProtos } = await import('../src/api/grpc/protos.js');
  const grpc = await import('@grpc/grpc-js');
  const { pino } = await import('pino');
  const { FakeService } = await import('./helpers/kserve-fake-service.js');
  const dir = mkdtempSync(join(tmpdir(), 'swin-grpc-reload-'));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  const a = selfSignedCert(join(dir, 'a'));
  const b = selfSignedCert(join(dir, 'b'));
  const caA = readFileSync(a.certFile);
  const caB = readFileSync(b.certFile);
  const tls = grpcServerTls({ tlsCertFile: a.certFile, tlsKeyFile: a.keyFile });
  const server = await startGrpcServer(
    new FakeService(),
    { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20, credentials: tls.credentials },
    pino({ level: 'silent' }),
  );
  const Client = loadProtos().kserve.inference.GRPCInferenceService;
  // grpc.ssl_target_name_override: the certificates name localhost; we dial 127.0.0.1.
  const opts = { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' };
  const client = (ca: Buffer) => new Client(`127.0.0.1:${server.port}`, grpc.credentials.createSsl(ca), opts);
  const live = (c: InstanceType<typeof Client>) =>
    new Promise<boolean>((resolve, reject) =>
      c.ServerLive({}, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res!.live))),
    );
  const before = client(caA);
  try {
    assert.equal(await live(before), true);
    tls.reload(readTlsFiles({ tlsCertFile: b.certFile, tlsKeyFile: b.keyFile })!);
    // Trusting only the first certificate, this channel can only succeed on the connection it already has.
    assert.equal(await live(before), true);
    const fresh = client(caB);
    assert.equal(await live(fresh), true);
    fresh.close();
    const stale = client(caA);
    await assert.rejects(live(stale), (err: { code: number }) => err.code === grpc.status.UNAVAILABLE);
    stale.close();
  } finally {
    before.close();
    await server.close(1000);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGHUP while the server starts does not end it; the reload is carried out once it serves', { timeout: 120_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const { ROOT, freePort, request } = await import('./helpers/reliability-harness.js');
  const dir = mkdtempSync(join(tmpdir(), 'swin-reload-start-'));
  const keysFile = join(dir, 'keys');
  writeFileSync(keysFile, 'old-key\n');
  const port = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), GRPC_PORT: String(await freePort()), SWIN_AUTH_API_KEYS_FILE: keysFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let exit: number | string | null = null;
  proc.on('exit', (code, sig) => (exit = code ?? sig));
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const models = (key: string) => request(url, { method: 'GET', path: '/models', headers: { 'x-api-key': key }, timeoutMs: 5000 });
  try {
    for (let i = 0; i < 600 && !out.includes('swin-serve starting'); i++) await new Promise((r) => setTimeout(r, 25));
    // The models are still loading: no listener yet.
    writeFileSync(keysFile, 'new-key\n');
    proc.kill('SIGHUP');
    let ready = false;
    for (let i = 0; i < 600 && exit === null && !ready; i++) {
      ready = (await request(url, { method: 'GET', path: '/health/ready', timeoutMs: 1000 }).catch(() => null))?.status === 200;
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(exit, null, `the server ended on SIGHUP while starting:\n${out.slice(-2000)}`);
    assert.ok(ready, 'the server became ready');
    assert.match(out, /SIGHUP came while starting: reloading now/);
    assert.equal((await models('new-key')).status, 200);
    assert.equal((await models('old-key')).status, 401);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => (exit !== null ? r(null) : proc.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
});
