// Command-line flags of `npm run bench`. HELP below is the documentation;
// parseBenchArgs turns argv into a checked BenchOptions or throws UsageError.

export type Api = 'http' | 'grpc';
export type Mode = 'closed' | 'open';
export type Arrival = 'poisson' | 'constant';

export interface BenchOptions {
  api: Api;
  /** Base URL of the HTTP server, e.g. http://127.0.0.1:8080 */
  url: string;
  /** HTTP path of the raw-body classify endpoint. */
  path: string;
  /** host:port of the gRPC server. */
  grpcTarget: string;
  /** Path of swin/v1/classifier.proto (loaded at run time with @grpc/proto-loader). */
  proto: string;
  model?: string;
  topK?: number;
  images: string;
  /** Load at most this many images from the folder (0: all). */
  maxImages: number;
  mode: Mode;
  /** closed loop: requests kept in flight, one step per value */
  concurrency: number[];
  /** open loop: requests per second, one step per value */
  rates: number[];
  arrival: Arrival;
  /** open loop: more requests in flight than this are not sent and count as "client_overload" */
  maxInFlight: number;
  /** seconds */
  warmup: number;
  /** seconds, the measured window of each step */
  duration: number;
  /** ms; a request that takes longer is abandoned and counted as "timeout" */
  timeoutMs: number;
  /** HTTP connections kept alive (default: max concurrency, or maxInFlight in open loop) */
  connections: number;
  json?: string;
  csv?: string;
  label: string;
  /** ms between progress updates on stderr; 0 turns progress off */
  progressMs: number;
  /** Parse each 200 reply and count the top-1 labels (costs client CPU). */
  check: boolean;
  /** Allow a non-loopback URL/target. */
  allowRemote: boolean;
  seed: number;
  /** Load-generator processes each step is spread over (procs.ts); 1: this one. */
  procs: number;
  help: boolean;
}

export class UsageError extends Error {}

export const HELP = `Usage: npm run bench -- [options]

Load generator for swin-serve: sends real images to POST /classify (HTTP, raw
image body) or swin.v1.Classifier/Predict (gRPC) and reports throughput,
latency percentiles (p50/p90/p95/p99) and errors by code for each step of a
closed-loop concurrency sweep or an open-loop request-rate sweep.

Target
  --api http|grpc          protocol (default http)
  --url URL                HTTP base URL (default http://127.0.0.1:8080)
  --path PATH              HTTP classify path (default /classify)
  --grpc-target HOST:PORT  gRPC server (default 127.0.0.1:8081)
  --proto FILE             classifier proto (default proto/swin/v1/classifier.proto)
  --model NAME             model to ask for (default: the server's default model)
  --top-k N                top_k to ask for (default: the server's default)
  --allow-remote           allow a target that is not loopback (default: refuse)

Images
  --images DIR             folder of .jpg/.jpeg/.png/.webp files (default bench/.images/photos;
                           build it with: npm run bench:images)
  --max-images N           use at most N images of the folder (default 0 = all)

Load
  --mode closed|open       closed: fixed number of requests in flight (default);
                           open: requests sent at a fixed rate whatever the replies do
  --concurrency LIST       closed loop, comma-separated in-flight counts, one step each
                           (default 1,2,4,8,16,32)
  --rate LIST              open loop, comma-separated requests/s, one step each (required with --mode open)
  --arrival poisson|constant  open loop inter-arrival times (default poisson)
  --max-in-flight N        open loop: requests beyond N in flight are not sent and counted as
                           "client_overload" (default 1024)
  --connections N          HTTP keep-alive connections (default: the step's concurrency, or
                           --max-in-flight in open loop)
  --warmup DURATION        unmeasured load before each step's window (default 2s)
  --duration DURATION      measured window of each step (default 10s)
  --procs N                spread each step over N load-generator processes (closed loop: the
                           concurrency split between them; open loop: the rate), results merged;
                           one Node process tops out near one core (default 1)
  --timeout DURATION       per-request timeout, counted as "timeout" (default 30s)
                           Durations: 500ms, 10s, 2m or plain seconds. A run ends by itself after
                           at most steps x (warmup + duration) + timeout.

Output
  --json FILE              write all steps, options and host info as JSON
  --csv FILE               write one CSV row per step
  --label TEXT             name of this run in the outputs (default "<api> <mode>")
  --progress MS            progress line on stderr every MS ms (default 500; 0 = off)
  --check                  parse every 200 reply and count top-1 labels (costs client CPU)
  --seed N                 seed of the image order and Poisson arrivals (default 1)
  -h, --help               this text

Latency is measured from the moment a request is sent (closed loop) or from the
moment it was scheduled (open loop, so a slow server cannot hide queueing behind
a slow client). Closed loop counts replies that arrive inside the window; open
loop counts requests scheduled inside the window and waits for them to finish.

Examples
  npm run bench -- --concurrency 1,4,16 --duration 10s --json out.json
  npm run bench -- --mode open --rate 50,100,200 --arrival poisson --csv out.csv
  npm run bench -- --api grpc --grpc-target 127.0.0.1:8081 --concurrency 8
`;

/** "500ms" | "10s" | "2m" | "3" (seconds) -> seconds */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: expected a duration like 500ms, 10s, 2m; got "${text}"`);
  const v = Number(m[1]);
  const unit = m[2] ?? 's';
  return unit === 'ms' ? v / 1000 : unit === 'm' ? v * 60 : v;
}

function parsePositiveInt(text: string, flag: string, allowZero = false): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) {
    throw new UsageError(`${flag}: expected a ${allowZero ? 'non-negative' : 'positive'} integer, got "${text}"`);
  }
  return n;
}

function parseList(text: string, flag: string, integer: boolean): number[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) throw new UsageError(`${flag}: expected a comma-separated list of numbers`);
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new UsageError(`${flag}: "${p}" is not a positive ${integer ? 'integer' : 'number'}`);
    }
    return n;
  });
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const FLAGS_WITH_VALUE = new Set([
  '--api',
  '--url',
  '--path',
  '--grpc-target',
  '--proto',
  '--model',
  '--top-k',
  '--images',
  '--max-images',
  '--mode',
  '--concurrency',
  '--rate',
  '--arrival',
  '--max-in-flight',
  '--connections',
  '--warmup',
  '--duration',
  '--timeout',
  '--json',
  '--csv',
  '--label',
  '--progress',
  '--seed',
  '--procs',
]);
const BOOLEAN_FLAGS = new Set(['--allow-remote', '--check', '-h', '--help']);

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const raw = new Map<string, string>();
  const bools = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (BOOLEAN_FLAGS.has(arg)) {
      if (value !== undefined) throw new UsageError(`${arg} takes no value`);
      bools.add(arg === '-h' ? '--help' : arg);
    } else if (FLAGS_WITH_VALUE.has(arg)) {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new UsageError(`${arg} needs a value`);
      }
      raw.set(arg, value);
    } else {
      throw new UsageError(`unknown option "${arg}" (see --help)`);
    }
  }

  const api = (raw.get('--api') ?? 'http') as Api;
  if (api !== 'http' && api !== 'grpc') throw new UsageError(`--api: expected http or grpc, got "${api}"`);
  const mode = (raw.get('--mode') ?? 'closed') as Mode;
  if (mode !== 'closed' && mode !== 'open') throw new UsageError(`--mode: expected closed or open, got "${mode}"`);
  const arrival = (raw.get('--arrival') ?? 'poisson') as Arrival;
  if (arrival !== 'poisson' && arrival !== 'constant') {
    throw new UsageError(`--arrival: expected poisson or constant, got "${arrival}"`);
  }
  if (mode === 'open' && !raw.has('--rate')) throw new UsageError('--mode open needs --rate (requests/s)');
  if (mode === 'closed' && raw.has('--rate')) throw new UsageError('--rate applies to --mode open only');
  if (mode === 'open' && raw.has('--concurrency')) throw new UsageError('--concurrency applies to --mode closed only');

  const url = raw.get('--url') ?? 'http://127.0.0.1:8080';
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    throw new UsageError(`--url: not a URL: "${url}"`);
  }
  if (parsedUrl.protocol !== 'http:') throw new UsageError(`--url: only http:// is supported, got "${url}"`);
  const grpcTarget = raw.get('--grpc-target') ?? '127.0.0.1:8081';
  const grpcHost = grpcTarget.replace(/:\d+$/, '');
  const allowRemote = bools.has('--allow-remote');
  if (!allowRemote) {
    const host = api === 'http' ? parsedUrl.hostname : grpcHost;
    if (!isLoopbackHost(host)) {
      throw new UsageError(`target host "${host}" is not loopback; pass --allow-remote to load a remote server`);
    }
  }

  const maxInFlight = parsePositiveInt(raw.get('--max-in-flight') ?? '1024', '--max-in-flight');
  const concurrency = parseList(raw.get('--concurrency') ?? '1,2,4,8,16,32', '--concurrency', true);
  const rates = raw.has('--rate') ? parseList(raw.get('--rate')!, '--rate', false) : [];
  const topK = raw.has('--top-k') ? parsePositiveInt(raw.get('--top-k')!, '--top-k') : undefined;
  const progressMs = parsePositiveInt(raw.get('--progress') ?? '500', '--progress', true);
  const duration = parseDuration(raw.get('--duration') ?? '10s', '--duration');
  if (duration <= 0) throw new UsageError('--duration must be longer than 0');
  const timeoutMs = parseDuration(raw.get('--timeout') ?? '30s', '--timeout') * 1000;
  if (timeoutMs <= 0) throw new UsageError('--timeout must be longer than 0');

  return {
    api,
    url: url.replace(/\/+$/, ''),
    path: raw.get('--path') ?? '/classify',
    grpcTarget,
    proto: raw.get('--proto') ?? 'proto/swin/v1/classifier.proto',
    model: raw.get('--model'),
    topK,
    images: raw.get('--images') ?? 'bench/.images/photos',
    maxImages: parsePositiveInt(raw.get('--max-images') ?? '0', '--max-images', true),
    mode,
    concurrency,
    rates,
    arrival,
    maxInFlight,
    warmup: parseDuration(raw.get('--warmup') ?? '2s', '--warmup'),
    duration,
    timeoutMs,
    connections: raw.has('--connections') ? parsePositiveInt(raw.get('--connections')!, '--connections') : 0,
    json: raw.get('--json'),
    csv: raw.get('--csv'),
    label: raw.get('--label') ?? `${api} ${mode}`,
    progressMs,
    check: bools.has('--check'),
    allowRemote,
    seed: parsePositiveInt(raw.get('--seed') ?? '1', '--seed', true),
    procs: parsePositiveInt(raw.get('--procs') ?? '1', '--procs'),
    help: bools.has('--help'),
  };
}
