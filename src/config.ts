// Service configuration: every setting comes from a command-line flag
// (`--port 9000`, `--max-batch-size=16`) or an environment variable
// (`SWIN_PORT`, or the older unprefixed `PORT`), flag first, then the SWIN_
// name, then the plain name, then the default. `--help` is printed from the
// table below; docs/configuration.md lists the same settings and
// test/config.test.ts checks that both do.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { accessConfigFromEnv, type AccessConfig } from './api/access/access-config.js';
import type { BackendChoice, Variant } from './backends/backend.js';
import type { DecodeMode } from './decode/gpu-decode.js';

export interface Config {
  port: number;
  grpcPort: number;
  host: string;
  modelsDir: string;
  /** Model folder names to load at start; empty = every model folder under modelsDir. */
  models: string[];
  /** Triton's --model-control-mode: none (load/unload refused), explicit (load/unload on request), poll (rescan modelsDir). */
  modelControlMode: ModelControlMode;
  /** poll mode: seconds between rescans of modelsDir. */
  repositoryPollSecs: number;
  backend: BackendChoice;
  /** Where JPEGs are decoded: auto (GPU when the model runs on a native GPU backend), cpu (sharp), gpu (src/decode/gpu-decode.ts). */
  decode: DecodeMode;
  /**
   * JPEGs for an engine that decodes on its GPU (the cuda backend with nvJPEG) travel encoded through
   * the batcher and are decoded per batch into the engine's input (addon/binding/image_batch.h);
   * false: per request, through src/decode/gpu-decode.ts. Only where `decode` sends JPEGs to the GPU.
   */
  batchDecode: boolean;
  /** Child processes that run sharp for the CPU decode path (src/decode/decode-pool.ts); 0 = in this process. */
  decodeProcesses: number;
  /** Variant to serve first (overrides model.json default_variant); undefined = the model's choice. */
  variant?: Variant;
  /** GPUs the native backends use (Triton's instance-group `gpus`); empty = every visible GPU. */
  devices: number[];
  batching: {
    maxBatchSize?: number;
    maxQueueDelayMs?: number;
    maxQueueSize?: number;
    instances?: number;
  };
  /** Override model.json's priority levels and default queue policy (src/batching/queue-policy.ts). */
  queuePolicy: {
    priorityLevels?: number;
    defaultPriorityLevel?: number;
    defaultTimeoutMs?: number;
    maxTimeoutMs?: number;
    timeoutAction?: 'reject' | 'delay';
  };
  ort: { intraOpThreads: number; interOpThreads: number };
  limits: {
    /** Largest HTTP request body, bytes. */
    maxBodyBytes: number;
    /** Largest decoded image, width x height pixels (decompression-bomb guard). */
    maxImagePixels: number;
    maxImagesPerRequest: number;
  };
  /** Decode admission by cost (src/decode/decode-gate.ts): per-image limit and the budget of expensive decodes at once, estimated ms. */
  decodeCost: { maxImageMs: number; budgetMs: number };
  /** Decoder warnings (damaged images) refuse the image with 400 SWIN_IMAGE_DAMAGED instead of being reported. */
  decodeStrict: boolean;
  /** Bytes of request bodies (HTTP bodies, gRPC messages) held at once; over it: 503 / UNAVAILABLE SWIN_MEMORY_BUDGET (src/api/body-budget.ts). */
  bodyMemoryBudgetBytes: number;
  /** Accepted image formats as sharp names them (svg only when listed explicitly). */
  acceptedFormats: string[];
  /** Per-request deadline, ms from receipt; 504 after it. */
  requestTimeoutMs: number;
  /** HTTP slow-client limits, ms (src/api/http/http-timeouts.ts). */
  http: { headersTimeoutMs: number; bodyTimeoutMs: number; idleTimeoutMs: number };
  /** SIGTERM: keep serving (not ready) this long before closing the listeners, ms (a pre-stop hook's sleep). */
  shutdownDelayMs: number;
  /** How long SIGTERM waits for accepted work before giving up, ms. */
  drainTimeoutMs: number;
  /** Wait before re-testing a variant taken out of service, ms (doubles up to 10 min). */
  selftestRetryMs: number;
  /** Worker threads that parse HTTP and gRPC in front of the one scheduler on the main thread (src/api/workers/); 0 = the main thread does. */
  frontendWorkers: number;
  /** Before the listeners open, send unrecorded POST /classify requests through the app (src/api/http/warmup.ts). */
  warmupRequests: boolean;
  /** gRPC connections are closed (GOAWAY) after this long, so clients re-resolve and re-balance; 0 = never. */
  grpcMaxConnectionAgeMs: number;
  /** Default top_k when the request names none (capped at the model's class count). */
  defaultTopK: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Auth, TLS, rate limiting, CORS: environment only (src/api/access/access-config.ts). */
  access: AccessConfig;
}

export type ModelControlMode = 'none' | 'explicit' | 'poll';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Kind = { type: 'int'; min: number; max: number } | { type: 'string' } | { type: 'enum'; values: readonly string[] } | { type: 'list' };

interface Setting {
  /** Unprefixed variable name; SWIN_<env> is accepted too and wins over it. */
  env: string;
  flag: string;
  kind: Kind;
  /** undefined = unset (the model.json value or a computed default applies). */
  def?: string;
  /** One line for --help: what the setting does; `unset` says what applies when def is undefined. */
  help: string;
  unset?: string;
}

/** Prefix every environment variable may carry (`SWIN_PORT`); the plain name (`PORT`) still works. */
export const ENV_PREFIX = 'SWIN_';

const PORT: Kind = { type: 'int', min: 0, max: 65535 };
const POSITIVE = (max: number): Kind => ({ type: 'int', min: 1, max });
const NON_NEGATIVE = (max: number): Kind => ({ type: 'int', min: 0, max });

/** The table behind docs/configuration.md. */
export const SETTINGS: readonly Setting[] = [
  { env: 'PORT', flag: 'port', kind: PORT, def: '8080', help: 'HTTP port (REST, KServe v2 REST, /metrics)' },
  {
    env: 'GRPC_PORT',
    flag: 'grpc-port',
    kind: PORT,
    def: '8081',
    help: 'gRPC port (swin.v1.Classifier, KServe v2 gRPC, health, reflection)',
  },
  { env: 'HOST', flag: 'host', kind: { type: 'string' }, def: '0.0.0.0', help: 'address both servers bind' },
  {
    env: 'MODELS_DIR',
    flag: 'models-dir',
    kind: { type: 'string' },
    def: 'engines/models',
    help: 'model repository: one folder per model with a model.json',
  },
  {
    env: 'MODELS',
    flag: 'models',
    kind: { type: 'list' },
    def: '',
    help: 'comma-separated model folders to load at startup',
    unset: 'all',
  },
  {
    env: 'MODEL_CONTROL_MODE',
    flag: 'model-control-mode',
    kind: { type: 'enum', values: ['none', 'explicit', 'poll'] },
    def: 'none',
    help: 'none: models fixed at start; explicit: /v2/repository load and unload; poll: rescan the models folder',
  },
  {
    env: 'REPOSITORY_POLL_SECS',
    flag: 'repository-poll-secs',
    kind: POSITIVE(86_400),
    def: '15',
    help: 'poll mode: seconds between rescans of the models folder',
  },
  {
    env: 'BACKEND',
    flag: 'backend',
    kind: { type: 'enum', values: ['auto', 'tensorrt', 'cuda', 'onnxruntime'] },
    def: 'auto',
    help: 'engine per variant: auto tries tensorrt, cuda, then onnxruntime',
  },
  {
    env: 'DECODE',
    flag: 'decode',
    kind: { type: 'enum', values: ['auto', 'cpu', 'gpu'] },
    def: 'auto',
    help: 'where JPEGs are decoded: auto (GPU with a GPU backend), cpu, gpu',
  },
  {
    env: 'BATCH_DECODE',
    flag: 'batch-decode',
    kind: { type: 'enum', values: ['true', 'false'] },
    def: 'true',
    help: 'true: JPEGs for the cuda backend are decoded per batch on its GPU, into the engine input; false: per request',
  },
  {
    env: 'DECODE_PROCESSES',
    flag: 'decode-processes',
    kind: NON_NEGATIVE(256),
    def: '0',
    help: 'child processes running sharp; 0 decodes in this process',
  },
  {
    env: 'VARIANT',
    flag: 'variant',
    kind: { type: 'enum', values: ['fold', 'unfold'] },
    help: 'variant served first (fold or unfold)',
    unset: 'model.json default_variant',
  },
  {
    env: 'DEVICES',
    flag: 'devices',
    kind: { type: 'list' },
    def: '',
    help: 'comma-separated GPU ordinals a model runs on',
    unset: 'every visible GPU',
  },
  { env: 'MAX_BATCH_SIZE', flag: 'max-batch-size', kind: POSITIVE(4096), help: 'images per engine run, at most', unset: 'model.json' },
  {
    env: 'MAX_QUEUE_DELAY_MS',
    flag: 'max-queue-delay-ms',
    kind: NON_NEGATIVE(60_000),
    help: 'longest an image waits for others before a partial batch runs',
    unset: 'model.json',
  },
  {
    env: 'MAX_QUEUE_SIZE',
    flag: 'max-queue-size',
    kind: POSITIVE(1_000_000),
    help: 'images waiting per model variant before 503 SWIN_QUEUE_FULL',
    unset: 'model.json',
  },
  { env: 'INSTANCES', flag: 'instances', kind: POSITIVE(64), help: 'batches in flight at once per variant', unset: 'model.json' },
  {
    env: 'PRIORITY_LEVELS',
    flag: 'priority-levels',
    kind: POSITIVE(16),
    help: 'priority levels of every model (1 runs first)',
    unset: 'model.json',
  },
  {
    env: 'DEFAULT_PRIORITY_LEVEL',
    flag: 'default-priority-level',
    kind: POSITIVE(16),
    help: 'level of a request that names none',
    unset: 'model.json',
  },
  {
    env: 'DEFAULT_TIMEOUT_MS',
    flag: 'default-timeout-ms',
    kind: NON_NEGATIVE(3_600_000),
    help: 'queue-policy timeout of a request that names none, ms',
    unset: 'model.json',
  },
  {
    env: 'MAX_TIMEOUT_MS',
    flag: 'max-timeout-ms',
    kind: NON_NEGATIVE(3_600_000),
    help: 'largest timeout a request may ask for, ms',
    unset: 'model.json',
  },
  {
    env: 'TIMEOUT_ACTION',
    flag: 'timeout-action',
    kind: { type: 'enum', values: ['reject', 'delay'] },
    help: 'what a timed-out queued request gets: reject (504) or delay',
    unset: 'model.json',
  },
  {
    env: 'ORT_INTRA_OP_THREADS',
    flag: 'ort-intra-op-threads',
    kind: NON_NEGATIVE(1024),
    def: '0',
    help: 'onnxruntime threads inside one operator per session; 0 = cores / instances',
  },
  {
    env: 'ORT_INTER_OP_THREADS',
    flag: 'ort-inter-op-threads',
    kind: NON_NEGATIVE(1024),
    def: '1',
    help: 'onnxruntime threads across operators',
  },
  {
    env: 'MAX_BODY_BYTES',
    flag: 'max-body-bytes',
    kind: POSITIVE(1 << 30),
    def: String(16 * 1024 * 1024),
    help: 'largest request body in bytes (also the gRPC message limit)',
  },
  {
    env: 'MAX_IMAGE_PIXELS',
    flag: 'max-image-pixels',
    kind: POSITIVE(1_000_000_000),
    def: '25000000',
    help: 'largest image, width x height, checked before decoding',
  },
  {
    env: 'MAX_DECODE_COST_MS',
    flag: 'max-decode-cost-ms',
    kind: POSITIVE(3_600_000),
    def: '2000',
    help: 'largest estimated decode cost of one image, ms of one core (413 SWIN_IMAGE_TOO_COSTLY)',
  },
  {
    env: 'DECODE_COST_BUDGET_MS',
    flag: 'decode-cost-budget-ms',
    kind: POSITIVE(3_600_000),
    help: 'estimated ms of expensive decodes running at once; more wait their turn per client',
    unset: '1000 per core, less one core',
  },
  {
    env: 'DECODE_STRICT',
    flag: 'decode-strict',
    kind: { type: 'enum', values: ['false', 'true'] },
    def: 'false',
    help: 'true: images the decoder warns about get 400 SWIN_IMAGE_DAMAGED instead of warnings in the reply',
  },
  {
    env: 'BODY_MEMORY_BUDGET_BYTES',
    flag: 'body-memory-budget-bytes',
    kind: POSITIVE(2 ** 50),
    help: 'bytes of request bodies in flight at once; over it 503 SWIN_MEMORY_BUDGET',
    unset: 'a quarter of the memory limit',
  },
  { env: 'MAX_IMAGES_PER_REQUEST', flag: 'max-images-per-request', kind: POSITIVE(4096), def: '64', help: 'images in one request' },
  {
    env: 'ACCEPTED_FORMATS',
    flag: 'accepted-formats',
    kind: { type: 'list' },
    def: 'jpeg,png,webp,gif,tiff,avif',
    help: 'image formats decoded (svg only when listed)',
  },
  {
    env: 'REQUEST_TIMEOUT_MS',
    flag: 'request-timeout-ms',
    kind: POSITIVE(3_600_000),
    def: '30000',
    help: 'deadline of a request, ms (504 after it)',
  },
  {
    env: 'HEADERS_TIMEOUT_MS',
    flag: 'headers-timeout-ms',
    kind: POSITIVE(3_600_000),
    def: '10000',
    help: 'time a client has to send the request headers, ms (408)',
  },
  {
    env: 'BODY_TIMEOUT_MS',
    flag: 'body-timeout-ms',
    kind: POSITIVE(3_600_000),
    def: '30000',
    help: 'time a client has to send the whole request, ms (408)',
  },
  {
    env: 'IDLE_TIMEOUT_MS',
    flag: 'idle-timeout-ms',
    kind: POSITIVE(3_600_000),
    def: '72000',
    help: 'idle keep-alive connections close after this, ms',
  },
  {
    env: 'SHUTDOWN_DELAY_MS',
    flag: 'shutdown-delay-ms',
    kind: NON_NEGATIVE(3_600_000),
    def: '0',
    help: 'after SIGTERM, keep serving (readiness 503) this long before closing listeners, ms',
  },
  {
    env: 'DRAIN_TIMEOUT_MS',
    flag: 'drain-timeout-ms',
    kind: POSITIVE(3_600_000),
    def: '30000',
    help: 'how long SIGTERM/SIGINT waits for accepted work, ms',
  },
  {
    env: 'SELFTEST_RETRY_MS',
    flag: 'selftest-retry-ms',
    kind: POSITIVE(3_600_000),
    def: '30000',
    help: 'wait before a failed variant is tested again, ms (doubles, up to 10 min)',
  },
  {
    env: 'FRONTEND_WORKERS',
    flag: 'frontend-workers',
    kind: NON_NEGATIVE(64),
    def: '0',
    help: 'worker threads that parse HTTP and gRPC (SO_REUSEPORT, Node >= 22.12) and feed the one scheduler; 0 = the main thread',
  },
  {
    env: 'WARMUP_REQUESTS',
    flag: 'warmup-requests',
    kind: { type: 'enum', values: ['false', 'true'] },
    def: 'true',
    help: 'true: before listening, send unrecorded POST /classify requests to every ready model (a warm first request)',
  },
  {
    env: 'GRPC_MAX_CONNECTION_AGE_MS',
    flag: 'grpc-max-connection-age-ms',
    kind: NON_NEGATIVE(2_147_483_647),
    def: '0',
    help: 'gRPC connections get GOAWAY after this, ms, so clients re-balance; 0 = never',
  },
  {
    env: 'DEFAULT_TOP_K',
    flag: 'default-top-k',
    kind: POSITIVE(100_000),
    def: '5',
    help: 'classes per image when the request names no top_k',
  },
  {
    env: 'LOG_LEVEL',
    flag: 'log-level',
    kind: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    def: 'info',
    help: 'pino log level',
  },
];

/** Read by src/api/access/access-config.ts from the environment only; listed here for --help and the SWIN_ prefix. */
export const ENV_ONLY: ReadonlyArray<{ env: string; def: string; help: string }> = [
  { env: 'AUTH_API_KEYS', def: '(none: auth off)', help: 'comma-separated API keys (Authorization: Bearer or x-api-key)' },
  { env: 'AUTH_API_KEYS_FILE', def: '(none)', help: 'file with one API key per line, re-read on SIGHUP' },
  { env: 'AUTH_PUBLIC_HEALTH', def: 'true', help: 'health endpoints need no key' },
  { env: 'AUTH_PUBLIC_METRICS', def: 'true', help: '/metrics needs no key' },
  { env: 'TLS_CERT_FILE', def: '(none)', help: 'PEM certificate; with TLS_KEY_FILE: HTTPS and gRPC over TLS' },
  { env: 'TLS_KEY_FILE', def: '(none)', help: 'PEM private key of TLS_CERT_FILE' },
  { env: 'RATE_LIMIT_RPS', def: '0 (off)', help: 'requests per second per client' },
  { env: 'RATE_LIMIT_BURST', def: "one second's worth", help: 'requests a client may send at once' },
  { env: 'CORS_ORIGINS', def: '(none: CORS off)', help: 'comma-separated allowed origins, * for any' },
  { env: 'TRUST_PROXY', def: '(none)', help: 'reverse proxies whose X-Forwarded-For names the client' },
];

/**
 * The environment as the settings read it: for every known name N, SWIN_N (when set and
 * non-empty) replaces N. `source(N)` names the variable a value came from, for errors.
 */
export function resolveEnv(env: NodeJS.ProcessEnv): { env: Record<string, string | undefined>; source: (name: string) => string } {
  const out: Record<string, string | undefined> = { ...env };
  const prefixed = new Set<string>();
  for (const name of [...SETTINGS.map((s) => s.env), ...ENV_ONLY.map((s) => s.env)]) {
    const v = env[ENV_PREFIX + name];
    if (v !== undefined && v !== '') {
      out[name] = v;
      prefixed.add(name);
    }
  }
  return { env: out, source: (name) => (prefixed.has(name) ? ENV_PREFIX + name : name) };
}

export const KNOWN_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif', 'svg'] as const;

/** source: 'flag', 'default', or the environment variable's name. */
function check(setting: Setting, raw: string, source: string): string | number | string[] {
  const where = `${source === 'flag' ? `--${setting.flag}` : source === 'default' ? setting.env : source}=${JSON.stringify(raw)}`;
  const k = setting.kind;
  switch (k.type) {
    case 'int': {
      if (!/^\s*-?\d+\s*$/.test(raw)) throw new ConfigError(`${where}: expected an integer`);
      const n = Number(raw);
      if (n < k.min || n > k.max) throw new ConfigError(`${where}: must be between ${k.min} and ${k.max}`);
      return n;
    }
    case 'enum':
      if (!k.values.includes(raw)) throw new ConfigError(`${where}: must be one of ${k.values.join(', ')}`);
      return raw;
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    case 'string':
      if (raw.length === 0) throw new ConfigError(`${where}: must not be empty`);
      return raw;
  }
}

/** Parses flags (argv without node and script) and environment; throws ConfigError naming the bad setting. */
export function loadConfig(argv: string[] = process.argv.slice(2), rawEnv: NodeJS.ProcessEnv = process.env): Config {
  const { env, source } = resolveEnv(rawEnv);
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: argv,
      options: Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ConfigError(`bad command line: ${(err as Error).message}`);
  }
  const v = new Map<string, string | number | string[] | undefined>();
  for (const s of SETTINGS) {
    const flag = flags[s.flag];
    const fromEnv = env[s.env];
    if (typeof flag === 'string') v.set(s.env, check(s, flag, 'flag'));
    else if (fromEnv !== undefined && fromEnv !== '') v.set(s.env, check(s, fromEnv, source(s.env)));
    else v.set(s.env, s.def === undefined ? undefined : check(s, s.def, 'default'));
  }
  const num = (k: string) => v.get(k) as number;
  const opt = (k: string) => v.get(k) as number | undefined;

  const formats = v.get('ACCEPTED_FORMATS') as string[];
  for (const f of formats) {
    if (!(KNOWN_FORMATS as readonly string[]).includes(f)) {
      throw new ConfigError(`ACCEPTED_FORMATS: unknown format ${JSON.stringify(f)}; known: ${KNOWN_FORMATS.join(', ')}`);
    }
  }
  if (formats.length === 0) throw new ConfigError('ACCEPTED_FORMATS: must name at least one format');
  const devices = (v.get('DEVICES') as string[]).map((d) => {
    if (!/^\d+$/.test(d) || Number(d) > 1023) throw new ConfigError(`DEVICES: ${JSON.stringify(d)} is not a GPU index (0, 1, ...)`);
    return Number(d);
  });
  if (new Set(devices).size !== devices.length) throw new ConfigError(`DEVICES: ${devices.join(',')} names a GPU twice`);

  return {
    port: num('PORT'),
    grpcPort: num('GRPC_PORT'),
    host: v.get('HOST') as string,
    modelsDir: v.get('MODELS_DIR') as string,
    models: v.get('MODELS') as string[],
    modelControlMode: v.get('MODEL_CONTROL_MODE') as ModelControlMode,
    repositoryPollSecs: num('REPOSITORY_POLL_SECS'),
    backend: v.get('BACKEND') as BackendChoice,
    decode: v.get('DECODE') as DecodeMode,
    batchDecode: v.get('BATCH_DECODE') === 'true',
    decodeProcesses: num('DECODE_PROCESSES'),
    variant: v.get('VARIANT') as Variant | undefined,
    devices,
    batching: {
      maxBatchSize: opt('MAX_BATCH_SIZE'),
      maxQueueDelayMs: opt('MAX_QUEUE_DELAY_MS'),
      maxQueueSize: opt('MAX_QUEUE_SIZE'),
      instances: opt('INSTANCES'),
    },
    queuePolicy: {
      priorityLevels: opt('PRIORITY_LEVELS'),
      defaultPriorityLevel: opt('DEFAULT_PRIORITY_LEVEL'),
      defaultTimeoutMs: opt('DEFAULT_TIMEOUT_MS'),
      maxTimeoutMs: opt('MAX_TIMEOUT_MS'),
      timeoutAction: v.get('TIMEOUT_ACTION') as 'reject' | 'delay' | undefined,
    },
    ort: {
      // 0 lets onnxruntime pick (one thread per physical core).
      intraOpThreads: num('ORT_INTRA_OP_THREADS'),
      interOpThreads: num('ORT_INTER_OP_THREADS'),
    },
    limits: {
      maxBodyBytes: num('MAX_BODY_BYTES'),
      maxImagePixels: num('MAX_IMAGE_PIXELS'),
      maxImagesPerRequest: num('MAX_IMAGES_PER_REQUEST'),
    },
    decodeCost: {
      maxImageMs: num('MAX_DECODE_COST_MS'),
      budgetMs: opt('DECODE_COST_BUDGET_MS') ?? 1000 * Math.max(1, os.availableParallelism() - 1),
    },
    decodeStrict: v.get('DECODE_STRICT') === 'true',
    bodyMemoryBudgetBytes: opt('BODY_MEMORY_BUDGET_BYTES') ?? defaultBodyMemoryBudget(),
    acceptedFormats: formats,
    requestTimeoutMs: num('REQUEST_TIMEOUT_MS'),
    http: { headersTimeoutMs: num('HEADERS_TIMEOUT_MS'), bodyTimeoutMs: num('BODY_TIMEOUT_MS'), idleTimeoutMs: num('IDLE_TIMEOUT_MS') },
    shutdownDelayMs: num('SHUTDOWN_DELAY_MS'),
    drainTimeoutMs: num('DRAIN_TIMEOUT_MS'),
    selftestRetryMs: num('SELFTEST_RETRY_MS'),
    frontendWorkers: frontendWorkers(num('FRONTEND_WORKERS')),
    warmupRequests: v.get('WARMUP_REQUESTS') === 'true',
    grpcMaxConnectionAgeMs: num('GRPC_MAX_CONNECTION_AGE_MS'),
    defaultTopK: num('DEFAULT_TOP_K'),
    logLevel: v.get('LOG_LEVEL') as Config['logLevel'],
    access: readAccess(env),
  };
}

/** FRONTEND_WORKERS, refused where it cannot work as documented (docs/configuration.md#front-end-workers). */
function frontendWorkers(n: number): number {
  if (n === 0) return 0;
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 22 || (major === 22 && minor < 12))
    throw new ConfigError(`FRONTEND_WORKERS: needs Node >= 22.12 (listening with SO_REUSEPORT); this is ${process.version}`);
  return n;
}

function readAccess(env: Record<string, string | undefined>): AccessConfig {
  try {
    return accessConfigFromEnv(env);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/**
 * A quarter of the memory this process may use: the cgroup limit (v2 memory.max, v1
 * limit_in_bytes) where one is set, else the machine's memory. Bodies are held as Buffers
 * (plus what parsing them costs), so the rest is left for engines, decoding and the heap.
 */
export function defaultBodyMemoryBudget(): number {
  let limit = os.totalmem();
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const raw = readFileSync(file, 'utf8').trim();
      if (/^\d+$/.test(raw) && Number(raw) < limit) limit = Number(raw);
      break;
    } catch {
      // no such cgroup file: try the next, else the machine's memory
    }
  }
  return Math.floor(limit / 4);
}

/** Worker threads for libuv (sharp decodes there): enough to keep every core busy decoding. */
export function defaultThreadpoolSize(): number {
  return Math.max(4, os.availableParallelism());
}
