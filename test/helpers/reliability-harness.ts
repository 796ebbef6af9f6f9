// Shared by the reliability tests and scripts: spawn the real server
// (src/main.ts) on loopback ports, talk to it over keep-alive HTTP, read its
// RSS. Every wait here is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  port: number;
  grpcPort: number;
  /** stdout+stderr so far (pino JSON lines). */
  logs(): string;
  /** Resident set size of the server process, KiB (Linux /proc). */
  rssKiB(): number;
  /** Resolves with the exit code (or signal name) once the process ended. */
  exited: Promise<number | string>;
}

/**
 * Starts `node --import tsx src/main.ts` with env on free loopback ports; resolves once `waitPath` answers 200.
 * `ca`: the server serves HTTPS with a certificate this CA (or self-signed certificate) vouches for.
 */
export async function startServer(
  env: Record<string, string> = {},
  readyTimeoutMs = 120_000,
  ca?: Buffer,
  waitPath = '/health/ready',
): Promise<ServerProcess> {
  const port = await freePort();
  const grpcPort = await freePort();
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), GRPC_PORT: String(grpcPort), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 4_000_000) out = out.slice(-2_000_000); // bounded
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const url = `${ca ? 'https' : 'http'}://127.0.0.1:${port}`;
  const t0 = Date.now();
  let ended = false;
  void exited.then(() => (ended = true));
  for (;;) {
    if (ended) throw new Error(`server exited during startup:\n${out.slice(-4000)}`);
    if (Date.now() - t0 > readyTimeoutMs) {
      proc.kill('SIGKILL');
      throw new Error(`server not ready after ${readyTimeoutMs} ms:\n${out.slice(-4000)}`);
    }
    const r = await request(url, { method: 'GET', path: waitPath, timeoutMs: 1000, ca }).catch(() => null);
    if (r?.status === 200) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  return {
    proc,
    url,
    port,
    grpcPort,
    logs: () => out,
    rssKiB: () => {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : NaN;
    },
    exited,
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

const agents = new Map<string, http.Agent>();

export function agentFor(url: string, maxSockets = 256): http.Agent {
  let a = agents.get(url);
  if (!a) {
    a = new http.Agent({ keepAlive: true, maxSockets });
    agents.set(url, a);
  }
  return a;
}

export function destroyAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

/** One HTTP request; rejects on connection errors and after timeoutMs. */
export function request(
  url: string,
  o: {
    method?: string;
    path: string;
    body?: Buffer;
    contentType?: string;
    headers?: Record<string, string>;
    timeoutMs?: number;
    agent?: http.Agent;
    ca?: Buffer;
  },
): Promise<Reply> {
  const u = new URL(url);
  const t0 = performance.now();
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        ...(o.ca ? { ca: o.ca, servername: 'localhost' } : {}),
        host: u.hostname,
        port: u.port,
        method: o.method ?? 'POST',
        path: o.path,
        agent: o.agent ?? false,
        headers: {
          ...(o.body !== undefined
            ? { 'content-type': o.contentType ?? 'application/octet-stream', 'content-length': String(o.body.length) }
            : {}),
          ...o.headers,
        },
        timeout: o.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            ms: performance.now() - t0,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Percentile of an unsorted sample (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** A small PNG that is a plausible Fashion-MNIST input (28x28 grey noise-free pattern). */
export async function samplePng(seed = 1): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  const px = Buffer.alloc(28 * 28);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) px[y * 28 + x] = (x * 9 + y * seed * 7) & 0xff;
  return sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toBuffer();
}
