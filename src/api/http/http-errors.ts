// Maps everything an HTTP request can fail with onto the one error table:
// ServeErrors pass through; fastify's own errors (bad JSON, body too large,
// unknown content type, schema validation) and @fastify/multipart's limits get
// their table code, so every error body is {statusCode, code, error, message}.
import type { FastifyError, FastifyRequest } from 'fastify';
import { ServeError, isServeError } from '../../errors.js';

export const ACCEPTED_CONTENT_TYPES = 'image/*, application/octet-stream, multipart/form-data, application/json';

interface ValidationEntry {
  instancePath?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

function field(request: FastifyRequest, name: string): unknown {
  const q = request.query as Record<string, unknown> | undefined;
  const b = request.body as Record<string, unknown> | undefined;
  return q?.[name] ?? (b && typeof b === 'object' && !Buffer.isBuffer(b) ? b[name] : undefined);
}

function short(v: unknown): string {
  const s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/** `maxBodyBytes` and `maxImages` fill in the limits the messages quote. */
export interface ErrorContext {
  maxBodyBytes: number;
  maxImages: number;
  /** Model a request addresses when it names none. */
  defaultModel(): string;
  /** Class count of a model (the top_k limit), undefined if unknown. */
  numClasses(model: string): number | undefined;
}

export function toHttpServeError(err: unknown, request: FastifyRequest, limits: ErrorContext): ServeError {
  if (isServeError(err)) return err;
  const e = err as FastifyError & { validation?: ValidationEntry[]; validationContext?: string };
  if (Array.isArray(e.validation)) {
    const first = e.validation[0] ?? {};
    const where = `${e.validationContext ?? 'request'}${first.instancePath ?? ''}`;
    const model = String(field(request, 'model') ?? limits.defaultModel());
    if (first.instancePath === '/top_k')
      return new ServeError('SWIN_BAD_TOP_K', limits.numClasses(model) ?? 'the number of classes', short(field(request, 'top_k')));
    if (first.instancePath === '/variant')
      return new ServeError('SWIN_VARIANT_NOT_FOUND', short(model), short(field(request, 'variant')), 'fold, unfold');
    if (first.instancePath === '/images' && first.keyword === 'maxItems') {
      const images = field(request, 'images');
      return new ServeError('SWIN_TOO_MANY_IMAGES', limits.maxImages, Array.isArray(images) ? images.length : '?');
    }
    if (first.instancePath === '/images' && first.keyword === 'minItems') return new ServeError('SWIN_EMPTY_BODY');
    return new ServeError('SWIN_BAD_REQUEST', `${where} ${e.message.replace(/^(body|querystring|params)\/?\S*\s/, '')}`.slice(0, 300));
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ServeError('SWIN_PAYLOAD_TOO_LARGE', limits.maxBodyBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new ServeError('SWIN_UNSUPPORTED_MEDIA_TYPE', short(request.headers['content-type'] ?? 'none'), ACCEPTED_CONTENT_TYPES);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ServeError('SWIN_EMPTY_BODY');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ServeError('SWIN_BAD_REQUEST', 'the body is not valid JSON');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ServeError('SWIN_BAD_REQUEST', 'the body size does not match Content-Length');
    case 'FST_FILES_LIMIT':
      return new ServeError('SWIN_TOO_MANY_IMAGES', limits.maxImages, `more than ${limits.maxImages}`);
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ServeError('SWIN_BAD_REQUEST', 'too many multipart parts or fields');
    case 'FST_PROTO_VIOLATION':
      return new ServeError('SWIN_BAD_REQUEST', 'forbidden multipart field name');
    case 'FST_MP_PREMATURE_CLOSE':
      return new ServeError('SWIN_BAD_REQUEST', 'the multipart body ended early');
    default:
      break;
  }
  // JSON.parse failures (fastify rethrows SyntaxError with statusCode 400).
  if (e instanceof SyntaxError || e.name === 'SyntaxError') return new ServeError('SWIN_BAD_REQUEST', 'the body is not valid JSON');
  // busboy's parse errors carry neither code nor status ("Unexpected end of multipart data", "Malformed part header").
  if (
    String(request.headers['content-type'] ?? '').startsWith('multipart/') &&
    /multipart|part header|end of form|boundary/i.test(String(e.message))
  ) {
    return new ServeError('SWIN_BAD_REQUEST', `malformed multipart body: ${String(e.message).split('\n')[0].slice(0, 100)}`);
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return new ServeError('SWIN_PAYLOAD_TOO_LARGE', limits.maxBodyBytes);
  if (status === 415)
    return new ServeError('SWIN_UNSUPPORTED_MEDIA_TYPE', short(request.headers['content-type'] ?? 'none'), ACCEPTED_CONTENT_TYPES);
  if (status >= 400 && status < 500) {
    // busboy and other parsers: their messages describe the input, not the server.
    return new ServeError(
      'SWIN_BAD_REQUEST',
      String(e.message ?? 'malformed request')
        .split('\n')[0]
        .slice(0, 200),
    );
  }
  return new ServeError('SWIN_INTERNAL');
}
