// Softmax and top-k over one row of logits: the only post-processing, done once
// after the engine (engines return raw logits).
import type { TopKEntry } from './service-types.js';

/** Top k of softmax(logits[row]), highest first; ties keep the lower class index first. */
export function topK(logits: Float32Array, row: number, numClasses: number, k: number, labels: readonly string[]): TopKEntry[] {
  const base = row * numClasses;
  let max = -Infinity;
  for (let i = 0; i < numClasses; i++) max = Math.max(max, logits[base + i]);
  // Subtracting the max keeps exp() finite for large logits.
  const probs = new Float64Array(numClasses);
  let sum = 0;
  for (let i = 0; i < numClasses; i++) {
    probs[i] = Math.exp(logits[base + i] - max);
    sum += probs[i];
  }
  const order = Array.from({ length: numClasses }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  return order.slice(0, Math.min(k, numClasses)).map((index) => ({ label: labels[index], index, score: probs[index] / sum }));
}
