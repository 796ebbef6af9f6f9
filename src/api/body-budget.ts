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
    // One body larger than the whole budget still gets through alone (MAX_BODY_BYTES bounds it).
    const before = this.add(bytes);
    if (before > 0 && before + bytes > this.limit) {
      this.add(-bytes);
      return null;
    }
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.add(-bytes);
    };
  }

  /** Adds to the count and returns what it was before. */
  private add(bytes: number): number {
    let before: number;
    if (this.counter) before = Number(Atomics.add(this.counter, 0, BigInt(bytes)));
    else {
      before = this.used;
      this.used += bytes;
    }
    bodyBytesInFlight.set(before + bytes);
    return before;
  }
}
