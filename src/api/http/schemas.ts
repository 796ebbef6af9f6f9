// JSON schemas of the REST API. Fastify validates requests and serializes
// replies with them, and @fastify/swagger turns them into /openapi.json, so
// the document always matches what the server does.

export const errorBody = {
  $id: 'ErrorBody',
  type: 'object',
  description: 'Every error reply. `code` is stable (see docs/api.md); `message` is for people.',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string', examples: ['SWIN_IMAGE_DECODE_FAILED'] },
    error: { type: 'string', examples: ['Bad Request'] },
    message: { type: 'string' },
  },
} as const;

const errorRef = { $ref: 'ErrorBody#' } as const;

/** Error statuses any route can answer. */
export function errorResponses(...statuses: number[]): Record<string, unknown> {
  const descriptions: Record<number, string> = {
    400: 'Malformed request (bad image, bad JSON, bad base64, bad top_k, too many images)',
    401: 'Missing or invalid API key (when auth is on)',
    404: 'Unknown model or variant',
    413: 'Body, image or pixel count over the limit',
    415: 'Content type or image format not accepted',
    429: 'Rate limited; see Retry-After',
    499: 'Client went away',
    500: 'Engine failure (e.g. non-finite logits)',
    503: 'Queue full (see Retry-After), model not ready, or shutting down',
    504: 'Request deadline passed',
  };
  return Object.fromEntries(statuses.map((s) => [String(s), { description: descriptions[s] ?? 'Error', ...errorRef }]));
}

const variantEnum = { type: 'string', enum: ['fold', 'unfold'] } as const;

/** model.json batching.default_queue_policy / priority_queue_policy.N (docs/model-json.md). */
const queuePolicy = {
  type: 'object',
  properties: {
    max_queue_size: { type: 'integer' },
    default_timeout_ms: { type: 'number' },
    max_timeout_ms: { type: 'number' },
    allow_timeout_override: { type: 'boolean' },
    timeout_action: { type: 'string', enum: ['reject', 'delay'] },
  },
} as const;

export const classifyQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 200, description: 'Model name (default: the first loaded model)' },
    variant: { ...variantEnum, description: 'fold or unfold (default: the variant the model is serving)' },
    version: {
      type: 'string',
      pattern: '^[0-9A-Za-z._-]{1,64}$',
      description: 'Model version (default: the newest version that is serving)',
    },
    top_k: { type: 'integer', minimum: 1, maximum: 100000, description: 'Classes per image (default 5, at most the class count)' },
    priority: {
      type: 'integer',
      minimum: 0,
      maximum: 1000,
      description: "Priority level, 1 runs first (default: the model's default_priority_level)",
    },
    timeout_ms: {
      type: 'integer',
      minimum: 0,
      maximum: 3600000,
      description: "Timeout under the model's queue policy, ms (default: the policy's)",
    },
  },
} as const;

export const classifyJsonBody = {
  type: 'object',
  required: ['images'],
  additionalProperties: false,
  properties: {
    images: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'string',
        minLength: 1,
        description: 'base64 (standard or URL-safe) of an encoded image; a data: URL prefix is allowed',
      },
    },
    model: classifyQuery.properties.model,
    variant: classifyQuery.properties.variant,
    version: { anyOf: [classifyQuery.properties.version, { type: 'integer', minimum: 0 }] },
    top_k: classifyQuery.properties.top_k,
    priority: classifyQuery.properties.priority,
    timeout_ms: classifyQuery.properties.timeout_ms,
  },
} as const;

const prediction = {
  type: 'object',
  required: ['label', 'index', 'score'],
  properties: {
    label: { type: 'string' },
    index: { type: 'integer' },
    score: { type: 'number', description: 'softmax probability' },
  },
} as const;

export const classifyReply = {
  type: 'object',
  required: ['model', 'variant', 'backend', 'predictions', 'timings'],
  properties: {
    model: { type: 'string' },
    version: { type: 'string', description: 'Model version that answered' },
    variant: variantEnum,
    backend: { type: 'string', enum: ['onnxruntime', 'tensorrt', 'cuda'] },
    predictions: {
      type: 'array',
      description: 'One list per image, in request order, best first',
      items: { type: 'array', items: prediction },
    },
    warnings: {
      type: 'array',
      description:
        'Only when a decoder warned about an image (damaged data, decoded as far as it goes); DECODE_STRICT answers 400 SWIN_IMAGE_DAMAGED instead',
      items: { type: 'object', required: ['image', 'warning'], properties: { image: { type: 'integer' }, warning: { type: 'string' } } },
    },
    timings: {
      type: 'object',
      required: ['preprocess_ms', 'queue_ms', 'inference_ms', 'total_ms'],
      properties: {
        preprocess_ms: { type: 'number' },
        queue_ms: { type: 'number' },
        inference_ms: { type: 'number' },
        total_ms: { type: 'number' },
      },
    },
  },
} as const;

export const modelView = {
  $id: 'Model',
  type: 'object',
  required: [
    'name',
    'version',
    'ready',
    'active_variant',
    'variants',
    'family',
    'input',
    'output',
    'labels_count',
    'labels',
    'preprocess',
    'batching',
  ],
  properties: {
    name: { type: 'string' },
    version: { type: 'string', description: 'Version this view describes: the one requests naming none get' },
    versions: { type: 'array', items: { type: 'string' }, description: 'Every loaded version, newest first' },
    description: { type: 'string' },
    ready: { type: 'boolean' },
    active_variant: { anyOf: [variantEnum, { type: 'null' }] },
    variants: {
      type: 'array',
      items: {
        type: 'object',
        required: ['variant', 'backend', 'ready'],
        properties: {
          variant: variantEnum,
          backend: { anyOf: [{ type: 'string' }, { type: 'null' }] },
          ready: { type: 'boolean' },
          reason: { type: 'string' },
          devices: {
            type: 'array',
            items: {
              type: 'object',
              required: ['device', 'ready'],
              properties: { device: { type: 'string' }, ready: { type: 'boolean' }, reason: { type: 'string' } },
            },
          },
        },
      },
    },
    family: { type: 'string' },
    input: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        datatype: { type: 'string' },
        shape: { type: 'array', items: { type: 'integer' } },
        layout: { type: 'string' },
      },
    },
    output: {
      type: 'object',
      properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' } } },
    },
    labels_count: { type: 'integer' },
    labels: { type: 'array', items: { type: 'string' } },
    preprocess: {
      type: 'object',
      properties: {
        mode: { type: 'string' },
        resize: { type: 'integer' },
        crop: { type: 'integer' },
        kernel: { type: 'string' },
        mean: { type: 'array', items: { type: 'number' } },
        std: { type: 'array', items: { type: 'number' } },
      },
    },
    batching: {
      type: 'object',
      properties: {
        max_batch_size: { type: 'integer' },
        max_queue_delay_ms: { type: 'number' },
        max_queue_size: { type: 'integer' },
        instances: { type: 'integer' },
        preferred_batch_sizes: { type: 'array', items: { type: 'integer' } },
        priority_levels: { type: 'integer' },
        default_priority_level: { type: 'integer' },
        default_queue_policy: queuePolicy,
        priority_queue_policy: { type: 'object', additionalProperties: queuePolicy },
      },
    },
  },
} as const;

export const healthReply = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'ready', 'not_ready'] },
    models: { type: 'object', additionalProperties: { type: 'boolean' }, description: 'Model name -> serving' },
  },
} as const;
