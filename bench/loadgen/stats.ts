// Latency histogram for the benchmark client: constant memory, O(1) record,
// mergeable across steps and workers, percentiles within 0.2%.
//
// Values are integer microseconds. Layout (HdrHistogram-like, 10 significant bits):
//   v < 1024            -> bucket v (exact)
//   v >= 1024           -> shift = bitLength(v) - 10 (>= 1), top = v >> shift in [512, 1023],
//                          bucket 1024 + (shift - 1) * 512 + (top - 512)
// so each power-of-two range above 1 ms holds 512 buckets: relative width <= 1/512.
// 2^40 us (12 days) needs 1024 + 30 * 512 buckets; counts are plain numbers.

const SUB = 1024;
const HALF = 512;

function bitLength(v: number): number {
  return v === 0 ? 0 : Math.floor(Math.log2(v)) + 1;
}

export function bucketOf(us: number): number {
  const v = Math.max(0, Math.round(us));
  if (v < SUB) return v;
  // Math.log2 can land one off near powers of two; fix by checking the top.
  let shift = bitLength(v) - 10;
  while (v >= SUB * 2 ** shift) shift++;
  while (shift > 1 && v < HALF * 2 ** shift) shift--;
  const top = Math.floor(v / 2 ** shift);
  return SUB + (shift - 1) * HALF + (top - HALF);
}

/** [lowest, highest] microseconds that land in bucket b. */
export function bucketRange(b: number): [number, number] {
  if (b < SUB) return [b, b];
  const shift = Math.floor((b - SUB) / HALF) + 1;
  const top = ((b - SUB) % HALF) + HALF;
  const lo = top * 2 ** shift;
  return [lo, lo + 2 ** shift - 1];
}

export interface LatencySummary {
  count: number;
  min_ms: number;
  mean_ms: number;
  p50_ms: number;
  p90_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
}

export class LatencyHistogram {
  private counts: number[] = [];
  count = 0;
  /** microseconds */
  sum = 0;
  min = Infinity;
  max = -Infinity;

  /** Records one latency in microseconds. */
  record(us: number): void {
    const b = bucketOf(us);
    while (this.counts.length <= b) this.counts.push(0);
    this.counts[b]++;
    this.count++;
    this.sum += us;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
  }

  recordMs(ms: number): void {
    this.record(ms * 1000);
  }

  /** Adds another histogram's counts into this one. */
  merge(other: LatencyHistogram): this {
    while (this.counts.length < other.counts.length) this.counts.push(0);
    for (let i = 0; i < other.counts.length; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    return this;
  }

  reset(): void {
    this.counts = [];
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = -Infinity;
  }

  /**
   * The p-th percentile (0 < p <= 100) in microseconds, nearest-rank definition:
   * the smallest recorded value v with at least ceil(p/100 * count) values <= v.
   * Exact below 1024 us; above, the middle of the bucket clamped to [min, max].
   */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let b = 0; b < this.counts.length; b++) {
      seen += this.counts[b];
      if (seen >= rank) {
        const [lo, hi] = bucketRange(b);
        const mid = lo === hi ? lo : (lo + hi) / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? NaN : this.sum / this.count;
  }

  summary(): LatencySummary {
    const ms = (us: number): number => Math.round(us) / 1000;
    return {
      count: this.count,
      min_ms: this.count ? ms(this.min) : NaN,
      mean_ms: ms(this.mean()),
      p50_ms: ms(this.percentile(50)),
      p90_ms: ms(this.percentile(90)),
      p95_ms: ms(this.percentile(95)),
      p99_ms: ms(this.percentile(99)),
      max_ms: this.count ? ms(this.max) : NaN,
    };
  }

  /**
   * The histogram a JSON step describes: its sparse counts (toSparse) with the count, min,
   * mean and max of its summary (the sum is mean x count, to the summary's rounding).
   */
  static fromSummary(sparse: ReadonlyArray<readonly [number, number]>, s: LatencySummary): LatencyHistogram {
    const h = new LatencyHistogram();
    for (const [lowerUs, n] of sparse) {
      const b = bucketOf(lowerUs);
      while (h.counts.length <= b) h.counts.push(0);
      h.counts[b] += n;
      h.count += n;
    }
    if (h.count > 0) {
      h.sum = s.mean_ms * 1000 * h.count;
      h.min = s.min_ms * 1000;
      h.max = s.max_ms * 1000;
    }
    return h;
  }

  /** Sparse form for JSON output: [bucket lower bound in us, count] pairs. */
  toSparse(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let b = 0; b < this.counts.length; b++) if (this.counts[b]) out.push([bucketRange(b)[0], this.counts[b]]);
    return out;
  }
}

/** Error counts by code ("HTTP 503 SWIN_QUEUE_FULL", "ECONNRESET", "timeout", "grpc RESOURCE_EXHAUSTED"). */
export class ErrorCounts {
  readonly byCode = new Map<string, number>();
  total = 0;

  add(code: string, n = 1): void {
    this.byCode.set(code, (this.byCode.get(code) ?? 0) + n);
    this.total += n;
  }

  merge(other: ErrorCounts): this {
    for (const [k, v] of other.byCode) this.add(k, v);
    return this;
  }

  toObject(): Record<string, number> {
    return Object.fromEntries([...this.byCode.entries()].sort((a, b) => b[1] - a[1]));
  }
}
