// OpenTelemetry traces (docs/observability.md#traces). Off unless the standard
// variables ask for them (OTEL_TRACES_EXPORTER=otlp|console, or an
// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, and OTEL_SDK_DISABLED not true). Then
// every request has a server span that continues the caller's W3C
// traceparent/tracestate, one child span per stage (admission, decode, queue,
// inference, reply), and every batch a span of its own linked to the requests
// it carried. Contexts travel explicitly in RequestOptions.trace rather than
// through AsyncLocalStorage: a request's work hops between the socket, the
// decoder threads and the batcher. Off, each function here returns at its first
// line and nothing is allocated per request.
//
// Spans are made here by hand: the SDK's http/grpc/fastify instrumentations
// patch modules as they are require()d, which an ESM service importing fastify
// and grpc-js does not go through without a loader hook.
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, envDetector, detectResources, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { logLevelOf, toServeError } from '../errors.js';

/** The trace context a request carries through the service (RequestOptions.trace). */
export type TraceContext = Context;

let tracer: Tracer | undefined;
let provider: TracerProvider | undefined;
const propagator = new W3CTraceContextPropagator();

export interface TracingSetup {
  enabled: boolean;
  exporter?: 'otlp' | 'console';
  sampler?: string;
}

/** What OTEL_* asks for: which exporter, or none (tracing off). */
export function tracingFromEnv(env: NodeJS.ProcessEnv): TracingSetup {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED ?? '')) return { enabled: false };
  const named = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (named.includes('none')) return { enabled: false };
  const sampler = env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on';
  if (named.includes('otlp')) return { enabled: true, exporter: 'otlp', sampler };
  if (named.includes('console')) return { enabled: true, exporter: 'console', sampler };
  // The spec's default exporter is otlp; we keep tracing off unless an endpoint says where to send.
  if (named.length === 0 && (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT))
    return { enabled: true, exporter: 'otlp', sampler };
  return { enabled: false };
}

/** OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG as the spec names them. */
function samplerFromEnv(name: string, arg: string | undefined): Sampler {
  const ratio = arg !== undefined && Number.isFinite(Number(arg)) ? Number(arg) : 1;
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * Starts tracing as OTEL_* says (server.ts), or with the given span processor (tests:
 * a SimpleSpanProcessor over an InMemorySpanExporter). Returns what it decided.
 */
export function initTracing(env: NodeJS.ProcessEnv = process.env, processor?: SpanProcessor): TracingSetup {
  const setup = processor ? { enabled: true, sampler: 'always_on' } : tracingFromEnv(env);
  if (!setup.enabled) return setup;
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'swin-serve' }))
    .merge(detectResources({ detectors: [envDetector] }));
  const spanProcessor =
    processor ?? new BatchSpanProcessor({ exporter: setup.exporter === 'console' ? new ConsoleSpanExporter() : new OTLPTraceExporter() });
  provider = new TracerProvider({
    resource,
    sampler: samplerFromEnv(setup.sampler ?? '', env.OTEL_TRACES_SAMPLER_ARG),
    spanProcessors: [spanProcessor],
  });
  tracer = provider.getTracer('swin-serve');
  return setup;
}

/** Flushes and stops the exporter (shutdown); tracing is off afterwards. */
export async function shutdownTracing(): Promise<void> {
  const p = provider;
  provider = undefined;
  tracer = undefined;
  await p?.shutdown();
}

export function tracingEnabled(): boolean {
  return tracer !== undefined;
}

/**
 * A request's server span, continuing the trace in its traceparent/tracestate
 * (HTTP headers or gRPC metadata, read through `get`), or undefined when tracing is off.
 */
export function startServerSpan(
  name: string,
  get: (key: string) => string | undefined,
  attributes: Attributes,
): { ctx: TraceContext; span: Span } | undefined {
  if (!tracer) return undefined;
  const parent = propagator.extract(ROOT_CONTEXT, undefined, {
    get: (_carrier, key) => get(key),
    keys: () => ['traceparent', 'tracestate'],
  });
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  return { ctx: trace.setSpan(parent, span), span };
}

/** A stage of a request (admission, decode, queue, inference, reply) under its span; undefined when off. */
export function startStage(parent: TraceContext | undefined, name: string, attributes?: Attributes, startTime?: number): Span | undefined {
  if (!tracer || !parent) return undefined;
  return tracer.startSpan(name, { attributes, startTime }, parent);
}

/** Ends a span; a failure sets its status (ERROR only for our faults) and the error code. */
export function endSpan(span: Span | undefined, err?: unknown, endTime?: number): void {
  if (!span) return;
  if (err !== undefined) {
    const se = toServeError(err);
    span.setAttribute('swin.error_code', se.code);
    if (logLevelOf(se) === 'error') {
      span.setStatus({ code: SpanStatusCode.ERROR, message: se.message });
      if (err instanceof Error) span.recordException(err);
    }
  }
  span.end(endTime);
}

/** One batch on the engine: a span of its own, linked to each request in it; undefined when off. */
export function startBatchSpan(attributes: Attributes, requests: readonly unknown[]): Span | undefined {
  if (!tracer) return undefined;
  const links: Link[] = [];
  for (const ctx of requests) {
    const sc = ctx === undefined ? undefined : trace.getSpanContext(ctx as Context);
    if (sc) links.push({ context: sc });
  }
  return tracer.startSpan('batch', { kind: SpanKind.INTERNAL, attributes, links }, ROOT_CONTEXT);
}

/** The trace id of a request's span, for its log line. */
export function traceIdOfContext(ctx: TraceContext | undefined): string | undefined {
  return ctx === undefined ? undefined : trace.getSpanContext(ctx)?.traceId;
}

/** A request's context as W3C headers (traceparent, tracestate), to cross to another thread. */
export function exportTraceContext(ctx: TraceContext): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, { set: (c, k, v) => (c[k] = v) });
  return carrier;
}

/** exportTraceContext's headers back into a context whose spans are children of the same span; undefined when off. */
export function importTraceContext(carrier: Record<string, string> | undefined): TraceContext | undefined {
  if (!tracer || carrier === undefined) return undefined;
  return propagator.extract(ROOT_CONTEXT, carrier, { get: (c, k) => c[k], keys: (c) => Object.keys(c) });
}
