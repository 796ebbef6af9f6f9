// Tensor plumbing shared by the KServe v2 REST and gRPC front ends: the BYTES
// wire format and element counts (softmax and the classification strings are in
// ../postprocess.ts, shared with /classify). Pure functions, no I/O.
import { ServeError } from '../../errors.js';

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
    if (off + 4 > buf.length)
      throw new ServeError('SWIN_BAD_TENSOR', `input '${inputName}': BYTES data ends inside an element length prefix at byte ${off}`);
    const len = buf.readUInt32LE(off);
    if (off + 4 + len > buf.length) {
      throw new ServeError(
        'SWIN_BAD_TENSOR',
        `input '${inputName}': BYTES element at byte ${off} claims ${len} bytes but only ${buf.length - off - 4} follow`,
      );
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
