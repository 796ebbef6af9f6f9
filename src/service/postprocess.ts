// The only post-processing, done once after the engine (engines return raw logits):
// softmax per row, and the k best classes of a row. /classify and gRPC Predict reply with
// topK(); KServe's probabilities output and classification extension use the same pieces.
import type { ClassifyResult, TopKEntry } from './service-types.js';

/** softmax(logits[row]) into out[row] (max-subtracted, so large logits do not overflow). */
function softmaxRow(logits: Float32Array, row: number, c: number, out: Float32Array | Float64Array): number {
  const base = row * c;
  let max = -Infinity;
  for (let j = 0; j < c; j++) max = Math.max(max, logits[base + j]);
  let sum = 0;
  for (let j = 0; j < c; j++) {
    const e = Math.exp(logits[base + j] - max);
    out[base + j] = e;
    sum += e;
  }
  for (let j = 0; j < c; j++) out[base + j] /= sum;
  return sum;
}

/** Row-wise softmax of n x c logits. */
export function softmaxRows(logits: Float32Array, n: number, c: number): Float32Array {
  const out = new Float32Array(n * c);
  for (let r = 0; r < n; r++) softmaxRow(logits, r, c, out);
  return out;
}

/**
 * Indices of the k largest values of values[row], best first; ties keep the lower index
 * first. One pass with a k-long sorted list: no sort of all c classes for a top 5 of 1,000.
 */
export function topIndices(values: ArrayLike<number>, row: number, c: number, k: number): number[] {
  const base = row * c;
  const best: number[] = [];
  const n = Math.min(k, c);
  for (let i = 0; i < c; i++) {
    const v = values[base + i];
    if (best.length === n && !(v > values[base + best[n - 1]])) continue; // no better than the worst kept (ties: earlier wins)
    if (best.length < n) best.push(i);
    else best[n - 1] = i;
    for (let at = best.length - 1; at > 0 && v > values[base + best[at - 1]]; at--) {
      best[at] = best[at - 1];
      best[at - 1] = i;
    }
  }
  return best;
}

/** Top k of softmax(logits[row]), highest first, with labels. */
export function topK(logits: Float32Array, row: number, numClasses: number, k: number, labels: readonly string[]): TopKEntry[] {
  const probs = new Float64Array(numClasses);
  softmaxRow(logits.subarray(row * numClasses, (row + 1) * numClasses), 0, numClasses, probs);
  return topIndices(probs, 0, numClasses, k).map((index) => ({ label: labels[index], index, score: probs[index] }));
}

/** A classify result made with deferTopK, finished: predictions from its logits and the model's labels. */
export function finishTopK(result: ClassifyResult, labels: readonly string[]): ClassifyResult {
  const d = result.deferred;
  if (d === undefined) return result;
  const { deferred: _d, ...rest } = result;
  const n = d.logits.length / d.numClasses;
  return { ...rest, predictions: Array.from({ length: n }, (_, i) => topK(d.logits, i, d.numClasses, d.k, labels)) };
}

/**
 * KServe's classification extension: the k largest values of each row as
 * "value:index:label" strings, best first (Triton's format, value printed with 6 decimals).
 */
export function classificationStrings(values: Float32Array, n: number, c: number, k: number, labels: readonly string[]): Buffer[] {
  const out: Buffer[] = [];
  for (let r = 0; r < n; r++) {
    for (const i of topIndices(values, r, c, k)) out.push(Buffer.from(`${values[r * c + i].toFixed(6)}:${i}:${labels[i] ?? ''}`));
  }
  return out;
}
