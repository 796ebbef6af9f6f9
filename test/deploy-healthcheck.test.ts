// The images' HEALTHCHECK (src/healthcheck.ts) against the real server with TLS
// on: it must speak HTTPS and pass, where a plain-HTTP probe (what the images
// ran before) fails against the same port.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT, startServer, type ServerProcess } from './helpers/reliability-harness.js';
import { selfSignedCert } from './helpers/security-certs.js';

const dir = mkdtempSync(join(tmpdir(), 'swin-hc-'));
const { certFile, keyFile } = selfSignedCert(dir);
let server: ServerProcess;

before(async () => {
  server = await startServer({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, LOG_LEVEL: 'warn' }, 120_000, readFileSync(certFile));
});
after(async () => {
  server?.proc.kill('SIGTERM');
  await server?.exited;
  rmSync(dir, { recursive: true, force: true });
});

function healthcheck(env: Record<string, string>): number | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/healthcheck.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH!, ...env },
    timeout: 30_000,
  });
  return r.status;
}

test('with TLS on, the health check speaks HTTPS to its own port and passes', () => {
  assert.equal(healthcheck({ PORT: String(server.port), TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile }), 0);
});

test('a plain-HTTP probe of the same port fails (what the images did before)', () => {
  assert.equal(healthcheck({ PORT: String(server.port) }), 1);
});

test('nothing listening: the health check fails', () => {
  assert.equal(healthcheck({ PORT: '1', TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile }), 1);
});
