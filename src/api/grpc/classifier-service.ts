// swin.v1.Classifier: Predict turns encoded images into top-k classes through
// the same service.classify path as HTTP POST /classify.
import { Metadata } from '@grpc/grpc-js';
import type { BaseLogger } from 'pino';
import { ServeError } from '../../errors.js';
import { modelLabel, parseVariant } from '../request-params.js';
import type { ClassifierHandlers } from '../../generated/swin/v1/Classifier.js';
import type { PredictRequest__Output } from '../../generated/swin/v1/PredictRequest.js';
import type { PredictResponse } from '../../generated/swin/v1/PredictResponse.js';
import { requestPolicy } from '../../batching/queue-policy.js';
import type { InferenceService } from '../../service/service-types.js';
import { optionalString, unary } from './grpc-call.js';

export function classifierHandlers(service: InferenceService, logger: BaseLogger): ClassifierHandlers {
  return {
    Predict: unary<PredictRequest__Output, PredictResponse>(
      logger,
      'grpc',
      async (req, { opts, call }) => {
        if (req.images.length === 0) throw new ServeError('SWIN_EMPTY_BODY');
        const model = optionalString(req.model);
        const variant = parseVariant(req.variant, model ?? service.defaultModelName());
        const policy = requestPolicy(req.priority, req.timeout_ms, { priority: 'priority', timeout: 'timeout_ms' });
        const version = optionalString(req.version);
        const result = await service.classify(model, req.images, {
          ...opts,
          ...policy,
          variant,
          version,
          topK: req.top_k === 0 ? undefined : req.top_k,
        });
        // The proto has no field for them (a new field would change every generated client): header metadata.
        if (result.warnings) {
          const md = new Metadata();
          md.set('swin-image-warnings', JSON.stringify(result.warnings));
          call.sendMetadata(md);
        }
        return {
          model: result.model,
          variant: result.variant,
          backend: result.backend,
          predictions: result.predictions.map((classes) => ({ classes })),
          timings: result.timings,
          version: result.version ?? '',
        };
      },
      {
        api: 'grpc',
        // Clients choose model names: unknown ones share one label.
        model: (req) => modelLabel(service, req.model || service.defaultModelName()),
      },
    ),
  };
}
