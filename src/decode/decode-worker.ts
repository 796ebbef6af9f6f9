// One decode process of src/decode-pool.ts: runs src/preprocess.ts (sharp) on
// the images its parent sends and answers with the model-input bytes or with
// the ServeError the in-process path would have thrown.
import type { ModelConfig } from '../models/model-config.js';
import { ServeError, type ErrorCode } from '../errors.js';
import { Preprocessor, type PreprocessLimits } from './preprocess.js';

export interface DecodeJob {
  id: number;
  /** Key of the model's preprocessing recipe; `recipe` comes with the first job that uses it. */
  key: string;
  recipe?: { model: ModelConfig; limits: PreprocessLimits };
  image: Uint8Array;
  index: number;
}

export type DecodeReply = { id: number; pixels: Uint8Array; warnings: string[] } | { id: number; code: ErrorCode | null; message: string };

const preprocessors = new Map<string, Preprocessor>();

async function run(job: DecodeJob): Promise<DecodeReply> {
  try {
    if (job.recipe) preprocessors.set(job.key, new Preprocessor(job.recipe.model, job.recipe.limits));
    const p = preprocessors.get(job.key);
    if (!p) throw new Error(`no preprocessing recipe ${job.key}`);
    // structured clone hands Buffers over as plain Uint8Arrays: sharp wants a Buffer.
    const image = Buffer.from(job.image.buffer, job.image.byteOffset, job.image.byteLength);
    const warnings: string[] = [];
    const pixels = await p.one(image, job.index, { onWarning: (w) => warnings.push(w) });
    return { id: job.id, pixels, warnings };
  } catch (err) {
    if (err instanceof ServeError) return { id: job.id, code: err.code, message: err.message };
    return { id: job.id, code: null, message: (err as Error).message ?? String(err) };
  }
}

process.on('message', (job: DecodeJob) => {
  void run(job).then((reply) => process.send?.(reply));
});
// The parent going away (crash, SIGKILL) closes the IPC channel: leave with it.
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
