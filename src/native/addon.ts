// The native addon's whole JS surface, typed once (docs/addon.md), and the one
// place that loads it (addon/build/Release/swin_addon.node): once, lazily, never
// throwing. Where it is missing or cannot load, the result says why (the build's
// own failure note when the install could not build it). Backends, GPU decode,
// metrics sources and tests reach the addon through this module only.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeEngineInfo {
  kind: string;
  variant: string;
  precision: string;
  device: string;
  deviceIndex: number;
  maxBatch: number;
  height: number;
  width: number;
  numClasses: number;
  instances: number;
  /** Whether inferImages works here (a build with nvJPEG and the cuda backend, a CUDA engine). */
  imageBatches: boolean;
  imageBatchesReason: string | null;
}

/** engine.inferImages(): logits of a batch whose JPEGs were decoded on the engine's GPU. */
export interface ImageBatchResult {
  /** n * numClasses; a refused JPEG's row is meaningless. */
  logits: Float32Array;
  /** 1 = the image's logits are real; 0 = nvJPEG refused this JPEG (see reasons). */
  decoded: Uint8Array;
  reasons: (string | null)[];
  stages: BatchStages;
}

/**
 * Where one image batch's time went, ms (addon/binding/image_batch.h): GPU stages from CUDA
 * events on its stream, and two host walls.
 */
export interface BatchStages {
  copyInMs: number;
  decodeMs: number;
  engineMs: number;
  copyOutMs: number;
  hostDecodeMs: number;
  wallMs: number;
}

export interface NativeEngine {
  readonly info: NativeEngineInfo;
  /** images: n*H*W*3 uint8 RGB NHWC. Resolves to n*numClasses logits. */
  infer(images: Uint8Array, n: number): Promise<Float32Array>;
  /**
   * images[i]: a JPEG where jpeg[i] is 1, else H*W*3 pixels. JPEGs are decoded and resized into
   * the engine's input on its GPU (addon/binding/image_batch.h); rejects ERR_BACKEND_UNAVAILABLE
   * where info.imageBatches is false.
   */
  inferImages(images: Uint8Array[], jpeg: Uint8Array, spec: GpuDecodeSpec): Promise<ImageBatchResult>;
  dispose(): Promise<void>;
}

export interface NativeLoadOptions {
  deviceIndex?: number;
  maxBatch?: number;
  instances?: number;
  cudaGraphs?: boolean;
  precision?: string;
  inputName?: string;
  outputName?: string;
}

/** The addon's capabilities(): what the build contains and what can run here. */
export interface AddonCapabilities {
  gpus: number;
  deviceReason?: string;
  cuda: {
    built: boolean;
    buildStatus: string;
    headersVersion: string;
    runtimeVersion: string;
    driverVersion: string;
    testKernels: boolean;
  };
  tensorrt: { built: boolean; buildStatus: string; headersVersion: string; libraryVersion?: string };
  cudaEngine: { built: boolean; buildStatus: string };
  /** Compiled in and a GPU present. */
  backends: { tensorrt: boolean; cuda: boolean };
  reasons: { tensorrt?: string; cuda?: string };
  buildType: string;
}

export interface NativeGpuInfo {
  index: number;
  name: string;
  pciBusId: string;
  computeCapability: string;
  multiprocessors: number;
  memoryTotalBytes: number;
  memoryFreeBytes: number;
  memoryUsedBytes: number;
  /** 0..1 (NVML), null when unknown. */
  utilization: number | null;
  temperatureC: number | null;
  powerWatts: number | null;
  source: 'nvml' | 'cuda';
}

/** The spec JpegDecoder#decode takes (geometry of src/decode/preprocess.ts). */
export interface GpuDecodeSpec {
  size: number;
  mode: 'squash' | 'shorter_side_crop';
  resize: number;
  kernel: string;
  maxPixels: number;
}

export interface GpuDecodeResult {
  /** n * size * size * 3; zeros where refused. */
  pixels: Uint8Array;
  /** 1 = decoded on the GPU, 0 = refused (see reasons). */
  decoded: Uint8Array;
  reasons: (string | null)[];
}

/** JpegDecoder.inspect(): the JPEG's header, parsed on the host (every build). */
export interface JpegInspection {
  width: number;
  height: number;
  components: number;
  progressive: boolean;
  orientation: number;
  /** null: the GPU may try it; else why sharp must decode it (CMYK, 12-bit, ...). */
  reason: string | null;
}

/** One nvJPEG decoder on one GPU (addon/nvjpeg/jpeg_decoder.h). */
export interface NativeJpegDecoder {
  open(): Promise<{ backend: string; deviceIndex: number }>;
  decode(jpegs: Uint8Array[], spec: GpuDecodeSpec): Promise<GpuDecodeResult>;
  dispose(): Promise<void>;
}

export interface JpegDecoderClass {
  /** Throws ERR_BACKEND_UNAVAILABLE where `built` is false. */
  new (opts?: { deviceIndex?: number; backend?: 'auto' | 'hardware' | 'default' }): NativeJpegDecoder;
  /** Compiled with nvJPEG; buildStatus says what CMake found. */
  readonly built: boolean;
  readonly buildStatus: string;
  inspect(jpeg: Uint8Array): JpegInspection;
}

export interface FaultSpec {
  fault?: 'none' | 'engine' | 'std' | 'bad_alloc' | 'nonstd' | 'cuda' | 'cuda_oom';
  faultOnLoad?: boolean;
  delayMs?: number;
  gpuSpinMs?: number;
  maxBatch?: number;
  height?: number;
  width?: number;
  numClasses?: number;
  deviceIndex?: number;
  instances?: number;
  /** What info.precision reports ("" as a TensorRT plan does). */
  precision?: string;
  /** Added to every logit: an engine this far off the reference. */
  logitOffset?: number;
}

export interface SwinAddon {
  capabilities(): AddonCapabilities;
  gpuInfo(): Promise<NativeGpuInfo[]>;
  loadEngine(kind: string, path: string, options?: NativeLoadOptions): Promise<NativeEngine>;
  /** The class of loadEngine()'s results; `new Engine()` throws ERR_INVALID_ARGUMENT. */
  Engine: new () => NativeEngine;
  JpegDecoder: JpegDecoderClass;
  /** Test hooks (addon/testing/testing.h); the service never calls them. */
  _testing: {
    loadFaultEngine(spec: FaultSpec): Promise<NativeEngine>;
    faultStats(engine: NativeEngine): { calls: number; peakConcurrency: number };
  };
}

export type AddonLoad = { addon: SwinAddon; path: string } | { addon: null; reason: string };

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where the addon is looked for: $SWIN_ADDON_PATH, else addon/build/Release under the repository root. */
export function addonPath(): string {
  if (process.env.SWIN_ADDON_PATH) return path.resolve(process.env.SWIN_ADDON_PATH);
  // src/native (tsx) or dist/src/native (built): the root holds package.json and addon/.
  let dir = here;
  for (let i = 0; i < 5; i++) {
    if (existsSync(path.join(dir, 'addon', 'CMakeLists.txt'))) break;
    dir = path.dirname(dir);
  }
  return path.join(dir, 'addon', 'build', 'Release', 'swin_addon.node');
}

let cached: AddonLoad | undefined;

export function loadAddon(): AddonLoad {
  if (cached) return cached;
  const file = addonPath();
  if (!existsSync(file)) {
    const note = path.join(path.dirname(path.dirname(file)), 'BUILD-FAILED.txt');
    const why = existsSync(note) ? readFileSync(note, 'utf8').split('\n')[0] : 'run `npm run build:addon`';
    cached = { addon: null, reason: `native addon not built (${file} missing: ${why})` };
    return cached;
  }
  try {
    const addon = createRequire(import.meta.url)(file) as SwinAddon;
    cached = { addon, path: file };
  } catch (err) {
    // e.g. a build linked against a libcudart or libnvinfer this host lacks
    cached = { addon: null, reason: `native addon failed to load: ${(err as Error).message.split('\n')[0]}` };
  }
  return cached;
}

/** Which native backend kinds can run here (compiled in and a GPU present), and if not, why. */
export interface NativeCapabilities {
  tensorrt: boolean;
  cuda: boolean;
  gpus: number;
  /** Why a kind is unavailable, when one is. */
  reason?: string;
}

/** Never throws: without the addon both kinds are off and `reason` quotes why. */
export function nativeCapabilities(): NativeCapabilities {
  const load = loadAddon();
  if (!load.addon) return { tensorrt: false, cuda: false, gpus: 0, reason: load.reason };
  let caps: AddonCapabilities;
  try {
    caps = load.addon.capabilities();
  } catch (err) {
    return { tensorrt: false, cuda: false, gpus: 0, reason: `capabilities() failed: ${(err as Error).message}` };
  }
  const reasons = [caps.reasons.tensorrt && `tensorrt: ${caps.reasons.tensorrt}`, caps.reasons.cuda && `cuda: ${caps.reasons.cuda}`].filter(
    Boolean,
  );
  return {
    tensorrt: caps.backends.tensorrt,
    cuda: caps.backends.cuda,
    gpus: caps.gpus,
    ...(reasons.length ? { reason: reasons.join('; ') } : {}),
  };
}

/** Per-GPU memory and load (for the GPU gauges); [] without the addon or a GPU. */
export async function gpuInfo(): Promise<NativeGpuInfo[]> {
  const load = loadAddon();
  if (!load.addon || load.addon.capabilities().gpus === 0) return [];
  return load.addon.gpuInfo();
}
