// Service configuration: every setting comes from a command-line flag
// (`--port 9000`, `--max-batch-size=16`) or an environment variable (`PORT`),
// flag first, then environment, then the default. docs/configuration.md lists
// them all; test/config.test.ts checks that it does.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { accessConfigFromEnv, type AccessConfig } from './access/access-config.js';
import type { BackendChoice, Variant } from './backends/backend.js';
import type { DecodeMode } from './gpu-decode.js';

export interface Config {
  port: number;
  grpcPort: number;
  host: string;
  modelsDir: string;
  /** Model folder names to load; empty = every folder under modelsDir with a model.json. */
  models: string[];
  backend: BackendChoice;
  /** Where JPEGs are decoded: auto (GPU when the model runs on a native GPU backend), cpu (sharp), gpu (src/gpu-decode.ts). */
  decode: DecodeMode;
  /** Child processes that run sharp for the CPU decode path (src/decode-pool.ts); 0 = in this process. */
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
  ort: { intraOpThreads: number; interOpThreads: number };
  limits: {
    /** Largest HTTP request body, bytes. */
    maxBodyBytes: number;
    /** Largest decoded image, width x height pixels (decompression-bomb guard). */
    maxImagePixels: number;
    maxImagesPerRequest: number;
  };
  /** Accepted image formats as sharp names them (svg only when listed explicitly). */
  acceptedFormats: string[];
  /** Per-request deadline, ms from receipt; 504 after it. */
  requestTimeoutMs: number;
  /** How long SIGTERM waits for accepted work before giving up, ms. */
  drainTimeoutMs: number;
  /** Wait before re-testing a variant taken out of service, ms (doubles up to 10 min). */
  selftestRetryMs: number;
  /** gRPC connections are closed (GOAWAY) after this long, so clients re-resolve and re-balance; 0 = never. */
  grpcMaxConnectionAgeMs: number;
  /** Default top_k when the request names none (capped at the model's class count). */
  defaultTopK: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Auth, TLS, rate limiting, CORS: environment only (src/access/access-config.ts). */
  access: AccessConfig;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Kind =
  | { type: 'int'; min: number; max: number }
  | { type: 'string' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'list' };

interface Setting {
  env: string;
  flag: string;
  kind: Kind;
  /** undefined = unset (the model.json value or a computed default applies). */
  def?: string;
}

const PORT: Kind = { type: 'int', min: 0, max: 65535 };
const POSITIVE = (max: number): Kind => ({ type: 'int', min: 1, max });
const NON_NEGATIVE = (max: number): Kind => ({ type: 'int', min: 0, max });

/** The table behind docs/configuration.md. */
export const SETTINGS: readonly Setting[] = [
  { env: 'PORT', flag: 'port', kind: PORT, def: '8080' },
  { env: 'GRPC_PORT', flag: 'grpc-port', kind: PORT, def: '8081' },
  { env: 'HOST', flag: 'host', kind: { type: 'string' }, def: '0.0.0.0' },
  { env: 'MODELS_DIR', flag: 'models-dir', kind: { type: 'string' }, def: 'engines/models' },
  { env: 'MODELS', flag: 'models', kind: { type: 'list' }, def: '' },
  { env: 'BACKEND', flag: 'backend', kind: { type: 'enum', values: ['auto', 'tensorrt', 'cuda', 'onnxruntime'] }, def: 'auto' },
  { env: 'DECODE', flag: 'decode', kind: { type: 'enum', values: ['auto', 'cpu', 'gpu'] }, def: 'auto' },
  { env: 'DECODE_PROCESSES', flag: 'decode-processes', kind: NON_NEGATIVE(256), def: '0' },
  { env: 'VARIANT', flag: 'variant', kind: { type: 'enum', values: ['fold', 'unfold'] } },
  { env: 'DEVICES', flag: 'devices', kind: { type: 'list' }, def: '' },
  { env: 'MAX_BATCH_SIZE', flag: 'max-batch-size', kind: POSITIVE(4096) },
  { env: 'MAX_QUEUE_DELAY_MS', flag: 'max-queue-delay-ms', kind: NON_NEGATIVE(60_000) },
  { env: 'MAX_QUEUE_SIZE', flag: 'max-queue-size', kind: POSITIVE(1_000_000) },
  { env: 'INSTANCES', flag: 'instances', kind: POSITIVE(64) },
  { env: 'ORT_INTRA_OP_THREADS', flag: 'ort-intra-op-threads', kind: NON_NEGATIVE(1024), def: '0' },
  { env: 'ORT_INTER_OP_THREADS', flag: 'ort-inter-op-threads', kind: NON_NEGATIVE(1024), def: '1' },
  { env: 'MAX_BODY_BYTES', flag: 'max-body-bytes', kind: POSITIVE(1 << 30), def: String(16 * 1024 * 1024) },
  { env: 'MAX_IMAGE_PIXELS', flag: 'max-image-pixels', kind: POSITIVE(1_000_000_000), def: '25000000' },
  { env: 'MAX_IMAGES_PER_REQUEST', flag: 'max-images-per-request', kind: POSITIVE(4096), def: '64' },
  { env: 'ACCEPTED_FORMATS', flag: 'accepted-formats', kind: { type: 'list' }, def: 'jpeg,png,webp,gif,tiff,avif' },
  { env: 'REQUEST_TIMEOUT_MS', flag: 'request-timeout-ms', kind: POSITIVE(3_600_000), def: '30000' },
  { env: 'DRAIN_TIMEOUT_MS', flag: 'drain-timeout-ms', kind: POSITIVE(3_600_000), def: '30000' },
  { env: 'SELFTEST_RETRY_MS', flag: 'selftest-retry-ms', kind: POSITIVE(3_600_000), def: '30000' },
  { env: 'GRPC_MAX_CONNECTION_AGE_MS', flag: 'grpc-max-connection-age-ms', kind: NON_NEGATIVE(2_147_483_647), def: '0' },
  { env: 'DEFAULT_TOP_K', flag: 'default-top-k', kind: POSITIVE(100_000), def: '5' },
  { env: 'LOG_LEVEL', flag: 'log-level', kind: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }, def: 'info' },
];

export const KNOWN_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif', 'svg'] as const;

function check(setting: Setting, raw: string, source: string): string | number | string[] {
  const where = `${source === 'flag' ? `--${setting.flag}` : setting.env}=${JSON.stringify(raw)}`;
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
      return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    case 'string':
      if (raw.length === 0) throw new ConfigError(`${where}: must not be empty`);
      return raw;
  }
}

/** Parses flags (argv without node and script) and environment; throws ConfigError naming the bad setting. */
export function loadConfig(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Config {
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
    else if (fromEnv !== undefined && fromEnv !== '') v.set(s.env, check(s, fromEnv, 'env'));
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
    backend: v.get('BACKEND') as BackendChoice,
    decode: v.get('DECODE') as DecodeMode,
    decodeProcesses: num('DECODE_PROCESSES'),
    variant: v.get('VARIANT') as Variant | undefined,
    devices,
    batching: {
      maxBatchSize: opt('MAX_BATCH_SIZE'),
      maxQueueDelayMs: opt('MAX_QUEUE_DELAY_MS'),
      maxQueueSize: opt('MAX_QUEUE_SIZE'),
      instances: opt('INSTANCES'),
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
    acceptedFormats: formats,
    requestTimeoutMs: num('REQUEST_TIMEOUT_MS'),
    drainTimeoutMs: num('DRAIN_TIMEOUT_MS'),
    selftestRetryMs: num('SELFTEST_RETRY_MS'),
    grpcMaxConnectionAgeMs: num('GRPC_MAX_CONNECTION_AGE_MS'),
    defaultTopK: num('DEFAULT_TOP_K'),
    logLevel: v.get('LOG_LEVEL') as Config['logLevel'],
    access: readAccess(env),
  };
}

function readAccess(env: NodeJS.ProcessEnv): AccessConfig {
  try {
    return accessConfigFromEnv(env);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/** Worker threads for libuv (sharp decodes there): enough to keep every core busy decoding. */
export function defaultThreadpoolSize(): number {
  return Math.max(4, os.availableParallelism());
}
