// TLS material for both servers from the PEM files named in the config.
// Read at startup (a missing or unreadable file fails startup loudly) and
// again on SIGHUP: HTTPS through setSecureContext, gRPC through a certificate
// provider (grpcServerTls). Either way open connections keep the certificate
// they were made with and new handshakes get the new one.
import { readFileSync } from 'node:fs';
import { ServerCredentials, experimental } from '@grpc/grpc-js';
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

/** A certificate provider for grpc-js that hands out the identity it was last given. */
class ReloadableIdentity implements experimental.CertificateProvider {
  private readonly listeners = new Set<experimental.IdentityCertificateUpdateListener>();
  constructor(private current: TlsFiles) {}
  update(tls: TlsFiles): void {
    this.current = tls;
    for (const l of this.listeners) l({ certificate: tls.cert, privateKey: tls.key });
  }
  addIdentityCertificateListener(l: experimental.IdentityCertificateUpdateListener): void {
    this.listeners.add(l);
    l({ certificate: this.current.cert, privateKey: this.current.key });
  }
  removeIdentityCertificateListener(l: experimental.IdentityCertificateUpdateListener): void {
    this.listeners.delete(l);
  }
  // No client certificates are asked for: no CA updates.
  addCaCertificateListener(): void {}
  removeCaCertificateListener(): void {}
}

export interface GrpcTls {
  credentials: ServerCredentials;
  /** New handshakes use `tls`; open connections keep theirs. A no-op without TLS. */
  reload(tls: TlsFiles): void;
}

/**
 * gRPC credentials whose certificate can be replaced while the server runs: grpc-js (>= 1.10)
 * calls setSecureContext on its HTTP/2 server when a certificate provider reports a new identity.
 */
export function grpcServerTls(cfg: Pick<AccessConfig, 'tlsCertFile' | 'tlsKeyFile'>): GrpcTls {
  const tls = readTlsFiles(cfg);
  if (tls === null) return { credentials: ServerCredentials.createInsecure(), reload: () => undefined };
  const identity = new ReloadableIdentity(tls);
  // grpc-js names its first parameter caCertificateProvider but passes it on as the identity provider.
  const credentials = experimental.createCertificateProviderServerCredentials(identity, null, false);
  // grpc-js reads the certificate when the server binds but asks the provider only once a watcher
  // exists; one that does nothing makes the first certificate known before bindAsync.
  credentials._addWatcher(() => undefined);
  return { credentials, reload: (next) => identity.update(next) };
}

/** Credentials for grpc.Server#bindAsync: TLS when configured, else insecure (plaintext HTTP/2); fixed for the server's life. */
export function grpcServerCredentials(cfg: Pick<AccessConfig, 'tlsCertFile' | 'tlsKeyFile'>): ServerCredentials {
  const tls = readTlsFiles(cfg);
  if (tls === null) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
}
