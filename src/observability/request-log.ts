// One log line per request, written when it is answered, at the level that
// says whose problem it was (errors.ts logLevelOf): info for a success or the
// client's own mistake, warn for a refusal under load or a missed deadline,
// error only for the server's faults, and only those carry the error with its
// stack. Every line has the request's W3C trace id when it has one, so a log
// line can be found from a trace and back.
import { logLevelOf, toServeError } from '../errors.js';

/** The part of a pino (or fastify) logger used here. */
interface LevelLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RequestLine {
  /** "http", "grpc", "kserve_http", "kserve_grpc". */
  api: string;
  /** HTTP method and path, or the gRPC method path. */
  method: string;
  url?: string;
  /** HTTP status, or the gRPC status name. */
  status: number | string;
  /** "OK" or the error table's code. */
  code: string;
  model?: string;
  ms: number;
  trace_id?: string;
}

const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/;

/** The trace id of a W3C traceparent header value, or undefined when there is none or it is malformed. */
export function traceIdOf(traceparent: unknown): string | undefined {
  const v = Array.isArray(traceparent) ? traceparent[0] : traceparent;
  if (typeof v !== 'string') return undefined;
  const m = TRACEPARENT.exec(v.trim().toLowerCase());
  return m && !/^0+$/.test(m[1]) ? m[1] : undefined;
}

/**
 * Logs the request's line. `err` is what the request failed with, if it did;
 * `quiet` (health probes, metadata) lowers a success to debug.
 */
export function logRequest(logger: LevelLogger, line: RequestLine, err?: unknown, quiet = false): void {
  const fields = { ...line, ms: Math.round(line.ms * 1000) / 1000 };
  if (err === undefined) {
    if (quiet) logger.debug(fields, 'request completed');
    else logger.info(fields, 'request completed');
    return;
  }
  const level = logLevelOf(toServeError(err));
  if (level === 'error') logger.error({ ...fields, err }, 'request completed');
  else logger[level](fields, 'request completed');
}
