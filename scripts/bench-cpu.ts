// CPU benchmark of the serving core (not a test): images/s and latency of
// POST /classify at several concurrency levels, next to raw onnxruntime-node
// throughput at the same batch size, on this machine.
//
//   npm run bench:cpu                       # defaults below
//   npm run bench:cpu -- --seconds 20 --concurrency 1,8,32 --model swin-fmnist
//
// The server runs as a child process (`node --import tsx src/main.ts`) with its
// configuration from model.json; the load generator is a closed loop of
// `concurrency` clients, each sending one Fashion-MNIST test image (PNG) per
// request and the next as soon as the reply arrives. Prints a markdown report.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { readModelConfig } from '../src/models/model-json.js';
import { fashionMnistAvailable, readFashionMnistTest } from '../test/helpers/fashion-mnist.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'swin-fmnist' },
    'models-dir': { type: 'string', default: 'engines/models' },
    seconds: { type: 'string', default: '15' },
    concurrency: { type: 'string', default: '1,4,16,32' },
    port: { type: 'string', default: '28680' },
    variant: { type: 'string' },
  },
});
const seconds = Number(args.seconds);
const levels = args.concurrency!.split(',').map(Number);
const port = Number(args.port);
const modelDir = path.resolve(args['models-dir']!, args.model!);

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function rawOrt(file: string, inputName: string, size: number, batch: number): Promise<{ imgPerS: number; msPerBatch: number }> {
  // The service's session options (src/backends/onnxruntime-worker.ts), so the two rows compare like with like.
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: 0,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  const x = new ort.Tensor('uint8', new Uint8Array(batch * size * size * 3).fill(90), [batch, size, size, 3]);
  await session.run({ [inputName]: x });
  const until = performance.now() + (seconds * 1000) / 2;
  let runs = 0;
  const t0 = performance.now();
  while (performance.now() < until || runs < 3) {
    await session.run({ [inputName]: x });
    runs++;
  }
  const ms = (performance.now() - t0) / runs;
  await session.release();
  return { imgPerS: (batch * 1000) / ms, msPerBatch: ms };
}

async function waitReady(base: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${base}/health/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not become ready in 60 s');
}

async function load(
  base: string,
  bodies: Buffer[],
  concurrency: number,
): Promise<{ n: number; errors: number; imgPerS: number; p50: number; p90: number; p99: number; batch: number }> {
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const metricsBefore = await batchStats(base);
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const body = bodies[next++ % bodies.length];
        const s = performance.now();
        const res = await fetch(`${base}/classify?top_k=1`, {
          method: 'POST',
          headers: { 'content-type': 'image/png' },
          body: new Uint8Array(body),
        });
        await res.arrayBuffer();
        if (res.status === 200) lat.push(performance.now() - s);
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const after = await batchStats(base);
  lat.sort((a, b) => a - b);
  const batch = (after.sum - metricsBefore.sum) / Math.max(1, after.count - metricsBefore.count);
  return { n: lat.length, errors, imgPerS: lat.length / elapsed, p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), batch };
}

/** Sum and count of swin_batch_size over all labels: mean executed batch size over a window. */
async function batchStats(base: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('swin_batch_size_sum')) sum += Number(line.split(' ').pop());
    if (line.startsWith('swin_batch_size_count')) count += Number(line.split(' ').pop());
  }
  return { sum, count };
}

async function main(): Promise<void> {
  if (!fashionMnistAvailable()) throw new Error('needs Fashion-MNIST: apt-get install dataset-fashion-mnist');
  const cfg = await readModelConfig(modelDir);
  const variant = (args.variant as 'fold' | 'unfold' | undefined) ?? cfg.default_variant;
  const size = cfg.architecture.img_size;
  const batch = cfg.batching.max_batch_size;
  const { images } = readFashionMnistTest(256);
  const bodies = await Promise.all(
    images.map((raw) =>
      sharp(raw, { raw: { width: 28, height: 28, channels: 1 } })
        .toColourspace('b-w')
        .png()
        .toBuffer(),
    ),
  );

  const lines: string[] = [];
  const out = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  out(
    `Model ${cfg.name} (${cfg.architecture.family}, ${size}x${size}, ${cfg.description ?? ''}), variant ${variant}, onnxruntime-node ${ort.env.versions?.node ?? ''} on the CPU.`,
  );
  out(
    `Machine: ${os.cpus()[0]?.model ?? 'cpu'} x ${os.availableParallelism()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; load average before: ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}.`,
  );
  out(
    `Batching from model.json: max_batch_size ${batch}, max_queue_delay_ms ${cfg.batching.max_queue_delay_ms}, instances ${cfg.batching.instances}. ${seconds} s per level.`,
  );
  out('');
  const file = path.join(modelDir, cfg.artifacts[variant]!.onnxruntime!);
  out('| raw onnxruntime (one session, in-process) | images/s | ms per batch |');
  out('|---|---:|---:|');
  for (const b of [1, batch]) {
    const r = await rawOrt(file, cfg.input.name, size, b);
    out(`| batch ${b} | ${r.imgPerS.toFixed(1)} | ${r.msPerBatch.toFixed(1)} |`);
  }
  out('');

  const server = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/main.ts',
      '--port',
      String(port),
      '--grpc-port',
      String(port + 1),
      '--log-level',
      'warn',
      '--models',
      cfg.name,
      '--models-dir',
      path.dirname(modelDir),
      '--backend',
      'onnxruntime',
      '--variant',
      variant,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitReady(base);
    // Warm-up: first requests pay for JIT and thread start-up.
    await load(base, bodies, 4).catch(() => undefined);
    out('| POST /classify, concurrency | images/s | p50 ms | p90 ms | p99 ms | mean batch | requests | errors |');
    out('|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of levels) {
      const r = await load(base, bodies, c);
      out(
        `| ${c} | ${r.imgPerS.toFixed(1)} | ${r.p50.toFixed(0)} | ${r.p90.toFixed(0)} | ${r.p99.toFixed(0)} | ${r.batch.toFixed(2)} | ${r.n} | ${r.errors} |`,
      );
    }
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  out('');
  out(
    `Load average after: ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}.`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
