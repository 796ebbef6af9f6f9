// One loaded copy of a model version: a preprocessor, and per variant (fold,
// unfold) an engine that passed its self-test plus the batcher in front of it.
// Decides which variant serves (model.json default_variant or VARIANT, else
// the other one), takes a variant out of service when it fails at run time,
// and re-tests it later so it can come back without a restart. A retired copy
// (replaced by a new load, or unloaded) takes no new requests, waits for the
// ones it accepted, then releases its engines.
import path from 'node:path';
import type { BaseLogger } from 'pino';
import sharp from 'sharp';
import type { Backend, BackendKind, DeviceBatchResult, DeviceDecodeSpec, Variant } from '../backends/backend.js';
import { artifactPath, candidateKinds, createBackend as defaultCreateBackend, type BackendFactory } from '../backends/backend-factory.js';
import { Batcher, type BatchResult } from '../batching/batcher.js';
import { batcherPriorityOptions, withPolicyOverrides } from '../batching/queue-policy.js';
import { endSpan, startBatchSpan, tracingEnabled } from '../observability/tracing.js';
import type { Config } from '../config.js';
import { ServeError } from '../errors.js';
import { gpuBatchStageDuration, modelReady, queueCapacity, selftestFailures } from '../observability/metrics.js';
import type { BatchingConfig, ModelConfig } from './model-config.js';
import { Preprocessor } from '../decode/preprocess.js';
import { defaultWarmupSizes, loadSelfTest, runWarmup, selfTestDevices, type DeviceLeftOut, type SelfTestData } from './selftest.js';
import type { DeviceStatus } from '../service/service-types.js';

export const VARIANTS: readonly Variant[] = ['fold', 'unfold'];

/** swin_gpu_batch_stage_seconds from one image batch's stages (ms). */
function observeStages(model: string, variant: Variant, t: NonNullable<DeviceBatchResult['stages']>): void {
  const stages: [string, number][] = [
    ['copy_in', t.copyInMs],
    ['decode', t.decodeMs],
    ['engine', t.engineMs],
    ['copy_out', t.copyOutMs],
    ['host_decode', t.hostDecodeMs],
  ];
  for (const [stage, ms] of stages) gpuBatchStageDuration.observe({ model, variant, stage }, ms / 1000);
}
const MAX_RETRY_DELAY_MS = 10 * 60_000;

export interface VariantSlot {
  readonly variant: Variant;
  kind: BackendKind | null;
  backend: Backend | null;
  batcher: Batcher | null;
  ready: boolean;
  reason?: string;
  retryTimer?: NodeJS.Timeout;
  retryDelayMs: number;
  /** Multi-GPU backends: every device, serving or left out (and why). */
  devices?: DeviceStatus[];
  /** Set where the batcher takes JPEGs encoded and the backend decodes them per batch on its GPU. */
  imageSpec?: DeviceDecodeSpec | null;
}

export interface LoadedModel {
  readonly name: string;
  /** This copy's version: its folder name, or model.json "version" for a model without version folders. */
  readonly version: string;
  readonly dir: string;
  readonly config: ModelConfig;
  readonly preprocessor: Preprocessor;
  /** model.json batching with the service's overrides applied. */
  readonly batching: BatchingConfig;
  readonly variants: Map<Variant, VariantSlot>;
  /** Variant used when a request names none; null when no variant is serving. */
  active: Variant | null;
  /** Variant preferred whenever it is serving. */
  readonly preferred: Variant;
  selftest: SelfTestData | null;
  /** Requests that resolved to this copy and have not finished (acquire/release). */
  inflight: number;
  /** Replaced or unloaded: takes no new requests, drains, then releases its engines. */
  retired: boolean;
  /** Resolves the drain wait once inflight reaches 0 after retirement. */
  onIdle?: () => void;
  /** The drain in progress (retire() twice waits for the same one). */
  retiring?: Promise<void>;
}

export interface InferOutcome extends BatchResult {
  variant: Variant;
  backend: BackendKind;
}

export interface RepositoryOptions {
  config: Config;
  logger: BaseLogger;
  /** Engine factory; tests and fault injection substitute their own. */
  createBackend?: BackendFactory;
  /** Free memory per GPU, checked before a second copy of a GPU model loads; default: the addon's gpuInfo. */
  gpuInfo?: () => Promise<GpuMemory[]>;
}

export interface GpuMemory {
  index: number;
  memoryFreeBytes: number;
}

/** A request taken out of a withdrawn variant's queue; it may be sent to the other variant. */
export class WithdrawnError extends ServeError {}

/** Builds, watches and retires loaded copies; the repository decides which copy serves. */
export class ModelInstances {
  private readonly opts: RepositoryOptions;
  private readonly log: BaseLogger;
  private readonly makeBackend: BackendFactory;
  private closed = false;

  constructor(opts: RepositoryOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.makeBackend = opts.createBackend ?? defaultCreateBackend;
  }

  /** Loads, self-tests and warms every variant of one version; `active` is null when none passed. */
  async create(name: string, version: string, dir: string, config: ModelConfig): Promise<LoadedModel> {
    const o = this.opts.config;
    const batching: BatchingConfig = {
      ...withPolicyOverrides(config.batching, o.queuePolicy),
      ...(o.batching.maxBatchSize !== undefined && { max_batch_size: o.batching.maxBatchSize }),
      ...(o.batching.maxQueueDelayMs !== undefined && { max_queue_delay_ms: o.batching.maxQueueDelayMs }),
      ...(o.batching.maxQueueSize !== undefined && { max_queue_size: o.batching.maxQueueSize }),
      ...(o.batching.instances !== undefined && { instances: o.batching.instances }),
    };
    const m: LoadedModel = {
      name,
      version,
      dir,
      config,
      batching,
      inflight: 0,
      retired: false,
      preprocessor: new Preprocessor(config, {
        maxImagePixels: o.limits.maxImagePixels,
        acceptedFormats: o.acceptedFormats,
        strict: o.decodeStrict === true,
      }),
      variants: new Map(),
      active: null,
      preferred: o.variant ?? config.default_variant,
      selftest: null,
    };
    queueCapacity.set({ model: name }, batching.max_queue_size);
    for (const v of VARIANTS) {
      if (config.artifacts[v])
        m.variants.set(v, { variant: v, kind: null, backend: null, batcher: null, ready: false, retryDelayMs: o.selftestRetryMs });
    }
    try {
      m.selftest = await loadSelfTest(dir, config);
    } catch (err) {
      const reason = `self-test data unusable: ${(err as Error).message}`;
      this.log.error({ model: name }, `model ${name}: ${reason}; no variant can be verified, none will serve`);
      for (const s of m.variants.values()) s.reason = reason;
      return m;
    }
    for (const slot of m.variants.values()) await this.loadVariant(m, slot);
    this.chooseActive(m);
    return m;
  }

  /** Stops new work reaching m, waits for the requests it accepted, then closes its batchers and engines. */
  retire(m: LoadedModel): Promise<void> {
    m.retiring ??= this.drainAndDispose(m);
    return m.retiring;
  }

  private async drainAndDispose(m: LoadedModel): Promise<void> {
    m.retired = true;
    const slots = [...m.variants.values()];
    for (const s of slots) if (s.retryTimer) clearTimeout(s.retryTimer);
    if (m.inflight > 0) await new Promise<void>((resolve) => (m.onIdle = resolve));
    await Promise.all(slots.map((s) => s.batcher?.close()));
    await Promise.all(slots.map((s) => s.backend?.dispose().catch(() => undefined)));
    for (const s of slots) s.ready = false;
  }

  /** Shutdown: no more re-tests; the repository closes every copy. */
  stop(): void {
    this.closed = true;
  }

  /** Tries each candidate backend for the variant until one loads and passes its self-test. */
  private async loadVariant(m: LoadedModel, slot: VariantSlot): Promise<void> {
    const { kinds, skipped } = await candidateKinds(this.opts.config.backend, m.config, slot.variant);
    if (skipped.length > 0) {
      this.log.info(
        { model: m.name, variant: slot.variant, candidates: kinds },
        `model ${m.name} variant ${slot.variant}: backends skipped: ${skipped.join('; ')}`,
      );
    }
    const failures: string[] = [];
    for (const kind of kinds) {
      const labels = { model: m.name, variant: slot.variant, backend: kind };
      let backend: Backend;
      const file = artifactPath(m.dir, m.config, slot.variant, kind)!;
      try {
        backend = await this.makeBackend({
          kind,
          path: file,
          config: m.config,
          variant: slot.variant,
          opts: {
            instances: m.batching.instances,
            maxBatchSize: m.batching.max_batch_size,
            ort: this.opts.config.ort,
            devices: this.opts.config.devices,
          },
        });
      } catch (err) {
        const why = `${kind} failed to load ${path.basename(file)}: ${(err as Error).message}`;
        failures.push(why);
        selftestFailures.inc({ ...labels, reason: 'load_error' });
        modelReady.set(labels, 0);
        this.log.error(labels, `model ${m.name} variant ${slot.variant}: ${why}`);
        continue;
      }
      const { result, leftOut } = await selfTestDevices(backend, m.selftest!);
      this.reportLeftOut(m, slot, kind, leftOut);
      if (!result.ok) {
        const why = `${kind} failed its self-test: ${result.reason}`;
        failures.push(why);
        selftestFailures.inc({ ...labels, reason: result.failure! });
        modelReady.set(labels, 0);
        this.log.error(
          { ...labels, maxAbsDiff: result.maxAbsDiff, tolerance: result.tolerance },
          `model ${m.name}: refusing variant ${slot.variant} on ${kind}: ${result.reason}`,
        );
        await backend.dispose().catch(() => undefined);
        continue;
      }
      this.log.info(
        {
          ...labels,
          maxAbsDiff: result.maxAbsDiff,
          tolerance: result.tolerance,
          precision: backend.precision ?? 'fp32',
          device: backend.device,
        },
        `model ${m.name} variant ${slot.variant} on ${kind} passed its self-test`,
      );
      // Warm before serving: the first requests at each batch size must not pay for graph capture.
      const sizes = m.config.warmup ?? defaultWarmupSizes(backend.kind, batchLimit(m, backend));
      const warm = await runWarmup(backend, m.selftest!, sizes, m.batching.instances);
      if (!warm.ok) {
        const why = `${kind} ${warm.reason}`;
        failures.push(why);
        selftestFailures.inc({ ...labels, reason: 'warmup' });
        modelReady.set(labels, 0);
        this.log.error(labels, `model ${m.name}: refusing variant ${slot.variant} on ${kind}: ${warm.reason}`);
        await backend.dispose().catch(() => undefined);
        continue;
      }
      if (warm.sizes.length > 0) {
        this.log.info(
          { ...labels, batchSizes: warm.sizes, instances: m.batching.instances, ms: Math.round(warm.ms) },
          `model ${m.name} variant ${slot.variant} on ${kind} warmed up`,
        );
      }
      slot.devices = backend.perDevice && [
        ...backend.perDevice.map((p) => ({ device: p.device, ready: true })),
        ...leftOut.map((d) => ({ device: d.device, ready: false, reason: d.reason })),
      ];
      this.attach(m, slot, kind, backend, await this.warmImageBatches(m, slot, kind, backend));
      return;
    }
    slot.reason = failures.length > 0 ? failures.join('; ') : `no usable backend (${skipped.join('; ') || 'none configured'})`;
    if (kinds.length > 0) this.scheduleRetest(m, slot);
  }

  /** Devices of a multi-GPU backend that did not load or failed their self-test: logged and counted, not served. */
  private reportLeftOut(m: LoadedModel, slot: VariantSlot, kind: BackendKind, leftOut: DeviceLeftOut[]): void {
    const labels = { model: m.name, variant: slot.variant, backend: kind };
    for (const d of leftOut) {
      selftestFailures.inc({ ...labels, reason: d.failure });
      this.log.error(
        { ...labels, device: d.device },
        `model ${m.name} variant ${slot.variant} on ${kind}: ${d.device} left out: ${d.reason}`,
      );
    }
  }

  /**
   * Where JPEGs go encoded to this backend (BATCH_DECODE, DECODE not cpu, JPEG accepted, the
   * backend decodes on its device): the decode spec, after one JPEG per batch in flight has run
   * (the first call on each engine thread opens its nvJPEG decoder). Null: per-request decoding;
   * a failure here is logged and leaves the variant serving that way.
   */
  private async warmImageBatches(m: LoadedModel, slot: VariantSlot, kind: BackendKind, backend: Backend): Promise<DeviceDecodeSpec | null> {
    const o = this.opts.config;
    const jpegsToGpu = o.decode !== 'cpu' && !o.decodeStrict && o.acceptedFormats.includes('jpeg'); // as CoreInferenceService routes them
    if (!backend.runImages || !o.batchDecode || !jpegsToGpu) return null;
    const pre = m.config.preprocess;
    const size = m.config.architecture.img_size;
    const spec: DeviceDecodeSpec = {
      size,
      mode: pre.mode,
      resize: pre.mode === 'squash' ? size : pre.resize,
      kernel: pre.kernel,
      maxPixels: o.limits.maxImagePixels,
    };
    const labels = { model: m.name, variant: slot.variant, backend: kind };
    const start = performance.now();
    try {
      const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 120, g: 90, b: 60 } } })
        .jpeg()
        .toBuffer();
      const runs = Math.max(1, m.batching.instances) * Math.max(1, backend.perDevice?.length ?? 1);
      const outs = await Promise.all(Array.from({ length: runs }, () => backend.runImages!([jpeg], [true], spec)));
      for (const r of outs) {
        if (!r.decoded[0]) throw new Error(`the GPU refused the warm-up JPEG: ${r.reasons[0] ?? 'no reason given'}`);
        if (!r.logits.every(Number.isFinite)) throw new Error('non-finite logits');
      }
    } catch (err) {
      this.log.warn(
        labels,
        `model ${m.name} variant ${slot.variant}: JPEGs decoded per request: batch decoding failed: ${(err as Error).message}`,
      );
      return null;
    }
    this.log.info(
      { ...labels, ms: Math.round(performance.now() - start) },
      `model ${m.name} variant ${slot.variant}: JPEGs decoded per batch on the GPU`,
    );
    return spec;
  }

  private attach(m: LoadedModel, slot: VariantSlot, kind: BackendKind, backend: Backend, imageSpec: DeviceDecodeSpec | null = null): void {
    slot.kind = kind;
    slot.backend = backend;
    slot.imageSpec = imageSpec;
    slot.ready = true;
    slot.reason = undefined;
    slot.retryDelayMs = this.opts.config.selftestRetryMs;
    slot.batcher = new Batcher({
      model: m.name,
      variant: slot.variant,
      backend: kind,
      maxBatchSize: batchLimit(m, backend),
      maxQueueDelayMs: m.batching.max_queue_delay_ms,
      maxQueueSize: m.batching.max_queue_size,
      // `instances` batches in flight per GPU (Triton's instance group).
      instances: m.batching.instances * Math.max(1, backend.perDevice?.length ?? 1),
      preferredBatchSizes: m.batching.preferred_batch_sizes,
      ...batcherPriorityOptions(m.batching),
      imageBytes: m.preprocessor.imageBytes,
      numClasses: m.config.architecture.num_classes,
      run: async (images, n) => {
        const logits = await backend.run(images, n);
        for (let i = 0; i < logits.length; i++) {
          if (!Number.isFinite(logits[i])) throw new ServeError('SWIN_NON_FINITE_OUTPUT', m.name, `${slot.variant} on ${kind}`);
        }
        return logits;
      },
      ...(imageSpec && {
        runImages: async (images: Uint8Array[], jpeg: boolean[], _n: number, recorded: boolean) => {
          const r = await backend.runImages!(images, jpeg, imageSpec);
          if (r.stages && recorded) observeStages(m.name, slot.variant, r.stages);
          const k = m.config.architecture.num_classes;
          for (let i = 0; i < r.logits.length; i++) {
            if (r.decoded[Math.floor(i / k)] && !Number.isFinite(r.logits[i])) {
              throw new ServeError('SWIN_NON_FINITE_OUTPUT', m.name, `${slot.variant} on ${kind}`);
            }
          }
          return r;
        },
      }),
      onBatchError: (err) => this.takeOutOfService(m, slot, err),
      ...(tracingEnabled() && {
        traceBatch: (n: number, requests: unknown[]) => {
          const span = startBatchSpan(
            { 'swin.model': m.name, 'swin.variant': slot.variant, 'swin.backend': kind, 'swin.batch_size': n },
            requests,
          );
          return (err?: unknown) => endSpan(span, err);
        },
      }),
    });
    modelReady.set({ model: m.name, variant: slot.variant, backend: kind }, 1);
  }

  private chooseActive(m: LoadedModel): void {
    const before = m.active;
    const ready = (v: Variant) => m.variants.get(v)?.ready === true;
    const other = VARIANTS.find((v) => v !== m.preferred && ready(v)) ?? null;
    m.active = ready(m.preferred) ? m.preferred : other;
    if (m.active === before) return;
    if (m.active === null) {
      this.log.error({ model: m.name }, `model ${m.name} is not ready: no variant passed its self-test`);
    } else {
      const slot = m.variants.get(m.active)!;
      const fallback = m.active !== m.preferred ? ` (fallback: ${m.preferred} is not ready)` : '';
      this.log.info(
        { model: m.name, variant: m.active, backend: slot.kind },
        `model ${m.name} serving variant ${m.active} on ${slot.kind}${fallback}`,
      );
    }
  }

  /** A batch failed (non-finite logits or an engine error): stop sending work to this variant. */
  private takeOutOfService(m: LoadedModel, slot: VariantSlot, err: ServeError): void {
    if (!slot.ready || this.closed || m.retired) return;
    const labels = { model: m.name, variant: slot.variant, backend: slot.kind ?? 'none' };
    slot.ready = false;
    slot.reason = `taken out of service: ${err.message}`;
    modelReady.set(labels, 0);
    selftestFailures.inc({ ...labels, reason: err.code === 'SWIN_NON_FINITE_OUTPUT' ? 'runtime_non_finite' : 'runtime_error' });
    this.log.error(labels, `model ${m.name}: variant ${slot.variant} on ${slot.kind} taken out of service: ${err.message}`);
    this.chooseActive(m);
    const withdrawn = slot.batcher?.withdrawQueued(() => new WithdrawnError('SWIN_MODEL_NOT_READY', m.name, slot.reason)) ?? 0;
    if (withdrawn > 0) this.log.warn(labels, `${withdrawn} queued requests moved off variant ${slot.variant}`);
    this.scheduleRetest(m, slot);
  }

  private scheduleRetest(m: LoadedModel, slot: VariantSlot): void {
    if (this.closed || m.retired || slot.retryTimer) return;
    const delay = slot.retryDelayMs;
    slot.retryDelayMs = Math.min(MAX_RETRY_DELAY_MS, delay * 2);
    slot.retryTimer = setTimeout(() => {
      slot.retryTimer = undefined;
      void this.retest(m, slot);
    }, delay);
    slot.retryTimer.unref();
  }

  /** Runs the self-test again on the engine that failed (or loads it again if it never loaded). */
  private async retest(m: LoadedModel, slot: VariantSlot): Promise<void> {
    if (this.closed || m.retired || slot.ready) return;
    if (!slot.backend) {
      await this.loadVariant(m, slot);
      this.chooseActive(m);
      return;
    }
    const labels = { model: m.name, variant: slot.variant, backend: slot.kind! };
    const devicesBefore = slot.backend.perDevice?.length;
    const { result, leftOut } = await selfTestDevices(slot.backend, m.selftest!);
    if (this.closed || m.retired) return;
    // load failures were reported when the backend loaded
    this.reportLeftOut(
      m,
      slot,
      slot.kind!,
      leftOut.filter((d) => d.failure !== 'load_error'),
    );
    if (slot.devices) {
      for (const d of leftOut) {
        const entry = slot.devices.find((x) => x.device === d.device);
        if (entry) Object.assign(entry, { ready: false, reason: d.reason });
      }
    }
    if (!result.ok) {
      selftestFailures.inc({ ...labels, reason: result.failure! });
      this.log.warn(
        labels,
        `model ${m.name} variant ${slot.variant} still failing its self-test: ${result.reason}; next try in ${slot.retryDelayMs} ms`,
      );
      this.scheduleRetest(m, slot);
      return;
    }
    if (slot.backend.perDevice?.length !== devicesBefore) {
      // fewer GPUs now: a batcher whose in-flight limit matches them
      await slot.batcher?.close();
      this.attach(m, slot, slot.kind!, slot.backend, slot.imageSpec);
    }
    slot.ready = true;
    slot.reason = undefined;
    slot.retryDelayMs = this.opts.config.selftestRetryMs;
    modelReady.set(labels, 1);
    this.log.info(labels, `model ${m.name} variant ${slot.variant} on ${slot.kind} passed its self-test again and is back in service`);
    this.chooseActive(m);
  }
}

/** The largest batch the batcher forms for this engine. */
function batchLimit(m: LoadedModel, backend: Backend): number {
  return Math.max(1, Math.min(m.batching.max_batch_size, backend.maxBatchSize));
}
