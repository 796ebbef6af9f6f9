// What one request costs the service's own process, with the engine taken out:
// the real HTTP app, service, batcher and batch decoding path (JPEGs stay encoded,
// as on the GPU host's cuda backend) in front of an engine that answers at once.
// The load generator runs as a child process, so the numbers are the server's:
// main-thread busy time per request (event loop utilisation) and process CPU per
// request. With --cpu-prof-out it also writes a V8 CPU profile of the window and
// prints the functions with the most self time. Issue 18 asks where a request's
// CPU goes before multi-core front ends are considered; this answers on any machine.
//
// With --workers N the HTTP and gRPC servers run on N front-end worker threads
// (FRONTEND_WORKERS) and the main thread keeps the service: the main-thread numbers
// are then what the one scheduler costs per request.
//
//   npx tsx bench/frontend-profile.ts [--api http|grpc] [--images bench/.images/photos]
//       [--concurrency 64] [--seconds 10] [--classes 1000] [--workers 0]
//       [--cpu-prof-out bench/.out/frontend.cpuprofile]
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { Backend, DeviceBatchResult, Variant } from '../src/backends/backend.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { buildApp } from '../src/api/http/app.js';
import { loadConfig } from '../src/config.js';
import { ModelRepository } from '../src/models/model-repository.js';
import type { ModelConfig } from '../src/models/model-config.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { FrontEndWorkers } from '../src/api/workers/front-end-workers.js';

interface Options {
  api: 'http' | 'grpc';
  images: string;
  concurrency: number;
  seconds: number;
  classes: number;
  workers: number;
  cpuProfOut?: string;
}

function parse(argv: string[]): Options {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    api: get('--api') === 'grpc' ? 'grpc' : 'http',
    images: get('--images') ?? 'bench/.images/photos',
    concurrency: Number(get('--concurrency') ?? 64),
    seconds: Number(get('--seconds') ?? 10),
    classes: Number(get('--classes') ?? 1000),
    workers: Number(get('--workers') ?? 0),
    cpuProfOut: get('--cpu-prof-out'),
  };
}

const SIZE = 224;

/** Logits from each image's first bytes: cheap, deterministic, different per image. */
function logitsOf(images: Uint8Array[], classes: number): Float32Array {
  const out = new Float32Array(images.length * classes);
  images.forEach((img, i) => {
    for (let c = 0; c < classes; c++) out[i * classes + c] = ((img[(c * 7) % img.length] ?? 0) - 128) / 32;
  });
  return out;
}

/** An engine of no cost, "on a GPU" that decodes JPEGs itself. */
function instantBackend(variant: Variant, classes: number): Backend {
  const bytes = SIZE * SIZE * 3;
  return {
    kind: 'cuda',
    variant,
    maxBatchSize: 64,
    device: 'none (frontend-profile)',
    precision: 'fp32',
    run: async (images, n) =>
      logitsOf(
        Array.from({ length: n }, (_, i) => images.subarray(i * bytes, (i + 1) * bytes)),
        classes,
      ),
    runImages: async (images): Promise<DeviceBatchResult> => ({
      logits: logitsOf(images, classes),
      decoded: images.map(() => true),
      reasons: images.map(() => null),
    }),
    dispose: async () => undefined,
  };
}

function writeModel(root: string, classes: number): void {
  const dir = path.join(root, 'frontend');
  mkdirSync(dir, { recursive: true });
  const images = new Uint8Array(2 * SIZE * SIZE * 3).map((_, i) => (i * 31) % 251);
  const half = images.length / 2;
  const logits = logitsOf([images.subarray(0, half), images.subarray(half)], classes);
  writeFileSync(path.join(dir, 'selftest.u8'), images);
  writeFileSync(path.join(dir, 'selftest.json'), JSON.stringify([0, 1].map((i) => [...logits.subarray(i * classes, (i + 1) * classes)])));
  const cfg: ModelConfig = {
    name: 'frontend',
    version: '1',
    architecture: {
      family: 'swin',
      img_size: SIZE,
      patch_size: 4,
      window_size: 7,
      embed_dim: 96,
      depths: [2, 2, 6, 2],
      num_heads: [3, 6, 12, 24],
      mlp_ratio: 4,
      num_classes: classes,
    },
    preprocess: {
      mode: 'shorter_side_crop',
      resize: 256,
      crop: SIZE,
      kernel: 'cubic',
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
    },
    labels: Array.from({ length: classes }, (_, i) => `class${i}`),
    input: { name: 'pixels', datatype: 'UINT8', shape: [-1, SIZE, SIZE, 3], layout: 'NHWC' },
    output: { name: 'logits', datatype: 'FP32', shape: [-1, classes] },
    batching: { max_batch_size: 64, max_queue_delay_ms: 2, max_queue_size: 4096, instances: 2 },
    default_variant: 'fold',
    artifacts: { fold: { onnxruntime: 'frontend.fold.onnx' } },
    selftest: { input: 'selftest.u8', count: 2, expected_logits: 'selftest.json', tolerance: { fp32: 1e-4, fp16: 1e-2 } },
    warmup: [],
  };
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(cfg, null, 2));
  writeFileSync(path.join(dir, 'frontend.fold.onnx'), 'not read: the engine is frontend-profile.ts');
}

/** Top functions by self time in a V8 CPU profile. */
function topSelf(profile: import('node:inspector').Profiler.Profile, n = 25): string[] {
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  (profile.samples ?? []).forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/')}:${f.lineNumber + 1}` : '(native)';
    const key = `${f.functionName || '(anonymous)'} ${where}`;
    const dt = profile.timeDeltas?.[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const root = mkdtempSync(path.join(os.tmpdir(), 'swin-frontend-'));
  writeModel(root, o.classes);
  const env = {
    MODELS_DIR: root,
    LOG_LEVEL: 'silent',
    BACKEND: 'onnxruntime',
    WARMUP_REQUESTS: 'false',
    HOST: '127.0.0.1',
    PORT: '0',
    GRPC_PORT: '0',
  };
  const argv = ['--frontend-workers', String(o.workers)];
  const config = loadConfig(argv, env);
  const repo = await ModelRepository.load({
    config,
    logger: pino({ level: 'silent' }),
    createBackend: async (req) => instantBackend(req.variant, o.classes),
  });
  const service = new CoreInferenceService(repo, config);
  const front = o.workers > 0 ? await workerFrontEnds() : await ownFrontEnd();
  const { port, grpcPort } = front;
  const target =
    o.api === 'grpc'
      ? ['--api', 'grpc', '--grpc-target', `127.0.0.1:${grpcPort}`, '--proto', 'proto/swin/v1/classifier.proto']
      : ['--url', `http://127.0.0.1:${port}`];
  const warmupS = 3;
  const loadgen = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/loadgen/cli.ts',
      ...target,
      '--images',
      o.images,
      '--concurrency',
      String(o.concurrency),
      '--warmup',
      `${warmupS}s`,
      '--duration',
      `${o.seconds}s`,
      '--progress',
      '0',
      '--label',
      'frontend-profile',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  loadgen.stdout.on('data', (d: Buffer) => (out += d));
  const done = new Promise<void>((resolve) => loadgen.on('exit', () => resolve()));

  // The measured window: after the load generator's warm-up, for its duration.
  await new Promise((r) => setTimeout(r, warmupS * 1000 + 300));
  const session = o.cpuProfOut ? new Session() : null;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  // The main thread's own CPU (Node >= 22.19 / 23.9); event-loop busy time also counts time the
  // thread waited for a core, which on a small machine with workers and the load generator is much.
  const threadCpu = () => (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage?.();
  const main0 = threadCpu();
  const served0 = await servedCount();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, (o.seconds - 0.6) * 1000));
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  const main1 = threadCpu();
  const served = (await servedCount()) - served0;
  const mainCpuUs = main0 && main1 ? (main1.user - main0.user + main1.system - main0.system) / served : NaN;
  const wall = (performance.now() - t0) / 1000;
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(path.dirname(o.cpuProfOut!), { recursive: true });
    writeFileSync(o.cpuProfOut!, JSON.stringify(profile));
    session.disconnect();
    process.stdout.write(`CPU profile of the window: ${o.cpuProfOut}; most self time:\n${topSelf(profile).join('\n')}\n`);
  }
  await done;
  await front.close();
  await service.close();
  rmSync(root, { recursive: true, force: true });

  const rps = served / wall;
  const busyUs = (elu.active * 1000) / served;
  const cpuUs = (cpu.user + cpu.system) / served;
  process.stdout.write(out);
  process.stdout.write(
    `server, engine of no cost, ${o.classes} classes: ${served} requests in ${wall.toFixed(1)} s (${rps.toFixed(0)} req/s); ` +
      `${o.workers > 0 ? `${o.workers} front-end workers; main thread's ` : ''}event loop ${(100 * elu.utilization).toFixed(0)}% busy, ${busyUs.toFixed(0)} us of main thread per request` +
      `${Number.isNaN(mainCpuUs) ? '' : ` (its CPU: ${mainCpuUs.toFixed(0)} us)`}; ` +
      `process CPU ${cpuUs.toFixed(0)} us per request (${((cpu.user + cpu.system) / 1e6 / wall).toFixed(2)} cores); ` +
      `the main thread carries at most ~${Math.round(1e6 / (Number.isNaN(mainCpuUs) ? busyUs : Math.min(busyUs, mainCpuUs)))} req/s of this\n`,
  );

  async function workerFrontEnds() {
    const workers = await FrontEndWorkers.start(config, service, argv, env, pino({ level: 'silent' }));
    return {
      port: workers.ports.http,
      grpcPort: workers.ports.grpc,
      metrics: () => workers.metricsText(),
      close: () => workers.close(1000),
    };
  }

  async function ownFrontEnd() {
    const app = await buildApp(config, service, { logger: { level: 'silent' } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const grpc = await startGrpcServer(
      service,
      { host: '127.0.0.1', port: 0, maxMessageBytes: config.limits.maxBodyBytes },
      pino({ level: 'silent' }),
    );
    return {
      port: (app.server.address() as { port: number }).port,
      grpcPort: grpc.port,
      metrics: async () => (await app.inject({ method: 'GET', url: '/metrics' })).body,
      close: async () => {
        await grpc.close(1000);
        await app.close();
      },
    };
  }

  async function servedCount(): Promise<number> {
    return (await front.metrics())
      .split('\n')
      .filter(
        (l) => l.startsWith('swin_requests_total{') && l.includes(`api="${o.api === 'grpc' ? 'grpc' : 'http'}"`) && l.includes('code="OK"'),
      )
      .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`frontend-profile: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
