// 405 Method Not Allowed, with an Allow header, for a path that exists under
// other methods (fastify itself answers such requests 404). Route patterns
// are collected as they are registered (":param" matches one segment, "*"
// the rest) and looked up only for requests that matched no route, before
// their body is read.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ServeError } from '../../errors.js';

interface Pattern {
  re: RegExp;
  methods: Set<string>;
}

function compile(url: string): RegExp {
  const body = url
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${body}/?$`);
}

async function methodPolicy(app: FastifyInstance): Promise<void> {
  const patterns = new Map<string, Pattern>();
  app.addHook('onRoute', (route) => {
    // Catch-all routes (CORS preflight's OPTIONS *) say nothing about which paths exist.
    if (route.url === '*' || route.url === '/*') return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    let p = patterns.get(route.url);
    if (!p) {
      p = { re: compile(route.url), methods: new Set() };
      patterns.set(route.url, p);
    }
    for (const m of methods) p.methods.add(m.toUpperCase());
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!request.is404) return;
    const path = request.url.split('?')[0];
    const allowed = new Set<string>();
    for (const p of patterns.values()) if (p.re.test(path)) for (const m of p.methods) allowed.add(m);
    if (allowed.size === 0 || allowed.has(request.method)) return;
    void reply.header('allow', [...allowed].sort().join(', '));
    throw new ServeError('SWIN_METHOD_NOT_ALLOWED', request.method, path.slice(0, 200), [...allowed].sort().join(', '));
  });
}

/** Register before the routes (onRoute only sees routes added after it). */
export const methodNotAllowed = fp(methodPolicy, { name: 'swin-method-policy', fastify: '5.x' });
