// Creates the engine for one model variant on one backend kind. onnxruntime is
// built in; tensorrt and cuda come from the native addon (./native-backend.js over
// src/native/addon.ts), which is optional: where it cannot load (no GPU, addon
// not built) those kinds are simply unavailable, and why is logged.
import path from 'node:path';
import type { Backend, BackendChoice, BackendKind, Variant } from './backend.js';
import type { ModelConfig } from '../models/model-config.js';
import { nativeCapabilities, type NativeCapabilities } from '../native/addon.js';
import { createNativeBackend } from './native-backend.js';
import { OnnxRuntimeBackend } from './onnxruntime-backend.js';

export interface BackendOptions {
  /** Engines (or sessions) running batches at once; per GPU for the native kinds. */
  instances: number;
  maxBatchSize: number;
  ort: { intraOpThreads: number; interOpThreads: number };
  /** GPUs for the native kinds (DEVICES); empty: every visible GPU. */
  devices?: number[];
}

export interface BackendRequest {
  kind: BackendKind;
  /** Absolute path of the artifact. */
  path: string;
  config: ModelConfig;
  variant: Variant;
  opts: BackendOptions;
}

export type BackendFactory = (req: BackendRequest) => Promise<Backend>;

/**
 * Backend kinds to try for a variant, best first: `auto` means tensorrt, cuda,
 * then onnxruntime, keeping those with an artifact in model.json and (for the
 * native kinds) support in this build. `skipped` says why others were left out.
 */
export async function candidateKinds(
  choice: BackendChoice,
  cfg: ModelConfig,
  variant: Variant,
): Promise<{ kinds: BackendKind[]; skipped: string[] }> {
  const order: BackendKind[] = choice === 'auto' ? ['tensorrt', 'cuda', 'onnxruntime'] : [choice];
  const artifacts = cfg.artifacts[variant] ?? {};
  const kinds: BackendKind[] = [];
  const skipped: string[] = [];
  let caps: NativeCapabilities | undefined;
  for (const kind of order) {
    if (!artifacts[kind]) {
      skipped.push(`${kind}: no artifact in model.json`);
      continue;
    }
    if (kind !== 'onnxruntime') {
      caps ??= nativeCapabilities();
      if (!caps[kind]) {
        skipped.push(`${kind}: ${caps.reason ?? 'not supported by this build'}`);
        continue;
      }
    }
    kinds.push(kind);
  }
  return { kinds, skipped };
}

export const createBackend: BackendFactory = async (req) => {
  const { kind, config, variant, opts } = req;
  if (kind === 'onnxruntime') {
    return OnnxRuntimeBackend.create({
      path: req.path,
      variant,
      inputName: config.input.name,
      outputName: config.output.name,
      imgSize: config.architecture.img_size,
      numClasses: config.architecture.num_classes,
      maxBatchSize: opts.maxBatchSize,
      instances: opts.instances,
      intraOpThreads: opts.ort.intraOpThreads,
      interOpThreads: opts.ort.interOpThreads,
    });
  }
  return createNativeBackend(kind, req.path, config, variant, opts);
};

/** Artifact path of a variant on a backend, resolved against the model folder. */
export function artifactPath(modelDir: string, cfg: ModelConfig, variant: Variant, kind: BackendKind): string | undefined {
  const rel = cfg.artifacts[variant]?.[kind];
  return rel === undefined ? undefined : path.resolve(modelDir, rel);
}
