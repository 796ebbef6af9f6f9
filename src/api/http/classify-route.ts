// POST /classify: one or more encoded images in, top-k classes per image out.
// Bodies: raw image bytes (image/* or application/octet-stream), multipart
// form data with one or more files, or JSON {images: [base64...]}. model,
// variant, top_k, priority and timeout_ms come from the query string or from
// the body's fields.
import type {} from '@fastify/multipart'; // request.parts(), request.isMultipart()
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requestClient } from '../access/access-control.js';
import { ServeError } from '../../errors.js';
import { parseVariant } from '../request-params.js';
import { requestPolicy } from '../../batching/queue-policy.js';
import { rejectUnknownFields } from '../request-fields.js';
import type { InferenceService } from '../../service/service-types.js';
import type { TraceContext } from '../../observability/tracing.js';
import type { Span } from '@opentelemetry/api';
import { ACCEPTED_CONTENT_TYPES } from './http-errors.js';
import { classifyJsonBody, classifyQuery, classifyReply, errorResponses } from './schemas.js';
import { isWarmupRequest } from './warmup.js';

export interface ClassifyRouteOptions {
  service: InferenceService;
  maxBodyBytes: number;
  maxImages: number;
}

interface Fields {
  model?: string;
  variant?: string;
  version?: string | number;
  top_k?: number | string;
  priority?: number | string;
  timeout_ms?: number | string;
}

const FIELDS = ['model', 'variant', 'version', 'top_k', 'priority', 'timeout_ms'] as const;
const JSON_FIELDS = ['images', ...FIELDS] as const;

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeBase64(s: string, index: number): Buffer {
  const body = s.startsWith('data:') ? s.slice(s.indexOf(',') + 1) : s;
  const compact = body.replace(/\s+/g, '');
  if (compact.length === 0) throw new ServeError('SWIN_EMPTY_BODY');
  if (!BASE64.test(compact) || compact.length % 4 === 1) throw new ServeError('SWIN_BAD_BASE64', index);
  return Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64');
}

async function readMultipart(request: FastifyRequest, maxBodyBytes: number): Promise<{ images: Buffer[]; fields: Fields }> {
  const images: Buffer[] = [];
  const fields: Record<string, string> = {};
  let total = 0;
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      const buf = await part.toBuffer();
      total += buf.length;
      if (total > maxBodyBytes) throw new ServeError('SWIN_PAYLOAD_TOO_LARGE', maxBodyBytes);
      images.push(buf);
    } else {
      rejectUnknownFields([part.fieldname], FIELDS, 'multipart field');
      fields[part.fieldname] = String(part.value);
    }
  }
  return { images, fields };
}

function parseTopK(raw: number | string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw === 'number') return raw;
  if (!/^\d{1,9}$/.test(raw.trim())) throw new ServeError('SWIN_BAD_TOP_K', 'the number of classes', JSON.stringify(raw.slice(0, 40)));
  return Number(raw);
}

/** Aborts when the client goes away before the reply is written. */
function disconnectSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}

export async function classifyRoute(app: FastifyInstance, opts: ClassifyRouteOptions): Promise<void> {
  const { service, maxBodyBytes, maxImages } = opts;
  const rawBody = (_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => done(null, body);
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: maxBodyBytes }, rawBody);
  app.addContentTypeParser(/^image\/[\w.+-]+$/, { parseAs: 'buffer', bodyLimit: maxBodyBytes }, rawBody);

  app.post(
    '/classify',
    {
      config: { api: 'http' },
      // Before schema validation, which would strip unknown JSON fields without a word.
      preValidation: async (request) => {
        const body = request.body as unknown;
        if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body) && !Array.isArray(body) && !request.isMultipart()) {
          const keys = Object.keys(body);
          rejectUnknownFields(keys, JSON_FIELDS, 'JSON field');
        }
      },
      schema: {
        summary: 'Classify one or more images',
        description: `Body: raw image bytes (image/*, application/octet-stream), multipart/form-data with one or more files, or JSON {images: [base64...]}. At most ${maxImages} images and ${maxBodyBytes} bytes.`,
        querystring: classifyQuery,
        body: {
          content: {
            'application/json': {
              schema: {
                ...classifyJsonBody,
                properties: { ...classifyJsonBody.properties, images: { ...classifyJsonBody.properties.images, maxItems: maxImages } },
              },
            },
          },
        },
        response: { 200: classifyReply, ...errorResponses(400, 401, 404, 413, 415, 429, 500, 503, 504) },
      },
    },
    async (request, reply) => {
      const query = request.query as Fields;
      let images: Buffer[];
      let fields: Fields = {};
      const body = request.body as unknown;
      if (request.isMultipart()) {
        ({ images, fields } = await readMultipart(request, maxBodyBytes));
      } else if (Buffer.isBuffer(body)) {
        images = [body];
      } else if (body !== null && typeof body === 'object' && Array.isArray((body as { images?: unknown }).images)) {
        const json = body as { images: string[] } & Fields;
        images = json.images.map((s, i) => decodeBase64(s, i));
        fields = json;
      } else if (body === undefined || body === null) {
        throw new ServeError('SWIN_EMPTY_BODY');
      } else {
        throw new ServeError(
          'SWIN_UNSUPPORTED_MEDIA_TYPE',
          String(request.headers['content-type'] ?? 'none').slice(0, 60),
          ACCEPTED_CONTENT_TYPES,
        );
      }
      if (images.length === 0 || images.every((b) => b.length === 0)) throw new ServeError('SWIN_EMPTY_BODY');

      const model = query.model ?? fields.model;
      const modelName = model ?? service.defaultModelName();
      request.swinModel = modelName;
      // The service checks the model and version, top_k and the image count before any decoding.
      const versionField = query.version ?? fields.version;
      const version = versionField === undefined || versionField === '' ? undefined : String(versionField);
      const topK = parseTopK(query.top_k ?? fields.top_k);
      return service.classify(modelName, images, {
        variant: parseVariant(query.variant ?? fields.variant, modelName),
        version,
        topK,
        ...requestPolicy(query.priority ?? fields.priority, query.timeout_ms ?? fields.timeout_ms, {
          priority: 'priority',
          timeout: 'timeout_ms',
        }),
        api: 'http',
        trace: request.swinTrace?.ctx,
        client: requestClient(request.headers.authorization, request.headers['x-api-key'], request.ip),
        // deadline: the service's default, REQUEST_TIMEOUT_MS from now (the body has been read)
        signal: disconnectSignal(reply),
        ...(isWarmupRequest(request) && { warmup: true }),
      });
    },
  );
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Model the request addressed (metrics label), once known. */
    swinModel?: string;
    /** Error code of the reply, for metrics. */
    swinCode?: string;
    /** What the request failed with, for its log line (request-log.ts). */
    swinError?: unknown;
    /** Its server span when tracing is on (tracing.ts), and the span of writing the reply. */
    swinTrace?: { ctx: TraceContext; span: Span };
    swinReplySpan?: Span;
  }
  interface FastifyContextConfig {
    /** Set on routes whose requests count in swin_requests_total under this api label. */
    api?: string;
  }
}
