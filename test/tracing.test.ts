// OpenTelemetry traces with an in-memory exporter: a request that arrives with
// a W3C traceparent continues that trace; its server span has one child per
// stage (admission, decode, queue, inference, reply) with model, variant,
// backend and batch size; the batch has its own span linked to the request.
// Over HTTP and gRPC. And tracing stays off unless OTEL_* asks for it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { pino } from 'pino';
import { startGrpcServer, type GrpcServerHandle } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { initTracing, shutdownTracing, tracingFromEnv } from '../src/observability/tracing.js';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { greyPng } from './helpers/http-bodies.js';

const exporter = new InMemorySpanExporter();
let s: FakeService;
let server: GrpcServerHandle;

before(async () => {
  initTracing({}, new SimpleSpanProcessor({ exporter }));
  s = await fakeService();
  server = await startGrpcServer(s.service, { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 }, pino({ level: 'silent' }));
});
after(async () => {
  await server.close(1000);
  await s.close();
  await shutdownTracing();
});

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function checkTrace(spans: ReadableSpan[], serverName: string, traceId: string): void {
  const server = spans.find((x) => x.name === serverName);
  assert.ok(server, `no ${serverName} span among ${spans.map((x) => x.name).join(', ')}`);
  assert.equal(server.spanContext().traceId, traceId);
  assert.equal(server.parentSpanContext?.spanId, PARENT, "the server span continues the caller's span");
  assert.equal(server.parentSpanContext?.traceState?.get('vendor'), 'v1');
  const children = spans
    .filter((x) => x.parentSpanContext?.spanId === server.spanContext().spanId)
    .map((x) => x.name)
    .sort();
  assert.deepEqual(children, ['admission', 'decode', 'inference', 'queue', 'reply']);
  for (const name of ['queue', 'inference']) {
    const span = spans.find((x) => x.name === name && x.spanContext().traceId === traceId)!;
    assert.deepEqual(
      {
        model: span.attributes['swin.model'],
        variant: span.attributes['swin.variant'],
        backend: span.attributes['swin.backend'],
        batch: span.attributes['swin.batch_size'],
      },
      { model: 'fake', variant: 'fold', backend: 'onnxruntime', batch: 1 },
    );
  }
  const batch = spans.find((x) => x.name === 'batch' && x.links.some((l) => l.context.spanId === server.spanContext().spanId));
  assert.ok(batch, 'no batch span linked to the request');
  assert.deepEqual([batch.attributes['swin.model'], batch.attributes['swin.batch_size']], ['fake', 1]);
}

test('HTTP /classify: traceparent continued, one span per stage, the batch span linked to the request', async () => {
  exporter.reset();
  const r = await s.app.inject({
    method: 'POST',
    url: '/classify',
    payload: await greyPng(80),
    headers: { 'content-type': 'image/png', traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=v1' },
  });
  assert.equal(r.statusCode, 200, r.body);
  const spans = exporter.getFinishedSpans();
  checkTrace(spans, 'POST /classify', TRACE);
  const server = spans.find((x) => x.name === 'POST /classify')!;
  assert.deepEqual([server.attributes['http.response.status_code'], server.attributes['swin.model']], [200, 'fake']);
});

test('gRPC Predict: traceparent metadata continued, the same stages', async () => {
  exporter.reset();
  const trace = 'a'.repeat(31) + 'b';
  const client = new (loadProtos().classifier.swin.v1.Classifier)(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${trace}-${PARENT}-01`);
  md.set('tracestate', 'vendor=v1');
  try {
    const png = await greyPng(80);
    await new Promise<void>((resolve, reject) =>
      client.Predict({ images: [png] }, md, (err: grpc.ServiceError | null) => (err ? reject(err) : resolve())),
    );
  } finally {
    client.close();
  }
  checkTrace(exporter.getFinishedSpans(), 'swin.v1.Classifier/Predict', trace);
});

test('tracing is off unless OTEL_* asks for it', () => {
  assert.deepEqual(tracingFromEnv({}), { enabled: false });
  assert.deepEqual(tracingFromEnv({ OTEL_TRACES_EXPORTER: 'otlp' }), { enabled: true, exporter: 'otlp', sampler: 'parentbased_always_on' });
  assert.deepEqual(tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), {
    enabled: true,
    exporter: 'otlp',
    sampler: 'parentbased_always_on',
  });
  assert.deepEqual(tracingFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }), { enabled: false });
  assert.deepEqual(tracingFromEnv({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), { enabled: false });
});
