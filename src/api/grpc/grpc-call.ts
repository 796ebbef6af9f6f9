// What every unary handler of ours does around its work: the call's deadline
// and cancellation become RequestOptions (so an expired or abandoned request
// leaves the batcher queue and never runs), ServeErrors become a gRPC status
// with the table's code and message plus google.rpc.Status details
// (status-details.ts), and request metrics are recorded.
import { status as GrpcStatus, type ServerUnaryCall, type StatusObject, type sendUnaryData } from '@grpc/grpc-js';
import type { BaseLogger } from 'pino';
import { requestClient } from '../access/access-control.js';
import { type ServeError, isServeError, toServeError } from '../../errors.js';
import { requestDuration, requestsTotal } from '../../observability/metrics.js';
import { logRequest, traceIdOf } from '../../observability/request-log.js';
import type { RequestOptions } from '../../service/service-types.js';
import { errorTrailers } from './status-details.js';
import { endSpan, startServerSpan, startStage, traceIdOfContext, tracingEnabled } from '../../observability/tracing.js';

/** grpc-timeout as an absolute Date.now() deadline, or undefined for calls without one. */
export function callDeadline(call: ServerUnaryCall<unknown, unknown>): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

export function callOptions(call: ServerUnaryCall<unknown, unknown>, api: string): RequestOptions {
  const controller = new AbortController();
  // grpc-js emits 'cancelled' when the client cancels, the connection drops, or the deadline passes.
  if (call.cancelled) controller.abort();
  else call.once('cancelled', () => controller.abort());
  // Fair decode turns go by API key, else by the peer's host (without the port), as over HTTP.
  const md = (k: string) => call.metadata.get(k).map(String);
  const client = requestClient(md('authorization'), md('x-api-key'), call.getPeer().replace(/:\d+$/, ''));
  return { deadline: callDeadline(call), signal: controller.signal, api, client };
}

export function grpcStatusOf(err: ServeError): Partial<StatusObject> {
  return { code: err.grpcStatus, details: err.message, metadata: errorTrailers(err) };
}

export interface UnaryContext {
  call: ServerUnaryCall<unknown, unknown>;
  /** RequestOptions built from the call (deadline, cancellation, api label). */
  opts: RequestOptions;
}

export interface UnaryMetrics<Req> {
  api: string;
  /** Model label for request metrics (a loaded model's name or "unknown"); omitted for calls that are not inference. */
  model(req: Req): string;
}

/** Wraps an async handler as a grpc-js unary handler. */
export function unary<Req, Res>(
  logger: BaseLogger,
  api: string,
  handler: (req: Req, ctx: UnaryContext) => Promise<Res>,
  metrics?: UnaryMetrics<Req>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const anyCall = call as unknown as ServerUnaryCall<unknown, unknown>;
    const traced = tracingEnabled()
      ? startServerSpan(
          call.getPath().slice(1),
          (k) => {
            const v = call.metadata.get(k)[0];
            return typeof v === 'string' ? v : undefined;
          },
          { 'rpc.system': 'grpc', 'rpc.method': call.getPath() },
        )
      : undefined;
    const finish = (code: string, status: GrpcStatus, err?: unknown) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const model = metrics?.model(call.request);
      if (traced) {
        traced.span.setAttribute('rpc.grpc.status_code', status);
        if (model) traced.span.setAttribute('swin.model', model);
        endSpan(traced.span, err);
      }
      // Calls that are not inference (live, ready, metadata) log their successes at debug.
      logRequest(
        logger,
        {
          api,
          method: call.getPath(),
          status: GrpcStatus[status],
          code,
          model,
          ms: seconds * 1000,
          trace_id: traceIdOfContext(traced?.ctx) ?? traceIdOf(call.metadata.get('traceparent')),
        },
        err,
        metrics === undefined,
      );
      if (!metrics) return;
      const labels = { api: metrics.api, model: model!, code };
      requestsTotal.inc(labels);
      requestDuration.observe(labels, seconds);
    };
    let opts: RequestOptions;
    try {
      opts = callOptions(anyCall, api);
    } catch (err) {
      callback(grpcStatusOf(toServeError(err)));
      return;
    }
    if (traced) opts.trace = traced.ctx;
    handler(call.request, { call: anyCall, opts }).then(
      (res) => {
        const reply = startStage(traced?.ctx, 'reply');
        callback(null, res);
        endSpan(reply);
        finish('OK', GrpcStatus.OK);
      },
      (err: unknown) => {
        const serveErr = toServeError(err);
        finish(serveErr.code, serveErr.grpcStatus, isServeError(err) ? serveErr : err);
        callback(grpcStatusOf(serveErr));
      },
    );
  };
}

/** For handlers: a non-empty string field, or undefined. */
export function optionalString(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
