// First request after /health/ready against steady state: starts the server
// command given after `--`, polls /health/ready every 10 ms, and the moment it
// answers 200 sends one POST /classify (multipart, n copies of one image) for
// each batch size n, in order: the "first" latency at that size. Then it
// repeats the same sequence --repeats times and reports each size's p50 and
// the ratio first / p50. Exit 1 when a ratio exceeds --max-ratio (issue 16:
// first request after ready within 2x the steady-state p50).
//
//   npx tsx bench/loadgen/first-request.ts --sizes 1-8 --repeats 30 --image photo.jpg \
//       --json bench/.out/first-request.json -- node dist/src/main.js --backend cuda --models swin-tiny
//
// Besides the client's view it reports the server's own (the replies' timings.total_ms: from the
// service taking the request to its result), whose ratio is free of the client's and the socket's
// costs. Before the first measured request the client sends one multipart POST to a path the
// server does not have (404, no body parsed), so that its own first POST is not counted.
//
// The server gets SWIN_HOST=127.0.0.1 and SWIN_PORT=--port (do not pass --port/--host to it).
// Without --image a 256x256 JPEG is made with sharp.
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { hostInfo } from './report.js';

interface Options {
  sizes: number[];
  repeats: number;
  image?: string;
  port: number;
  model?: string;
  maxRatio: number;
  readyTimeoutMs: number;
  json?: string;
  server: string[];
}

export interface SizeRow {
  batch: number;
  first_ms: number;
  p50_ms: number;
  ratio: number;
}

/** "1-4,8" -> [1, 2, 3, 4, 8] */
export function parseSizes(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`--sizes: ${JSON.stringify(part)} is not N or N-M`);
    const [a, b] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (a < 1 || b < a) throw new Error(`--sizes: ${JSON.stringify(part)} is not a rising range of sizes >= 1`);
    for (let n = a; n <= b; n++) out.push(n);
  }
  return out;
}

export function parseOptions(argv: string[]): Options {
  const sep = argv.indexOf('--');
  if (sep < 0 || sep === argv.length - 1) throw new Error('give the server command after --');
  const own = argv.slice(0, sep);
  const get = (name: string): string | undefined => {
    const i = own.indexOf(name);
    return i >= 0 ? own[i + 1] : undefined;
  };
  return {
    sizes: parseSizes(get('--sizes') ?? '1-8'),
    repeats: Number(get('--repeats') ?? '20'),
    image: get('--image'),
    port: Number(get('--port') ?? '28180'),
    model: get('--model'),
    maxRatio: Number(get('--max-ratio') ?? '2'),
    readyTimeoutMs: Number(get('--ready-timeout-s') ?? '600') * 1000,
    json: get('--json'),
    server: argv.slice(sep + 1),
  };
}

/** Median by nearest rank. */
export function p50(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(s.length / 2) - 1)];
}

export function rows(first: Map<number, number>, steady: Map<number, number[]>): SizeRow[] {
  const round = (x: number) => Math.round(x * 100) / 100;
  return [...first.entries()].map(([batch, f]) => {
    const mid = p50(steady.get(batch)!);
    return { batch, first_ms: round(f), p50_ms: round(mid), ratio: round(f / mid) };
  });
}

/** Client-side ms of one request; `timings` gets the server's own split (preprocess, queue, inference). */
function formOf(image: Buffer, n: number): FormData {
  const form = new FormData();
  for (let i = 0; i < n; i++) form.append('image', new Blob([new Uint8Array(image)]), `img${i}`);
  return form;
}

async function classify(url: string, image: Buffer, n: number, timings?: Record<string, number>[]): Promise<number> {
  const form = formOf(image, n);
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', body: form });
  const body = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`batch ${n}: HTTP ${res.status} ${body.slice(0, 300)}`);
  timings?.push((JSON.parse(body) as { timings: Record<string, number> }).timings);
  return ms;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const image = o.image
    ? await readFile(o.image)
    : await (
        await import('sharp')
      )
        .default({ create: { width: 256, height: 256, channels: 3, background: { r: 90, g: 140, b: 200 } } })
        .jpeg()
        .toBuffer();
  const base = `http://127.0.0.1:${o.port}`;
  const url = `${base}/classify${o.model ? `?model=${encodeURIComponent(o.model)}` : ''}`;
  const child = spawn(o.server[0], o.server.slice(1), {
    env: { ...process.env, SWIN_HOST: '127.0.0.1', SWIN_PORT: String(o.port) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let ended = false;
  void exited.then(() => (ended = true));
  try {
    // This client's own first multipart encoding is not the server's cost: pay it before measuring.
    await new Response(formOf(image, 2)).arrayBuffer();
    const t0 = performance.now();
    for (;;) {
      if (ended) throw new Error('the server exited before it was ready');
      if (performance.now() - t0 > o.readyTimeoutMs) throw new Error(`not ready after ${o.readyTimeoutMs} ms`);
      const r = await fetch(`${base}/health/ready`).then(
        (x) => x.status,
        () => 0,
      );
      if (r === 200) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    const readyS = (performance.now() - t0) / 1000;
    // The client's own first multipart POST (fetch, the form's stream): a 404, no body parsed.
    await fetch(`${base}/first-request-client-warmup`, { method: 'POST', body: formOf(image, 2) }).then((r) => r.arrayBuffer());
    const first = new Map<number, number>();
    const firstTimings: Record<string, number>[] = [];
    for (const n of o.sizes) first.set(n, await classify(url, image, n, firstTimings));
    const steady = new Map<number, number[]>(o.sizes.map((n) => [n, []]));
    const steadyServer = new Map<number, number[]>(o.sizes.map((n) => [n, []]));
    for (let r = 0; r < o.repeats; r++) {
      for (const n of o.sizes) {
        const t: Record<string, number>[] = [];
        steady.get(n)!.push(await classify(url, image, n, t));
        steadyServer.get(n)!.push(t[0]?.total_ms ?? NaN);
      }
    }
    const table = rows(first, steady);
    const worst = Math.max(...table.map((r) => r.ratio));
    const server = rows(new Map(o.sizes.map((n, i) => [n, firstTimings[i]?.total_ms ?? NaN])), steadyServer);
    const worstServer = Math.max(...server.map((r) => r.ratio));
    process.stdout.write(`ready after ${readyS.toFixed(1)} s; first request at each batch size against the p50 of ${o.repeats} more\n`);
    process.stdout.write('batch  first_ms    p50_ms  ratio   server: first_ms    p50_ms  ratio\n');
    for (const [i, r] of table.entries())
      process.stdout.write(
        `${String(r.batch).padStart(5)} ${r.first_ms.toFixed(2).padStart(9)} ${r.p50_ms.toFixed(2).padStart(9)} ${r.ratio.toFixed(2).padStart(6)}` +
          `   ${server[i].first_ms.toFixed(2).padStart(15)} ${server[i].p50_ms.toFixed(2).padStart(9)} ${server[i].ratio.toFixed(2).padStart(6)}\n`,
      );
    process.stdout.write(`server-side timings of the first request: ${JSON.stringify(firstTimings[0])}\n`);
    process.stdout.write(`worst ratio ${worst.toFixed(2)} (limit ${o.maxRatio}); server-side worst ratio ${worstServer.toFixed(2)}\n`);
    if (o.json) {
      await mkdir(dirname(o.json), { recursive: true });
      await writeFile(
        o.json,
        JSON.stringify(
          {
            kind: 'first-request',
            host: hostInfo(),
            server: o.server,
            ready_s: readyS,
            repeats: o.repeats,
            rows: table,
            server_rows: server,
            first_timings: firstTimings,
            worst_ratio: worst,
            server_worst_ratio: worstServer,
          },
          null,
          2,
        ),
      );
    }
    process.exitCode = worst > o.maxRatio ? 1 : 0;
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`first-request: ${(err as Error).message}\n`);
    process.exit(2);
  });
}
