// KServe v2 (Open Inference Protocol) over REST, on the HTTP port under /v2:
//   GET  /v2/health/live, /v2/health/ready, /v2
//   GET  /v2/models/{m}[/versions/{v}]          model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready
//   GET  /v2/models/{m}[/versions/{v}]/config   Triton's model configuration (for perf_analyzer)
//   POST /v2/models/{m}[/versions/{v}]/infer    JSON, or JSON + binary tensors
//   POST /v2/repository/index, /v2/repository/models/{m}/load|unload   (kserve-repository.ts)
// The routes live in their own encapsulated plugin: they parse every body as
// bytes (the binary tensor extension puts raw tensors after the JSON header)
// and answer errors as KServe does, {"error": "..."}, with the status and
// stable code (header swin-code) from the error table.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requestClient } from '../access/access-control.js';
import { ServeError, isServeError } from '../../errors.js';
import { requestDuration, requestsTotal } from '../../observability/metrics.js';
import { PLACEHOLDER, extractUint8Data } from './json-uint8-data.js';
import { rejectUnknownFields } from '../request-fields.js';
import type { InferenceService } from '../../service/service-types.js';
import {
  requestOptions,
  runInfer,
  type InferInput,
  type InferRequest,
  type InferResult,
  type ParameterValue,
  type RequestedOutput,
} from './kserve-infer.js';
import { modelConfig, modelMetadata, resolveModel, serverMetadata } from './kserve-model.js';
import { modelLabel } from '../request-params.js';
import { serializeBytesTensor } from './kserve-tensors.js';
import { controlOf, refuseParameters } from './kserve-repository.js';

const HEADER_LENGTH = 'inference-header-content-length';

interface ModelParams {
  model: string;
  version?: string;
}

export function registerKServeRoutes(app: FastifyInstance, service: InferenceService): void {
  void app.register(kservePlugin, { prefix: '/v2', service });
}

// The statuses these routes answer, declared for the OpenAPI document
// (schemathesis checks replies against it). additionalProperties keeps every
// field when fastify serializes: error bodies are {"error"}, not-ready ones {name, ready}.
const ANY_BODY = { type: 'object', additionalProperties: true, properties: { error: { type: 'string' } } } as const;
const DOCUMENTED = {
  schema: {
    response: Object.fromEntries([200, 400, 401, 403, 404, 405, 413, 415, 422, 429, 500, 503, 504].map((status) => [status, ANY_BODY])),
  },
};

const INDEX_ROW = {
  type: 'object',
  required: ['name', 'version', 'state', 'reason'],
  properties: {
    name: { type: 'string' },
    version: { type: 'string' },
    state: { type: 'string', enum: ['READY', 'UNAVAILABLE', 'LOADING', 'UNLOADING'] },
    reason: { type: 'string' },
  },
} as const;
const INDEX_SCHEMA = { schema: { response: { ...DOCUMENTED.schema.response, 200: { type: 'array', items: INDEX_ROW } } } };

async function kservePlugin(scope: FastifyInstance, opts: { service: InferenceService }): Promise<void> {
  const { service } = opts;
  scope.removeAllContentTypeParsers();
  // JSON, octet-stream, or none at all (tritonclient sends the binary form without a content type).
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  scope.setErrorHandler((err, request, reply) =>
    sendError(reply, request, toKServeError(err, scope.initialConfig.bodyLimit ?? 1048576), err),
  );
  scope.setNotFoundHandler((request, reply) => sendError(reply, request, new ServeError('SWIN_NOT_FOUND', request.method, request.url)));

  scope.get('/health/live', DOCUMENTED, async () => ({ live: true }));
  scope.get('/health/ready', DOCUMENTED, async (_req, reply) => {
    const ready = service.isReady();
    return reply.code(ready ? 200 : 400).send({ ready });
  });
  scope.get('/', DOCUMENTED, async () => serverMetadata());

  const metadata = async (req: FastifyRequest<{ Params: ModelParams }>) =>
    modelMetadata(resolveModel(service, req.params.model, req.params.version));
  scope.get('/models/:model', DOCUMENTED, metadata);
  scope.get('/models/:model/versions/:version', DOCUMENTED, metadata);

  const ready = async (req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const status = resolveModel(service, req.params.model, req.params.version);
    return reply.code(status.ready ? 200 : 400).send({ name: status.name, ready: status.ready });
  };
  scope.get('/models/:model/ready', DOCUMENTED, ready);
  scope.get('/models/:model/versions/:version/ready', DOCUMENTED, ready);

  const config = async (req: FastifyRequest<{ Params: ModelParams }>) =>
    modelConfig(resolveModel(service, req.params.model, req.params.version));
  scope.get('/models/:model/config', DOCUMENTED, config);
  scope.get('/models/:model/versions/:version/config', DOCUMENTED, config);

  const infer = async (req: FastifyRequest<{ Params: ModelParams; Body: Buffer }>, reply: FastifyReply) => {
    const started = process.hrtime.bigint();
    req.swinModel = req.params.model;
    let code = 'OK';
    try {
      const parsed = parseInferBody(req.body, req.headers[HEADER_LENGTH]);
      const request: InferRequest = { ...parsed.request, model: req.params.model, version: req.params.version };
      const controller = new AbortController();
      // 'close' before the reply finished: the client went away, so the request leaves the queue.
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) controller.abort();
      });
      const result = await runInfer(service, request, {
        ...requestOptions(request.parameters),
        signal: controller.signal,
        api: 'kserve_http',
        trace: req.swinTrace?.ctx,
        client: requestClient(req.headers.authorization, req.headers['x-api-key'], req.ip),
      });
      return sendInferResult(reply, result, parsed.binaryOutputDefault);
    } catch (err) {
      code = isServeError(err) ? err.code : 'SWIN_INTERNAL';
      throw err;
    } finally {
      const labels = { api: 'kserve_http', model: modelLabel(service, req.params.model), code };
      requestsTotal.inc(labels);
      requestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };
  scope.post('/models/:model/infer', DOCUMENTED, infer);
  scope.post('/models/:model/versions/:version/infer', DOCUMENTED, infer);

  // Triton answers the index with a bare JSON array.
  scope.post('/repository/index', INDEX_SCHEMA, async (req: FastifyRequest<{ Body: Buffer }>) => {
    const body = jsonObject(req.body, ['repository_name', 'ready']);
    if (body.ready !== undefined && typeof body.ready !== 'boolean')
      throw new ServeError('SWIN_BAD_REQUEST', '"ready" must be true or false');
    return controlOf(service).index(body.ready === true);
  });
  const control = (op: 'load' | 'unload') => async (req: FastifyRequest<{ Params: { model: string }; Body: Buffer }>) => {
    const body = jsonObject(req.body, ['parameters']);
    if (body.parameters !== undefined) refuseParameters(Object.keys(parametersOf(body.parameters, 'parameters')), op);
    await controlOf(service)[op](req.params.model);
    return {};
  };
  scope.post('/repository/models/:model/load', DOCUMENTED, control('load'));
  scope.post('/repository/models/:model/unload', DOCUMENTED, control('unload'));
}

/** An optional JSON object body with only the `known` fields (empty body: {}). */
function jsonObject(body: Buffer | undefined, known: readonly string[]): Record<string, unknown> {
  if (!Buffer.isBuffer(body) || body.length === 0) return {};
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ServeError('SWIN_BAD_REQUEST', `the body is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(json)) throw new ServeError('SWIN_BAD_REQUEST', 'the body must be a JSON object');
  rejectUnknownFields(Object.keys(json), known, 'field of the repository request:');
  return json;
}

interface ParsedInferBody {
  request: Omit<InferRequest, 'model' | 'version'>;
  /** Request-level binary_data_output: the default for outputs that do not say. */
  binaryOutputDefault: boolean;
}

/** The JSON header (its length in Inference-Header-Content-Length when binary tensors follow) and the tensors after it. */
export function parseInferBody(body: Buffer | undefined, headerLength: string | string[] | undefined): ParsedInferBody {
  if (!Buffer.isBuffer(body) || body.length === 0) throw new ServeError('SWIN_BAD_REQUEST', 'the inference request has no body');
  let jsonBytes: Buffer = body;
  let binary: Buffer = Buffer.alloc(0);
  if (headerLength !== undefined) {
    const n = Number(Array.isArray(headerLength) ? headerLength[0] : headerLength);
    if (!Number.isInteger(n) || n <= 0 || n > body.length) {
      throw new ServeError(
        'SWIN_BAD_REQUEST',
        `Inference-Header-Content-Length ${JSON.stringify(headerLength)} is not a length within the ${body.length}-byte body`,
      );
    }
    jsonBytes = body.subarray(0, n);
    binary = body.subarray(n);
  }
  let json: unknown;
  // Large integer arrays straight into bytes (json-uint8-data.ts): no 9x blow-up of UINT8 images.
  const { text, arrays } = extractUint8Data(jsonBytes);
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ServeError('SWIN_BAD_REQUEST', `the inference request header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(json)) throw new ServeError('SWIN_BAD_REQUEST', 'the inference request must be a JSON object');
  // The Open Inference Protocol's fields; extensions travel in "parameters", which stays open.
  rejectUnknownFields(Object.keys(json), ['id', 'parameters', 'inputs', 'outputs'], 'field of the inference request:');
  const parameters = parametersOf(json.parameters, 'request parameters');
  if (!Array.isArray(json.inputs) || json.inputs.length === 0)
    throw new ServeError('SWIN_BAD_REQUEST', 'the inference request needs a non-empty "inputs" array');

  let offset = 0;
  const inputs = json.inputs.map((raw, i): InferInput => {
    if (!isObject(raw)) throw new ServeError('SWIN_BAD_REQUEST', `inputs[${i}] is not an object`);
    rejectUnknownFields(Object.keys(raw), ['name', 'shape', 'datatype', 'parameters', 'data'], `field of inputs[${i}]:`);
    const name = stringField(raw.name, `inputs[${i}].name`);
    const datatype = stringField(raw.datatype, `input '${name}': datatype`);
    if (!Array.isArray(raw.shape) || !raw.shape.every((d) => typeof d === 'number')) {
      throw new ServeError('SWIN_BAD_TENSOR', `input '${name}': shape must be an array of integers`);
    }
    const shape = raw.shape as number[];
    const params = parametersOf(raw.parameters, `input '${name}' parameters`);
    const size = params.binary_data_size;
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || offset + size > binary.length) {
        throw new ServeError(
          'SWIN_BAD_TENSOR',
          `input '${name}': binary_data_size ${JSON.stringify(size)} exceeds the ${binary.length - offset} binary bytes left in the body`,
        );
      }
      const slice = binary.subarray(offset, offset + size);
      offset += size;
      return { name, datatype, shape, raw: slice };
    }
    if (raw.data === undefined)
      throw new ServeError('SWIN_BAD_TENSOR', `input '${name}' has neither "data" nor a binary_data_size parameter`);
    const extracted =
      typeof raw.data === 'string' && raw.data.startsWith(PLACEHOLDER) ? arrays[Number(raw.data.slice(PLACEHOLDER.length))] : undefined;
    if (extracted) {
      // UINT8: the bytes are the tensor as the binary extension would send it; other types get their numbers back.
      if (datatype === 'UINT8')
        return { name, datatype, shape, raw: Buffer.from(extracted.buffer, extracted.byteOffset, extracted.length) };
      return { name, datatype, shape, elements: Array.from(extracted) };
    }
    const flat = Array.isArray(raw.data) ? (raw.data as unknown[]).flat(Infinity) : [raw.data];
    if (datatype === 'BYTES') return { name, datatype, shape, elements: flat.map((v, j) => base64Element(v, name, j)) };
    return { name, datatype, shape, elements: flat as number[] };
  });
  if (offset !== binary.length) {
    throw new ServeError(
      'SWIN_BAD_REQUEST',
      `the body carries ${binary.length - offset} binary bytes that no input claims through binary_data_size`,
    );
  }

  const outputs: RequestedOutput[] = [];
  if (json.outputs !== undefined) {
    if (!Array.isArray(json.outputs)) throw new ServeError('SWIN_BAD_REQUEST', '"outputs" must be an array');
    json.outputs.forEach((raw, i) => {
      if (!isObject(raw)) throw new ServeError('SWIN_BAD_REQUEST', `outputs[${i}] is not an object`);
      rejectUnknownFields(Object.keys(raw), ['name', 'parameters'], `field of outputs[${i}]:`);
      const name = stringField(raw.name, `outputs[${i}].name`);
      outputs.push({ name, parameters: parametersOf(raw.parameters, `output '${name}' parameters`) });
    });
  }
  const id = json.id === undefined ? undefined : stringField(json.id, 'id');
  return { request: { id, parameters, inputs, outputs }, binaryOutputDefault: parameters.binary_data_output === true };
}

function sendInferResult(reply: FastifyReply, result: InferResult, binaryDefault: boolean): FastifyReply {
  const blobs: Buffer[] = [];
  const outputs = result.outputs.map((o) => {
    const binary = typeof o.requested.binary_data === 'boolean' ? o.requested.binary_data : binaryDefault;
    const head = { name: o.name, datatype: o.datatype, shape: o.shape };
    if (binary) {
      const blob = o.fp32 ? Buffer.from(o.fp32.buffer, o.fp32.byteOffset, o.fp32.byteLength) : serializeBytesTensor(o.bytes ?? []);
      blobs.push(blob);
      return { ...head, parameters: { binary_data_size: blob.length } };
    }
    return { ...head, data: o.fp32 ? Array.from(o.fp32) : (o.bytes ?? []).map((b) => b.toString('utf8')) };
  });
  const header = {
    model_name: result.model_name,
    model_version: result.model_version,
    ...(result.id ? { id: result.id } : {}),
    ...(result.parameters && { parameters: result.parameters }),
    outputs,
  };
  if (blobs.length === 0) return reply.send(header);
  const json = Buffer.from(JSON.stringify(header));
  return reply
    .header(HEADER_LENGTH, String(json.length))
    .type('application/octet-stream')
    .send(Buffer.concat([json, ...blobs]));
}

/** `thrown`: what was thrown, when err was made from it (its stack is logged if it was a fault of ours). */
function sendError(reply: FastifyReply, request: FastifyRequest, err: ServeError, thrown?: unknown): FastifyReply {
  // The app's onResponse hook logs the request's one line with this error.
  request.swinCode = err.code;
  request.swinError = thrown !== undefined && !isServeError(thrown) && err.code === 'SWIN_INTERNAL' ? thrown : err;
  if (err.retryAfterSeconds !== undefined) void reply.header('retry-after', String(err.retryAfterSeconds));
  return reply.code(err.httpStatus).header('swin-code', err.code).type('application/json').send({ error: err.message });
}

/** fastify's own errors (body too large, bad content) become table entries too. */
function toKServeError(err: unknown, bodyLimit: number): ServeError {
  if (isServeError(err)) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) return new ServeError('SWIN_PAYLOAD_TOO_LARGE', bodyLimit);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return new ServeError('SWIN_BAD_REQUEST', e.message ?? 'invalid request');
  return new ServeError('SWIN_INTERNAL');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringField(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new ServeError('SWIN_BAD_REQUEST', `${what} must be a string`);
  return v;
}

function parametersOf(v: unknown, what: string): Record<string, ParameterValue> {
  if (v === undefined) return {};
  if (!isObject(v)) throw new ServeError('SWIN_BAD_REQUEST', `${what} must be an object`);
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean') {
      throw new ServeError('SWIN_BAD_REQUEST', `${what}: "${k}" must be a string, number or boolean`);
    }
  }
  return v as Record<string, ParameterValue>;
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** JSON cannot carry raw image bytes, so BYTES elements in JSON are base64 strings. */
function base64Element(v: unknown, input: string, index: number): Buffer {
  if (typeof v !== 'string' || !BASE64.test(v)) throw new ServeError('SWIN_BAD_BASE64', `${index} of input '${input}'`);
  return Buffer.from(v, 'base64');
}
