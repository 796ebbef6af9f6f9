// Tensor plumbing shared by the KServe v2 REST and gRPC front ends: the BYTES
// wire format, element counts, softmax and the classification extension's
// "score:index:label" strings. Pure functions, no I/O.
import { ServeError } from '../errors.js';

/**
 * BYTES tensors on the wire (binary extension, raw_input_contents): every
 * element is a 4-byte little-endian length followed by that many bytes.
 */
export function serializeBytesTensor(elements: readonly Buffer[]): Buffer {
  let total = 0;
  for (const e of elements) total += 4 + e.length;
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const e of elements) {
    out.writeUInt32LE(e.length, off);
    e.copy(out, off + 4);
    off += 4 + e.length;
  }
  return out;
}

export function deserializeBytesTensor(buf: Buffer, inputName: string): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new ServeError('SWIN_BAD_TENSOR', `input '${inputName}': BYTES data ends inside an element length prefix at byte ${off}`);
    const len = buf.readUInt32LE(off);
    if (off + 4 + len > buf.length) {
      throw new ServeError('SWIN_BAD_TENSOR', `input '${inputName}': BYTES element at byte ${off} claims ${len} bytes but only ${buf.length - off - 4} follow`);
    }
    // subarray, not a copy: the request buffer outlives the inference.
    out.push(buf.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return '[' + shape.join(',') + ']';
}

/** Row-wise softmax of n x c logits (max-subtracted, so large logits do not overflow). */
export function softmaxRows(logits: Float32Array, n: number, c: number): Float32Array {
  const out = new Float32Array(n * c);
  for (let r = 0; r < n; r++) {
    const base = r * c;
    let max = -Infinity;
    for (let j = 0; j < c; j++) max = Math.max(max, logits[base + j]);
    let sum = 0;
    for (let j = 0; j < c; j++) {
      const e = Math.exp(logits[base + j] - max);
      out[base + j] = e;
      sum += e;
    }
    for (let j = 0; j < c; j++) out[base + j] /= sum;
  }
  return out;
}

/**
 * The classification extension: the k largest values of each row as
 * "value:index:label" strings, best first (Triton's format, value printed
 * with 6 decimals). Ties keep the lower index first.
 */
export function classificationStrings(values: Float32Array, n: number, c: number, k: number, labels: readonly string[]): Buffer[] {
  const out: Buffer[] = [];
  const idx = Array.from({ length: c }, (_, j) => j);
  for (let r = 0; r < n; r++) {
    const base = r * c;
    const order = idx.slice().sort((a, b) => values[base + b] - values[base + a] || a - b);
    for (let j = 0; j < k; j++) {
      const i = order[j];
      out.push(Buffer.from(`${values[base + i].toFixed(6)}:${i}:${labels[i] ?? ''}`));
    }
  }
  return out;
}
