// nvJPEG batches on the GPU host, outside the service: does a batch size that changes
// from one batch to the next cost more than a fixed one (the decoder re-runs
// nvjpegDecodeBatchedInitialize whenever the size changes), and how does the decode
// scale with decoders decoding at once (one per engine instance in the service)?
// Each decoder decodes `--batches` batches of the photographs back to back, with the
// batch size fixed at --size or varying around it (size-2 .. size+2); JpegDecoder's
// decode includes the resize and the copy of the pixels to the host.
//
//   node dist/bench/nvjpeg-batch-sizes.js --images .carry/bench-run/photos [--size 28] [--batches 200] [--decoders 1,2,4]
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadAddon, type GpuDecodeSpec } from '../src/native/addon.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const images = arg('--images', 'bench/.images/photos');
const size = Number(arg('--size', '28'));
const batches = Number(arg('--batches', '200'));
const decoderCounts = arg('--decoders', '1,2,4').split(',').map(Number);
const spec: GpuDecodeSpec = { size: 224, mode: 'shorter_side_crop', resize: 256, kernel: 'cubic', maxPixels: 25_000_000 };

const load = loadAddon();
const addon = load.addon;
if (!addon) throw new Error('reason' in load ? String(load.reason) : 'native addon not loaded');
const jpegs = readdirSync(images)
  .filter((f) => /\.jpe?g$/i.test(f))
  .map((f) => new Uint8Array(readFileSync(path.join(images, f))));
if (jpegs.length === 0) throw new Error(`no JPEGs in ${images}`);

function batchOf(k: number, at: number): Uint8Array[] {
  return Array.from({ length: k }, (_, i) => jpegs[(at + i) % jpegs.length]);
}

async function measure(decoders: number, varying: boolean): Promise<{ msPerBatch: number; imagesPerS: number }> {
  const pool = Array.from({ length: decoders }, () => new addon!.JpegDecoder({ backend: 'auto' }));
  // Warm each decoder at every size it will see.
  for (const d of pool) for (let k = size - 2; k <= size + 2; k++) await d.decode(batchOf(k, 0), spec);
  let imagesDone = 0;
  const t0 = performance.now();
  await Promise.all(
    pool.map(async (d, j) => {
      for (let b = 0; b < batches; b++) {
        const k = varying ? size - 2 + ((b + j) % 5) : size;
        const r = await d.decode(batchOf(k, b * size), spec);
        imagesDone += r.decoded.reduce((a, x) => a + x, 0);
      }
    }),
  );
  const ms = performance.now() - t0;
  await Promise.all(pool.map((d) => d.dispose()));
  return { msPerBatch: ms / batches, imagesPerS: (imagesDone / ms) * 1000 };
}

process.stdout.write(
  `# nvjpeg-batch-sizes: ${jpegs.length} JPEGs from ${images}, batches of ${size} (or ${size - 2}..${size + 2}), ${batches} per decoder\n`,
);
process.stdout.write('decoders  sizes     ms/batch (per decoder)  images/s (all)\n');
for (const n of decoderCounts) {
  for (const varying of [false, true]) {
    const r = await measure(n, varying);
    process.stdout.write(
      `${String(n).padStart(8)}  ${(varying ? 'varying' : 'fixed').padEnd(8)}  ${r.msPerBatch.toFixed(2).padStart(22)}  ${r.imagesPerS.toFixed(0).padStart(14)}\n`,
    );
  }
}
