// Access control for the gRPC server: a server interceptor that checks the
// call's metadata before the handler sees it (auth + rate limiting through the
// same AccessController as HTTP), and a helper for handlers that prefer to
// check themselves.
import { Metadata, ServerInterceptingCall, status as GrpcStatus, type ServerInterceptor } from '@grpc/grpc-js';
import { ServeError } from '../../errors.js';
import { errorTrailers } from '../grpc/status-details.js';
import type { AccessConfig } from './access-config.js';
import { AccessController, type AccessDecision, type AccessRequest } from './access-control.js';

const HEALTH_METHODS = new Set([
  '/grpc.health.v1.Health/Check',
  '/grpc.health.v1.Health/Watch',
  '/inference.GRPCInferenceService/ServerLive',
  '/inference.GRPCInferenceService/ServerReady',
  '/inference.GRPCInferenceService/ModelReady',
]);

export function grpcRequestKind(methodPath: string): AccessRequest['kind'] {
  return HEALTH_METHODS.has(methodPath) ? 'health' : 'api';
}

function metadataString(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/** null when the call may proceed, else the ServeError to fail it with (a Promise when the tokens are main's). */
export function checkGrpcAccess(
  controller: AccessController,
  methodPath: string,
  metadata: Metadata,
  remoteAddress: string | undefined,
): AccessDecision {
  return controller.check({
    kind: grpcRequestKind(methodPath),
    authorization: metadataString(metadata, 'authorization'),
    xApiKey: metadataString(metadata, 'x-api-key'),
    remoteAddress,
  });
}

/** `new grpc.Server({ interceptors: [grpcAccessInterceptor(cfg)] })` */
export function grpcAccessInterceptor(cfg: AccessConfig | AccessController): ServerInterceptor {
  const controller = cfg instanceof AccessController ? cfg : new AccessController(cfg);
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const decide = (denied: ServeError | null) => {
              if (denied === null) nextMetadata(metadata);
              else call.sendStatus({ code: denied.grpcStatus as GrpcStatus, details: denied.message, metadata: errorTrailers(denied) });
            };
            const denied = checkGrpcAccess(controller, method.path, metadata, call.getConnectionInfo().remoteAddress);
            if (denied instanceof Promise) void denied.then(decide, () => decide(new ServeError('SWIN_INTERNAL')));
            else decide(denied);
          },
        });
      },
    });
}
