// What KServe v2 says about the server and its models, built from the model
// repository's ModelStatus (and so from model.json). Shared by REST and gRPC;
// the objects use the protocol's field names, so REST sends them as JSON and
// gRPC as the matching messages.
import type { BackendKind } from '../../backends/backend.js';
import { ServeError } from '../../errors.js';
import { packageInfo } from '../../package-info.js';
import type { InferenceService, ModelStatus } from '../../service/service-types.js';

/** The output every model gains next to its logits: their row-wise softmax. */
export const PROBABILITIES_OUTPUT = 'probabilities';

/** Protocol extensions served: Triton's names, as clients probe for them. */
export const EXTENSIONS = ['binary_tensor_data', 'classification', 'model_configuration', 'model_repository'];

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/** swin-serve's package.json version (src/package-info.ts). */
export function serverMetadata(): ServerMetadata {
  return { name: 'swin-serve', version: packageInfo().version, extensions: EXTENSIONS };
}

const PLATFORMS: Record<BackendKind, string> = {
  onnxruntime: 'onnxruntime_onnx',
  tensorrt: 'tensorrt_plan',
  cuda: 'swin_cuda',
};

export function activeBackend(status: ModelStatus): BackendKind | null {
  return status.variants.find((v) => v.variant === status.active_variant)?.backend ?? null;
}

/** The model at the version the request names (empty or absent: the one requests naming none get); 404 for an unknown version. */
export function resolveModel(service: InferenceService, name: string, version?: string): ModelStatus {
  const status = service.getModel(name, version || undefined);
  // A service without versions (test fakes) answers for its one version whatever was asked.
  if (version && version !== status.version) throw new ServeError('SWIN_MODEL_VERSION_NOT_FOUND', name, version, status.version);
  return status;
}

/** Height, width of the model's input (model.json input.shape is [N, H, W, 3]). */
export function inputHW(status: ModelStatus): [number, number] {
  const s = status.config.input.shape;
  return [s[1], s[2]];
}

export function modelMetadata(status: ModelStatus): ModelMetadata {
  const cfg = status.config;
  const [h, w] = inputHW(status);
  const classes = cfg.architecture.num_classes;
  const backend = activeBackend(status);
  return {
    name: status.name,
    versions: status.versions ?? [status.version],
    platform: backend ? PLATFORMS[backend] : '',
    // -1: any batch size; the batcher splits or merges as it needs.
    inputs: [{ name: cfg.input.name, datatype: 'UINT8', shape: [-1, h, w, 3] }],
    outputs: [
      { name: cfg.output.name, datatype: 'FP32', shape: [-1, classes] },
      { name: PROBABILITIES_OUTPUT, datatype: 'FP32', shape: [-1, classes] },
    ],
  };
}

/** Triton's model configuration (JSON field names), the subset perf_analyzer and tritonclient read. */
export interface ModelConfigJson {
  name: string;
  platform: string;
  backend: string;
  max_batch_size: number;
  input: { name: string; data_type: string; format: string; dims: number[] }[];
  output: { name: string; data_type: string; dims: number[] }[];
  dynamic_batching: { preferred_batch_size: number[]; max_queue_delay_microseconds: number };
}

export function modelConfig(status: ModelStatus): ModelConfigJson {
  const cfg = status.config;
  const [h, w] = inputHW(status);
  const classes = cfg.architecture.num_classes;
  const backend = activeBackend(status);
  return {
    name: status.name,
    platform: backend ? PLATFORMS[backend] : '',
    backend: backend ?? '',
    max_batch_size: cfg.batching.max_batch_size,
    // Dims without the batch dimension, as Triton does when max_batch_size > 0.
    input: [{ name: cfg.input.name, data_type: 'TYPE_UINT8', format: 'FORMAT_NHWC', dims: [h, w, 3] }],
    output: [
      { name: cfg.output.name, data_type: 'TYPE_FP32', dims: [classes] },
      { name: PROBABILITIES_OUTPUT, data_type: 'TYPE_FP32', dims: [classes] },
    ],
    dynamic_batching: {
      preferred_batch_size: cfg.batching.preferred_batch_sizes ?? [],
      max_queue_delay_microseconds: Math.round(cfg.batching.max_queue_delay_ms * 1000),
    },
  };
}
