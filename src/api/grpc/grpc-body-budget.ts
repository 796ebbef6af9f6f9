// gRPC requests against the memory budget of bodies in flight (src/body-budget.ts):
// each call is charged its request message's bytes when the message arrives and
// given them back when its status is sent; a call that would go over the budget
// is answered UNAVAILABLE SWIN_MEMORY_BUDGET (with the error table's retry hints)
// before its handler runs. grpc-js has read the message by then (gRPC carries no
// length ahead of it; MAX_BODY_BYTES bounds one), so this bounds what calls
// hold while they are queued and decoded, which is where a burst piles up.
import { ServerInterceptingCall, status as GrpcStatus, type ServerInterceptor } from '@grpc/grpc-js';
import type { BodyBudget } from '../body-budget.js';
import { ServeError } from '../../errors.js';
import { errorTrailers } from './status-details.js';

/** Bytes a decoded request message holds: its byte fields and strings, numbers at 8 bytes. */
export function messageBytes(v: unknown, depth = 0): number {
  if (v === null || v === undefined || depth > 8) return 0;
  if (typeof v === 'string') return v.length;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return 8;
  if (ArrayBuffer.isView(v)) return v.byteLength;
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'number') return 8 * v.length; // typed contents: no walk over millions
    return v.reduce((n: number, x) => n + messageBytes(x, depth + 1), 0);
  }
  if (typeof v === 'object') return Object.values(v as Record<string, unknown>).reduce((n: number, x) => n + messageBytes(x, depth + 1), 0);
  return 0;
}

export function grpcBodyBudgetInterceptor(budget: BodyBudget): ServerInterceptor {
  return (_method, call) => {
    let give: (() => void) | null = null;
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMessage: (message, nextMessage) => {
            give = budget.take(messageBytes(message));
            if (give) {
              nextMessage(message);
              return;
            }
            const err = new ServeError('SWIN_MEMORY_BUDGET', budget.limit).withRetryAfter(1);
            call.sendStatus({ code: err.grpcStatus as GrpcStatus, details: err.message, metadata: errorTrailers(err) });
          },
          onCancel: () => give?.(),
        });
      },
      sendStatus: (status, next) => {
        give?.();
        next(status);
      },
    });
  };
}
