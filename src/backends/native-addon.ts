// Loads the C++ addon (addon/build/Release/swin_addon.node) once, lazily, and
// never throws: where it is missing or cannot load, the result says why
// (the build's own failure note when the install could not build it).
// The types below are the addon's JS surface (docs/addon.md).
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
}

export interface NativeEngine {
  readonly info: NativeEngineInfo;
  /** images: n*H*W*3 uint8 RGB NHWC. Resolves to n*numClasses logits. */
  infer(images: Uint8Array, n: number): Promise<Float32Array>;
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

export interface NativeCapabilitiesRaw {
  gpus: number;
  deviceReason?: string;
  cuda: { built: boolean; buildStatus: string; headersVersion: string; runtimeVersion: string; driverVersion: string; testKernels: boolean };
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
  capabilities(): NativeCapabilitiesRaw;
  gpuInfo(): Promise<NativeGpuInfo[]>;
  loadEngine(kind: string, path: string, options?: NativeLoadOptions): Promise<NativeEngine>;
  /** Test hooks (addon/src/testing.h); the service never calls them. */
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
  // src/backends (tsx) or dist/src/backends (built): the root holds package.json and addon/.
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
