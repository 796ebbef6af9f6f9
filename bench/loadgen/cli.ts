// `npm run bench -- [options]`: see HELP in args.ts.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HELP, parseBenchArgs, UsageError, type BenchOptions } from './args.js';
import { GrpcTarget } from './grpc-target.js';
import { HttpTarget, type Target } from './http-target.js';
import { loadImages } from './images.js';
import { runStep, type StepResult } from './load.js';
import { runStepInProcesses } from './procs.js';
import { ProgressPrinter, progressLine } from './progress.js';
import { hostInfo, tableHeader, tableRow, toCsv, type BenchReport } from './report.js';

async function makeTarget(o: BenchOptions): Promise<Target> {
  if (o.api === 'grpc') {
    return GrpcTarget.create({
      target: o.grpcTarget,
      proto: o.proto,
      model: o.model,
      topK: o.topK,
      timeoutMs: o.timeoutMs,
      check: o.check,
    });
  }
  return new HttpTarget({ url: o.url, path: o.path, model: o.model, topK: o.topK, timeoutMs: o.timeoutMs, check: o.check });
}

async function writeOut(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text);
}

export async function runBench(o: BenchOptions, out: NodeJS.WritableStream = process.stdout): Promise<BenchReport> {
  const images = await loadImages(o.images, o.maxImages);
  const target = await makeTarget(o);
  const startedAt = new Date().toISOString();
  const steps: StepResult[] = [];
  const loads = o.mode === 'closed' ? o.concurrency : o.rates;
  const progress = new ProgressPrinter();
  const meanBytes = Math.round(images.reduce((a, i) => a + i.data.length, 0) / images.length);
  const where = o.api === 'http' ? `${o.url}${o.path}` : `${o.grpcTarget} swin.v1.Classifier/Predict`;
  out.write(`# ${o.label}: ${where}, ${images.length} images (mean ${Math.round(meanBytes / 1024)} KiB) from ${o.images}\n`);
  out.write(`# warm-up ${o.warmup}s + window ${o.duration}s per step, ${loads.length} steps\n`);
  out.write(tableHeader() + '\n');
  try {
    for (const load of loads) {
      const inFlightCap = o.mode === 'closed' ? load : o.maxInFlight;
      target.setConnections(o.connections || inFlightCap);
      const stepLabel = o.mode === 'closed' ? `c=${load}` : `${load}/s`;
      if (o.procs > 1) {
        out.write(`# ${stepLabel}: ${o.procs} load processes\n`);
        const step = await runStepInProcesses(o, load);
        steps.push(step);
        out.write(tableRow(step) + '\n');
        continue;
      }
      const step = await runStep(
        target,
        images,
        {
          mode: o.mode,
          concurrency: o.mode === 'closed' ? load : undefined,
          rate: o.mode === 'open' ? load : undefined,
          arrival: o.arrival,
          maxInFlight: o.maxInFlight,
          warmupS: o.warmup,
          durationS: o.duration,
          timeoutMs: o.timeoutMs,
          seed: o.seed,
        },
        o.progressMs > 0 ? (s) => progress.update(progressLine(stepLabel, s)) : undefined,
        o.progressMs,
      );
      progress.finish();
      steps.push(step);
      out.write(tableRow(step) + '\n');
    }
  } finally {
    await target.close();
  }

  const { help: _help, ...options } = o;
  const report: BenchReport = {
    tool: 'swin-serve bench',
    version: 1,
    label: o.label,
    started_at: startedAt,
    host: hostInfo(),
    target:
      o.api === 'http'
        ? { api: 'http', url: o.url, path: o.path, model: o.model, top_k: o.topK }
        : { api: 'grpc', grpc_target: o.grpcTarget, model: o.model, top_k: o.topK },
    images: { folder: o.images, count: images.length, mean_bytes: meanBytes },
    options,
    steps,
  };
  if (o.json) await writeOut(o.json, JSON.stringify(report, null, 1) + '\n');
  if (o.csv) await writeOut(o.csv, toCsv(o.label, o.api, steps));
  return report;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`bench: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  try {
    const report = await runBench(opts);
    const failed = report.steps.every((s) => s.ok === 0);
    if (failed) process.stderr.write('bench: no request succeeded\n');
    return failed ? 1 : 0;
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
