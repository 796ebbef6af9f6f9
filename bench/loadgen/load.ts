// The two load shapes. Each step runs warm-up then a measured window and ends by
// itself: at most warmup + duration + timeout seconds.
//   closed loop: `concurrency` workers, each sends, waits for the reply, sends again;
//                latency from send; counts replies that arrive inside the window and
//                ends at the window's end (replies still out are abandoned).
//   open loop:   requests sent at `rate`/s (Poisson or constant gaps) whatever the
//                replies do; latency from the scheduled time (no coordinated omission);
//                counts requests scheduled inside the window, waiting for them to end.
import { performance } from 'node:perf_hooks';
import type { Arrival, Mode } from './args.js';
import type { BenchImage } from './images.js';
import { rng } from './images.js';
import type { Target } from './http-target.js';
import { ErrorCounts, LatencyHistogram, type LatencySummary } from './stats.js';

export interface StepSpec {
  mode: Mode;
  /** closed loop */
  concurrency?: number;
  /** open loop, requests/s */
  rate?: number;
  arrival?: Arrival;
  maxInFlight?: number;
  warmupS: number;
  durationS: number;
  timeoutMs: number;
  seed: number;
}

export interface LiveStats {
  phase: 'warmup' | 'measure' | 'drain';
  /** seconds since the step started */
  elapsedS: number;
  /** seconds inside the measured window so far */
  windowS: number;
  ok: number;
  errors: number;
  inFlight: number;
  hist: LatencyHistogram;
}

export interface StepResult {
  mode: Mode;
  concurrency: number | null;
  /** open loop: offered requests/s */
  rate: number | null;
  arrival: Arrival | null;
  warmup_s: number;
  /** measured window, seconds */
  window_s: number;
  /** requests counted in the window (ok + errors) */
  requests: number;
  ok: number;
  error_count: number;
  errors: Record<string, number>;
  /** successful requests per second in the window; one image per request */
  throughput_rps: number;
  latency: LatencySummary;
  /** client process CPU time / wall time over the window, percent of one core */
  client_cpu_pct: number;
  /** Load-generator processes that ran the step (--procs); absent: one. */
  processes?: number;
  top1?: Record<string, number>;
  histogram_us: Array<[number, number]>;
}

interface Tally {
  hist: LatencyHistogram;
  errors: ErrorCounts;
  ok: number;
  top1: Map<string, number>;
}

function newTally(): Tally {
  return { hist: new LatencyHistogram(), errors: new ErrorCounts(), ok: 0, top1: new Map() };
}

export async function runStep(
  target: Target,
  images: readonly BenchImage[],
  spec: StepSpec,
  onProgress?: (s: LiveStats) => void,
  progressMs = 500,
): Promise<StepResult> {
  const random = rng(spec.seed);
  let imageIndex = Math.floor(random() * images.length);
  const nextImage = (): BenchImage => images[imageIndex++ % images.length];

  const t0 = performance.now();
  const wStart = t0 + spec.warmupS * 1000;
  const wEnd = wStart + spec.durationS * 1000;
  const warm = newTally();
  const tally = newTally();
  let inFlight = 0;
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuAtEnd: NodeJS.CpuUsage | undefined;
  const cpuTimer = setTimeout(() => (cpuAtStart = process.cpuUsage()), spec.warmupS * 1000);
  const cpuEndTimer = setTimeout(() => (cpuAtEnd = process.cpuUsage()), (spec.warmupS + spec.durationS) * 1000);

  const record = (t: Tally, o: { ok: boolean; code?: string; top1?: string }, latencyMs: number): void => {
    if (o.ok) {
      t.ok++;
      t.hist.recordMs(latencyMs);
      if (o.top1 !== undefined) t.top1.set(o.top1, (t.top1.get(o.top1) ?? 0) + 1);
    } else {
      t.errors.add(o.code ?? 'unknown');
    }
  };

  const live = (): LiveStats => {
    const now = performance.now();
    const measuring = now >= wStart;
    const t = measuring ? tally : warm;
    return {
      phase: now < wStart ? 'warmup' : now < wEnd ? 'measure' : 'drain',
      elapsedS: (now - t0) / 1000,
      windowS: measuring ? (Math.min(now, wEnd) - wStart) / 1000 : (now - t0) / 1000,
      ok: t.ok,
      errors: t.errors.total,
      inFlight,
      hist: t.hist,
    };
  };
  const progressTimer = onProgress && progressMs > 0 ? setInterval(() => onProgress(live()), progressMs) : undefined;

  try {
    if (spec.mode === 'closed') {
      const n = spec.concurrency ?? 1;
      const worker = async (): Promise<void> => {
        while (performance.now() < wEnd) {
          const img = nextImage();
          inFlight++;
          const s = performance.now();
          const o = await target.send(img);
          const e = performance.now();
          inFlight--;
          if (e < wStart) record(warm, o, e - s);
          else if (e <= wEnd) record(tally, o, e - s);
        }
      };
      // The step ends at the window's end: replies still out then are not counted, and
      // the caller's next setConnections()/close() drops their connections (the server
      // sees the clients go away) instead of waiting up to the timeout for them.
      const windowEnd = new Promise<void>((r) => setTimeout(r, Math.max(0, wEnd - performance.now())));
      await Promise.race([Promise.all(Array.from({ length: n }, worker)), windowEnd]);
    } else {
      await openLoop(spec, nextImage, random, target, t0, wStart, wEnd, warm, tally, record, (d) => (inFlight += d));
    }
  } finally {
    clearTimeout(cpuTimer);
    clearTimeout(cpuEndTimer);
    if (progressTimer) clearInterval(progressTimer);
  }
  if (onProgress) onProgress(live());

  // CPU over the window: the timers above sampled its two ends (the end sample
  // is missing only when the step ended early).
  cpuAtStart ??= process.cpuUsage();
  cpuAtEnd ??= process.cpuUsage();
  const cpuUs = cpuAtEnd.user + cpuAtEnd.system - cpuAtStart.user - cpuAtStart.system;
  const windowS = spec.durationS;

  return {
    mode: spec.mode,
    concurrency: spec.mode === 'closed' ? (spec.concurrency ?? 1) : null,
    rate: spec.mode === 'open' ? (spec.rate ?? null) : null,
    arrival: spec.mode === 'open' ? (spec.arrival ?? 'poisson') : null,
    warmup_s: spec.warmupS,
    window_s: windowS,
    requests: tally.ok + tally.errors.total,
    ok: tally.ok,
    error_count: tally.errors.total,
    errors: tally.errors.toObject(),
    throughput_rps: round(tally.ok / windowS, 2),
    latency: tally.hist.summary(),
    client_cpu_pct: round((cpuUs / 1e6 / windowS) * 100, 1),
    top1: tally.top1.size ? Object.fromEntries([...tally.top1.entries()].sort((a, b) => b[1] - a[1])) : undefined,
    histogram_us: tally.hist.toSparse(),
  };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Gaps between arrivals in ms: exponential (Poisson process) or constant. */
export function arrivalGaps(rate: number, arrival: Arrival, random: () => number): () => number {
  const mean = 1000 / rate;
  return arrival === 'constant' ? () => mean : () => -Math.log(1 - random()) * mean;
}

function openLoop(
  spec: StepSpec,
  nextImage: () => BenchImage,
  random: () => number,
  target: Target,
  t0: number,
  wStart: number,
  wEnd: number,
  warm: Tally,
  tally: Tally,
  record: (t: Tally, o: { ok: boolean; code?: string; top1?: string }, latencyMs: number) => void,
  addInFlight: (d: number) => void,
): Promise<void> {
  const gap = arrivalGaps(spec.rate ?? 1, spec.arrival ?? 'poisson', random);
  const maxInFlight = spec.maxInFlight ?? 1024;
  let inFlight = 0;
  let nextAt = t0 + gap();
  return new Promise((resolve) => {
    let scheduling = true;
    let deadline: NodeJS.Timeout | undefined;
    const maybeFinish = (): void => {
      if (!scheduling && inFlight === 0) {
        if (deadline) clearTimeout(deadline);
        resolve();
      }
    };
    const fire = (scheduledAt: number): void => {
      const tally_ = scheduledAt < wStart ? warm : tally;
      if (inFlight >= maxInFlight) {
        tally_.errors.add('client_overload');
        return;
      }
      inFlight++;
      addInFlight(1);
      target.send(nextImage()).then((o) => {
        inFlight--;
        addInFlight(-1);
        record(tally_, o, performance.now() - scheduledAt);
        maybeFinish();
      });
    };
    const tick = (): void => {
      const now = performance.now();
      while (nextAt <= now && nextAt < wEnd) {
        fire(nextAt);
        nextAt += gap();
      }
      if (nextAt < wEnd) {
        setTimeout(tick, Math.max(0, Math.min(nextAt - performance.now(), 50)));
      } else {
        scheduling = false;
        // Requests still out after the timeout would have ended themselves; don't wait longer.
        deadline = setTimeout(resolve, spec.timeoutMs + 1000);
        maybeFinish();
      }
    };
    tick();
  });
}
