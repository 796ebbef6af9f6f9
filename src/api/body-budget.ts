// The memory budget of request bodies in flight (BODY_MEMORY_BUDGET_BYTES),
// shared by HTTP (src/http/body-budget.ts: charged from Content-Length before
// the body is read) and gRPC (src/api/grpc/grpc-body-budget.ts: charged with each
// request message). Over it: 503 / UNAVAILABLE SWIN_MEMORY_BUDGET.
import { bodyBytesInFlight } from '../observability/metrics.js';

export class BodyBudget {
  readonly limit: number;
  private used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get inFlight(): number {
    return this.used;
  }

  /** Charges `bytes` and returns the function that gives them back, or null when over budget. */
  take(bytes: number): (() => void) | null {
    if (bytes <= 0) return () => {};
    // One body larger than the whole budget still gets through alone (MAX_BODY_BYTES bounds it).
    if (this.used > 0 && this.used + bytes > this.limit) return null;
    this.used += bytes;
    bodyBytesInFlight.set(this.used);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.used -= bytes;
      bodyBytesInFlight.set(this.used);
    };
  }
}
