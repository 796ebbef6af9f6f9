// sharp decoding spread over child processes (DECODE_PROCESSES=N), so that the
// CPU decode path can use every core: on the H100 host one process decoded 405
// photographs/s however large its libuv pool (docs/gpu-decode.md), because the
// threads of one process share libvips' and the allocator's locks. Each child
// (src/decode-worker.ts) runs the same Preprocessor the service would run in
// process, so output bytes, checks and error codes are the in-process path's.
//
// One image is one job, given to the child with the fewest jobs in flight.
// A child that dies takes none of the accepted work with it: its jobs go to
// another child (or, with none left, run in process) - except a job already
// retried once, which is answered 400 (an image that kills two decoders is the
// likely cause). Dead children are replaced; a child that dies before it is
// ready is not, and with no child left everything runs in process again.
//
// A decode whose request is gone (cancelled, past its deadline) stops costing
// CPU: not yet sent, it is never sent; running, and estimated at RETIRE_COST_MS
// or more, its process is killed (libvips cannot be interrupted) and replaced,
// and that process's other jobs go to another child without counting as a crash.
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import type { DecodeJob, DecodeReply } from './decode-worker.js';
import { abortError, ServeError } from '../errors.js';
import type { CpuPreprocessor } from './gpu-decode.js';
import { preprocessDuration } from '../observability/metrics.js';
import { decodeEach, type DecodeContext, type Preprocessor } from './preprocess.js';

// Under tsx (tests, `npm run dev`) this module is .ts and so is the worker; built, both are .js.
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './decode-worker.ts' : './decode-worker.js', import.meta.url);
const READY_TIMEOUT_MS = 20_000;
/** Estimated decode ms from which a running decode of a gone request is worth a process restart (~0.3 s). */
export const RETIRE_COST_MS = 300;

export interface DecodePoolEvents {
  /** A child went away (crash, kill); `replaced` says whether a new one was started. */
  onExit?: (info: {
    pid: number | undefined;
    code: number | null;
    signal: string | null;
    requeued: number;
    replaced: boolean;
    retired: boolean;
  }) => void;
}

interface Job {
  msg: DecodeJob;
  /** Sent along with the first job of its key that a child receives. */
  recipe: NonNullable<DecodeJob['recipe']>;
  attempts: number;
  resolve: (pixels: Buffer) => void;
  reject: (err: Error) => void;
  /** Runs the job in this process (no child left). */
  local: () => Promise<Buffer>;
  ctx: DecodeContext;
}

interface Child {
  proc: ChildProcess;
  ready: Promise<void>;
  isReady: boolean;
  pending: Map<number, Job>;
  /** Recipe keys this child has been sent. */
  known: Set<string>;
  /** Killed on purpose (a runaway decode of a gone request), not crashed. */
  retired: boolean;
}

export class DecodePool {
  readonly size: number;
  private readonly children = new Set<Child>();
  private readonly events: DecodePoolEvents;
  private readonly wrapped = new WeakMap<Preprocessor, CpuPreprocessor>();
  private nextId = 1;
  private nextKey = 1;
  private closed = false;

  constructor(processes: number, events: DecodePoolEvents = {}) {
    this.size = processes;
    this.events = events;
    for (let i = 0; i < processes; i++) this.spawn();
  }

  /** Live children (tests, logs). */
  get pids(): number[] {
    return [...this.children].map((c) => c.proc.pid ?? -1);
  }

  /** Resolves once every child started so far has said it is ready (or died trying). */
  async ready(): Promise<void> {
    await Promise.all([...this.children].map((c) => c.ready.catch(() => undefined)));
  }

  /** `local`'s work, done by the children: same bytes, same errors. */
  preprocessor(local: Preprocessor): CpuPreprocessor {
    let p = this.wrapped.get(local);
    if (!p) {
      const key = `recipe-${this.nextKey++}`;
      const one = (input: Buffer, index = 0, ctx: DecodeContext = {}) => this.one(local, key, input, index, ctx);
      p = { imageBytes: local.imageBytes, one, many: (images: Buffer[]) => decodeEach(images, (img, i) => one(img, i)) };
      this.wrapped.set(local, p);
    }
    return p;
  }

  async close(): Promise<void> {
    this.closed = true;
    const exits = [...this.children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.proc.exitCode !== null || c.proc.signalCode !== null) resolve();
          else c.proc.once('exit', () => resolve());
          c.proc.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
  }

  private async one(local: Preprocessor, key: string, input: Buffer, index: number, ctx: DecodeContext): Promise<Buffer> {
    if (this.closed || this.children.size === 0) return local.one(input, index, ctx);
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    const start = performance.now();
    const id = this.nextId++;
    const onGone = () => this.abandon(id);
    ctx.signal?.addEventListener('abort', onGone, { once: true });
    const pixels = await new Promise<Buffer>((resolve, reject) => {
      this.dispatch({
        msg: { id, key, image: input, index },
        recipe: { model: local.model, limits: local.limits },
        attempts: 0,
        resolve,
        reject,
        local: () => local.one(input, index, ctx),
        ctx,
      });
    }).finally(() => ctx.signal?.removeEventListener('abort', onGone));
    if (!ctx.warmup) preprocessDuration.observe({ model: local.model.name }, (performance.now() - start) / 1000);
    return pixels;
  }

  /** The request of job `id` is gone: drop the job, and retire its process if the decode is dear. */
  private abandon(id: number): void {
    for (const child of this.children) {
      const job = child.pending.get(id);
      if (!job) continue;
      child.pending.delete(id);
      job.reject(abortError(job.ctx.signal));
      if ((job.ctx.costMs ?? 0) >= RETIRE_COST_MS && child.known.has(job.msg.key) && !child.retired) {
        child.retired = true;
        child.proc.kill('SIGKILL');
      }
      return;
    }
  }

  private dispatch(job: Job): void {
    const live = [...this.children];
    if (live.length === 0) {
      job.local().then(job.resolve, job.reject);
      return;
    }
    const child = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    child.pending.set(job.msg.id, job);
    job.attempts++;
    void child.ready.then(
      () => {
        if (!child.pending.has(job.msg.id)) return; // the child died meanwhile and its jobs went elsewhere
        const first = !child.known.has(job.msg.key);
        child.known.add(job.msg.key);
        child.proc.send(first ? { ...job.msg, recipe: job.recipe } : job.msg);
      },
      () => undefined,
    );
  }

  private spawn(): void {
    const execArgv = WORKER_URL.pathname.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
    // Each child runs its images one per libuv thread (sharp.concurrency(1)): its share of the cores.
    const threads = Math.max(2, Math.ceil(os.availableParallelism() / Math.max(1, this.size)));
    const proc = fork(WORKER_URL, [], {
      execArgv,
      serialization: 'advanced', // Buffers as bytes, not JSON arrays
      env: { ...process.env, UV_THREADPOOL_SIZE: String(threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let markReady!: () => void;
    let failReady!: (err: Error) => void;
    const child: Child = {
      proc,
      ready: new Promise<void>((resolve, reject) => {
        markReady = resolve;
        failReady = reject;
      }),
      isReady: false,
      pending: new Map(),
      known: new Set(),
      retired: false,
    };
    child.ready.catch(() => undefined);
    const timer = setTimeout(() => {
      failReady(new Error('decode process did not start'));
      proc.kill('SIGKILL');
    }, READY_TIMEOUT_MS);
    timer.unref();
    proc.on('message', (m: DecodeReply | { ready: true }) => {
      if ('ready' in m) {
        clearTimeout(timer);
        child.isReady = true;
        markReady();
        return;
      }
      const job = child.pending.get(m.id);
      if (!job) return;
      child.pending.delete(m.id);
      if ('pixels' in m) {
        for (const w of m.warnings) job.ctx.onWarning?.(w);
        job.resolve(Buffer.from(m.pixels.buffer, m.pixels.byteOffset, m.pixels.byteLength));
      } else if (m.code) job.reject(ServeError.rebuilt(m.code, m.message));
      else job.reject(new Error(`decode process: ${m.message}`));
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      this.children.delete(child);
      failReady(new Error(`decode process exited (code ${code}, signal ${signal}) before it was ready`));
      const replaced = !this.closed && child.isReady;
      if (replaced) this.spawn();
      const jobs = [...child.pending.values()];
      child.pending.clear();
      for (const job of jobs) {
        if (child.retired) job.attempts--; // killed on purpose: not this job's fault
        if (job.attempts >= 2) job.reject(new ServeError('SWIN_IMAGE_DECODE_FAILED', job.msg.index, 'the decoder crashed on it twice'));
        else if (this.closed) job.local().then(job.resolve, job.reject);
        else this.dispatch(job);
      }
      if (!this.closed) this.events.onExit?.({ pid: proc.pid, code, signal, requeued: jobs.length, replaced, retired: child.retired });
    });
    proc.on('error', () => undefined); // 'exit' follows and does the bookkeeping
    this.children.add(child);
  }
}
