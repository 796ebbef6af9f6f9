// GET /models and GET /models/:name: what is loaded, which variant serves on
// which backend, readiness (and why not), input, labels, batching.
import type { FastifyInstance } from 'fastify';
import type { InferenceService, ModelStatus } from '../../service/service-types.js';
import { errorResponses, modelView } from './schemas.js';

export function toModelView(s: ModelStatus): Record<string, unknown> {
  const c = s.config;
  return {
    name: s.name,
    version: s.version,
    versions: s.versions ?? [s.version],
    ...(c.description !== undefined && { description: c.description }),
    ready: s.ready,
    active_variant: s.active_variant,
    variants: s.variants,
    family: c.architecture.family,
    input: c.input,
    output: c.output,
    labels_count: c.labels.length,
    labels: c.labels,
    preprocess: c.preprocess,
    batching: c.batching,
  };
}

export async function modelsRoutes(app: FastifyInstance, opts: { service: InferenceService }): Promise<void> {
  const { service } = opts;
  app.addSchema(modelView);
  app.get(
    '/models',
    {
      schema: {
        summary: 'Loaded models',
        response: {
          200: { type: 'object', required: ['models'], properties: { models: { type: 'array', items: { $ref: 'Model#' } } } },
          ...errorResponses(401, 429),
        },
      },
    },
    async () => ({ models: service.listModels().map(toModelView) }),
  );
  app.get(
    '/models/:name',
    {
      schema: {
        summary: 'One model',
        params: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 200 } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { version: { type: 'string', minLength: 1, maxLength: 64 } },
        },
        response: { 200: { $ref: 'Model#' }, ...errorResponses(400, 401, 404, 429) },
      },
    },
    async (request) =>
      toModelView(service.getModel((request.params as { name: string }).name, (request.query as { version?: string }).version)),
  );
}
