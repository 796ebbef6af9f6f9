// GPU JPEG decoding (nvJPEG in the native addon, addon/nvjpeg/jpeg_decoder.h) in
// front of the sharp path of preprocess.ts. Setting DECODE:
//   cpu   every image through sharp (as before)
//   auto  JPEGs through the GPU when the model's variant runs on a native GPU
//         backend (tensorrt, cuda) and the addon was built with nvJPEG; else sharp
//   gpu   JPEGs through the GPU whatever the backend (onnxruntime included)
// Whatever the GPU decoder refuses (not JPEG, progressive/CMYK/12-bit where it
// cannot, corrupt data, more pixels than allowed) and every failure of the GPU
// path goes through sharp, image by image, so errors and their 4xx codes are the
// CPU path's. Output is the same uint8 RGB NHWC bytes the backends take.
import { loadAddon, type GpuDecodeResult, type GpuDecodeSpec, type NativeJpegDecoder } from '../native/addon.js';
import type { BackendKind } from '../backends/backend.js';
import type { ModelConfig } from '../models/model-config.js';
import { decodedImages, preprocessDuration } from '../observability/metrics.js';
import { jpegLooksDamaged } from './jpeg-damage.js';
import type { DecodeContext } from './preprocess.js';

export type DecodeMode = 'auto' | 'cpu' | 'gpu';
export const DECODE_MODES: readonly DecodeMode[] = ['auto', 'cpu', 'gpu'];

export type { GpuDecodeResult, GpuDecodeSpec };

/** What the router uses of an addon JpegDecoder (tests pass doubles). */
export type JpegDecoderLike = Pick<NativeJpegDecoder, 'decode' | 'dispose'>;

/** What the CPU path offers (src/preprocess.ts Preprocessor). */
export interface CpuPreprocessor {
  readonly imageBytes: number;
  one(input: Buffer, index?: number, ctx?: DecodeContext): Promise<Buffer>;
  many(images: Buffer[]): Promise<Uint8Array>;
}

export type DecoderOpen = (deviceIndex?: number) => Promise<{ decoder: JpegDecoderLike; backend: string } | { reason: string }>;

/** Opens the addon's decoder on a GPU, or says why not (never throws). */
export const openAddonDecoder: DecoderOpen = async (deviceIndex = 0) => {
  const load = loadAddon();
  if (!load.addon) return { reason: load.reason };
  const cls = load.addon.JpegDecoder;
  if (!cls.built) return { reason: `addon built without nvJPEG: ${cls.buildStatus}` };
  try {
    const decoder = new cls({ deviceIndex });
    const info = await decoder.open();
    return { decoder, backend: info.backend };
  } catch (err) {
    return { reason: `nvJPEG decoder unavailable: ${(err as Error).message}` };
  }
};

export function isJpeg(buf: Uint8Array): boolean {
  return buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff;
}

export interface GpuDecodeOptions {
  open?: DecoderOpen;
  /**
   * Decoders opened on the GPU (each: one worker thread, one stream). One decoder's host
   * stages are serial; on the H100 four reached 22,052 images/s against 6,436 for one
   * (docs/gpu-decode.md).
   */
  decoders?: number;
  /**
   * GPUs to open `decoders` decoders on, each (a pool per GPU): the DEVICES
   * setting; empty or absent: every GPU the addon sees (GPU 0 where it sees none).
   */
  devices?: readonly number[];
  /** Called once per distinct reason the GPU path was not used, refused an image, or failed (first 100 reasons). */
  onFallback?: (reason: string) => void;
}

export class GpuDecodeRouter {
  readonly mode: DecodeMode;
  private readonly open: DecoderOpen;
  private readonly onFallback: (reason: string) => void;
  private readonly poolSize: number;
  private readonly devices: readonly number[] | undefined;
  private opening: Promise<{ d: JpegDecoderLike; busy: number; device: number }[] | null> | null = null;
  private unavailable: string | null = null;
  private readonly told = new Set<string>();
  /** Images decoded on the GPU / sent to sharp since start (for tests and logs). */
  readonly counts = { gpu: 0, cpu: 0 };

  constructor(mode: DecodeMode, opts: GpuDecodeOptions = {}) {
    this.mode = mode;
    this.open = opts.open ?? openAddonDecoder;
    this.poolSize = Math.max(1, opts.decoders ?? 4);
    this.devices = opts.devices?.length ? opts.devices : undefined;
    this.onFallback = opts.onFallback ?? (() => undefined);
  }

  /** Why the GPU decoder is not available (null: available or not tried yet). */
  get reason(): string | null {
    return this.unavailable;
  }

  /**
   * Per image: whether it may travel encoded to an engine that decodes JPEGs per batch on its GPU
   * (model-instance.ts warmImageBatches): a JPEG whose header the GPU path takes
   * (JpegDecoder.inspect: baseline/progressive 8-bit, 1 or 3 components, whole) within
   * `maxImagePixels`, with no marker damage (those go to sharp for its warnings, as in many()).
   */
  deviceJpegs(images: readonly Buffer[], maxImagePixels: number): boolean[] {
    const load = loadAddon();
    if (!load.addon || this.mode === 'cpu') return images.map(() => false);
    const inspect = load.addon.JpegDecoder.inspect;
    return images.map((b) => {
      if (!isJpeg(b)) return false;
      const h = inspect(b);
      return h.reason === null && h.width * h.height <= maxImagePixels && !jpegLooksDamaged(b);
    });
  }

  /** JPEGs the engine's batch decoding refused (they went to sharp): each distinct reason told once. */
  noteRefused(reasons: readonly (string | null)[]): void {
    for (const reason of reasons) this.tell(`GPU decoder refused a JPEG: ${reason ?? 'no reason given'}`);
  }

  /** Whether a model on backend `kind` should try the GPU path for its JPEGs. */
  wants(kind: BackendKind | null | undefined): boolean {
    if (this.mode === 'cpu') return false;
    if (this.mode === 'gpu') return true;
    return kind === 'tensorrt' || kind === 'cuda';
  }

  /**
   * Encoded images -> n x size x size x 3 bytes, as cpu.many() would return.
   * `kind` is the backend of the variant the request will run on; `warmup`: a start-up
   * warm-up request's images, left out of the decode metrics (src/api/http/warmup.ts).
   */
  async many(
    model: ModelConfig,
    cpu: CpuPreprocessor,
    images: Buffer[],
    kind: BackendKind | null | undefined,
    acceptedFormats: string[],
    maxImagePixels: number,
    opts: { warmup?: boolean } = {},
  ): Promise<Uint8Array> {
    const jpegIdx =
      this.wants(kind) && acceptedFormats.includes('jpeg')
        ? // A JPEG whose markers show damage goes to sharp, which reports its warnings (src/jpeg-damage.ts).
          images.map((b, i) => (isJpeg(b) && !jpegLooksDamaged(b) ? i : -1)).filter((i) => i >= 0)
        : [];
    if (jpegIdx.length === 0) return this.cpuAll(model, cpu, images, opts);
    const pool = await this.decoders();
    if (!pool) return this.cpuAll(model, cpu, images, opts);
    const slot = pool.reduce((a, b) => (b.busy < a.busy ? b : a));

    const start = performance.now();
    const pre = model.preprocess;
    const size = model.architecture.img_size;
    let r: GpuDecodeResult;
    slot.busy++;
    try {
      r = await slot.d.decode(
        jpegIdx.map((i) => images[i]),
        {
          size,
          mode: pre.mode,
          resize: pre.mode === 'squash' ? size : pre.resize,
          kernel: pre.kernel,
          maxPixels: maxImagePixels,
        },
      );
    } catch (err) {
      this.tell(`GPU decode failed, using sharp: ${(err as Error).message}`);
      return this.cpuAll(model, cpu, images, opts);
    } finally {
      slot.busy--;
    }
    const gpuMs = performance.now() - start;
    const n = images.length;
    const bytes = cpu.imageBytes;
    const out = Buffer.allocUnsafe(n * bytes);
    const onGpu = new Array<boolean>(n).fill(false);
    jpegIdx.forEach((img, k) => {
      if (r.decoded[k] === 1) {
        out.set(r.pixels.subarray(k * bytes, (k + 1) * bytes), img * bytes);
        onGpu[img] = true;
      } else {
        this.tell(`GPU decoder refused a JPEG: ${r.reasons[k] ?? 'no reason given'}`);
      }
    });
    // Everything else through sharp, with the CPU path's checks and error codes.
    await Promise.all(
      images.map(async (img, i) => {
        if (onGpu[i]) return;
        out.set(await cpu.one(img, i), i * bytes);
      }),
    );
    const gpuCount = onGpu.filter(Boolean).length;
    this.counts.gpu += gpuCount;
    this.counts.cpu += n - gpuCount;
    if (opts.warmup) return out;
    decodedImages.inc({ model: model.name, decoder: 'gpu' }, gpuCount);
    if (n > gpuCount) decodedImages.inc({ model: model.name, decoder: 'sharp' }, n - gpuCount);
    for (let i = 0; i < gpuCount; i++) preprocessDuration.observe({ model: model.name }, gpuMs / 1000);
    return out;
  }

  /**
   * Opens the decoders (when `kind` wants the GPU path) and decodes `jpeg` once on each, with
   * the model's geometry: nvJPEG's first call on a decoder costs ~1.8 s on an H100, which the
   * first request would otherwise pay. Not counted in the metrics. Returns the decoders warmed.
   */
  async warm(model: ModelConfig, jpeg: Buffer, kind: BackendKind | null | undefined, maxImagePixels: number): Promise<number> {
    if (!this.wants(kind)) return 0;
    const pool = await this.decoders();
    if (!pool) return 0;
    const pre = model.preprocess;
    const size = model.architecture.img_size;
    const spec = { size, mode: pre.mode, resize: pre.mode === 'squash' ? size : pre.resize, kernel: pre.kernel, maxPixels: maxImagePixels };
    const done = await Promise.all(
      pool.map((s) =>
        s.d.decode([jpeg], spec).then(
          (r) => r.decoded[0] === 1,
          (err: Error) => {
            this.tell(`GPU decoder warm-up failed: ${err.message}`);
            return false;
          },
        ),
      ),
    );
    return done.filter(Boolean).length;
  }

  async close(): Promise<void> {
    const pool = await (this.opening ?? Promise.resolve(null));
    await Promise.all([...new Set(pool?.map((s) => s.d))].map((d) => d.dispose().catch(() => undefined)));
  }

  private async cpuAll(model: ModelConfig, cpu: CpuPreprocessor, images: Buffer[], opts: { warmup?: boolean }): Promise<Uint8Array> {
    this.counts.cpu += images.length;
    const out = await cpu.many(images);
    if (!opts.warmup) decodedImages.inc({ model: model.name, decoder: 'sharp' }, images.length);
    return out;
  }

  /** GPUs to decode on: those configured, else every GPU the addon sees, else GPU 0. */
  private decodeDevices(): readonly number[] {
    if (this.devices) return this.devices;
    const load = loadAddon();
    const gpus = load.addon ? load.addon.capabilities().gpus : 0;
    return gpus > 0 ? [...Array(gpus).keys()] : [0];
  }

  /** A pool per GPU, `decoders` each; a request takes the least busy decoder of any GPU. */
  private decoders(): Promise<{ d: JpegDecoderLike; busy: number; device: number }[] | null> {
    this.opening ??= (async () => {
      const pool: { d: JpegDecoderLike; busy: number; device: number }[] = [];
      const reasons: string[] = [];
      for (const device of this.decodeDevices()) {
        for (let i = 0; i < this.poolSize; i++) {
          const r = await this.open(device);
          if ('decoder' in r) {
            pool.push({ d: r.decoder, busy: 0, device });
            continue;
          }
          // none on this GPU: say why; fewer than asked (e.g. out of memory): use those we have
          if (i === 0) reasons.push(r.reason);
          break;
        }
      }
      if (pool.length === 0) {
        this.unavailable = reasons[0] ?? 'no GPU to decode on';
        this.tell(`GPU JPEG decoding unavailable, using sharp: ${this.unavailable}`);
        return null;
      }
      for (const reason of reasons) this.tell(`GPU JPEG decoding unavailable on one GPU: ${reason}`);
      return pool;
    })();
    return this.opening;
  }

  private tell(reason: string): void {
    if (this.told.has(reason) || this.told.size >= 100) return;
    this.told.add(reason);
    this.onFallback(reason);
  }
}
