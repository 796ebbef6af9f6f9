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

export const decodedImages = new client.Counter({
  name: 'swin_decoded_images_total',
  help: 'Images decoded, by decoder: gpu (nvJPEG) or sharp (the CPU path, in process or in a decode process).',
  labelNames: ['model', 'decoder'] as const,
  registers: [registry],
});

export const imageWarnings = new client.Counter({
  name: 'swin_image_warnings_total',
  help: 'Images decoded although their decoder warned (damaged data); DECODE_STRICT refuses them instead',
  labelNames: ['model'] as const,
  registers: [registry],
});

export const decodeCostRefusals = new client.Counter({
  name: 'swin_decode_cost_refusals_total',
  help: 'Images refused before decoding because their estimated decode cost exceeds MAX_DECODE_COST_MS',
  labelNames: ['model'] as const,
  registers: [registry],
});

export const bodyBytesInFlight = new client.Gauge({
  name: 'swin_body_bytes_in_flight',
  help: 'Bytes of request bodies (HTTP bodies, gRPC request messages) charged against BODY_MEMORY_BUDGET_BYTES now',
  registers: [registry],
});

export const inferenceDuration = new client.Histogram({
  name: 'swin_inference_duration_seconds',
  help: 'Backend execution time per batch.',
  labelNames: ['model', 'variant', 'backend'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const gpuBatchStageDuration = new client.Histogram({
  name: 'swin_gpu_batch_stage_seconds',
  help: 'Time per stage of a batch decoded on the GPU (BATCH_DECODE): copy_in, decode, engine, copy_out (CUDA events), host_decode (host wall).',
  labelNames: ['model', 'variant', 'stage'] as const,
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

// ---------------------------------------------------------------------------
// GPU gauges. Filled at scrape time from the source the native backend registers
// (setGpuInfoSource: the addon's gpuInfo(), NVML where the addon found it, else
// cudaMemGetInfo). The addon is optional: on a CPU-only host, or where it was not
// built, these gauges simply have no series.

/** One GPU as the gauges need it. Bytes are bytes; utilization is 0..1 or null when unknown. */
export interface GpuStats {
  index: number;
  name: string;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  utilization: number | null;
}

export type GpuInfoSource = () => GpuStats[] | Promise<GpuStats[]>;

export const gpuMemoryUsed = new client.Gauge({
  name: 'swin_gpu_memory_used_bytes',
  help: 'GPU memory in use (all processes on the device), per GPU.',
  labelNames: ['gpu', 'name'] as const,
  registers: [registry],
  async collect() {
    await refreshGpuGauges();
  },
});

export const gpuMemoryTotal = new client.Gauge({
  name: 'swin_gpu_memory_total_bytes',
  help: 'GPU memory capacity, per GPU.',
  labelNames: ['gpu', 'name'] as const,
  registers: [registry],
  async collect() {
    await refreshGpuGauges();
  },
});

export const gpuUtilization = new client.Gauge({
  name: 'swin_gpu_utilization_ratio',
  help: 'Fraction (0..1) of the last sample period in which a kernel ran on the GPU (NVML); absent without NVML.',
  labelNames: ['gpu', 'name'] as const,
  registers: [registry],
  async collect() {
    await refreshGpuGauges();
  },
});

// Registered by the native backend (src/backends/native-backend.ts) when it is
// loaded; null: no source, no series.
let gpuSource: GpuInfoSource | null = null;
let gpuRefresh: { at: number; done: Promise<void> } | null = null;
// One scrape calls the three collect() hooks together; they share one sample.
const GPU_SAMPLE_REUSE_MS = 1000;

/** Sets the GPU source: the native backend's, or a test's. null turns the gauges off. */
export function setGpuInfoSource(source: GpuInfoSource | null): void {
  gpuSource = source;
  gpuRefresh = null;
}

async function refreshGpuGauges(): Promise<void> {
  const now = Date.now();
  if (gpuRefresh && now - gpuRefresh.at < GPU_SAMPLE_REUSE_MS) return gpuRefresh.done;
  gpuRefresh = { at: now, done: sampleGpus() };
  return gpuRefresh.done;
}

async function sampleGpus(): Promise<void> {
  let gpus: GpuStats[] = [];
  if (gpuSource) {
    try {
      gpus = await gpuSource();
    } catch {
      gpus = []; // a failing read must not fail the scrape; the series go away instead
    }
  }
  gpuMemoryUsed.reset();
  gpuMemoryTotal.reset();
  gpuUtilization.reset();
  for (const g of gpus) {
    const labels = { gpu: String(g.index), name: g.name };
    gpuMemoryUsed.set(labels, g.memoryUsedBytes);
    gpuMemoryTotal.set(labels, g.memoryTotalBytes);
    if (g.utilization !== null) gpuUtilization.set(labels, g.utilization);
  }
}

/**
 * Checks the addon's gpuInfo() result (src/native/addon.ts NativeGpuInfo:
 * index, name, memoryUsedBytes, memoryTotalBytes, utilization 0..1 or null),
 * which crosses from C++ untyped. Entries without both memory numbers are
 * skipped; a missing utilization means unknown.
 */
export function normaliseGpuInfo(raw: unknown): GpuStats[] {
  if (!Array.isArray(raw)) return [];
  const out: GpuStats[] = [];
  raw.forEach((item: unknown, i: number) => {
    if (typeof item !== 'object' || item === null) return;
    const r = item as Record<string, unknown>;
    const num = (k: string): number | null => {
      const v = r[k];
      return typeof v === 'number' && Number.isFinite(v) ? v : null;
    };
    const used = num('memoryUsedBytes');
    const total = num('memoryTotalBytes');
    if (used === null || total === null) return;
    const utilization = num('utilization');
    out.push({
      index: num('index') ?? i,
      name: typeof r.name === 'string' ? r.name : `gpu${i}`,
      memoryUsedBytes: used,
      memoryTotalBytes: total,
      utilization: utilization === null ? null : Math.min(1, Math.max(0, utilization)),
    });
  });
  return out;
}
