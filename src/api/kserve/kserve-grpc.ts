// KServe v2 over gRPC: inference.GRPCInferenceService, plus Triton's
// ModelConfig. Tensors travel in raw_input_contents / raw_output_contents
// (what tritonclient and Triton use) or, for inputs, in typed contents.
import type { BaseLogger } from 'pino';
import { ServeError } from '../../errors.js';
import type { GRPCInferenceServiceHandlers } from '../../generated/inference/GRPCInferenceService.js';
import type { InferParameter__Output } from '../../generated/inference/InferParameter.js';
import type { ModelConfigResponse } from '../../generated/inference/ModelConfigResponse.js';
import type { ModelInferRequest__Output } from '../../generated/inference/ModelInferRequest.js';
import type { ModelInferResponse } from '../../generated/inference/ModelInferResponse.js';
import { optionalString, unary } from '../grpc/grpc-call.js';
import type { InferenceService } from '../../service/service-types.js';
import { requestOptions, runInfer, type InferInput, type InferRequest, type ParameterValue } from './kserve-infer.js';
import { modelConfig, modelMetadata, resolveModel, serverMetadata } from './kserve-model.js';
import { modelLabel } from '../request-params.js';
import { serializeBytesTensor } from './kserve-tensors.js';
import { controlOf, refuseParameters } from './kserve-repository.js';

export function kserveGrpcHandlers(service: InferenceService, logger: BaseLogger): GRPCInferenceServiceHandlers {
  const api = 'kserve_grpc';
  return {
    ServerLive: unary(logger, api, async () => ({ live: true })),
    ServerReady: unary(logger, api, async () => ({ ready: service.isReady() })),
    ModelReady: unary(logger, api, async (req: { name: string; version: string }) => ({
      ready: resolveModel(service, req.name, optionalString(req.version)).ready,
    })),
    ServerMetadata: unary(logger, api, async () => serverMetadata()),
    ModelMetadata: unary(logger, api, async (req: { name: string; version: string }) =>
      modelMetadata(resolveModel(service, req.name, optionalString(req.version))),
    ),
    ModelConfig: unary(logger, api, async (req: { name: string; version: string }): Promise<ModelConfigResponse> => ({
      config: modelConfig(resolveModel(service, req.name, optionalString(req.version))) as ModelConfigResponse['config'],
    })),
    RepositoryIndex: unary(logger, api, async (req: { ready: boolean }) => ({ models: await controlOf(service).index(req.ready) })),
    RepositoryModelLoad: unary(logger, api, async (req: { model_name: string; parameters: Record<string, unknown> }) => {
      refuseParameters(Object.keys(req.parameters), 'load');
      await controlOf(service).load(req.model_name);
      return {};
    }),
    RepositoryModelUnload: unary(logger, api, async (req: { model_name: string; parameters: Record<string, unknown> }) => {
      refuseParameters(Object.keys(req.parameters), 'unload');
      await controlOf(service).unload(req.model_name);
      return {};
    }),
    ModelInfer: unary<ModelInferRequest__Output, ModelInferResponse>(
      logger,
      api,
      async (req, { opts }) => {
        const request = toInferRequest(req);
        // Triton's "priority" and "timeout" parameters; the gRPC deadline stays the outer bound.
        const result = await runInfer(service, request, { ...opts, ...requestOptions(request.parameters) });
        return {
          model_name: result.model_name,
          model_version: result.model_version,
          id: result.id ?? '',
          ...(result.parameters && { parameters: { swin_image_warnings: { string_param: result.parameters.swin_image_warnings } } }),
          outputs: result.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
          raw_output_contents: result.outputs.map((o) =>
            o.fp32 ? Buffer.from(o.fp32.buffer, o.fp32.byteOffset, o.fp32.byteLength) : serializeBytesTensor(o.bytes ?? []),
          ),
        };
      },
      { api, model: (req) => modelLabel(service, req.model_name) },
    ),
  };
}

function parameterValue(p: InferParameter__Output): ParameterValue | undefined {
  switch (p.parameter_choice) {
    case 'bool_param':
      return p.bool_param;
    case 'int64_param':
      return p.int64_param;
    case 'string_param':
      return p.string_param;
    case 'double_param':
      return p.double_param;
    case 'uint64_param':
      return p.uint64_param;
    default:
      return undefined;
  }
}

function parameters(map: Record<string, InferParameter__Output>): Record<string, ParameterValue> {
  const out: Record<string, ParameterValue> = {};
  for (const [k, p] of Object.entries(map)) {
    const v = parameterValue(p);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function toInferRequest(req: ModelInferRequest__Output): InferRequest {
  const raw = req.raw_input_contents;
  if (raw.length > 0 && raw.length !== req.inputs.length) {
    throw new ServeError(
      'SWIN_BAD_TENSOR',
      `raw_input_contents has ${raw.length} entries for ${req.inputs.length} inputs; use it for every input or for none`,
    );
  }
  const inputs = req.inputs.map((t, i): InferInput => {
    const base = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (raw.length > 0) return { ...base, raw: raw[i] };
    const c = t.contents;
    if (t.datatype === 'BYTES') return { ...base, elements: c?.bytes_contents ?? [] };
    if (t.datatype === 'UINT8') return { ...base, elements: c?.uint_contents ?? [] };
    // Other datatypes are refused by runInfer with a message naming what the model takes.
    return { ...base, elements: [] };
  });
  return {
    model: req.model_name,
    version: optionalString(req.model_version),
    id: optionalString(req.id),
    parameters: parameters(req.parameters),
    inputs,
    outputs: req.outputs.map((o) => ({ name: o.name, parameters: parameters(o.parameters) })),
  };
}
