// The one error table. Every handler (HTTP, KServe REST, gRPC) throws a
// ServeError built from this table; one place per protocol turns it into a
// reply. Codes are stable API: add new ones, never rename or reuse.
import { status as GrpcStatus } from '@grpc/grpc-js';

interface ErrorSpec {
  readonly httpStatus: number;
  readonly grpcStatus: GrpcStatus;
  readonly message: string;
}

export const ERRORS = {
  // request shape
  SWIN_BAD_REQUEST: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'Bad request: %s' },
  SWIN_EMPTY_BODY: {
    httpStatus: 400,
    grpcStatus: GrpcStatus.INVALID_ARGUMENT,
    message: 'The request carries no image: send the image bytes as the body, a multipart file, or base64 in JSON',
  },
  SWIN_BAD_BASE64: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'Image %s is not valid base64' },
  SWIN_BAD_TOP_K: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'top_k must be an integer from 1 to %s, got %s' },
  SWIN_TOO_MANY_IMAGES: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'At most %s images per request, got %s' },
  SWIN_UNKNOWN_FIELD: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'Unknown %s %s; accepted: %s' },
  SWIN_BAD_TENSOR: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'Bad input tensor: %s' },
  SWIN_UNSUPPORTED_MEDIA_TYPE: {
    httpStatus: 415,
    grpcStatus: GrpcStatus.INVALID_ARGUMENT,
    message: 'Unsupported content type or image format %s; accepted: %s',
  },
  SWIN_IMAGE_DECODE_FAILED: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'Image %s could not be decoded: %s' },
  SWIN_IMAGE_TOO_LARGE: { httpStatus: 413, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'Image %s is too large: %s' },
  SWIN_IMAGE_TOO_COSTLY: { httpStatus: 413, grpcStatus: GrpcStatus.INVALID_ARGUMENT, message: 'Image %s costs too much to decode: %s' },
  SWIN_IMAGE_DAMAGED: {
    httpStatus: 400,
    grpcStatus: GrpcStatus.INVALID_ARGUMENT,
    message: 'Image %s is damaged (the decoder warned: %s); DECODE_STRICT refuses damaged images',
  },
  SWIN_REQUEST_TIMEOUT: {
    httpStatus: 408,
    grpcStatus: GrpcStatus.DEADLINE_EXCEEDED,
    message: 'The request %s did not arrive within %s ms',
  },
  SWIN_PAYLOAD_TOO_LARGE: { httpStatus: 413, grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, message: 'Request body larger than %s bytes' },
  // models
  SWIN_MODEL_NOT_FOUND: { httpStatus: 404, grpcStatus: GrpcStatus.NOT_FOUND, message: 'Unknown model %s; loaded models: %s' },
  SWIN_MODEL_VERSION_NOT_FOUND: { httpStatus: 404, grpcStatus: GrpcStatus.NOT_FOUND, message: 'Model %s has no version %s; available: %s' },
  SWIN_VARIANT_NOT_FOUND: { httpStatus: 404, grpcStatus: GrpcStatus.NOT_FOUND, message: 'Model %s has no variant %s; available: %s' },
  SWIN_MODEL_LOAD_FAILED: { httpStatus: 422, grpcStatus: GrpcStatus.FAILED_PRECONDITION, message: 'Model %s was not loaded: %s' },
  SWIN_MODEL_CONTROL_DISABLED: {
    httpStatus: 403,
    grpcStatus: GrpcStatus.FAILED_PRECONDITION,
    message: 'Model load and unload are off (model control mode %s); start with --model-control-mode explicit',
  },
  SWIN_MODEL_NOT_READY: { httpStatus: 503, grpcStatus: GrpcStatus.UNAVAILABLE, message: 'Model %s is not ready: %s' },
  // load and time
  SWIN_QUEUE_FULL: { httpStatus: 503, grpcStatus: GrpcStatus.UNAVAILABLE, message: 'Queue of model %s is full (%s requests); retry later' },
  SWIN_MEMORY_BUDGET: {
    httpStatus: 503,
    grpcStatus: GrpcStatus.UNAVAILABLE,
    message: 'Request bodies in flight would exceed the memory budget of %s bytes; retry later',
  },
  SWIN_RATE_LIMITED: { httpStatus: 429, grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, message: 'Rate limit exceeded; retry later' },
  SWIN_DEADLINE_EXCEEDED: {
    httpStatus: 504,
    grpcStatus: GrpcStatus.DEADLINE_EXCEEDED,
    message: 'Request deadline of %s ms passed before inference finished',
  },
  SWIN_CANCELLED: { httpStatus: 499, grpcStatus: GrpcStatus.CANCELLED, message: 'The client cancelled the request' },
  SWIN_SHUTTING_DOWN: { httpStatus: 503, grpcStatus: GrpcStatus.UNAVAILABLE, message: 'The server is shutting down' },
  // access
  SWIN_UNAUTHENTICATED: { httpStatus: 401, grpcStatus: GrpcStatus.UNAUTHENTICATED, message: 'Missing or invalid API key' },
  // server side
  SWIN_INFERENCE_FAILED: { httpStatus: 500, grpcStatus: GrpcStatus.INTERNAL, message: 'Inference failed on model %s: %s' },
  SWIN_NON_FINITE_OUTPUT: {
    httpStatus: 500,
    grpcStatus: GrpcStatus.INTERNAL,
    message: 'Model %s (%s) returned non-finite logits; the variant was taken out of service',
  },
  SWIN_INTERNAL: { httpStatus: 500, grpcStatus: GrpcStatus.INTERNAL, message: 'Internal error' },
  SWIN_NOT_FOUND: { httpStatus: 404, grpcStatus: GrpcStatus.UNIMPLEMENTED, message: 'Route %s %s not found' },
  SWIN_METHOD_NOT_ALLOWED: {
    httpStatus: 405,
    grpcStatus: GrpcStatus.UNIMPLEMENTED,
    message: 'Method %s is not allowed on %s; allowed: %s',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

function format(template: string, args: readonly unknown[]): string {
  let i = 0;
  return template.replace(/%s/g, () => (i < args.length ? String(args[i++]) : '%s'));
}

export class ServeError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly grpcStatus: GrpcStatus;
  /** Seconds a client should wait before retrying (503/429 replies carry it as Retry-After). */
  retryAfterSeconds?: number;
  /** Values the message quotes, by name (gRPC: ErrorInfo.metadata). */
  metadata?: Record<string, string>;

  constructor(code: ErrorCode, ...args: unknown[]) {
    const spec: ErrorSpec = ERRORS[code];
    super(format(spec.message, args));
    this.name = 'ServeError';
    this.code = code;
    this.httpStatus = spec.httpStatus;
    this.grpcStatus = spec.grpcStatus;
  }

  /** The same error rebuilt elsewhere (a decode process's reply): code and final message. */
  static rebuilt(code: ErrorCode, message: string): ServeError {
    const err = new ServeError(code);
    err.message = message;
    return err;
  }

  withRetryAfter(seconds: number): this {
    this.retryAfterSeconds = seconds;
    return this;
  }

  withMetadata(metadata: Record<string, string | number>): this {
    this.metadata = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, String(v)]));
    return this;
  }
}

export function isServeError(err: unknown): err is ServeError {
  return err instanceof ServeError;
}

/**
 * Why work on an aborted signal stops: the ServeError it was aborted with (a deadline aborts
 * with 504 SWIN_DEADLINE_EXCEEDED), else 499 SWIN_CANCELLED.
 */
export function abortError(signal: AbortSignal | undefined): ServeError {
  return isServeError(signal?.reason) ? signal.reason : new ServeError('SWIN_CANCELLED');
}

/** Failures that are the server's fault: the only ones logged at error level, with a stack. */
const SERVER_FAULTS: ReadonlySet<ErrorCode> = new Set(['SWIN_INFERENCE_FAILED', 'SWIN_NON_FINITE_OUTPUT', 'SWIN_INTERNAL']);
/** Refusals under load or out of time: expected, but an operator wants to see them. */
const LOAD_REJECTIONS: ReadonlySet<ErrorCode> = new Set([
  'SWIN_QUEUE_FULL',
  'SWIN_MEMORY_BUDGET',
  'SWIN_RATE_LIMITED',
  'SWIN_SHUTTING_DOWN',
  'SWIN_MODEL_NOT_READY',
  'SWIN_DEADLINE_EXCEEDED',
]);

/** Log level of a request that failed with err: error for our faults, warn for load, info for the client's own mistakes. */
export function logLevelOf(err: ServeError): 'error' | 'warn' | 'info' {
  if (SERVER_FAULTS.has(err.code)) return 'error';
  return LOAD_REJECTIONS.has(err.code) ? 'warn' : 'info';
}

/** Anything thrown that is not a ServeError becomes SWIN_INTERNAL: no stack traces reach clients. */
export function toServeError(err: unknown): ServeError {
  return isServeError(err) ? err : new ServeError('SWIN_INTERNAL');
}

/** The HTTP error body: {statusCode, code, error, message}. */
export function httpErrorBody(err: ServeError): { statusCode: number; code: ErrorCode; error: string; message: string } {
  return { statusCode: err.httpStatus, code: err.code, error: httpReason(err.httpStatus), message: err.message };
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function httpReason(status: number): string {
  return REASONS[status] ?? 'Error';
}
