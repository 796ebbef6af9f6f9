// The core behind every front end (HTTP /classify, gRPC, KServe):
// encoded images -> preprocess (sharp, or nvJPEG for JPEGs: gpu-decode.ts) -> batcher -> engine -> softmax/top-k.
// Front ends translate their protocol to these calls and record their own
// request metrics; this class records images served.
import sharp, { type Metadata } from 'sharp';
import type { EncodedImages, SubmitOptions } from '../batching/batcher.js';
import type { BackendKind, Variant } from '../backends/backend.js';
import type { Config } from '../config.js';
import { ServeError } from '../errors.js';
import { estimateDecodeCost } from '../decode/decode-cost.js';
import { DecodeGate, windowError, type DecodeWindow } from '../decode/decode-gate.js';
import { DecodePool, type DecodePoolEvents } from '../decode/decode-pool.js';
import { GpuDecodeRouter, type CpuPreprocessor, type GpuDecodeOptions } from '../decode/gpu-decode.js';
import { decodeCostRefusals, decodedImages, droppedRequests, imageWarnings, imagesTotal } from '../observability/metrics.js';
import { decodeEach, formatName, looksLikeMarkup } from '../decode/preprocess.js';
import type { InferOutcome, LoadedModel, ModelRepository } from '../models/model-repository.js';
import type { ModelControlMode } from '../config.js';
import { endSpan, startStage, type TraceContext } from '../observability/tracing.js';
import type {
  ClassifyResult,
  ImageWarning,
  InferenceService,
  ModelControl,
  ModelIndexRow,
  ModelStatus,
  RequestOptions,
  TensorResult,
} from './service-types.js';
import { topK } from './postprocess.js';

/** The request's priority, policy timeout, trace and warm-up mark, as the batcher takes them. */
function policyOf(opts: RequestOptions): Pick<SubmitOptions, 'priority' | 'policyTimeoutMs' | 'trace' | 'warmup'> {
  return { priority: opts.priority, policyTimeoutMs: opts.timeoutMs, trace: opts.trace, warmup: opts.warmup };
}

/** Requests abandoned or expired before the batcher saw them, counted like the batcher's own drops (same metric, same labels). */
function countDrop(err: unknown, model: string, images: number): void {
  if (err instanceof ServeError && (err.code === 'SWIN_CANCELLED' || err.code === 'SWIN_DEADLINE_EXCEEDED')) {
    droppedRequests.inc({ model, reason: err.code === 'SWIN_CANCELLED' ? 'cancelled' : 'deadline' }, images);
  }
}

/** swin_decoded_images_total, except for warm-up requests. */
function countDecoded(model: string, decoder: 'gpu' | 'sharp', n: number, opts: RequestOptions): void {
  if (n > 0 && !opts.warmup) decodedImages.inc({ model, decoder }, n);
}

function checkWindow(w: DecodeWindow): void {
  const err = windowError(w);
  if (err) throw err;
}

/**
 * The decode's result, or 504 at the deadline / 499 at a disconnect, whichever comes first: the
 * reply does not wait for an image that is still being decoded (libvips cannot be interrupted;
 * its result is dropped).
 */
function untilDeadline<T>(work: Promise<T>, w: DecodeWindow): Promise<T> {
  work.catch(() => {}); // lost races must not surface as unhandled rejections
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ServeError('SWIN_DEADLINE_EXCEEDED', w.timeoutMs)), Math.max(0, w.deadline - Date.now()));
    onAbort = () => reject(new ServeError('SWIN_CANCELLED'));
    w.signal?.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, stop]).finally(() => {
    clearTimeout(timer);
    if (onAbort) w.signal?.removeEventListener('abort', onAbort);
  });
}

/** What the service reports to its host (server.ts logs it). */
export interface ServiceHooks {
  /** Each distinct reason a JPEG went to sharp instead of the GPU decoder, once. */
  onDecodeFallback?: GpuDecodeOptions['onFallback'];
  onDecodeProcessExit?: DecodePoolEvents['onExit'];
}

export class CoreInferenceService implements InferenceService {
  private readonly repo: ModelRepository;
  private readonly config: Config;
  private closing: Promise<void> | null = null;
  private draining = false;
  /** JPEGs to the GPU decoder where config.decode and the backend say so; the rest to sharp. */
  readonly decoder: GpuDecodeRouter;
  /** sharp in child processes (DECODE_PROCESSES > 0), else null: sharp in this one. */
  readonly decodePool: DecodePool | null;
  /** Triton's repository extension over this repository; load and unload only in explicit mode. */
  readonly control: ModelControl;
  /** Admission of decodes by estimated cost (MAX_DECODE_COST_MS, DECODE_COST_BUDGET_MS). */
  readonly decodeGate: DecodeGate;

  constructor(repo: ModelRepository, config: Config, hooks: ServiceHooks = {}) {
    this.repo = repo;
    this.config = config;
    // DECODE_STRICT refuses every image libjpeg warns about; nvJPEG decodes damaged entropy-coded
    // data without a word, so under it JPEGs stay with sharp whatever DECODE says.
    this.decoder = new GpuDecodeRouter(config.decodeStrict ? 'cpu' : (config.decode ?? 'auto'), {
      onFallback: hooks.onDecodeFallback,
      devices: config.devices,
    });
    this.control = {
      mode: config.modelControlMode,
      index: (readyOnly: boolean): Promise<ModelIndexRow[]> => repo.index(readyOnly),
      load: async (name: string) => {
        this.checkControl();
        await repo.loadModel(name);
        // A model new to this process may need GPU decoders: opened here rather than by its first
        // JPEG. It serves already, so a JPEG arriving before this still pays the opening itself.
        await this.warmDecoders([name]).catch(() => 0);
      },
      unload: async (name: string) => {
        this.checkControl();
        await repo.unloadModel(name);
      },
    };
    this.decodeGate = new DecodeGate({
      maxImageCostMs: config.decodeCost?.maxImageMs ?? Number.POSITIVE_INFINITY,
      budgetMs: config.decodeCost?.budgetMs ?? Number.POSITIVE_INFINITY,
    });
    this.decodePool =
      (config.decodeProcesses ?? 0) > 0 ? new DecodePool(config.decodeProcesses, { onExit: hooks.onDecodeProcessExit }) : null;
  }

  /**
   * Before the service takes traffic: opens the GPU JPEG decoders of every model whose backend
   * wants them and decodes one JPEG on each (see GpuDecodeRouter.warm). Returns how many.
   */
  async warmDecoders(names: string[] = this.repo.names()): Promise<number> {
    if (this.decoder.mode === 'cpu') return 0;
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 120, g: 90, b: 60 } } })
      .jpeg()
      .toBuffer();
    let warmed = 0;
    for (const name of names) {
      let kind: BackendKind | null;
      let m: LoadedModel;
      try {
        m = this.repo.get(name);
        // Warmed even where the engine decodes JPEGs per batch: KServe BYTES tensors and requests
        // caught by a variant change still decode per request.
        kind = this.repo.resolveVariant(m, undefined).kind;
      } catch {
        continue; // not servable: nothing to warm
      }
      warmed += await this.decoder.warm(m.config, jpeg, kind, this.config.limits.maxImagePixels);
    }
    return warmed;
  }

  get repository(): ModelRepository {
    return this.repo;
  }

  listModels(): ModelStatus[] {
    return this.repo.names().map((n) => this.repo.status(n));
  }

  getModel(name: string, version?: string): ModelStatus {
    return this.repo.status(name, version);
  }

  defaultModelName(): string {
    // No model loaded (explicit mode): a name no folder can have, so the request gets 404.
    return this.repo.names()[0] ?? '(none loaded)';
  }

  isReady(): boolean {
    return this.closing === null && !this.draining && this.repo.isReady();
  }

  /** Shutdown has begun: report not ready (health checks), keep serving until close(). */
  beginDrain(): void {
    this.draining = true;
  }

  async classify(
    modelName: string | undefined,
    images: Buffer[],
    opts: RequestOptions & { variant?: Variant; topK?: number; version?: string },
  ): Promise<ClassifyResult> {
    this.admit();
    // The copy this request uses until it finishes: a reload waits for it before unloading it.
    const m = this.repo.acquire(modelName ?? this.defaultModelName(), opts.version);
    try {
      return await this.classifyOn(m, images, opts);
    } finally {
      this.repo.release(m);
    }
  }

  private async classifyOn(
    m: LoadedModel,
    images: Buffer[],
    opts: RequestOptions & { variant?: Variant; topK?: number },
  ): Promise<ClassifyResult> {
    const start = performance.now();
    const startedAt = Date.now();
    const numClasses = m.config.architecture.num_classes;
    const k = opts.topK ?? Math.min(this.config.defaultTopK, numClasses);
    if (!Number.isInteger(k) || k < 1 || k > numClasses) throw new ServeError('SWIN_BAD_TOP_K', numClasses, k);
    this.checkImageCount(images.length);
    const deadline = opts.deadline ?? startedAt + this.config.requestTimeoutMs;
    const timeoutMs = opts.deadline === undefined ? this.config.requestTimeoutMs : undefined;
    const when = { deadline, timeoutMs: timeoutMs ?? deadline - startedAt, signal: opts.signal };
    let { pixels, warnings } = await this.admitAndDecode(m, images, opts.variant, when, opts, 'device');
    let preprocessMs = performance.now() - start;
    // A request cancelled during preprocessing is refused (and counted as dropped) by the batcher.
    const submit = { deadline, timeoutMs, signal: opts.signal, ...policyOf(opts) };
    let r: InferOutcome;
    try {
      r = await this.inferTraced(m, opts.variant, pixels, images.length, submit);
    } catch (err) {
      // The variant changed to one that takes pixels only while the JPEGs waited.
      if (pixels instanceof Uint8Array || !(err instanceof ServeError) || err.code !== 'SWIN_BAD_TENSOR') throw err;
      const done = await this.decodeJpegsHere(m, images, pixels, when, opts);
      pixels = done.pixels;
      warnings = [...warnings, ...done.warnings].sort((a, b) => a.image - b.image);
      preprocessMs = performance.now() - start;
      r = await this.inferTraced(m, opts.variant, pixels, images.length, submit);
    }
    if (!(pixels instanceof Uint8Array)) {
      const redo = await this.redoRefused(m, images, pixels, r, opts, when, submit);
      r = redo.outcome;
      warnings.push(...redo.warnings);
      preprocessMs += redo.preprocessMs;
    }
    const deferred = opts.deferTopK ? { logits: r.logits.slice(0, images.length * numClasses), numClasses, k } : undefined;
    const predictions = deferred ? [] : images.map((_, i) => topK(r.logits, i, numClasses, k, m.config.labels));
    if (!opts.warmup) imagesTotal.inc({ api: opts.api ?? 'unknown', model: m.name, variant: r.variant, backend: r.backend }, images.length);
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return {
      model: m.name,
      version: m.version,
      variant: r.variant,
      backend: r.backend,
      predictions,
      ...(deferred && { deferred }),
      ...(warnings.length > 0 && { warnings }),
      timings: {
        preprocess_ms: round(preprocessMs),
        queue_ms: round(r.queueMs),
        inference_ms: round(r.inferenceMs),
        total_ms: round(performance.now() - start),
      },
    };
  }

  async preprocess(modelName: string, images: Buffer[], opts: RequestOptions & { version?: string }): Promise<Uint8Array> {
    this.admit();
    const m = this.repo.acquire(modelName, opts.version);
    try {
      this.checkImageCount(images.length);
      const now = Date.now();
      const deadline = opts.deadline ?? now + this.config.requestTimeoutMs;
      // KServe BYTES: inferTensor() follows, most likely on the variant that serves by default.
      const { pixels } = await this.admitAndDecode(
        m,
        images,
        undefined,
        { deadline, timeoutMs: Math.max(0, deadline - now), signal: opts.signal },
        opts,
        'router',
      );
      return pixels;
    } finally {
      this.repo.release(m);
    }
  }

  async inferTensor(
    modelName: string,
    pixels: Uint8Array,
    n: number,
    opts: RequestOptions & { variant?: Variant; version?: string },
  ): Promise<TensorResult> {
    this.admit();
    const m = this.repo.acquire(modelName, opts.version);
    try {
      return await this.inferTensorOn(m, pixels, n, opts);
    } finally {
      this.repo.release(m);
    }
  }

  private async inferTensorOn(
    m: LoadedModel,
    pixels: Uint8Array,
    n: number,
    opts: RequestOptions & { variant?: Variant },
  ): Promise<TensorResult> {
    const size = m.config.architecture.img_size;
    if (!Number.isInteger(n) || n < 1 || pixels.length !== n * size * size * 3) {
      throw new ServeError('SWIN_BAD_TENSOR', `expected ${n} x ${size} x ${size} x 3 = ${n * size * size * 3} bytes, got ${pixels.length}`);
    }
    const deadline = opts.deadline ?? Date.now() + this.config.requestTimeoutMs;
    const timeoutMs = opts.deadline === undefined ? this.config.requestTimeoutMs : undefined;
    const r = await this.inferTraced(m, opts.variant, pixels, n, { deadline, timeoutMs, signal: opts.signal, ...policyOf(opts) });
    if (!opts.warmup) imagesTotal.inc({ api: opts.api ?? 'unknown', model: m.name, variant: r.variant, backend: r.backend }, n);
    return {
      model: m.name,
      version: m.version,
      variant: r.variant,
      backend: r.backend,
      logits: r.logits,
      n,
      numClasses: m.config.architecture.num_classes,
    };
  }

  /**
   * After a batch that decoded JPEGs on the GPU: the images the GPU refused (decoded[i] false)
   * go through sharp, with the CPU path's checks and error codes, and run again as pixels; their
   * rows replace the meaningless ones. Counts the images each decoder handled.
   */
  private async redoRefused(
    m: LoadedModel,
    images: Buffer[],
    sent: EncodedImages,
    r: InferOutcome,
    opts: RequestOptions & { variant?: Variant },
    when: DecodeWindow,
    submit: SubmitOptions,
  ): Promise<{ outcome: InferOutcome; warnings: ImageWarning[]; preprocessMs: number }> {
    const refused = sent.jpeg.flatMap((jpeg, i) => (jpeg && r.decoded?.[i] === false ? [i] : []));
    const onGpu = sent.jpeg.filter(Boolean).length - refused.length;
    countDecoded(m.name, 'gpu', onGpu, opts);
    if (refused.length === 0) return { outcome: r, warnings: [], preprocessMs: 0 };
    this.decoder.noteRefused(refused.map((i) => r.reasons?.[i] ?? null));
    const start = performance.now();
    let again: { pixels: Uint8Array; warnings: ImageWarning[] };
    let r2: InferOutcome;
    try {
      // Straight to sharp: the GPU has had its try.
      again = await this.decodeSome(m, images, refused, 'sharp', when, opts);
      r2 = await this.inferTraced(m, opts.variant, again.pixels, refused.length, submit);
    } catch (err) {
      countDrop(err, m.name, images.length - refused.length); // the refused ones were counted where they failed
      throw err;
    }
    const preprocessMs = performance.now() - start;
    const k = m.config.architecture.num_classes;
    const logits = r.logits.slice();
    refused.forEach((img, j) => logits.set(r2.logits.subarray(j * k, (j + 1) * k), img * k));
    return {
      // The reply's variant, backend and batch size are the first run's, which served most rows.
      outcome: { ...r, logits, queueMs: r.queueMs + r2.queueMs, inferenceMs: r.inferenceMs + r2.inferenceMs },
      warnings: again.warnings,
      preprocessMs,
    };
  }

  /** The JPEGs `sent` kept encoded, decoded per request; the images it holds as pixels kept as they are. */
  private async decodeJpegsHere(
    m: LoadedModel,
    images: Buffer[],
    sent: EncodedImages,
    when: DecodeWindow,
    opts: RequestOptions & { variant?: Variant },
  ): Promise<{ pixels: Uint8Array; warnings: ImageWarning[] }> {
    const jpegs = sent.jpeg.flatMap((jpeg, i) => (jpeg ? [i] : []));
    const done = await this.decodeSome(m, images, jpegs, 'router', when, opts);
    const bytes = m.preprocessor.imageBytes;
    const pixels = new Uint8Array(images.length * bytes);
    sent.images.forEach((img, i) => {
      if (!sent.jpeg[i]) pixels.set(img, i * bytes);
    });
    jpegs.forEach((img, j) => pixels.set(done.pixels.subarray(j * bytes, (j + 1) * bytes), img * bytes));
    return { pixels, warnings: done.warnings };
  }

  /** Images `which` of the request decoded through `route`; warnings carry the request's image numbers. */
  private async decodeSome(
    m: LoadedModel,
    images: Buffer[],
    which: number[],
    route: 'router' | 'sharp',
    when: DecodeWindow,
    opts: RequestOptions & { variant?: Variant },
  ): Promise<{ pixels: Uint8Array; warnings: ImageWarning[] }> {
    const onWarning = opts.onWarning;
    const mine = { ...opts, onWarning: onWarning && ((w: ImageWarning) => onWarning({ ...w, image: which[w.image] })) };
    const r = await this.admitAndDecode(
      m,
      which.map((i) => images[i]),
      opts.variant,
      when,
      mine,
      route,
    );
    return { pixels: r.pixels, warnings: r.warnings.map((w) => ({ ...w, image: which[w.image] })) };
  }

  /** Stops admitting new work, lets every batcher finish what it accepted, releases the engines. */
  close(): Promise<void> {
    this.closing ??= this.repo
      .close()
      .then(() => Promise.all([this.decoder.close(), this.decodePool?.close()]))
      .then(() => undefined);
    return this.closing;
  }

  /**
   * Fails fast on an unknown or unavailable variant, then admits before decoding: under
   * overload requests are refused here rather than decoded and then refused, and no more
   * images are decoded than the variant's queue can take. `route`: "device", where the variant's
   * engine decodes JPEGs per batch on its GPU: the JPEGs it takes stay encoded (EncodedImages)
   * and only the others are decoded here; "router": per request, JPEGs to the GPU decoder where
   * DECODE says so (gpu-decode.ts); "sharp": every image through sharp.
   */
  private async admitAndDecode(
    m: LoadedModel,
    images: Buffer[],
    variant: Variant | undefined,
    when: DecodeWindow,
    opts: RequestOptions,
    route: 'device',
  ): Promise<{ pixels: Uint8Array | EncodedImages; warnings: ImageWarning[] }>;
  private async admitAndDecode(
    m: LoadedModel,
    images: Buffer[],
    variant: Variant | undefined,
    when: DecodeWindow,
    opts: RequestOptions,
    route: 'router' | 'sharp',
  ): Promise<{ pixels: Uint8Array; warnings: ImageWarning[] }>;
  private async admitAndDecode(
    m: LoadedModel,
    images: Buffer[],
    variant: Variant | undefined,
    when: DecodeWindow,
    opts: RequestOptions,
    route: 'device' | 'router' | 'sharp',
  ): Promise<{ pixels: Uint8Array | EncodedImages; warnings: ImageWarning[] }> {
    const { priority, trace } = opts;
    const attrs = trace && { 'swin.model': m.name, 'swin.images': images.length };
    const admission = startStage(trace, 'admission', attrs);
    let release: (() => void) | undefined;
    let slot: ReturnType<ModelRepository['resolveVariant']>;
    try {
      slot = this.repo.resolveVariant(m, variant);
      // A request already abandoned or expired costs no decoding.
      checkWindow(when);
      release = slot.batcher?.reserve(images.length, priority);
    } catch (err) {
      endSpan(admission, err);
      countDrop(err, m.name, images.length);
      throw err;
    }
    endSpan(admission);
    const decode = startStage(trace, 'decode', attrs);
    // Aborted when the request is cancelled or its deadline passes, with the reply's error as its
    // reason (499 or 504): queued decodes are skipped, a decode process retires a runaway decode
    // (src/decode-pool.ts).
    const gone = new AbortController();
    const timer = setTimeout(
      () => gone.abort(new ServeError('SWIN_DEADLINE_EXCEEDED', when.timeoutMs)),
      Math.max(0, when.deadline - Date.now()),
    );
    const onAbort = () => gone.abort(new ServeError('SWIN_CANCELLED'));
    when.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const onDevice =
        route === 'device' && slot.batcher?.takesEncoded ? this.decoder.deviceJpegs(images, this.config.limits.maxImagePixels) : null;
      // JPEGs for the GPU cost no CPU decode: not priced, not gated.
      const costs = await this.priceImages(m.name, images, onDevice);
      checkWindow(when); // gone while its headers were read
      const base: CpuPreprocessor = this.decodePool ? this.decodePool.preprocessor(m.preprocessor) : m.preprocessor;
      const warnings: ImageWarning[] = [];
      const client = opts.client ?? 'unknown';
      const gated: CpuPreprocessor = {
        imageBytes: base.imageBytes,
        one: async (input, index = 0) => {
          const done = await this.decodeGate.acquire(costs[index] ?? 0, client, when);
          try {
            return await base.one(input, index, {
              signal: gone.signal,
              costMs: costs[index],
              warmup: opts.warmup,
              onWarning: (warning) => {
                warnings.push({ image: index, warning });
                opts.onWarning?.({ image: index, warning });
                imageWarnings.inc({ model: m.name });
              },
            });
          } finally {
            done();
          }
        },
        many: (list) => decodeEach(list, (img, i) => gated.one(img, i)),
      };
      if (onDevice?.some(Boolean)) {
        const items = await untilDeadline(Promise.all(images.map((img, i) => (onDevice[i] ? img : gated.one(img, i)))), when);
        countDecoded(m.name, 'sharp', onDevice.filter((d) => !d).length, opts);
        endSpan(decode);
        warnings.sort((a, b) => a.image - b.image);
        return { pixels: { images: items, jpeg: onDevice }, warnings };
      }
      const pixels = await untilDeadline(
        route === 'sharp'
          ? gated.many(images).then((px) => {
              countDecoded(m.name, 'sharp', images.length, opts);
              return px;
            })
          : this.decoder.many(m.config, gated, images, slot.kind, this.config.acceptedFormats, this.config.limits.maxImagePixels, {
              warmup: opts.warmup,
            }),
        when,
      );
      endSpan(decode);
      warnings.sort((a, b) => a.image - b.image);
      return { pixels, warnings };
    } catch (err) {
      endSpan(decode, err);
      countDrop(err, m.name, images.length);
      throw err;
    } finally {
      clearTimeout(timer);
      when.signal?.removeEventListener('abort', onAbort);
      release?.();
    }
  }

  /**
   * Each image's estimated decode cost from its header (no pixels decoded), refusing one above
   * MAX_DECODE_COST_MS with 413. Images the decoder will refuse anyway (markup, unreadable
   * headers, formats not accepted, more than MAX_IMAGE_PIXELS) are priced 0 and left to it,
   * so they keep their own codes.
   */
  private async priceImages(model: string, images: Buffer[], skip: readonly boolean[] | null): Promise<number[]> {
    return Promise.all(
      images.map(async (img, i) => {
        if (skip?.[i] || img.length === 0 || looksLikeMarkup(img)) return 0;
        let meta: Metadata;
        try {
          meta = await sharp(img, { limitInputPixels: false }).metadata();
        } catch {
          return 0;
        }
        const w = meta.width ?? 0;
        const h = meta.pageHeight ?? meta.height ?? 0;
        if (!this.config.acceptedFormats.includes(formatName(meta)) || w * h > this.config.limits.maxImagePixels) return 0;
        const cost = estimateDecodeCost(meta);
        try {
          this.decodeGate.check(cost, i, () => `${w} x ${h} ${formatName(meta)}${meta.isProgressive ? ' (progressive)' : ''}`);
        } catch (err) {
          decodeCostRefusals.inc({ model });
          throw err;
        }
        return cost;
      }),
    );
  }

  /** repo.infer, with the request's queue and inference spans (from the batcher's own timings) when tracing is on. */
  private async inferTraced(
    m: LoadedModel,
    variant: Variant | undefined,
    pixels: Uint8Array | EncodedImages,
    n: number,
    opts: SubmitOptions,
  ): Promise<InferOutcome> {
    const name = m.name;
    if (!opts.trace) return this.repo.infer(m, variant, pixels, n, opts);
    const submitted = Date.now();
    try {
      const r = await this.repo.infer(m, variant, pixels, n, opts);
      const attrs = {
        'swin.model': name,
        'swin.variant': r.variant,
        'swin.backend': r.backend,
        'swin.batch_size': r.batchSize,
        'swin.images': n,
      };
      const ctx = opts.trace as TraceContext;
      endSpan(startStage(ctx, 'queue', attrs, submitted), undefined, submitted + r.queueMs);
      endSpan(startStage(ctx, 'inference', attrs, submitted + r.queueMs), undefined, submitted + r.queueMs + r.inferenceMs);
      return r;
    } catch (err) {
      endSpan(startStage(opts.trace as TraceContext, 'queue', { 'swin.model': name, 'swin.images': n }, submitted), err);
      throw err;
    }
  }

  /** MAX_IMAGES_PER_REQUEST, the same for every front end that sends encoded images. */
  private checkImageCount(n: number): void {
    if (n === 0) throw new ServeError('SWIN_EMPTY_BODY');
    const max = this.config.limits.maxImagesPerRequest;
    if (n > max) throw new ServeError('SWIN_TOO_MANY_IMAGES', max, n);
  }

  private checkControl(): void {
    const mode: ModelControlMode = this.config.modelControlMode;
    if (mode !== 'explicit') throw new ServeError('SWIN_MODEL_CONTROL_DISABLED', mode);
  }

  private admit(): void {
    if (this.closing) throw new ServeError('SWIN_SHUTTING_DOWN');
  }
}
