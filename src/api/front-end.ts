// The protocol front end of one event loop: the HTTP app and the gRPC server in
// front of an InferenceService, with access control (API keys, rate limits) and the
// budget of request bodies in flight, warm-up requests before the listeners open,
// reload of API keys and certificates, and close. The main thread runs one in front
// of the service itself (FRONTEND_WORKERS=0), or each front-end worker thread runs
// one in front of a ServiceProxy (src/api/workers/), all listening on the same
// ports with SO_REUSEPORT so the kernel spreads connections over them.
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { BaseLogger } from 'pino';
import { AccessController, type TokenSource } from './access/access-control.js';
import { accessConfigFromEnv } from './access/access-config.js';
import { grpcAccessInterceptor } from './access/grpc-access.js';
import { grpcServerTls, httpsServerOptions, readTlsFiles } from './access/tls.js';
import type { BodyBudget } from './body-budget.js';
import { grpcBodyBudgetInterceptor } from './grpc/grpc-body-budget.js';
import { startGrpcServer, type GrpcServerHandle } from './grpc/grpc-server.js';
import { buildApp } from './http/app.js';
import { sendWarmupRequests } from './http/warmup.js';
import { resolveEnv, type Config } from '../config.js';
import type { InferenceService } from '../service/service-types.js';

export interface FrontEndOptions {
  logger: BaseLogger;
  bodyBudget: BodyBudget;
  /** Listen with SO_REUSEPORT beside other front ends of this process (worker threads). */
  reusePort?: boolean;
  /** /metrics text; default: this thread's registry. */
  metricsText?: () => Promise<string>;
  /** Where RATE_LIMIT_RPS's tokens come from; default: buckets of this thread (a worker asks main's). */
  tokens?: TokenSource;
}

export interface FrontEnd {
  app: FastifyInstance;
  /** Opens the listeners; port 0 picks a free one (the first worker's is then given to the others). */
  listen(httpPort: number, grpcPort: number): Promise<{ http: number; grpc: number }>;
  /**
   * SIGHUP: API keys and the certificate read again; open connections keep theirs. Logs the
   * outcome; when the new files do not load, the previous keys and certificate stay in use.
   */
  reload(env: Record<string, string | undefined>): void;
  /** Stops accepting, answers every request already read (up to graceMs for gRPC calls). */
  close(graceMs: number): Promise<void>;
}

/** Builds the servers and sends (and logs) the warm-up requests; nothing listens until listen(). */
export async function buildFrontEnd(config: Config, service: InferenceService, opts: FrontEndOptions): Promise<FrontEnd> {
  const { logger, bodyBudget } = opts;
  const access = new AccessController(config.access, opts.tokens);
  const app = await buildApp(config, service, {
    loggerInstance: logger,
    access,
    bodyBudget,
    server: httpsServerOptions(config.access),
    metricsText: opts.metricsText,
  });
  // WARMUP_REQUESTS: not counted, logged or traced one by one; this line says they ran (docs/model-json.md#warm-up).
  const warm = await sendWarmupRequests(app, service, config);
  if (warm) {
    for (const f of warm.failed) logger.warn(f, 'a warm-up request failed; the service serves without it');
    logger.info(
      { requests: warm.sent, failed: warm.failed.length, ms: Math.round(warm.ms) },
      'warm-up requests sent through POST /classify',
    );
  }
  const grpcTls = grpcServerTls(config.access);
  let grpc: GrpcServerHandle | null = null;

  return {
    app,
    async listen(httpPort, grpcPort) {
      await app.listen({ port: httpPort, host: config.host, ...(opts.reusePort && { reusePort: true }) });
      grpc = await startGrpcServer(
        service,
        {
          host: config.host,
          port: grpcPort,
          reusePort: opts.reusePort,
          maxMessageBytes: config.limits.maxBodyBytes,
          maxConnectionAgeMs: config.grpcMaxConnectionAgeMs,
          credentials: grpcTls.credentials,
          interceptors: [grpcAccessInterceptor(access), grpcBodyBudgetInterceptor(bodyBudget)],
        },
        logger,
      );
      return { http: (app.server.address() as AddressInfo).port, grpc: grpc.port };
    },
    reload(env) {
      try {
        const fresh = accessConfigFromEnv(resolveEnv(env).env);
        const tls = readTlsFiles(fresh);
        access.reloadKeys(fresh.apiKeys);
        if (tls && 'setSecureContext' in app.server) (app.server as https.Server).setSecureContext(tls);
        if (tls) grpcTls.reload(tls);
        logger.info({ apiKeys: fresh.apiKeys.length, tls: tls !== null }, 'SIGHUP: API keys and HTTPS certificate reloaded (gRPC too)');
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'SIGHUP: reload failed; the previous keys and certificate stay in use');
      }
    },
    async close(graceMs) {
      await Promise.all([app.close(), grpc?.close(graceMs)]);
    },
  };
}
