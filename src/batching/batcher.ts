// Dynamic batcher for one model variant on one backend (Triton's dynamic
// batching, reduced to what we need). Callers submit n preprocessed images;
// the batcher groups queued images into batches of at most maxBatchSize,
// waiting at most maxQueueDelayMs for a batch to fill, keeps up to
// `instances` batches in flight, and hands every caller its own rows of
// logits. Pure logic: no HTTP, no engine code; the engine arrives as `run`.
//
// Priorities and queue policy as Triton's dynamic batcher has them: levels
// 1..priorityLevels (1 runs first), FIFO within a level; each level has a
// policy (its own queue limit, a default and a maximum timeout, and what a
// timeout does: "reject" ends the request, "delay" moves it behind every
// request of its level that has not timed out). A batch takes requests in
// that order. Nothing here preempts a running batch.
//
// Where the backend decodes JPEGs on its device (runImages), a request may carry
// its images encoded (EncodedImages): a batch holding any such request goes to
// runImages as one list of JPEGs and decoded images, so decoding happens per
// batch on the GPU, not per request on the host.
import type { BackendKind, DeviceBatchResult, Variant } from '../backends/backend.js';
import { ServeError, isServeError } from '../errors.js';
import {
  backendErrors,
  batchSize,
  droppedRequests,
  inferenceDuration,
  inflightBatches,
  queueDepth,
  queueDuration,
} from '../observability/metrics.js';

export interface BatcherOptions {
  /** Metric labels. */
  model: string;
  variant: Variant;
  backend: BackendKind;
  maxBatchSize: number;
  /** Longest a queued image waits for company before a partial batch runs, ms. */
  maxQueueDelayMs: number;
  /** Most images waiting (not running); more are refused with SWIN_QUEUE_FULL. */
  maxQueueSize: number;
  /** Batches in flight at once. */
  instances: number;
  /** Batch sizes worth running at once without waiting out the delay (engine profiles). */
  preferredBatchSizes?: number[];
  /** Bytes of one image: H * W * 3 (uint8 NHWC). */
  imageBytes: number;
  numClasses: number;
  /** Runs one batch: n images, n*imageBytes bytes -> n*numClasses logits. */
  run(images: Uint8Array, n: number): Promise<Float32Array>;
  /**
   * Runs one batch of n images, each a JPEG (jpeg[i]) for the backend to decode on its device,
   * or imageBytes of pixels. Absent: submit() takes pixels only. `recorded` is false for a batch of
   * warm-up requests only (no metrics).
   */
  runImages?(images: Uint8Array[], jpeg: boolean[], n: number, recorded: boolean): Promise<DeviceBatchResult>;
  /** Told about every failed batch (after its callers were rejected). */
  onBatchError?(err: ServeError): void;
  /** Tracing (tracing.ts): called as a batch starts with each request's trace context; the result is called when it ends. */
  traceBatch?(n: number, requests: unknown[]): (err?: unknown) => void;
  now?: () => number;
  /** Priority levels, 1 (first) to priorityLevels; default 1. */
  priorityLevels?: number;
  /** Level of a request that names none; default the lowest (priorityLevels). */
  defaultPriority?: number;
  /** Policy per level, index 0 = level 1; missing levels get DEFAULT_POLICY. */
  policies?: Partial<LevelPolicy>[];
}

export interface LevelPolicy {
  /** Most images queued at this level (0: only maxQueueSize applies). */
  maxQueueSize: number;
  /** Timeout of a request that names none, ms (0: none). */
  defaultTimeoutMs: number;
  /** Longest timeout a request may ask for, ms (0: no cap). */
  maxTimeoutMs: number;
  /** Whether a request's own timeout replaces defaultTimeoutMs. */
  allowTimeoutOverride: boolean;
  /** reject: a request whose timeout passes is answered SWIN_DEADLINE_EXCEEDED (queued or running);
   * delay: it stays queued, behind every request of its level that has not timed out. */
  timeoutAction: 'reject' | 'delay';
}

export const DEFAULT_POLICY: LevelPolicy = {
  maxQueueSize: 0,
  defaultTimeoutMs: 0,
  maxTimeoutMs: 0,
  allowTimeoutOverride: true,
  timeoutAction: 'reject',
};

export interface SubmitOptions {
  /** Absolute Date.now() ms; a request still queued then is dropped, one still running is answered 504. */
  deadline?: number;
  /** The timeout the deadline came from, ms, for the 504 message (else deadline minus enqueue time). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** 1..priorityLevels; default defaultPriority. */
  priority?: number;
  /** The request's own timeout under its level's policy, ms (KServe "timeout", /classify timeout_ms). */
  policyTimeoutMs?: number;
  /** Opaque trace context, handed to traceBatch (links from the batch span). */
  trace?: unknown;
  /** A start-up warm-up request (src/api/http/warmup.ts): a batch of only these records no metric and no span. */
  warmup?: boolean;
}

/** A request's images as they arrive from the client: a JPEG where jpeg[i], else imageBytes of pixels. */
export interface EncodedImages {
  readonly images: readonly Uint8Array[];
  readonly jpeg: readonly boolean[];
}

export interface BatchResult {
  /** This caller's n x numClasses logits (a copy; the caller owns it). */
  logits: Float32Array;
  /**
   * EncodedImages only: per image, false where the device refused the JPEG (its logits row is
   * meaningless; reasons[i] says why). Absent: every row is real.
   */
  decoded?: boolean[];
  reasons?: (string | null)[];
  /** Longest time one of its images waited in the queue, ms. */
  queueMs: number;
  /** Backend time of the batch(es) it ran in, ms (the longest when split). */
  inferenceMs: number;
  /** Images in the (largest) batch it ran in. */
  batchSize: number;
}

type JobState = 'queued' | 'running' | 'done';

interface Job {
  images: Uint8Array | EncodedImages;
  n: number;
  enqueuedAt: number;
  deadline?: number;
  budgetMs: number;
  signal?: AbortSignal;
  trace?: unknown;
  warmup: boolean;
  /** Index into levels (priority - 1). */
  level: number;
  /** Date.now() ms after which a "delay" policy moves it behind its level; Infinity: never. */
  delayAt: number;
  delayed: boolean;
  state: JobState;
  timer?: NodeJS.Timeout;
  onAbort?: () => void;
  resolve(r: BatchResult): void;
  reject(e: ServeError): void;
}

interface Level {
  policy: LevelPolicy;
  /** FIFO of requests that have not timed out, then (delay policy) those that have. */
  jobs: Job[];
  delayed: Job[];
  /** Images queued / reserved at this level. */
  images: number;
  reserved: number;
}

export class Batcher {
  private readonly opts: BatcherOptions;
  private readonly now: () => number;
  private readonly levels: Level[];
  private readonly defaultLevel: number;
  private queuedJobs = 0;
  private queuedImages = 0;
  private inflight = 0;
  private wakeTimer?: NodeJS.Timeout;
  private wakeAt = Infinity;
  private closing = false;
  private drained?: () => void;
  private readonly preferred: number[];
  /** Images admitted by reserve() and still being preprocessed. */
  private reserved = 0;

  constructor(opts: BatcherOptions) {
    if (opts.maxBatchSize < 1 || opts.instances < 1 || opts.maxQueueSize < 1) {
      throw new Error('Batcher: maxBatchSize, instances and maxQueueSize must be >= 1');
    }
    const nLevels = opts.priorityLevels ?? 1;
    const defaultPriority = opts.defaultPriority ?? nLevels;
    if (
      !Number.isInteger(nLevels) ||
      nLevels < 1 ||
      !Number.isInteger(defaultPriority) ||
      defaultPriority < 1 ||
      defaultPriority > nLevels
    ) {
      throw new Error('Batcher: priorityLevels must be >= 1 and defaultPriority within 1..priorityLevels');
    }
    this.levels = Array.from({ length: nLevels }, (_, i) => ({
      policy: { ...DEFAULT_POLICY, ...opts.policies?.[i] },
      jobs: [],
      delayed: [],
      images: 0,
      reserved: 0,
    }));
    this.defaultLevel = defaultPriority - 1;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.preferred = (opts.preferredBatchSizes ?? []).filter((p) => p >= 1 && p <= opts.maxBatchSize).sort((a, b) => b - a);
  }

  get queueLength(): number {
    return this.queuedImages;
  }

  get inflightBatches(): number {
    return this.inflight;
  }

  /** Whether submit() takes EncodedImages (the backend decodes JPEGs on its device). */
  get takesEncoded(): boolean {
    return this.opts.runImages !== undefined;
  }

  /**
   * Queues n images (n*imageBytes bytes of pixels, or EncodedImages where takesEncoded) and
   * resolves with their logits. Rejects with a ServeError.
   */
  submit(images: Uint8Array | EncodedImages, n: number, opts: SubmitOptions = {}): Promise<BatchResult> {
    const { maxBatchSize, imageBytes, numClasses, model } = this.opts;
    if (this.closing) return Promise.reject(new ServeError('SWIN_SHUTTING_DOWN'));
    const bad = checkImages(images, n, imageBytes, this.takesEncoded);
    if (bad) return Promise.reject(new ServeError('SWIN_BAD_TENSOR', bad));
    if (opts.signal?.aborted) {
      droppedRequests.inc({ model, reason: 'cancelled' }, n);
      return Promise.reject(new ServeError('SWIN_CANCELLED'));
    }
    let level: number;
    try {
      level = this.levelOf(opts.priority);
    } catch (err) {
      return Promise.reject(err);
    }
    const full = this.fullFor(level, n, false);
    if (full) {
      droppedRequests.inc({ model, reason: 'queue_full' }, n);
      return Promise.reject(full);
    }
    const now = this.now();
    opts = this.applyPolicy(level, opts, now);
    if (opts.deadline !== undefined && opts.deadline <= now) {
      droppedRequests.inc({ model, reason: 'deadline' }, n);
      return Promise.reject(new ServeError('SWIN_DEADLINE_EXCEEDED', opts.timeoutMs ?? 0));
    }
    if (n <= maxBatchSize) return this.enqueue(images, n, opts, now, level);

    // Larger than one batch: split, and if one part fails take the others out of the queue.
    const parts: Promise<BatchResult>[] = [];
    const inner = new AbortController();
    const onOuterAbort = () => inner.abort();
    opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
    for (let start = 0; start < n; start += maxBatchSize) {
      const k = Math.min(maxBatchSize, n - start);
      const p = this.enqueue(sliceImages(images, start, k, imageBytes), k, { ...opts, signal: inner.signal }, now, level);
      p.catch(() => inner.abort());
      parts.push(p);
    }
    return Promise.all(parts)
      .then((results) => {
        const logits = new Float32Array(n * numClasses);
        let off = 0;
        for (const r of results) {
          logits.set(r.logits, off);
          off += r.logits.length;
        }
        const encoded = !(images instanceof Uint8Array);
        return {
          logits,
          ...(encoded && {
            // an encoded part always runs through runImages, which reports every image
            decoded: results.flatMap((r) => r.decoded ?? []),
            reasons: results.flatMap((r) => r.reasons ?? []),
          }),
          queueMs: Math.max(...results.map((r) => r.queueMs)),
          inferenceMs: Math.max(...results.map((r) => r.inferenceMs)),
          batchSize: Math.max(...results.map((r) => r.batchSize)),
        };
      })
      .finally(() => opts.signal?.removeEventListener('abort', onOuterAbort));
  }

  /**
   * Takes every queued (not running) request out of this batcher, rejecting it
   * with `makeError()` (e.g. when the variant is withdrawn); returns how many.
   */
  withdrawQueued(makeError: () => ServeError): number {
    const jobs = this.levels.flatMap((l) => [...l.jobs.splice(0), ...l.delayed.splice(0)]);
    for (const l of this.levels) l.images = 0;
    this.queuedJobs = 0;
    for (const job of jobs) this.finish(job, undefined, makeError());
    this.setQueued(0);
    this.rearm();
    return jobs.length;
  }

  /**
   * Admission before preprocessing: n images are counted against maxQueueSize
   * (with those queued and those already reserved) until the returned release()
   * is called, just before submit(). Throws what submit() would when the queue is
   * full or closing, so under overload requests are refused before any CPU is
   * spent decoding them, and the images being decoded never exceed the queue limit.
   * `priority` is checked and counted against its level's limit too.
   */
  reserve(n: number, priority?: number): () => void {
    if (this.closing) throw new ServeError('SWIN_SHUTTING_DOWN');
    const level = this.levelOf(priority);
    const full = this.fullFor(level, n, true);
    if (full) {
      droppedRequests.inc({ model: this.opts.model, reason: 'queue_full' }, n);
      throw full;
    }
    this.reserved += n;
    this.levels[level].reserved += n;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.reserved -= n;
      this.levels[level].reserved -= n;
    };
  }

  /** Stops admitting; resolves once everything already accepted has been answered. */
  close(): Promise<void> {
    this.closing = true;
    this.schedule();
    if (this.queuedJobs === 0 && this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  /** 0-based level of a request's priority; SWIN_BAD_REQUEST when out of range. */
  private levelOf(priority: number | undefined): number {
    if (priority === undefined) return this.defaultLevel;
    if (!Number.isInteger(priority) || priority < 1 || priority > this.levels.length) {
      throw new ServeError(
        'SWIN_BAD_REQUEST',
        `priority must be an integer from 1 to ${this.levels.length} (1 runs first), got ${priority}`,
      );
    }
    return priority - 1;
  }

  /** The SWIN_QUEUE_FULL refusal if n more images do not fit (counting reservations: reserve()), else null. */
  private fullFor(level: number, n: number, withReserved: boolean): ServeError | null {
    const { model, maxQueueSize } = this.opts;
    if (this.queuedImages + (withReserved ? this.reserved : 0) + n > maxQueueSize) {
      return new ServeError('SWIN_QUEUE_FULL', model, maxQueueSize)
        .withRetryAfter(this.retryAfterSeconds())
        .withMetadata({ model, max_queue_size: maxQueueSize });
    }
    const l = this.levels[level];
    if (l.policy.maxQueueSize > 0 && l.images + (withReserved ? l.reserved : 0) + n > l.policy.maxQueueSize) {
      return new ServeError('SWIN_QUEUE_FULL', `${model} at priority ${level + 1}`, l.policy.maxQueueSize)
        .withRetryAfter(this.retryAfterSeconds())
        .withMetadata({ model, priority: level + 1, max_queue_size: l.policy.maxQueueSize });
    }
    return null;
  }

  /** The level's timeout applied: "reject" tightens the deadline, "delay" is kept for enqueue(). */
  private applyPolicy(level: number, opts: SubmitOptions, now: number): SubmitOptions {
    const p = this.levels[level].policy;
    let t = opts.policyTimeoutMs !== undefined && p.allowTimeoutOverride ? opts.policyTimeoutMs : p.defaultTimeoutMs;
    if (p.maxTimeoutMs > 0 && (t <= 0 || t > p.maxTimeoutMs)) t = p.maxTimeoutMs;
    if (t <= 0) return { ...opts, policyTimeoutMs: undefined };
    if (p.timeoutAction === 'delay') return { ...opts, policyTimeoutMs: t };
    if (opts.deadline !== undefined && opts.deadline <= now + t) return { ...opts, policyTimeoutMs: undefined };
    return { ...opts, deadline: now + t, timeoutMs: t, policyTimeoutMs: undefined };
  }

  private retryAfterSeconds(): number {
    // Rough time to work through a full queue at one batch per max delay, at least 1 s.
    const batches = Math.ceil(this.opts.maxQueueSize / this.opts.maxBatchSize / this.opts.instances);
    return Math.max(1, Math.ceil((batches * Math.max(this.opts.maxQueueDelayMs, 10)) / 1000));
  }

  private enqueue(images: Uint8Array | EncodedImages, n: number, opts: SubmitOptions, now: number, level: number): Promise<BatchResult> {
    return new Promise<BatchResult>((resolve, reject) => {
      const job: Job = {
        images,
        n,
        enqueuedAt: now,
        deadline: opts.deadline,
        budgetMs: opts.timeoutMs ?? (opts.deadline === undefined ? 0 : opts.deadline - now),
        signal: opts.signal,
        trace: opts.trace,
        warmup: opts.warmup === true,
        level,
        delayAt: opts.policyTimeoutMs === undefined ? Infinity : now + opts.policyTimeoutMs,
        delayed: false,
        state: 'queued',
        resolve,
        reject,
      };
      if (job.deadline !== undefined) {
        job.timer = setTimeout(() => this.expire(job), Math.max(0, job.deadline - now));
      }
      if (job.signal) {
        job.onAbort = () => this.cancel(job);
        job.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.levels[level].jobs.push(job);
      this.levels[level].images += n;
      this.queuedJobs++;
      this.setQueued(this.queuedImages + n);
      this.schedule();
    });
  }

  private expire(job: Job): void {
    if (job.state === 'done') return;
    if (job.state === 'queued') {
      this.removeQueued(job);
      droppedRequests.inc({ model: this.opts.model, reason: 'deadline' }, job.n);
    }
    // A running job's result is thrown away when it arrives: the caller has its 504.
    this.finish(job, undefined, new ServeError('SWIN_DEADLINE_EXCEEDED', job.budgetMs));
  }

  private cancel(job: Job): void {
    if (job.state === 'done') return;
    if (job.state === 'queued') {
      this.removeQueued(job);
      droppedRequests.inc({ model: this.opts.model, reason: 'cancelled' }, job.n);
    }
    this.finish(job, undefined, new ServeError('SWIN_CANCELLED'));
  }

  private removeQueued(job: Job): void {
    const l = this.levels[job.level];
    const list = job.delayed ? l.delayed : l.jobs;
    const i = list.indexOf(job);
    if (i >= 0) {
      list.splice(i, 1);
      this.dequeued(job);
      this.rearm();
    }
  }

  /** Bookkeeping of a job taken out of its level's lists. */
  private dequeued(job: Job): void {
    this.levels[job.level].images -= job.n;
    this.queuedJobs--;
    this.setQueued(this.queuedImages - job.n);
  }

  /** The next job a batch takes: highest level first; within it, those not timed out, then the delayed. */
  private peek(): Job | undefined {
    for (const l of this.levels) {
      if (l.jobs.length > 0) return l.jobs[0];
      if (l.delayed.length > 0) return l.delayed[0];
    }
    return undefined;
  }

  private shift(job: Job): void {
    const l = this.levels[job.level];
    (job.delayed ? l.delayed : l.jobs).shift();
    this.dequeued(job);
  }

  /** "delay" policy: requests whose timeout has passed go behind their level (order kept). */
  private demoteTimedOut(now: number): void {
    for (const l of this.levels) {
      if (l.policy.timeoutAction !== 'delay' || l.jobs.length === 0) continue;
      const late = l.jobs.filter((j) => j.delayAt <= now);
      if (late.length === 0) continue;
      l.jobs = l.jobs.filter((j) => j.delayAt > now);
      for (const j of late) j.delayed = true;
      l.delayed.push(...late);
    }
  }

  /** Enqueue time of the longest-waiting queued request (the heads of every list). */
  private oldestEnqueuedAt(): number {
    let t = Infinity;
    for (const l of this.levels) {
      if (l.jobs.length > 0) t = Math.min(t, l.jobs[0].enqueuedAt);
      for (const j of l.delayed) t = Math.min(t, j.enqueuedAt);
    }
    return t;
  }

  private finish(job: Job, result: BatchResult | undefined, err?: ServeError): void {
    if (job.state === 'done') return;
    job.state = 'done';
    if (job.timer) clearTimeout(job.timer);
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
    if (err) job.reject(err);
    else job.resolve(result!);
    this.checkDrained();
  }

  private setQueued(n: number): void {
    queueDepth.inc({ model: this.opts.model }, n - this.queuedImages);
    this.queuedImages = n;
  }

  /** Images to run now, or 0 to keep waiting for more. */
  private readySize(now: number): number {
    const { maxBatchSize, maxQueueDelayMs } = this.opts;
    if (this.queuedImages >= maxBatchSize) return maxBatchSize;
    if (this.closing || now - this.oldestEnqueuedAt() >= maxQueueDelayMs) return maxBatchSize;
    for (const p of this.preferred) if (p <= this.queuedImages) return p;
    return 0;
  }

  private schedule(): void {
    while (this.inflight < this.opts.instances && this.queuedJobs > 0) {
      const now = this.now();
      const size = this.readySize(now);
      if (size === 0) break;
      this.demoteTimedOut(now);
      const jobs: Job[] = [];
      let total = 0;
      for (let next = this.peek(); next !== undefined; next = this.peek()) {
        if (jobs.length > 0 && total + next.n > size) break;
        this.shift(next);
        // A timer can fire late; never hand an expired request to the engine.
        if (next.deadline !== undefined && next.deadline <= now) {
          droppedRequests.inc({ model: this.opts.model, reason: 'deadline' }, next.n);
          this.finish(next, undefined, new ServeError('SWIN_DEADLINE_EXCEEDED', next.budgetMs));
          continue;
        }
        jobs.push(next);
        total += next.n;
      }
      if (jobs.length > 0) this.dispatch(jobs, total, now);
    }
    this.rearm();
  }

  /** Wakes the scheduler when the oldest queued request has waited maxQueueDelayMs. */
  private rearm(): void {
    const at = this.queuedJobs > 0 && this.inflight < this.opts.instances ? this.oldestEnqueuedAt() + this.opts.maxQueueDelayMs : Infinity;
    if (at === this.wakeAt) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.wakeAt = at;
    if (at !== Infinity) {
      this.wakeTimer = setTimeout(
        () => {
          this.wakeTimer = undefined;
          this.wakeAt = Infinity;
          this.schedule();
        },
        Math.max(0, at - this.now()),
      );
    }
  }

  private dispatch(jobs: Job[], total: number, now: number): void {
    const { model, variant, backend, numClasses } = this.opts;
    const labels = { model, variant, backend };
    // Warm-up requests run before the service listens, so alone: a batch of them is not recorded
    // (an engine error still is: backendErrors, onBatchError).
    const recorded = jobs.some((j) => !j.warmup);
    for (const j of jobs) {
      j.state = 'running';
      const waited = (now - j.enqueuedAt) / 1000;
      if (!j.warmup) for (let i = 0; i < j.n; i++) queueDuration.observe(labels, waited);
    }
    this.inflight++;
    if (recorded) {
      inflightBatches.inc({ model });
      batchSize.observe(labels, total);
    }
    const start = performance.now();
    const endTrace = recorded
      ? this.opts.traceBatch?.(
          total,
          jobs.map((j) => j.trace),
        )
      : undefined;
    let promise: Promise<Float32Array | DeviceBatchResult>;
    try {
      promise = this.runBatch(jobs, total, recorded);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise
      .then((out) => {
        const inferenceMs = performance.now() - start;
        if (recorded) inferenceDuration.observe(labels, inferenceMs / 1000);
        const logits = out instanceof Float32Array ? out : out.logits;
        if (!(logits instanceof Float32Array) || logits.length !== total * numClasses) {
          throw new ServeError('SWIN_INFERENCE_FAILED', model, `backend returned ${logits?.length} values for ${total} x ${numClasses}`);
        }
        let row = 0;
        for (const j of jobs) {
          const mine = logits.slice(row * numClasses, (row + j.n) * numClasses);
          const device = out instanceof Float32Array || j.images instanceof Uint8Array ? undefined : out;
          this.finish(j, {
            logits: mine,
            queueMs: now - j.enqueuedAt,
            inferenceMs,
            batchSize: total,
            ...(device && { decoded: device.decoded.slice(row, row + j.n), reasons: device.reasons.slice(row, row + j.n) }),
          });
          row += j.n;
        }
        endTrace?.();
      })
      .catch((err: unknown) => {
        // Clients see the engine's first line only: engine messages can carry native stack frames and paths.
        const detail = String((err as Error)?.message ?? err)
          .split('\n')[0]
          .slice(0, 300);
        const serveErr = isServeError(err) ? err : new ServeError('SWIN_INFERENCE_FAILED', model, detail);
        backendErrors.inc({ ...labels, reason: serveErr.code === 'SWIN_NON_FINITE_OUTPUT' ? 'non_finite' : 'exception' });
        for (const j of jobs) this.finish(j, undefined, serveErr);
        endTrace?.(serveErr);
        this.opts.onBatchError?.(serveErr);
      })
      .finally(() => {
        this.inflight--;
        if (recorded) inflightBatches.dec({ model });
        this.schedule();
        this.checkDrained();
      });
  }

  /** Pixels to run(), joined into one buffer; a batch holding any EncodedImages to runImages() as one list. */
  private runBatch(jobs: Job[], total: number, recorded: boolean): Promise<Float32Array | DeviceBatchResult> {
    const { imageBytes } = this.opts;
    if (this.opts.runImages && jobs.some((j) => !(j.images instanceof Uint8Array))) {
      const images: Uint8Array[] = [];
      const jpeg: boolean[] = [];
      for (const j of jobs) {
        if (j.images instanceof Uint8Array) {
          for (let i = 0; i < j.n; i++) {
            images.push(j.images.subarray(i * imageBytes, (i + 1) * imageBytes));
            jpeg.push(false);
          }
        } else {
          images.push(...j.images.images);
          jpeg.push(...j.images.jpeg);
        }
      }
      return this.opts.runImages(images, jpeg, total, recorded);
    }
    if (jobs.length === 1) return this.opts.run(jobs[0].images as Uint8Array, total);
    const batch = new Uint8Array(total * imageBytes);
    let off = 0;
    for (const j of jobs) {
      batch.set(j.images as Uint8Array, off);
      off += (j.images as Uint8Array).length;
    }
    return this.opts.run(batch, total);
  }

  private checkDrained(): void {
    if (this.closing && this.drained && this.queuedJobs === 0 && this.inflight === 0) {
      if (this.wakeTimer) clearTimeout(this.wakeTimer);
      const done = this.drained;
      this.drained = undefined;
      done();
    }
  }
}

/** Why `images` is not n images this batcher takes (null: it is). */
function checkImages(images: Uint8Array | EncodedImages, n: number, imageBytes: number, takesEncoded: boolean): string | null {
  if (!Number.isInteger(n) || n < 1) return `expected a positive image count, got ${n}`;
  if (images instanceof Uint8Array) {
    return images.length === n * imageBytes ? null : `expected ${n} x ${imageBytes} bytes, got ${images.length}`;
  }
  if (!takesEncoded) return 'this backend takes decoded pixels only';
  if (images.images.length !== n || images.jpeg.length !== n) return `expected ${n} images, got ${images.images.length}`;
  const wrong = images.images.findIndex((img, i) => !images.jpeg[i] && img.length !== imageBytes);
  return wrong < 0 ? null : `image ${wrong}: expected ${imageBytes} bytes of pixels, got ${images.images[wrong].length}`;
}

/** Images start..start+k of a request, without copying. */
function sliceImages(images: Uint8Array | EncodedImages, start: number, k: number, imageBytes: number): Uint8Array | EncodedImages {
  if (images instanceof Uint8Array) return images.subarray(start * imageBytes, (start + k) * imageBytes);
  return { images: images.images.slice(start, start + k), jpeg: images.jpeg.slice(start, start + k) };
}
