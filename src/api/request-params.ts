// Request parameters that every front end reads (HTTP /classify, KServe REST and gRPC,
// swin.v1 Predict), checked once so that the same bad value gets the same code everywhere.
import type { Variant } from '../backends/backend.js';
import { ServeError } from '../errors.js';
import type { InferenceService } from '../service/service-types.js';

/**
 * A request's variant: absent or empty (proto3's default) = the model's active one; any
 * other value than fold/unfold is SWIN_VARIANT_NOT_FOUND (404 / NOT_FOUND) on every protocol.
 */
export function parseVariant(raw: unknown, model: string): Variant | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (raw === 'fold' || raw === 'unfold') return raw;
  const shown = JSON.stringify(typeof raw === 'string' ? raw.slice(0, 40) : raw) ?? String(raw);
  throw new ServeError('SWIN_VARIANT_NOT_FOUND', model, shown.slice(0, 60), 'fold, unfold');
}

/**
 * The `model` label of request metrics: the model's name when it is loaded, else "unknown"
 * (clients choose names; one label for all unknown ones keeps the series bounded).
 */
export function modelLabel(service: Pick<InferenceService, 'listModels'>, name: string | undefined): string {
  return name !== undefined && service.listModels().some((m) => m.name === name) ? name : 'unknown';
}
