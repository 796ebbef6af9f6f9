// The messages between the main thread, which owns the models, batchers and
// engines (one scheduler per GPU), and the front-end worker threads of
// FRONTEND_WORKERS, which parse HTTP and gRPC and send each request's service
// call here over a MessagePort. Everything in them survives structured clone:
// errors travel as code + message, abort signals as an `abort` message, the
// trace context as W3C headers, decoder warnings with the reply.
import { ServeError, type ErrorCode } from '../../errors.js';
import type { ModelStatus } from '../../service/service-types.js';

/** The service calls a worker forwards; `args` as the InferenceService method takes them, minus what cannot be cloned. */
export type CallOp = 'classify' | 'preprocess' | 'inferTensor' | 'index' | 'load' | 'unload' | 'metrics' | 'rateLimit';

export type WorkerToMain =
  | { t: 'call'; id: number; op: CallOp; args: unknown[] }
  | { t: 'abort'; id: number }
  | { t: 'listening'; http: number; grpc: number }
  /** Its front end is built and its warm-up requests sent (it logged them). */
  | { t: 'warmed' }
  /** Reply to `collect`: this thread's metrics (prom-client's JSON form), process-wide ones left out. */
  | { t: 'collected'; id: number; metrics: unknown[] }
  | { t: 'closed' }
  | { t: 'failed'; message: string };

export type MainToWorker =
  | { t: 'reply'; id: number; value: unknown; warnings?: { image: number; warning: string }[] }
  | { t: 'error'; id: number; error: WireError }
  | { t: 'state'; state: ServiceState }
  | { t: 'listen'; http: number; grpc: number }
  | { t: 'collect'; id: number }
  | { t: 'reload' }
  | { t: 'close'; graceMs: number };

/** What the synchronous InferenceService methods answer from, pushed by main whenever it changes. */
export interface ServiceState {
  ready: boolean;
  defaultModel: string;
  /** Per model (as listModels() has them): the status requests naming no version get, and each loaded version's. */
  models: { name: string; current: ModelStatus; versions: Record<string, ModelStatus> }[];
  /** null: model control is off (no repository extension). */
  controlMode: string | null;
}

/** A ServeError (or any error) as it crosses a thread. */
export interface WireError {
  code?: ErrorCode;
  message: string;
  retryAfterSeconds?: number;
  metadata?: Record<string, string>;
}

export function toWire(err: unknown): WireError {
  if (err instanceof ServeError)
    return { code: err.code, message: err.message, retryAfterSeconds: err.retryAfterSeconds, metadata: err.metadata };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** The error a worker throws for a WireError: the same ServeError (code, message, Retry-After, metadata), or a plain Error. */
export function fromWire(w: WireError): Error {
  if (w.code === undefined) return new Error(w.message);
  const err = ServeError.rebuilt(w.code, w.message);
  if (w.retryAfterSeconds !== undefined) err.withRetryAfter(w.retryAfterSeconds);
  if (w.metadata) err.metadata = w.metadata;
  return err;
}
