// KServe v2 JSON bodies carry tensors as "data": [[[[12, 200, ...]]]]. Parsed
// by JSON.parse, a UINT8 image costs about 9x its body in memory (the text as
// a string, nested arrays of 8-byte numbers, the flattened copy, then bytes:
// 32 x 15.7 MB requests took the process from 0.4 to 2.7 GB). This pass reads
// such arrays straight from the body's bytes into a Uint8Array (one byte per
// element, at most half the array's text) and hands JSON.parse the rest with a
// placeholder string in their place. Only arrays of integers 0..255 (nested
// to any depth) are taken; anything else (floats, negatives, strings, bad
// syntax) is left to JSON.parse, which then reports it as before.

/** Stands in for an extracted array in the JSON text; followed by the array's number. */
export const PLACEHOLDER = '\u0000swin-uint8-data:';

const QUOTE = 0x22,
  BACKSLASH = 0x5c,
  COLON = 0x3a,
  OPEN = 0x5b,
  CLOSE = 0x5d,
  COMMA = 0x2c;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

function skipSpace(b: Buffer, i: number): number {
  while (i < b.length && isSpace(b[i])) i++;
  return i;
}

/** Reads the array at b[start] ('['); returns its end (after ']') and values, or null if it is not all integers 0..255. */
function readUint8Array(b: Buffer, start: number): { end: number; values: Uint8Array } | null {
  const out = new Uint8Array((b.length - start) >> 1);
  let n = 0;
  let depth = 0;
  let i = start;
  // After '[' or ',': a value must come ('[' or a number; ']' only right after '[').
  let wantValue = true;
  let justOpened = false;
  while (i < b.length) {
    const c = b[i];
    if (isSpace(c)) {
      i++;
    } else if (c === OPEN) {
      if (!wantValue) return null;
      depth++;
      justOpened = true;
      i++;
    } else if (c === CLOSE) {
      if (wantValue && !justOpened) return null;
      depth--;
      i++;
      wantValue = false;
      justOpened = false;
      if (depth === 0) return { end: i, values: out.slice(0, n) }; // exact size: the scratch array is half the text
    } else if (c === COMMA) {
      if (wantValue) return null;
      wantValue = true;
      justOpened = false;
      i++;
    } else if (isDigit(c)) {
      if (!wantValue) return null;
      let v = 0;
      const from = i;
      while (i < b.length && isDigit(b[i])) v = v * 10 + (b[i++] - 0x30);
      if (v > 255 || (i - from > 1 && b[from] === 0x30)) return null; // out of range, or a leading zero (not JSON)
      if (i < b.length && (b[i] === 0x2e || b[i] === 0x65 || b[i] === 0x45)) return null; // 1.5, 1e3: not an integer literal
      out[n++] = v;
      wantValue = false;
      justOpened = false;
    } else {
      return null;
    }
  }
  return null;
}

/**
 * The JSON text with every `"data": [integers 0..255]` replaced by a placeholder string, and
 * the arrays' values, by placeholder number. Bodies under `minBytes` are returned as they are.
 */
export function extractUint8Data(json: Buffer, minBytes = 16 * 1024): { text: string; arrays: Uint8Array[] } {
  const arrays: Uint8Array[] = [];
  if (json.length < minBytes) return { text: json.toString('utf8'), arrays };
  const pieces: string[] = [];
  let copied = 0;
  let i = 0;
  while (i < json.length) {
    if (json[i] !== QUOTE) {
      i++;
      continue;
    }
    // A string: find its end, honouring escapes.
    const open = i++;
    while (i < json.length && json[i] !== QUOTE) i += json[i] === BACKSLASH ? 2 : 1;
    const close = i++;
    if (close - open !== 5 || json.toString('latin1', open + 1, close) !== 'data') continue;
    let j = skipSpace(json, i);
    if (json[j] !== COLON) continue;
    j = skipSpace(json, j + 1);
    if (json[j] !== OPEN) continue;
    const arr = readUint8Array(json, j);
    if (!arr) continue;
    pieces.push(json.toString('utf8', copied, j), JSON.stringify(PLACEHOLDER + arrays.length));
    arrays.push(arr.values);
    copied = arr.end;
    i = arr.end;
  }
  pieces.push(json.toString('utf8', copied));
  return { text: pieces.join(''), arrays };
}
