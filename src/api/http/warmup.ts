// Warm-up requests (WARMUP_REQUESTS, on by default). Before the listeners open,
// src/server.ts sends POST /classify through the app itself (app.inject) for each
// model that serves: a raw JPEG body, multipart with one and with two JPEGs, JSON
// with one base64 image, and a raw PNG (on a GPU host, sharp's path). Each request
// runs the whole route, parsers, service, decoders, batcher, engine and reply
// serialisation. Without them, the first client after /health/ready paid for the
// first pass through all of that and the JIT: with engine and GPU decoders already
// warm, the first request at batch 1 took 5x the steady p50 on an H100
// (bench/loadgen/first-request.ts).
//
// A warm-up request is known by the class of its raw request, WarmupRequest below,
// which inject() builds (light-my-request's `Request` option) and no request read
// from a socket can be. So a client cannot pass for one. The front end leaves warm-up
// requests out of access control (auth, rate limits), the access log, traces and the
// request metrics. The service leaves them out of its image, decode, queue, batch and
// latency metrics (RequestOptions.warmup).
import { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import sharp from 'sharp';
import type { Config } from '../../config.js';
import type { InferenceService } from '../../service/service-types.js';

class WarmupRequest extends IncomingMessage {}

/** Sent by sendWarmupRequests, not by a client. */
export function isWarmupRequest(request: FastifyRequest): boolean {
  return request.raw instanceof WarmupRequest;
}

export interface WarmupOutcome {
  /** Requests sent, over every model. */
  sent: number;
  /** Those not answered 200: model, body, status and the reply's code and message. */
  failed: { model: string; body: string; status: number; code?: string; message?: string }[];
  ms: number;
}

interface Body {
  name: string;
  contentType: string;
  payload: Buffer;
}

async function multipart(image: Buffer, n: number): Promise<Body> {
  const form = new FormData();
  for (let i = 0; i < n; i++) form.append('image', new Blob([new Uint8Array(image)], { type: 'image/jpeg' }), `warmup${i}.jpg`);
  // The platform's encoder, as a fetch() client would send it (with a Content-Length).
  const encoded = new Response(form);
  return {
    name: `multipart x${n}`,
    contentType: encoded.headers.get('content-type')!,
    payload: Buffer.from(await encoded.arrayBuffer()),
  };
}

/** The bodies clients send, in the formats `acceptedFormats` allows. */
async function warmupBodies(acceptedFormats: readonly string[]): Promise<Body[]> {
  // 256 x 256 with a gradient: scaled and cropped like a photo, not a flat image.
  const side = 256;
  const pixels = Buffer.alloc(side * side * 3);
  for (let i = 0; i < side * side; i++) pixels.set([i % side, (i / side) & 255, 128], i * 3);
  const raw = { raw: { width: side, height: side, channels: 3 as const } };
  const bodies: Body[] = [];
  if (acceptedFormats.includes('jpeg')) {
    const jpeg = await sharp(pixels, raw).jpeg({ quality: 90 }).toBuffer();
    bodies.push({ name: 'raw jpeg', contentType: 'image/jpeg', payload: jpeg });
    bodies.push(await multipart(jpeg, 1), await multipart(jpeg, 2));
    const json = JSON.stringify({ images: [jpeg.toString('base64')] });
    bodies.push({ name: 'json x1', contentType: 'application/json', payload: Buffer.from(json) });
  }
  if (acceptedFormats.includes('png')) {
    bodies.push({ name: 'raw png', contentType: 'image/png', payload: await sharp(pixels, raw).png().toBuffer() });
  }
  return bodies;
}

/**
 * Sends the warm-up requests, one at a time (so batches of 1 and 2 reach the engine), to every
 * model that is ready; null, and nothing sent, when WARMUP_REQUESTS is off. A failed one is
 * reported, not thrown: the service serves without it.
 */
export async function sendWarmupRequests(
  app: FastifyInstance,
  service: InferenceService,
  config: Pick<Config, 'warmupRequests' | 'acceptedFormats'>,
): Promise<WarmupOutcome | null> {
  if (!config.warmupRequests) return null;
  const start = performance.now();
  const outcome: WarmupOutcome = { sent: 0, failed: [], ms: 0 };
  const models = service
    .listModels()
    .filter((m) => m.ready)
    .map((m) => m.name);
  const bodies = models.length > 0 ? await warmupBodies(config.acceptedFormats) : [];
  for (const model of models) {
    for (const body of bodies) {
      const reply = await app.inject({
        method: 'POST',
        url: `/classify?model=${encodeURIComponent(model)}`,
        headers: { 'content-type': body.contentType },
        payload: body.payload,
        Request: WarmupRequest,
      });
      outcome.sent++;
      if (reply.statusCode !== 200) {
        let error: { code?: string; message?: string } = {};
        try {
          error = reply.json();
        } catch {
          // not the error table's JSON: status only
        }
        outcome.failed.push({ model, body: body.name, status: reply.statusCode, code: error.code, message: error.message });
      }
    }
  }
  outcome.ms = performance.now() - start;
  return outcome;
}
