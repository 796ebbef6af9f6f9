// The decode ceiling: how many images/s this process can turn from encoded
// files into the model's uint8 NHWC input with the service's own Preprocessor
// (sharp on libuv's thread pool), with no HTTP, batcher or engine. Where the
// service's /classify peak sits near this number, decoding bounds it.
//
//   UV_THREADPOOL_SIZE=16 npx tsx src/bench/decode-ceiling.ts --model engines/models/swin-fmnist \
//       --images bench/.images/fmnist --seconds 10 [--in-flight 64] [--json out.json]
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadImages } from './images.js';
import { hostInfo } from './report.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

// The pool size is read when the first task is queued: set it before sharp loads (as src/main.ts does).
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, os.availableParallelism()));
const { Preprocessor } = await import('../preprocess.js');
const { readModelConfig } = await import('../model-json.js');

const cfg = await readModelConfig(flag('--model', 'engines/models/swin-fmnist'));
const images = await loadImages(flag('--images', 'bench/.images/photos'));
const seconds = Number(flag('--seconds', '10'));
const inFlight = Number(flag('--in-flight', String(4 * Number(process.env.UV_THREADPOOL_SIZE))));
const pre = new Preprocessor(cfg, { maxImagePixels: 25_000_000, acceptedFormats: ['jpeg', 'png', 'webp'] });

let done = 0;
let i = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const end = t0 + seconds * 1000;
await Promise.all(
  Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      await pre.one(images[i++ % images.length].data);
      done++;
    }
  }),
);
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const result = {
  kind: 'decode-ceiling',
  model: cfg.name,
  images: images.length,
  uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE),
  in_flight: inFlight,
  seconds: Math.round(wall * 100) / 100,
  images_per_s: Math.round((done / wall) * 10) / 10,
  cpu_cores_busy: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 100) / 100,
  host: hostInfo(),
};
console.log(
  `decode ceiling (${cfg.name} preprocessing, ${images.length} images, pool ${result.uv_threadpool_size}, ${inFlight} in flight): ` +
    `${result.images_per_s} images/s, ${result.cpu_cores_busy} cores busy`,
);
const out = flag('--json', '');
if (out) {
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(result, null, 1) + '\n');
}
