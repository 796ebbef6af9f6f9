// The memory budget of request bodies in flight (BODY_MEMORY_BUDGET_BYTES),
// shared by HTTP (src/http/body-budget.ts: charged from Content-Length before
// the body is read) and gRPC (src/api/grpc/grpc-body-budget.ts: charged with each
// request message). Over it: 503 / UNAVAILABLE SWIN_MEMORY_BUDGET. With front-end
// worker threads (FRONTEND_WORKERS) every thread charges one counter in a
// SharedArrayBuffer, so the budget is the process's, not each thread's.
import { bodyBytesInFlight } from '../observability/metrics.js';

export class BodyBudget {
  readonly limit: number;
  /** The counter when shared between threads (`shared`), else null and `used` counts. */
  private readonly counter: BigInt64Array | null;
  private used = 0;

  /** `shared`: an 8-byte SharedArrayBuffer every thread's BodyBudget of this process is given (BodyBudget.sharedCounter()). */
  constructor(limit: number, shared?: SharedArrayBuffer) {
    this.limit = limit;
    this.counter = shared ? new BigInt64Array(shared) : null;
  }

  static sharedCounter(): SharedArrayBuffer {
    return new SharedArrayBuffer(8);
  }

  get inFlight(): number {
    return this.counter ? Number(Atomics.load(this.counter, 0)) : this.used;
  }

  /** Charges `bytes` and returns the function that gives them back, or null when over budget. */
  take(bytes: number): (() => void) | null {
    if (bytes <= 0) return () => {};
    if (!this.charge(bytes)) return null;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.add(-bytes);
    };
  }

  /**
   * Adds `bytes` unless that takes a non-empty total over the limit (one body larger than the
   * whole budget still gets through alone: MAX_BODY_BYTES bounds it). Shared: compare-and-swap,
   * so a refused charge never shows in the total another thread reads.
   */
  private charge(bytes: number): boolean {
    if (!this.counter) {
      if (this.used > 0 && this.used + bytes > this.limit) return false;
      this.add(bytes);
      return true;
    }
    for (;;) {
      const before = Atomics.load(this.counter, 0);
      const n = Number(before);
      if (n > 0 && n + bytes > this.limit) return false;
      if (Atomics.compareExchange(this.counter, 0, before, before + BigInt(bytes)) === before) {
        bodyBytesInFlight.set(n + bytes);
        return true;
      }
    }
  }

  private add(bytes: number): void {
    let now: number;
    if (this.counter) now = Number(Atomics.add(this.counter, 0, BigInt(bytes))) + bytes;
    else now = this.used += bytes;
    bodyBytesInFlight.set(now);
  }
}
