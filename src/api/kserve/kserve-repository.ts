// The KServe v2 / Triton model repository extension, shared by REST and gRPC:
//   POST /v2/repository/index                {"ready": bool}  -> [{name, version, state, reason}]
//   POST /v2/repository/models/{m}/load      {} -> 200 {}
//   POST /v2/repository/models/{m}/unload    {} -> 200 {}
// gRPC: RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload.
// Load and unload answer SWIN_MODEL_CONTROL_DISABLED unless MODEL_CONTROL_MODE=explicit.
import { ServeError } from '../../errors.js';
import { rejectUnknownFields } from '../request-fields.js';
import type { InferenceService, ModelControl } from '../../service/service-types.js';

/** The service's repository control; a service without one refuses load and unload and lists its models as READY. */
export function controlOf(service: InferenceService): ModelControl {
  if (service.control) return service.control;
  return {
    mode: 'none',
    index: async (readyOnly) =>
      service
        .listModels()
        .filter((m) => !readyOnly || m.ready)
        .map((m) => ({ name: m.name, version: m.version, state: m.ready ? ('READY' as const) : ('UNAVAILABLE' as const), reason: '' })),
    load: async () => {
      throw new ServeError('SWIN_MODEL_CONTROL_DISABLED', 'none');
    },
    unload: async () => {
      throw new ServeError('SWIN_MODEL_CONTROL_DISABLED', 'none');
    },
  };
}

/**
 * Triton's load parameters (config, file:...) override a model's files from the request: not
 * served. Unload's unload_dependents (tritonclient always sends it) is accepted: no model here
 * has dependents (ensembles), so true and false mean the same.
 */
export function refuseParameters(names: string[], op: 'load' | 'unload'): void {
  rejectUnknownFields(names, op === 'unload' ? ['unload_dependents'] : [], `${op} parameter`);
}
