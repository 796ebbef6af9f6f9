// Raw onnxruntime throughput: the ceiling the service is measured against.
// Same library (onnxruntime-node), same graph, same session options as the
// service's onnxruntime backend (src/backends/onnxruntime-worker.ts), inputs
// already uint8 NHWC (no decode, no HTTP, no batcher): session.run back to back
// for --seconds at each batch size.
//
//   npx tsx bench/ort-raw.ts --model engines/models/swin-fmnist --variant unfold \
//       --batches 1,2,4,8,16 --seconds 10 --json bench/.out/ort-raw.json
//
// Output JSON {kind: "batch-sweep", label, host, rows: [{batch, images_per_s, ms_per_batch}]}
// is what bench/charts.py plots as throughput against batch size.
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { hostInfo } from './loadgen/report.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const dir = flag('--model', 'engines/models/swin-fmnist');
  const cfg = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const variant = flag('--variant', cfg.default_variant);
  const file = cfg.artifacts[variant]?.onnxruntime;
  if (!file) throw new Error(`${dir}: no onnxruntime artifact for variant ${variant}`);
  const batches = flag('--batches', '1,2,4,8,16').split(',').map(Number);
  const seconds = Number(flag('--seconds', '10'));
  const intra = Number(flag('--intra-op-threads', '0'));
  const inter = Number(flag('--inter-op-threads', '1'));
  const session = await ort.InferenceSession.create(join(dir, file), {
    intraOpNumThreads: intra,
    interOpNumThreads: inter,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const [, h, w] = cfg.input.shape as number[];
  // Real pixels: the model's self-test images, repeated to fill the batch.
  const sample = await readFile(join(dir, cfg.selftest.input));
  const per = h * w * 3;
  // cpu_s: process CPU time (all threads) over the timed runs: images per CPU-second
  // compares with the service's on a machine where other work steals cores.
  const rows: Array<{ batch: number; images_per_s: number; ms_per_batch: number; runs: number; cpu_s: number; images_per_cpu_s: number }> =
    [];
  console.log(`raw onnxruntime-node ${dir} (${variant}), intra-op ${intra || 'default'}, inter-op ${inter}, ${seconds}s per batch size`);
  for (const b of batches) {
    const pixels = new Uint8Array(b * per);
    for (let i = 0; i < b; i++) pixels.set(sample.subarray((i % cfg.selftest.count) * per, ((i % cfg.selftest.count) + 1) * per), i * per);
    const feeds = { [cfg.input.name]: new ort.Tensor('uint8', pixels, [b, h, w, 3]) };
    for (let i = 0; i < 3; i++) await session.run(feeds);
    let runs = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      await session.run(feeds);
      runs++;
    }
    const ms = (performance.now() - t0) / runs;
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    rows.push({
      batch: b,
      images_per_s: Math.round((b * 1000 * 100) / ms) / 100,
      ms_per_batch: Math.round(ms * 1000) / 1000,
      runs,
      cpu_s: Math.round(cpuS * 100) / 100,
      images_per_cpu_s: Math.round(((b * runs) / cpuS) * 100) / 100,
    });
    console.log(
      `batch ${String(b).padStart(3)}: ${((b * 1000) / ms).toFixed(1).padStart(8)} images/s  ${ms.toFixed(2)} ms/batch  (${runs} runs)`,
    );
  }
  const out = flag('--json', '');
  if (out) {
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      JSON.stringify(
        {
          kind: 'batch-sweep',
          label: flag('--label', `onnxruntime-node ${cfg.name} ${variant}`),
          host: hostInfo(),
          model: cfg.name,
          variant,
          rows,
        },
        null,
        1,
      ) + '\n',
    );
  }
  await session.release();
}

main().catch((err) => {
  console.error(`ort-raw: ${(err as Error).message}`);
  process.exitCode = 1;
});
