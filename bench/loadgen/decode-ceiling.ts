// The decode ceiling: how many images/s this process can turn from encoded
// files into the model's uint8 NHWC input with the service's own Preprocessor
// (sharp on libuv's thread pool), with no HTTP, batcher or engine. Where the
// service's /classify peak sits near this number, decoding bounds it.
// --processes N decodes in N child processes as DECODE_PROCESSES=N does
// (src/decode/decode-pool.ts); 0 (default) in this process.
//
//   UV_THREADPOOL_SIZE=16 npx tsx bench/loadgen/decode-ceiling.ts --model engines/models/swin-fmnist \
//       --images bench/.images/fmnist --seconds 10 [--in-flight 64] [--processes 0] [--json out.json]
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
const { Preprocessor } = await import('../../src/decode/preprocess.js');
const { readModelConfig } = await import('../../src/models/model-json.js');
const { DecodePool } = await import('../../src/decode/decode-pool.js');

const cfg = await readModelConfig(flag('--model', 'engines/models/swin-fmnist'));
const images = await loadImages(flag('--images', 'bench/.images/photos'));
const seconds = Number(flag('--seconds', '10'));
const inFlight = Number(flag('--in-flight', String(4 * Number(process.env.UV_THREADPOOL_SIZE))));
const local = new Preprocessor(cfg, { maxImagePixels: 25_000_000, acceptedFormats: ['jpeg', 'png', 'webp'] });
const processes = Number(flag('--processes', '0'));
const pool = processes > 0 ? new DecodePool(processes) : null;
await pool?.ready();
const pre = pool ? pool.preprocessor(local) : local;

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
await pool?.close();
const result = {
  kind: 'decode-ceiling',
  model: cfg.name,
  images: images.length,
  uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE),
  in_flight: inFlight,
  decode_processes: processes,
  seconds: Math.round(wall * 100) / 100,
  images_per_s: Math.round((done / wall) * 10) / 10,
  /** This process only: with --processes, the decoding itself runs in the children. */
  cpu_cores_busy: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 100) / 100,
  host: hostInfo(),
};
console.log(
  `decode ceiling (${cfg.name} preprocessing, ${images.length} images, ` +
    `${processes > 0 ? `${processes} decode processes` : `pool ${result.uv_threadpool_size}`}, ${inFlight} in flight): ` +
    `${result.images_per_s} images/s, ${result.cpu_cores_busy} cores busy${processes > 0 ? ' in the parent' : ''}`,
);
const out = flag('--json', '');
if (out) {
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(result, null, 1) + '\n');
}
