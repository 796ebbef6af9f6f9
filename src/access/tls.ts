// TLS material for both servers from the PEM files named in the config.
// Read once at startup; a missing or unreadable file fails startup loudly.
import { readFileSync } from 'node:fs';
import { ServerCredentials } from '@grpc/grpc-js';
import type { AccessConfig } from './access-config.js';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

export function readTlsFiles(cfg: Pick<AccessConfig, 'tlsCertFile' | 'tlsKeyFile'>): TlsFiles | null {
  if (!cfg.tlsCertFile || !cfg.tlsKeyFile) return null;
  return { cert: readFileSync(cfg.tlsCertFile), key: readFileSync(cfg.tlsKeyFile) };
}

/** Spread into fastify's options: `Fastify({ ...httpsServerOptions(cfg), logger })`. */
export function httpsServerOptions(cfg: Pick<AccessConfig, 'tlsCertFile' | 'tlsKeyFile'>): { https?: { cert: Buffer; key: Buffer } } {
  const tls = readTlsFiles(cfg);
  return tls === null ? {} : { https: { cert: tls.cert, key: tls.key } };
}

/** Credentials for grpc.Server#bindAsync: TLS when configured, else insecure (plaintext HTTP/2). */
export function grpcServerCredentials(cfg: Pick<AccessConfig, 'tlsCertFile' | 'tlsKeyFile'>): ServerCredentials {
  const tls = readTlsFiles(cfg);
  if (tls === null) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
}
