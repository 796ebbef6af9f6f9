// The trailers of a failed gRPC call, built from a ServeError: the standard
// error model (grpc-status-details-bin = google.rpc.Status with ErrorInfo and,
// when the server asks for a back-off, RetryInfo; proto/google/rpc/status.proto)
// plus the older trailers clients may already read: swin-code (deprecated, kept
// for one release), retry-after and grpc-retry-pushback-ms.
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { ServeError } from '../../errors.js';
import { protoDir } from './protos.js';

/** ErrorInfo.domain of every error swin-serve sends. */
export const ERROR_DOMAIN = 'swin-serve';
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const TYPE_PREFIX = 'type.googleapis.com/';

interface RpcTypes {
  status: protobuf.Type;
  errorInfo: protobuf.Type;
  retryInfo: protobuf.Type;
}

let types: RpcTypes | undefined;

function rpcTypes(): RpcTypes {
  if (types) return types;
  // google/protobuf/{any,duration}.proto are protobufjs' bundled common types.
  const root = new protobuf.Root().loadSync(join(protoDir(), 'google/rpc/status.proto'), { keepCase: true });
  types = {
    status: root.lookupType('google.rpc.Status'),
    errorInfo: root.lookupType('google.rpc.ErrorInfo'),
    retryInfo: root.lookupType('google.rpc.RetryInfo'),
  };
  return types;
}

function pack(type: protobuf.Type, value: Record<string, unknown>): { type_url: string; value: Uint8Array } {
  return { type_url: TYPE_PREFIX + type.fullName.replace(/^\./, ''), value: type.encode(type.fromObject(value)).finish() };
}

/** google.rpc.Status for err, encoded; its code and message equal the call's status and details. */
export function statusDetails(err: ServeError): Buffer {
  const t = rpcTypes();
  const details = [pack(t.errorInfo, { reason: err.code, domain: ERROR_DOMAIN, metadata: err.metadata ?? {} })];
  if (err.retryAfterSeconds !== undefined) details.push(pack(t.retryInfo, { retry_delay: { seconds: err.retryAfterSeconds, nanos: 0 } }));
  const status = t.status.fromObject({ code: err.grpcStatus, message: err.message, details });
  return Buffer.from(t.status.encode(status).finish());
}

/** Decodes a grpc-status-details-bin value (tests, clients written in TypeScript). */
export function decodeStatusDetails(bin: Buffer): {
  code: number;
  message: string;
  errorInfo?: { reason: string; domain: string; metadata: Record<string, string> };
  retryDelaySeconds?: number;
} {
  const t = rpcTypes();
  const s = t.status.toObject(t.status.decode(bin), { defaults: true, longs: Number }) as {
    code: number;
    message: string;
    details: { type_url: string; value: Uint8Array }[];
  };
  const out: ReturnType<typeof decodeStatusDetails> = { code: s.code, message: s.message };
  for (const d of s.details) {
    if (d.type_url === TYPE_PREFIX + 'google.rpc.ErrorInfo') {
      out.errorInfo = t.errorInfo.toObject(t.errorInfo.decode(d.value), { defaults: true }) as NonNullable<typeof out.errorInfo>;
    } else if (d.type_url === TYPE_PREFIX + 'google.rpc.RetryInfo') {
      const r = t.retryInfo.toObject(t.retryInfo.decode(d.value), { defaults: true, longs: Number }) as {
        retry_delay: { seconds: number; nanos: number };
      };
      out.retryDelaySeconds = r.retry_delay.seconds + r.retry_delay.nanos / 1e9;
    }
  }
  return out;
}

/** Trailing metadata of a call failed with err. */
export function errorTrailers(err: ServeError): Metadata {
  const md = new Metadata();
  md.set(STATUS_DETAILS_KEY, statusDetails(err));
  // Deprecated: the same code as ErrorInfo.reason; removed in the release after next.
  md.set('swin-code', err.code);
  if (err.retryAfterSeconds !== undefined) {
    md.set('retry-after', String(err.retryAfterSeconds));
    md.set('grpc-retry-pushback-ms', String(err.retryAfterSeconds * 1000));
  }
  return md;
}
