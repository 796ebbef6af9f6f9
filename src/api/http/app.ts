// buildApp(config, service): the fastify instance with every HTTP route, the
// one error handler and request metrics, but no listener, so tests drive it
// with app.inject(). src/main.ts starts it.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { BaseLogger } from 'pino';
import { LOG_REDACT_PATHS, registerAccessControl } from '../access/http-access.js';
import type { AccessController } from '../access/access-control.js';
import type { Config } from '../../config.js';
import { ServeError, httpErrorBody, isServeError } from '../../errors.js';
import { modelLabel } from '../request-params.js';
import { registry, requestDuration, requestsTotal } from '../../observability/metrics.js';
import { logRequest, traceIdOf } from '../../observability/request-log.js';
import { endSpan, startServerSpan, startStage, traceIdOfContext, tracingEnabled } from '../../observability/tracing.js';
import { rejectUnknownFields } from '../request-fields.js';
import type { InferenceService } from '../../service/service-types.js';
import { registerKServeRoutes } from '../kserve/kserve-http.js';
import { BodyBudget } from '../body-budget.js';
import { registerBodyBudget } from './body-budget.js';
import { classifyRoute } from './classify-route.js';
import { toHttpServeError, type ErrorContext } from './http-errors.js';
import { registerGracefulClose } from './graceful-close.js';
import { applyHttpTimeouts, clientErrorHandler, trackRequests } from './http-timeouts.js';
import { modelsRoutes } from './models-routes.js';
import { errorBody, healthReply } from './schemas.js';
import { isWarmupRequest } from './warmup.js';

export interface BuildAppOptions {
  /** pino options or false; default: JSON logs at config.logLevel with credentials redacted. */
  logger?: FastifyServerOptions['logger'];
  /** An existing pino logger to use instead (main shares one with the model repository). */
  loggerInstance?: BaseLogger;
  /** Share rate-limit buckets with gRPC (main passes the one it gives the gRPC interceptor). */
  access?: AccessController;
  /** Extra fastify server options (https from TLS files, ...). */
  server?: Record<string, unknown>;
  /** The budget of request bodies in flight (tests watch it); default from config.bodyMemoryBudgetBytes. */
  bodyBudget?: BodyBudget;
  /** /metrics text; default: this thread's registry (a front-end worker asks main for every thread's). */
  metricsText?: () => Promise<string>;
}

const REQUEST_ID = /^[\w.:-]{1,64}$/;
/** Probes and scrapes: their successful lines are debug, not info. */
const QUIET_PATH = /^\/(health\/|metrics$|openapi\.json$|v2\/health\/|v2\/models\/[^/]+(\/versions\/[^/]+)?\/ready$)/;

export async function buildApp(config: Config, service: InferenceService, opts: BuildAppOptions = {}): Promise<FastifyInstance> {
  const readingRequests = new WeakMap<Socket, IncomingMessage>();
  const app = Fastify({
    ...(opts.loggerInstance
      ? { loggerInstance: opts.loggerInstance }
      : { logger: opts.logger ?? { level: config.logLevel, redact: LOG_REDACT_PATHS } }),
    bodyLimit: config.limits.maxBodyBytes,
    // request.ip (rate-limit buckets, logs) from X-Forwarded-For only when the peer is a listed proxy.
    trustProxy: config.access.trustProxy.length > 0 ? config.access.trustProxy : false,
    // A client's x-request-id is kept when it is short and plain; otherwise a fresh UUID.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    // One line per request, written by the onResponse hook below (request-log.ts), instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Slow clients: HEADERS_TIMEOUT_MS, BODY_TIMEOUT_MS, IDLE_TIMEOUT_MS (applied below).
    requestTimeout: config.http.bodyTimeoutMs,
    keepAliveTimeout: config.http.idleTimeoutMs,
    clientErrorHandler: clientErrorHandler(config.http, readingRequests),
    // During close, requests arriving on open keep-alive connections are refused by the
    // hook below with the table's SWIN_SHUTTING_DOWN body (fastify's own 503 has another shape).
    return503OnClosing: false,
    // Long path parameters reach schema validation (400) instead of fastify's bare 414.
    routerOptions: { maxParamLength: 1000 },
    ...(opts.server as object),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  applyHttpTimeouts(app.server, config.http);
  registerGracefulClose(app);
  trackRequests(app.server, readingRequests);

  const limits: ErrorContext = {
    maxBodyBytes: config.limits.maxBodyBytes,
    maxImages: config.limits.maxImagesPerRequest,
    defaultModel: () => service.defaultModelName(),
    numClasses: (model) => service.listModels().find((m) => m.name === model)?.config.architecture.num_classes,
  };
  app.addSchema(errorBody);

  app.setErrorHandler((err, request, reply) => {
    const se = toHttpServeError(err, request, limits);
    request.swinCode = se.code;
    // Logged once, with the request's line; the original error keeps the stack of a fault of ours.
    request.swinError = isServeError(err) || se.code !== 'SWIN_INTERNAL' ? se : err;
    if (se.retryAfterSeconds !== undefined) void reply.header('retry-after', String(se.retryAfterSeconds));
    else if (se.httpStatus === 503) void reply.header('retry-after', '1');
    return reply.code(se.httpStatus).send(httpErrorBody(se));
  });
  app.setNotFoundHandler((request) => {
    throw new ServeError('SWIN_NOT_FOUND', request.method, request.url.split('?')[0].slice(0, 200));
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request) => {
    // Start-up warm-up requests (warmup.ts) leave no log line, span or metric.
    if (isWarmupRequest(request)) return;
    request.log.debug({ req: request }, 'incoming request');
    if (tracingEnabled()) {
      const path = request.url.split('?')[0].slice(0, 200);
      request.swinTrace = startServerSpan(
        `${request.method} ${request.routeOptions.url ?? path}`,
        (k) => {
          const v = request.headers[k];
          return Array.isArray(v) ? v[0] : v;
        },
        { 'http.request.method': request.method, 'url.path': path },
      );
    }
    if (closing) throw new ServeError('SWIN_SHUTTING_DOWN').withRetryAfter(1);
  });

  // Query parameters a route does not declare are refused by name (a route without a
  // querystring schema takes none); ajv alone would drop them silently.
  app.addHook('preValidation', async (request) => {
    if (request.is404) return;
    const query = request.query as Record<string, unknown> | undefined;
    if (!query || typeof query !== 'object') return;
    const keys = Object.keys(query);
    if (keys.length === 0) return;
    const schema = request.routeOptions.schema?.querystring as { properties?: Record<string, unknown> } | undefined;
    rejectUnknownFields(keys, Object.keys(schema?.properties ?? {}), keys.length === 1 ? 'query parameter' : 'query parameters');
  });

  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    if (request.swinTrace)
      request.swinReplySpan = startStage(request.swinTrace.ctx, 'reply', { 'http.response.status_code': reply.statusCode });
  });
  app.addHook('onResponse', async (request, reply) => {
    if (isWarmupRequest(request)) return;
    const api = request.routeOptions.config?.api;
    const path = request.url.split('?')[0].slice(0, 200);
    logRequest(
      request.log,
      {
        api: api ?? (path.startsWith('/v2/') ? 'kserve_http' : 'http'),
        method: request.method,
        url: path,
        status: reply.statusCode,
        code: reply.statusCode < 400 ? 'OK' : (request.swinCode ?? 'SWIN_INTERNAL'),
        model: request.swinModel,
        ms: reply.elapsedTime,
        trace_id: traceIdOfContext(request.swinTrace?.ctx) ?? traceIdOf(request.headers.traceparent),
      },
      reply.statusCode < 400 ? undefined : (request.swinError ?? new ServeError('SWIN_INTERNAL')),
      QUIET_PATH.test(path),
    );
    if (request.swinTrace) {
      endSpan(request.swinReplySpan);
      request.swinTrace.span.setAttribute('http.response.status_code', reply.statusCode);
      if (request.swinModel) request.swinTrace.span.setAttribute('swin.model', request.swinModel);
      endSpan(request.swinTrace.span, reply.statusCode < 400 ? undefined : (request.swinError ?? new ServeError('SWIN_INTERNAL')));
    }
    // swin_requests_total / _duration for routes that carry config.api (KServe records its own).
    if (!api) return;
    const labels = {
      api,
      model: modelLabel(service, request.swinModel),
      code: reply.statusCode < 400 ? 'OK' : (request.swinCode ?? 'SWIN_INTERNAL'),
    };
    requestsTotal.inc(labels);
    requestDuration.observe(labels, reply.elapsedTime / 1000);
  });

  // Charged after access control (a refused key costs no budget), before the body is read.
  await registerAccessControl(app, opts.access ?? config.access);
  registerBodyBudget(
    app,
    opts.bodyBudget ?? new BodyBudget(config.bodyMemoryBudgetBytes ?? Number.MAX_SAFE_INTEGER),
    config.limits.maxBodyBytes,
  );
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'swin-serve', description: 'Swin Transformer image classification (docs/api.md)', version: '0.1.0' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'Only when AUTH_API_KEYS is set' },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => String(json.$id ?? `def-${i}`) },
    hideUntagged: false,
    transform: ({ schema, url, route }) => {
      // Binary bodies are parsed by content-type parsers, not by JSON schema; document them here.
      if (url === '/classify' && route.method === 'POST' && schema) {
        const s = schema as Record<string, unknown> & { body?: { content?: Record<string, unknown> } };
        const content = {
          ...(s.body?.content ?? {}),
          'image/jpeg': { schema: { type: 'string', format: 'binary' } },
          'image/png': { schema: { type: 'string', format: 'binary' } },
          'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
          'multipart/form-data': {
            schema: {
              type: 'object',
              properties: {
                image: { type: 'string', format: 'binary' },
                model: { type: 'string' },
                variant: { type: 'string', enum: ['fold', 'unfold'] },
                top_k: { type: 'integer', minimum: 1 },
              },
            },
          },
        };
        return { schema: { ...s, body: { content } } as typeof schema, url };
      }
      return { schema, url };
    },
  });
  await app.register(multipart, {
    limits: {
      fileSize: config.limits.maxBodyBytes,
      files: config.limits.maxImagesPerRequest,
      fields: 16,
      fieldSize: 1024,
      parts: config.limits.maxImagesPerRequest + 16,
      headerPairs: 100,
    },
  });

  await app.register(classifyRoute, {
    service,
    maxBodyBytes: config.limits.maxBodyBytes,
    maxImages: config.limits.maxImagesPerRequest,
  });
  await app.register(modelsRoutes, { service });

  app.get('/health/live', { schema: { summary: 'Liveness', response: { 200: healthReply } } }, async () => ({ status: 'ok' }));
  app.get(
    '/health/ready',
    {
      schema: { summary: 'Readiness: 200 only when every configured model is serving', response: { 200: healthReply, 503: healthReply } },
    },
    async (_req, reply) => {
      const models = Object.fromEntries(service.listModels().map((m) => [m.name, m.ready]));
      const ready = service.isReady();
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', models });
    },
  );
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format)' } }, async (_req, reply) => {
    const text = opts.metricsText ? await opts.metricsText() : await registry.metrics();
    return reply.header('content-type', registry.contentType).send(text);
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  registerKServeRoutes(app, service);
  return app;
}
