// Settings of the access layer (auth, TLS, rate limiting, CORS), read from
// environment variables. Kept apart from src/config.ts so the access layer
// can be built and tested on its own; config.ts embeds the result.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export interface AccessConfig {
  /** API keys accepted as `Authorization: Bearer <key>` or `x-api-key: <key>`. Empty: auth off. */
  apiKeys: string[];
  /** Health endpoints (HTTP /health/*, /v2/health/*, gRPC grpc.health.v1 and KServe live/ready) skip auth. */
  publicHealth: boolean;
  /** GET /metrics skips auth (Prometheus scrapes without a key by default). */
  publicMetrics: boolean;
  /** PEM files; both set: HTTP and gRPC serve TLS. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Sustained requests per second per client (API key, else IP). 0: rate limiting off. */
  rateLimitRps: number;
  /** Bucket size: requests a client may send at once after being idle. */
  rateLimitBurst: number;
  /** Origins allowed by CORS; empty: CORS off (no Access-Control-* headers). "*" allows any. */
  corsOrigins: string[];
  /**
   * Reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For the HTTP server believes:
   * from them, the client is the nearest address in the header that is not itself a trusted
   * proxy (rate-limit buckets, logs). Empty: the TCP peer is the client.
   */
  trustProxy: string[];
}

export const ACCESS_DEFAULTS: AccessConfig = {
  apiKeys: [],
  publicHealth: true,
  publicMetrics: true,
  rateLimitRps: 0,
  rateLimitBurst: 0,
  corsOrigins: [],
  trustProxy: [],
};

type Env = Record<string, string | undefined>;

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function bool(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(value)}`);
}

function nonNegative(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number >= 0, got ${JSON.stringify(value)}`);
  return n;
}

/** "10.0.0.1", "10.0.0.0/8", "fd00::/8": an address, or an address and a prefix length. */
function proxyList(value: string | undefined): string[] {
  const entries = list(value);
  for (const e of entries) {
    const [addr, bits, extra] = e.split('/');
    const family = isIP(addr);
    const prefixOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (family === 0 || !prefixOk || extra !== undefined) {
      throw new Error(`TRUST_PROXY: ${JSON.stringify(e)} is not an IP address or CIDR range (e.g. 10.0.0.0/8)`);
    }
  }
  return entries;
}

/** One key per line; blank lines and lines starting with # are ignored. */
export function readKeyFile(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}

/**
 * Reads AUTH_API_KEYS, AUTH_API_KEYS_FILE, AUTH_PUBLIC_HEALTH, AUTH_PUBLIC_METRICS, TLS_CERT_FILE,
 * TLS_KEY_FILE, RATE_LIMIT_RPS, RATE_LIMIT_BURST, CORS_ORIGINS, TRUST_PROXY.
 * Throws a plain Error naming the variable when a value is invalid.
 */
export function accessConfigFromEnv(env: Env = process.env): AccessConfig {
  const apiKeys = list(env.AUTH_API_KEYS);
  if (env.AUTH_API_KEYS_FILE) apiKeys.push(...readKeyFile(env.AUTH_API_KEYS_FILE));
  const tlsCertFile = env.TLS_CERT_FILE || undefined;
  const tlsKeyFile = env.TLS_KEY_FILE || undefined;
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new Error('TLS_CERT_FILE and TLS_KEY_FILE must be set together');
  }
  const rateLimitRps = nonNegative('RATE_LIMIT_RPS', env.RATE_LIMIT_RPS, 0);
  // Default burst: one second's worth, at least 1.
  const rateLimitBurst = nonNegative('RATE_LIMIT_BURST', env.RATE_LIMIT_BURST, Math.max(1, Math.ceil(rateLimitRps)));
  if (rateLimitRps > 0 && rateLimitBurst < 1) throw new Error('RATE_LIMIT_BURST must be >= 1 when RATE_LIMIT_RPS is set');
  return {
    apiKeys,
    publicHealth: bool('AUTH_PUBLIC_HEALTH', env.AUTH_PUBLIC_HEALTH, true),
    publicMetrics: bool('AUTH_PUBLIC_METRICS', env.AUTH_PUBLIC_METRICS, true),
    tlsCertFile,
    tlsKeyFile,
    rateLimitRps,
    rateLimitBurst,
    corsOrigins: list(env.CORS_ORIGINS),
    trustProxy: proxyList(env.TRUST_PROXY),
  };
}
