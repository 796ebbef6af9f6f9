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
import { AccessController } from '../src/access/access-control.js';
import { ACCESS_DEFAULTS } from '../src/access/access-config.js';
import { startServer, type ServerProcess } from './reliability-harness.js';
import { selfSignedCert } from './security-certs.js';

test('AccessController.reloadKeys replaces the accepted keys', () => {
  const a = new AccessController({ ...ACCESS_DEFAULTS, apiKeys: ['old'] });
  const req = (key: string) => a.check({ kind: 'api', authorization: `Bearer ${key}`, xApiKey: undefined, remoteAddress: '1.2.3.4' });
  assert.equal(req('old'), null);
  a.reloadKeys(['new']);
  assert.equal(req('new'), null);
  assert.equal(req('old')?.code, 'SWIN_UNAUTHENTICATED');
});

function get(port: number, agent: https.Agent, ca: Buffer, key: string): Promise<{ status: number; socket: TLSSocket; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/models', agent, ca, servername: 'localhost', headers: { authorization: `Bearer ${key}` } }, (res) => {
      const socket = res.socket as TLSSocket;
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, socket, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('SIGHUP: the connection open before the reload survives; new connections see the new certificate and keys', { timeout: 120_000 }, async () => {
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
    server = await startServer({ SWIN_TLS_CERT_FILE: certFile, SWIN_TLS_KEY_FILE: keyFile, SWIN_AUTH_API_KEYS_FILE: keysFile, LOG_LEVEL: 'info' }, 90_000, caA, '/health/live');
    const before = await get(server.port, agent, caA, 'old-key');
    assert.equal(before.status, 200);
    copyFileSync(b.certFile, certFile);
    copyFileSync(b.keyFile, keyFile);
    writeFileSync(keysFile, 'new-key\n');
    server.proc.kill('SIGHUP');
    for (let i = 0; i < 100 && !server.logs().includes('SIGHUP: API keys and HTTPS certificate reloaded'); i++) await new Promise((r) => setTimeout(r, 50));
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
});
