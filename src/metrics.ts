// Prometheus metrics (prom-client). docs/metrics.md documents every name.
// Front ends, the batcher and the model repository record through these
// objects; nothing here imports from them.
import client from 'prom-client';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

// 1 ms .. 10 s, roughly x2 per bucket, with extra resolution under 100 ms.
const LATENCY_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10];

export const requestsTotal = new client.Counter({
  name: 'swin_requests_total',
  help: 'Requests answered, by API, model and result code ("OK" or an error code).',
  labelNames: ['api', 'model', 'code'] as const,
  registers: [registry],
});

export const imagesTotal = new client.Counter({
  name: 'swin_images_total',
  help: 'Images classified successfully.',
  labelNames: ['api', 'model', 'variant', 'backend'] as const,
  registers: [registry],
});

export const requestDuration = new client.Histogram({
  name: 'swin_request_duration_seconds',
  help: 'End-to-end request latency, receipt to reply.',
  labelNames: ['api', 'model', 'code'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const queueDuration = new client.Histogram({
  name: 'swin_queue_duration_seconds',
  help: 'Time an image waited in the batcher queue.',
  labelNames: ['model', 'variant', 'backend'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const preprocessDuration = new client.Histogram({
  name: 'swin_preprocess_duration_seconds',
  help: 'Decode + resize time per image.',
  labelNames: ['model'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const inferenceDuration = new client.Histogram({
  name: 'swin_inference_duration_seconds',
  help: 'Backend execution time per batch.',
  labelNames: ['model', 'variant', 'backend'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const batchSize = new client.Histogram({
  name: 'swin_batch_size',
  help: 'Images per executed batch.',
  labelNames: ['model', 'variant', 'backend'] as const,
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
  registers: [registry],
});

export const queueDepth = new client.Gauge({
  name: 'swin_queue_depth',
  help: 'Images waiting in the batcher queue.',
  labelNames: ['model'] as const,
  registers: [registry],
});

export const queueCapacity = new client.Gauge({
  name: 'swin_queue_capacity',
  help: 'Configured max_queue_size of the model (for "queue near full" alerts).',
  labelNames: ['model'] as const,
  registers: [registry],
});

export const inflightBatches = new client.Gauge({
  name: 'swin_inflight_batches',
  help: 'Batches executing on a backend right now.',
  labelNames: ['model'] as const,
  registers: [registry],
});

export const modelReady = new client.Gauge({
  name: 'swin_model_ready',
  help: '1 when the model variant passed its self-test and serves on the backend, else 0.',
  labelNames: ['model', 'variant', 'backend'] as const,
  registers: [registry],
});

export const selftestFailures = new client.Counter({
  name: 'swin_selftest_failures_total',
  help: 'Load-time or runtime self-test failures (non-finite output, mismatch to reference, load error).',
  labelNames: ['model', 'variant', 'backend', 'reason'] as const,
  registers: [registry],
});

export const droppedRequests = new client.Counter({
  name: 'swin_dropped_requests_total',
  help: 'Queued images that never reached the engine, by reason (deadline, cancelled, shutdown).',
  labelNames: ['model', 'reason'] as const,
  registers: [registry],
});

export const backendErrors = new client.Counter({
  name: 'swin_backend_errors_total',
  help: 'Batches that failed in the backend (exception or non-finite output).',
  labelNames: ['model', 'variant', 'backend', 'reason'] as const,
  registers: [registry],
});
