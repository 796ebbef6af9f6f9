// One KServe v2 inference, independent of the transport: REST and gRPC turn
// their request into an InferRequest, call runInfer, and encode the
// InferOutputs it returns. The model takes one input:
//   UINT8 [N, H, W, 3]  pixels in the engine's layout (RGB NHWC), H, W from model.json
//   BYTES [N]           encoded images (JPEG, PNG, ...), preprocessed like /classify
// and gives FP32 [N, classes] logits and their softmax ("probabilities");
// either becomes BYTES [N, k] "value:index:label" with parameter classification = k.
import { ServeError } from '../../errors.js';
import { parseVariant } from '../request-params.js';
import { requestPolicy } from '../../batching/queue-policy.js';
import type { ImageWarning, InferenceService, ModelStatus, RequestOptions } from '../../service/service-types.js';
import { PROBABILITIES_OUTPUT, inputHW, resolveModel } from './kserve-model.js';
import { classificationStrings, softmaxRows } from '../../service/postprocess.js';
import { deserializeBytesTensor, elementCount, formatShape } from './kserve-tensors.js';

export type ParameterValue = boolean | number | string;

export interface InferInput {
  name: string;
  datatype: string;
  shape: number[];
  /** Tensor bytes as sent (binary extension, raw_input_contents): little-endian, BYTES length-prefixed. */
  raw?: Buffer;
  /** Or the elements themselves (JSON data, typed gRPC contents). */
  elements?: number[] | Buffer[];
}

export interface RequestedOutput {
  name: string;
  parameters: Record<string, ParameterValue>;
}

export interface InferRequest {
  model: string;
  version?: string;
  id?: string;
  parameters: Record<string, ParameterValue>;
  inputs: InferInput[];
  /** Empty = every output. */
  outputs: RequestedOutput[];
}

export interface InferOutput {
  name: string;
  datatype: 'FP32' | 'BYTES';
  shape: number[];
  /** FP32 outputs */
  fp32?: Float32Array;
  /** BYTES outputs, one entry per element */
  bytes?: Buffer[];
  /** The requested output's parameters (binary_data is the REST encoder's business). */
  requested: Record<string, ParameterValue>;
}

export interface InferResult {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: InferOutput[];
  /** swin_image_warnings: decoder warnings about BYTES images, JSON [{image, warning}] (only when there are any). */
  parameters?: { swin_image_warnings: string };
}

export async function runInfer(service: InferenceService, req: InferRequest, opts: RequestOptions): Promise<InferResult> {
  const status = resolveModel(service, req.model, req.version);
  const cfg = status.config;
  const classes = cfg.architecture.num_classes;
  const outputs = resolveOutputs(status, req.outputs);
  const variant = parseVariant(req.parameters.variant, status.name);

  if (req.inputs.length !== 1) {
    throw new ServeError(
      'SWIN_BAD_TENSOR',
      `model ${status.name} takes exactly one input, '${cfg.input.name}'; the request has ${req.inputs.length}`,
    );
  }
  const input = req.inputs[0];
  if (input.name !== cfg.input.name) {
    throw new ServeError('SWIN_BAD_TENSOR', `unknown input '${input.name}'; model ${status.name} takes '${cfg.input.name}'`);
  }
  const warnings: ImageWarning[] = [];
  const { pixels, n } = await inputPixels(service, status, input, {
    ...opts,
    version: req.version || undefined,
    onWarning: (w) => warnings.push(w),
  });
  // The version the request named, else whichever serves now: a BYTES input was decoded in a
  // call of its own, and the version it resolved then may have been replaced since.
  const result = await service.inferTensor(status.name, pixels, n, { ...opts, variant, version: req.version || undefined });
  if (result.numClasses !== classes || result.logits.length !== n * classes) {
    throw new ServeError('SWIN_INFERENCE_FAILED', status.name, `expected ${n}x${classes} logits, got ${result.logits.length}`);
  }
  let probabilities: Float32Array | undefined;
  const encoded = outputs.map((o): InferOutput => {
    let values = result.logits;
    if (o.name === PROBABILITIES_OUTPUT) values = probabilities ??= softmaxRows(result.logits, n, classes);
    const k = classificationK(o, classes);
    if (k === undefined) return { name: o.name, datatype: 'FP32', shape: [n, classes], fp32: values, requested: o.parameters };
    return {
      name: o.name,
      datatype: 'BYTES',
      shape: [n, k],
      bytes: classificationStrings(values, n, classes, k, cfg.labels),
      requested: o.parameters,
    };
  });
  return {
    model_name: status.name,
    model_version: result.version ?? status.version,
    id: req.id || undefined,
    outputs: encoded,
    ...(warnings.length > 0 && { parameters: { swin_image_warnings: JSON.stringify(warnings.sort((a, b) => a.image - b.image)) } }),
  };
}

function resolveOutputs(status: ModelStatus, requested: RequestedOutput[]): RequestedOutput[] {
  const names = [status.config.output.name, PROBABILITIES_OUTPUT];
  if (requested.length === 0) return names.map((name) => ({ name, parameters: {} }));
  for (const o of requested) {
    if (!names.includes(o.name)) {
      throw new ServeError(
        'SWIN_BAD_REQUEST',
        `unknown output '${o.name}'; model ${status.name} gives ${names.map((x) => `'${x}'`).join(', ')}`,
      );
    }
  }
  return requested;
}

function classificationK(o: RequestedOutput, classes: number): number | undefined {
  const v = o.parameters.classification;
  if (v === undefined) return undefined;
  const k = typeof v === 'string' ? Number(v) : v;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > classes) {
    throw new ServeError(
      'SWIN_BAD_REQUEST',
      `output '${o.name}': classification must be an integer from 1 to ${classes}, got ${JSON.stringify(v)}`,
    );
  }
  return k;
}

async function inputPixels(
  service: InferenceService,
  status: ModelStatus,
  input: InferInput,
  opts: RequestOptions & { version?: string },
): Promise<{ pixels: Uint8Array; n: number }> {
  const [h, w] = inputHW(status);
  const expected = `UINT8 [N,${h},${w},3] (RGB NHWC) or BYTES [N] (encoded images)`;
  const shape = input.shape;
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ServeError(
      'SWIN_BAD_TENSOR',
      `input '${input.name}' has shape ${formatShape(shape)}; dimensions must be non-negative integers`,
    );
  }
  // The batcher can never admit more than its queue holds; refusing here also
  // keeps a body of many tiny encoded images from being decoded to N x H x W x 3 bytes.
  const maxImages = status.config.batching.max_queue_size;
  if (shape.length > 0 && shape[0] > maxImages) throw new ServeError('SWIN_TOO_MANY_IMAGES', maxImages, shape[0]);
  if (input.datatype === 'UINT8') {
    if (shape.length !== 4 || shape[1] !== h || shape[2] !== w || shape[3] !== 3 || shape[0] < 1) {
      throw new ServeError(
        'SWIN_BAD_TENSOR',
        `input '${input.name}' has shape ${formatShape(shape)}; model ${status.name} takes ${expected}`,
      );
    }
    const count = elementCount(shape);
    const pixels = input.raw ?? uint8FromElements(input);
    if (pixels.length !== count) {
      throw new ServeError(
        'SWIN_BAD_TENSOR',
        `input '${input.name}' with shape ${formatShape(shape)} needs ${count} bytes of UINT8 data, got ${pixels.length}`,
      );
    }
    return { pixels, n: shape[0] };
  }
  if (input.datatype === 'BYTES') {
    // [N] or [N, 1]: one encoded image per batch entry.
    if (shape.length < 1 || shape.length > 2 || shape[0] < 1 || (shape.length === 2 && shape[1] !== 1)) {
      throw new ServeError(
        'SWIN_BAD_TENSOR',
        `input '${input.name}' has BYTES shape ${formatShape(shape)}; model ${status.name} takes ${expected}`,
      );
    }
    const images = input.raw !== undefined ? deserializeBytesTensor(input.raw, input.name) : bytesFromElements(input);
    if (images.length !== shape[0]) {
      throw new ServeError(
        'SWIN_BAD_TENSOR',
        `input '${input.name}' has shape ${formatShape(shape)} but carries ${images.length} BYTES elements`,
      );
    }
    const pixels = await service.preprocess(status.name, images, opts);
    return { pixels, n: images.length };
  }
  throw new ServeError('SWIN_BAD_TENSOR', `input '${input.name}' has datatype ${input.datatype}; model ${status.name} takes ${expected}`);
}

function uint8FromElements(input: InferInput): Uint8Array {
  const els = input.elements ?? [];
  const out = new Uint8Array(els.length);
  for (let i = 0; i < els.length; i++) {
    const v = els[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
      throw new ServeError(
        'SWIN_BAD_TENSOR',
        `input '${input.name}': UINT8 element ${i} is ${typeof v === 'number' ? v : typeof v}, not an integer 0..255`,
      );
    }
    out[i] = v;
  }
  return out;
}

function bytesFromElements(input: InferInput): Buffer[] {
  const els = input.elements ?? [];
  return els.map((v, i) => {
    if (!Buffer.isBuffer(v)) throw new ServeError('SWIN_BAD_TENSOR', `input '${input.name}': BYTES element ${i} is not a byte string`);
    return v;
  });
}

/**
 * Triton's request parameters "priority" (1 runs first, 0 = the model's default) and
 * "timeout" (microseconds, under the model's queue policy), for REST and gRPC alike.
 */
export function requestOptions(parameters: Record<string, ParameterValue>): RequestOptions {
  const t = parameters.timeout;
  const ms = typeof t === 'number' ? t / 1000 : t;
  return requestPolicy(parameters.priority, ms, { priority: 'parameter priority', timeout: 'parameter timeout (microseconds)' });
}
