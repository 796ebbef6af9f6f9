// The gRPC server on GRPC_PORT: swin.v1.Classifier, the KServe v2
// inference.GRPCInferenceService, grpc.health.v1 and server reflection, all
// on one @grpc/grpc-js server sharing the InferenceService (and so the
// batcher, model repository and error table) with HTTP.
import net from 'node:net';
import { Server, ServerCredentials, type ServerInterceptor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatus } from 'grpc-health-check';
import type { BaseLogger } from 'pino';
import { kserveGrpcHandlers } from '../kserve/kserve-grpc.js';
import type { InferenceService } from '../../service/service-types.js';
import { classifierHandlers } from './classifier-service.js';
import { LOADER_OPTIONS, loadProtos } from './protos.js';

export interface GrpcServerOptions {
  host: string;
  /** 0 picks a free port (tests); the bound port is returned. */
  port: number;
  /** Largest message received or sent, bytes; larger ones fail with RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** TLS (see access/tls.ts); plaintext HTTP/2 when absent. */
  credentials?: ServerCredentials;
  /** E.g. the access-control interceptor (access/grpc-access.ts). */
  interceptors?: ServerInterceptor[];
  /** How often the health service re-reads service.isReady(), ms (default 1000). */
  healthPollMs?: number;
  /**
   * Connections get GOAWAY after this long (grpc.max_connection_age_ms), so that
   * clients balancing on their side re-resolve and spread over new replicas
   * behind a Kubernetes Service; calls running then get a grace of the same length.
   * 0 or absent: connections live as long as the client keeps them.
   */
  maxConnectionAgeMs?: number;
  /**
   * Listen with SO_REUSEPORT beside other front ends of this process (FRONTEND_WORKERS): a TCP
   * server of our own accepts and hands each connection to grpc-js (its connection injector),
   * since grpc-js binds without that option.
   */
  reusePort?: boolean;
}

export interface GrpcServerHandle {
  port: number;
  /** Stops accepting calls, lets running ones finish for up to graceMs (default 10 s), then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

/** Services health reports on; "" is the whole server, by the protocol's convention. */
const HEALTH_SERVICES = ['', 'swin.v1.Classifier', 'inference.GRPCInferenceService'];

export async function startGrpcServer(service: InferenceService, opts: GrpcServerOptions, logger: BaseLogger): Promise<GrpcServerHandle> {
  const protos = loadProtos();
  const server = new Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': opts.maxMessageBytes,
    ...(opts.maxConnectionAgeMs
      ? {
          'grpc.max_connection_age_ms': opts.maxConnectionAgeMs,
          'grpc.max_connection_age_grace_ms': opts.maxConnectionAgeMs,
        }
      : {}),
    interceptors: opts.interceptors ?? [],
  });
  server.addService(protos.classifier.swin.v1.Classifier.service, classifierHandlers(service, logger));
  server.addService(protos.kserve.inference.GRPCInferenceService.service, kserveGrpcHandlers(service, logger));

  const health = new HealthImplementation();
  health.addToServer(server);
  let closing = false;
  const updateHealth = () => {
    const state: ServingStatus = !closing && service.isReady() ? 'SERVING' : 'NOT_SERVING';
    for (const name of HEALTH_SERVICES) health.setStatus(name, state);
  };
  updateHealth();
  const poll = setInterval(updateHealth, opts.healthPollMs ?? 1000);
  poll.unref();

  const healthDefinition = loadSync(healthProtoPath, LOADER_OPTIONS);
  new ReflectionService({ ...protos.definition, ...healthDefinition }).addToServer(server);

  const credentials = opts.credentials ?? ServerCredentials.createInsecure();
  let tcp: net.Server | null = null;
  let port: number;
  if (opts.reusePort) {
    const injector = server.createConnectionInjector(credentials);
    tcp = net.createServer((socket) => injector.injectConnection(socket));
    const listening = tcp;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen({ port: opts.port, host: opts.host, reusePort: true } as net.ListenOptions, () => resolve());
    });
    port = (tcp.address() as net.AddressInfo).port;
    listening.on('error', (err) => logger.error({ err }, 'grpc listener error')); // e.g. EMFILE on accept: logged, the listener goes on
  } else {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${opts.host}:${opts.port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }
  logger.info({ host: opts.host, port, maxMessageBytes: opts.maxMessageBytes }, 'grpc server listening');

  return {
    port,
    async close(graceMs = 10_000) {
      closing = true;
      clearInterval(poll);
      tcp?.close();
      updateHealth();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          logger.warn({ graceMs }, 'grpc calls still running after the grace period; cancelling them');
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
