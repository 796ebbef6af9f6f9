// What one gRPC call costs us, engine aside: starts the gRPC server on
// loopback with an InferenceService that answers at once, then keeps C calls in
// flight on one channel for a few seconds and reports calls/s and latency.
// The number decides whether a streaming RPC would help high-throughput
// clients (docs/grpc.md): it would only save this per-call cost.
//
//   npx tsx bench/grpc-overhead.ts [--concurrency 64] [--seconds 5] [--images 1]
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { InferenceService, ModelStatus } from '../src/service/service-types.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';

const { values } = parseArgs({ options: { concurrency: { type: 'string' }, seconds: { type: 'string' }, images: { type: 'string' } } });
const concurrency = Number(values.concurrency ?? 64);
const seconds = Number(values.seconds ?? 5);
const imagesPerCall = Number(values.images ?? 1);

/** Answers classify at once with a fixed top-5: only the protocol work remains. */
const instant: InferenceService = {
  listModels: () => [],
  getModel: () => ({}) as ModelStatus,
  defaultModelName: () => 'null',
  classify: async (_m, images) => ({
    model: 'null',
    variant: 'fold',
    backend: 'onnxruntime',
    predictions: images.map(() => Array.from({ length: 5 }, (_, i) => ({ label: `class-${i}`, index: i, score: 0.2 }))),
    timings: { preprocess_ms: 0, queue_ms: 0, inference_ms: 0, total_ms: 0 },
  }),
  preprocess: async () => new Uint8Array(0),
  inferTensor: async () => {
    throw new Error('not used');
  },
  isReady: () => true,
  close: async () => {},
};

const server = await startGrpcServer(instant, { host: '127.0.0.1', port: 0, maxMessageBytes: 64 << 20 }, pino({ level: 'silent' }));
const client = new (loadProtos().classifier.swin.v1.Classifier)(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
// A Fashion-MNIST-sized PNG is ~1 KB; use that payload per image.
const images = Array.from({ length: imagesPerCall }, () => Buffer.alloc(1024, 7));
const latencies: number[] = [];
const end = performance.now() + seconds * 1000;
const cpu0 = process.cpuUsage();

async function worker(): Promise<void> {
  while (performance.now() < end) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => client.Predict({ images, top_k: 5 }, (err) => (err ? reject(err) : resolve())));
    latencies.push(performance.now() - t0);
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(3);
console.log(
  JSON.stringify({
    concurrency,
    images_per_call: imagesPerCall,
    calls: latencies.length,
    calls_per_s: Math.round(latencies.length / wall),
    // Client and server share this process: CPU per call covers both ends.
    cpu_us_per_call_client_and_server: Math.round((cpu.user + cpu.system) / latencies.length),
    latency_ms: { p50: pct(0.5), p99: pct(0.99) },
  }),
);
client.close();
await server.close(1000);
