// The protocol front end of one event loop: the HTTP app and the gRPC server in
// front of an InferenceService, with access control (API keys, rate limits) and the
// budget of request bodies in flight, warm-up requests before the listeners open,
// reload of API keys and certificates, and close. The main thread runs one in front
// of the service itself (FRONTEND_WORKERS=0), or each front-end worker thread runs
// one in front of a ServiceProxy (src/api/workers/), all listening on the same
// ports with SO_REUSEPORT so the kernel spreads connections over them.
import net from 'node:net';
import type https from 'node:https';
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
  access: AccessController;
  /** Opens the listeners; port 0 picks a free one (the first worker's is then given to the others). */
  listen(httpPort: number, grpcPort: number): Promise<{ http: number; grpc: number }>;
  /** SIGHUP: API keys and the certificate read again; open connections keep theirs. Throws when the new files do not load. */
  reload(env: Record<string, string | undefined>): { apiKeys: number; tls: boolean };
  /** Stops accepting, answers every request already read (up to graceMs for gRPC calls). */
  close(graceMs: number): Promise<void>;
}

/** Builds the servers and sends the warm-up requests; nothing listens until listen(). */
export async function buildFrontEnd(
  config: Config,
  service: InferenceService,
  opts: FrontEndOptions,
): Promise<{ frontEnd: FrontEnd; warm: Awaited<ReturnType<typeof sendWarmupRequests>> }> {
  const { logger, bodyBudget } = opts;
  const access = new AccessController(config.access, opts.tokens);
  const app = await buildApp(config, service, {
    loggerInstance: logger,
    access,
    bodyBudget,
    server: httpsServerOptions(config.access),
    metricsText: opts.metricsText,
  });
  // WARMUP_REQUESTS: not counted, logged or traced one by one; the caller logs that they ran.
  const warm = await sendWarmupRequests(app, service, config);
  const grpcTls = grpcServerTls(config.access);
  let grpc: GrpcServerHandle | null = null;

  const frontEnd: FrontEnd = {
    app,
    access,
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
      return { http: (app.server.address() as net.AddressInfo).port, grpc: grpc.port };
    },
    reload(env) {
      const fresh = accessConfigFromEnv(resolveEnv(env).env);
      const tls = readTlsFiles(fresh);
      access.reloadKeys(fresh.apiKeys);
      if (tls && 'setSecureContext' in app.server) (app.server as https.Server).setSecureContext(tls);
      if (tls) grpcTls.reload(tls);
      return { apiKeys: fresh.apiKeys.length, tls: tls !== null };
    },
    async close(graceMs) {
      await Promise.all([app.close(), grpc?.close(graceMs)]);
    },
  };
  return { frontEnd, warm };
}
