// Admission of decodes by cost (issue 15): each image's decode cost is
// estimated from its header (src/decode-cost.ts) before any pixel is decoded.
// An image above the per-image limit is refused (413 SWIN_IMAGE_TOO_COSTLY);
// images estimated under CHEAP_MS go straight through (ordinary photos: the
// batcher's queue reservation already bounds how many are decoded at once);
// the rest share a cost budget: the estimated ms of expensive decodes running
// at once stays under budgetMs (one image may exceed it alone), so they can
// hold at most that share of the cores and never starve the cheap ones.
//
// Waiting expensive images are served per client, least recently served
// client first (a client with sixteen strips in the queue gets one turn, then
// the next client), first in first out within a client; an image that does
// not fit lets a smaller one of another client through. A waiter whose request is cancelled or past its
// deadline leaves the queue then and is never decoded.
import { ServeError } from '../errors.js';

/** Images estimated under this many ms are not queued by cost. */
export const CHEAP_MS = 50;

export interface DecodeWindow {
  /** Date.now() ms after which the image must not start decoding. */
  deadline: number;
  /** The timeout the deadline came from, for the 504 message. */
  timeoutMs: number;
  signal?: AbortSignal;
}

interface Waiter {
  cost: number;
  client: string;
  window: DecodeWindow;
  grant: (release: () => void) => void;
  fail: (err: ServeError) => void;
  timer?: NodeJS.Timeout;
  onAbort?: () => void;
}

export interface DecodeGateOptions {
  /** Largest estimated cost of one image, ms; above: 413. */
  maxImageCostMs: number;
  /** Estimated ms of expensive decodes running at once. */
  budgetMs: number;
}

export class DecodeGate {
  private readonly opts: DecodeGateOptions;
  private readonly queues = new Map<string, Waiter[]>();
  /** When each client was last granted a decode (a counter): the least recently served goes first. */
  private readonly lastServed = new Map<string, number>();
  private served = 0;
  private used = 0;

  constructor(opts: DecodeGateOptions) {
    this.opts = opts;
  }

  /** Estimated ms of expensive decodes admitted and not yet released. */
  get inUse(): number {
    return this.used;
  }

  /** Expensive images waiting for budget. */
  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Throws 413 SWIN_IMAGE_TOO_COSTLY for an image above the per-image limit. */
  check(cost: number, index: number, describe: () => string): void {
    if (cost > this.opts.maxImageCostMs) {
      throw new ServeError(
        'SWIN_IMAGE_TOO_COSTLY',
        index,
        `${describe()} is estimated at ${Math.round(cost)} ms of decoding, more than ${this.opts.maxImageCostMs}`,
      ).withMetadata({ estimated_ms: Math.round(cost), limit_ms: this.opts.maxImageCostMs });
    }
  }

  /** Resolves with the release function once the image may be decoded; rejects 499/504 if its request ends first. */
  acquire(cost: number, client: string, window: DecodeWindow): Promise<() => void> {
    const closed = windowError(window);
    if (closed) return Promise.reject(closed);
    if (cost < CHEAP_MS) return Promise.resolve(() => {});
    return new Promise((resolve, reject) => {
      const w: Waiter = { cost, client, window, grant: resolve, fail: reject };
      const q = this.queues.get(client);
      if (q) q.push(w);
      else this.queues.set(client, [w]);
      const leave = (err: ServeError) => {
        this.remove(w);
        reject(err);
        this.pump();
      };
      w.timer = setTimeout(
        () => leave(new ServeError('SWIN_DEADLINE_EXCEEDED', window.timeoutMs)),
        Math.max(0, window.deadline - Date.now()),
      );
      if (window.signal) {
        w.onAbort = () => leave(new ServeError('SWIN_CANCELLED'));
        window.signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.pump();
    });
  }

  /** Admits waiters while the budget allows: each time the head of the least recently served client that fits. */
  private pump(): void {
    for (;;) {
      let pick: Waiter | undefined;
      let pickServed = Infinity;
      for (const [client, q] of this.queues) {
        const head = q[0];
        if (this.used > 0 && this.used + head.cost > this.opts.budgetMs) continue;
        const last = this.lastServed.get(client) ?? -1;
        if (last < pickServed) {
          pick = head;
          pickServed = last;
        }
      }
      if (!pick) return;
      const w = pick;
      this.remove(w);
      this.used += w.cost;
      if (this.lastServed.size > 10_000) this.lastServed.clear(); // bounded: fairness resets, nothing breaks
      this.lastServed.set(w.client, this.served++);
      let released = false;
      w.grant(() => {
        if (released) return;
        released = true;
        this.used -= w.cost;
        this.pump();
      });
    }
  }

  private remove(w: Waiter): void {
    clearTimeout(w.timer);
    if (w.onAbort) w.window.signal?.removeEventListener('abort', w.onAbort);
    const q = this.queues.get(w.client);
    if (!q) return;
    const i = q.indexOf(w);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) this.queues.delete(w.client);
  }
}

/** 499 for a cancelled request, 504 for one past its deadline, null while it is alive. */
export function windowError(w: DecodeWindow): ServeError | null {
  if (w.signal?.aborted) return new ServeError('SWIN_CANCELLED');
  if (Date.now() >= w.deadline) return new ServeError('SWIN_DEADLINE_EXCEEDED', w.timeoutMs);
  return null;
}
