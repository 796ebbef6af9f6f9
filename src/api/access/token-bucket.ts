// Per-client rate limiting: one token bucket per client id (API key digest,
// else remote address). A bucket holds up to `burst` tokens and refills at
// `rps` tokens per second; a request takes one token or is refused with the
// seconds until the next token. The table of buckets is bounded: when it is
// full, buckets that have refilled completely (idle clients, indistinguishable
// from new ones) are swept, and if too few have, the least recently seen are
// dropped.

interface Bucket {
  tokens: number;
  /** ms (monotonic) of the last refill */
  at: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Whole seconds until a token is available (>= 1) when refused; 0 when allowed. */
  retryAfterSeconds: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly rps: number,
    readonly burst: number,
    private readonly maxClients = 100_000,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rps > 0) || !(burst >= 1)) throw new Error('RateLimiter needs rps > 0 and burst >= 1');
  }

  get size(): number {
    return this.buckets.size;
  }

  take(client: string): TakeResult {
    const t = this.now();
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= this.maxClients) this.evict(t);
      b = { tokens: this.burst, at: t };
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.rps);
      b.at = t;
      // Re-insert so Map order stays least-recently-used first.
      this.buckets.delete(client);
    }
    this.buckets.set(client, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0 };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.rps)) };
  }

  private evict(t: number): void {
    for (const [id, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * this.rps >= this.burst) this.buckets.delete(id);
    }
    // Still full of active clients: drop the least recently seen tenth, so the
    // O(n) sweep runs once per maxClients/10 new clients, not once per request.
    const target = Math.floor(this.maxClients * 0.9);
    for (const id of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(id);
    }
  }
}
