// Access control for the fastify app: CORS (off unless an allow-list is
// configured), API-key auth and per-client rate limiting as one onRequest
// hook. Rejections are thrown as ServeErrors, so the app's one error handler
// renders them ({statusCode, code, error, message}); Retry-After is set here
// as well, so a 429 carries it whatever handler renders it.
import cors from '@fastify/cors';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AccessConfig } from './access-config.js';
import { AccessController, type AccessRequest } from './access-control.js';
import { methodNotAllowed } from './method-policy.js';
import { isWarmupRequest } from '../http/warmup.js';

const HEALTH_PATHS = new Set(['/health/live', '/health/ready', '/v2/health/live', '/v2/health/ready']);

export function httpRequestKind(url: string): AccessRequest['kind'] {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (HEALTH_PATHS.has(path)) return 'health';
  if (path === '/metrics') return 'metrics';
  return 'api';
}

/**
 * pino redact paths for the app's logger: credentials never reach the logs even
 * if a serializer starts logging headers. (Bodies, and so image bytes, are
 * never logged: fastify's request serializer logs method, url and address.)
 */
export const LOG_REDACT_PATHS = [
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  // any object one level down: req.headers, and @fastify/multipart's trace-level busboyOptions.headers
  '*.headers.authorization',
  '*.headers["x-api-key"]',
  '*.headers.cookie',
];

async function accessPlugin(app: FastifyInstance, opts: { controller: AccessController }): Promise<void> {
  const { controller } = opts;
  const origins = controller.config.corsOrigins;
  if (origins.length > 0) {
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'POST', 'OPTIONS'],
      allowedHeaders: ['content-type', 'authorization', 'x-api-key', 'x-request-id', 'inference-header-content-length'],
      exposedHeaders: ['retry-after', 'x-request-id', 'inference-header-content-length'],
      maxAge: 600,
    });
  }
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    // CORS preflights carry no credentials by design; @fastify/cors answers them.
    if (request.method === 'OPTIONS' && origins.length > 0) return;
    // The service's own start-up requests (src/api/http/warmup.ts): no key, no rate-limit bucket.
    if (isWarmupRequest(request)) return;
    const denied = await controller.check({
      kind: httpRequestKind(request.url),
      authorization: request.headers.authorization,
      xApiKey: request.headers['x-api-key'],
      remoteAddress: request.ip,
    });
    if (denied === null) return;
    if (denied.retryAfterSeconds !== undefined) void reply.header('retry-after', String(denied.retryAfterSeconds));
    if (denied.code === 'SWIN_UNAUTHENTICATED') void reply.header('www-authenticate', 'Bearer');
    throw denied;
  });
  await app.register(methodNotAllowed);
}

/**
 * Registers CORS, auth, rate limiting and 405 answers on every route of `app`
 * (call it before adding routes). Pass an AccessController to share rate-limit buckets with
 * the gRPC server.
 */
export async function registerAccessControl(app: FastifyInstance, cfg: AccessConfig | AccessController): Promise<AccessController> {
  const controller = cfg instanceof AccessController ? cfg : new AccessController(cfg);
  await app.register(fp(accessPlugin, { name: 'swin-access-control', fastify: '5.x' }), { controller });
  return controller;
}
