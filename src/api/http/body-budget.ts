// A memory budget for HTTP request bodies in flight (BODY_MEMORY_BUDGET_BYTES):
// a request is charged its body's size before a byte of the body is read, and
// refused with 503 SWIN_MEMORY_BUDGET (Retry-After) when the charge would take
// the total over the budget; the charge is returned when its reply is done.
// Bodies sit in memory whole (fastify buffers them, images are decoded from
// Buffers), so this bounds what a burst of large requests can hold at once:
// 32 x 15.7 MB KServe JSON requests once took the process from 0.4 to 2.7 GB.
//
// The charge: Content-Length, or MAX_BODY_BYTES for a chunked body of unknown
// size; JSON counts twice (its text is decoded to a string, or scanned into
// typed arrays: src/kserve/json-uint8-data.ts, besides the body itself).
import { finished } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ServeError } from '../../errors.js';
import type { BodyBudget } from '../body-budget.js';

/** What a request's body is charged, from its headers. */
export function bodyCharge(headers: Record<string, string | string[] | undefined>, maxBodyBytes: number): number {
  const length = headers['content-length'];
  const te = headers['transfer-encoding'];
  let bytes = 0;
  if (typeof length === 'string' && /^\d+$/.test(length)) bytes = Math.min(Number(length), maxBodyBytes);
  else if (te !== undefined) bytes = maxBodyBytes;
  const type = String(headers['content-type'] ?? '');
  return /json/i.test(type) ? 2 * bytes : bytes;
}

/** Charges every request with a body against `budget` before the body is read. */
export function registerBodyBudget(app: FastifyInstance, budget: BodyBudget, maxBodyBytes: number): void {
  app.addHook('onRequest', async (request, reply) => {
    const give = budget.take(bodyCharge(request.headers, maxBodyBytes));
    if (!give) {
      // The body is read and dropped (no memory) before the 503 goes out: answered while the
      // client is still writing, the connection would be closed under it (EPIPE, no reply seen).
      await new Promise<void>((resolve) => {
        request.raw.once('end', resolve);
        request.raw.once('close', resolve);
        request.raw.resume();
      });
      throw new ServeError('SWIN_MEMORY_BUDGET', budget.limit).withRetryAfter(1);
    }
    // finished() also calls back for a reply already closed: a client gone while an earlier hook
    // waited (a rate-limit token from main, with FRONTEND_WORKERS) gives its charge back too.
    finished(reply.raw, () => give());
  });
}
