// A real PNG of width x height pixels (8-bit grey, all one value) built without
// sharp: a 1 x 25,000,000 strip is 48 KB on disk and seconds of decoding
// (issue 15). Rows are deflated as one stream, fed in slices to keep memory small.
import { createDeflate } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

export async function stripPng(width: number, height: number, grey = 128): Promise<Buffer> {
  const row = Buffer.alloc(1 + width, grey);
  row[0] = 0; // filter: none
  const rowsPerSlice = Math.max(1, Math.floor((1 << 20) / row.length));
  const slice = Buffer.concat(Array.from({ length: rowsPerSlice }, () => row));
  const d = createDeflate({ level: 6 });
  const parts: Buffer[] = [];
  d.on('data', (b: Buffer) => parts.push(b));
  const done = new Promise<void>((resolve, reject) => {
    d.on('end', resolve);
    d.on('error', reject);
  });
  for (let rows = 0; rows < height; rows += rowsPerSlice) {
    const n = Math.min(rowsPerSlice, height - rows);
    if (!d.write(n === rowsPerSlice ? slice : slice.subarray(0, row.length * n))) await new Promise((r) => d.once('drain', r));
  }
  d.end();
  await done;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', Buffer.concat(parts)), chunk('IEND', Buffer.alloc(0))]);
}
