// The GPU path's damage check (src/decode/jpeg-damage.ts) against libjpeg itself:
// a JPEG is judged damaged when sharp's decoder warns about it, so a GPU host
// reports the same warnings as the CPU path (the damaged ones go to sharp);
// clean JPEGs stay on the GPU decoder. One kind of damage is missed (below).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { GpuDecodeRouter, type GpuDecodeSpec, type JpegDecoderLike } from '../src/decode/gpu-decode.js';
import { jpegDamage, jpegLooksDamaged } from '../src/decode/jpeg-damage.js';
import { Preprocessor } from '../src/decode/preprocess.js';
import { fakeModelConfig } from './helpers/fake-model.js';

const noise = (w: number, h: number) =>
  sharp({ create: { width: w, height: h, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });

async function cases(): Promise<Array<[string, Buffer]>> {
  const base = await noise(320, 240).jpeg().toBuffer();
  const mid = base.length >> 1;
  const withMarker = (m: number) => {
    const b = Buffer.from(base);
    b[mid] = 0xff;
    b[mid + 1] = m;
    return b;
  };
  return [
    ['baseline', base],
    ['progressive', await noise(320, 240).jpeg({ progressive: true }).toBuffer()],
    ['4:4:4 quality 100', await noise(200, 150).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer()],
    ['grey with EXIF', await noise(64, 64).greyscale().withMetadata({ orientation: 6 }).jpeg().toBuffer()],
    ['trailing bytes after EOI', Buffer.concat([base, Buffer.from('trailer')])],
    ['RST marker in the middle (no restart interval)', withMarker(0xd3)],
    ['SOF marker in the middle', withMarker(0xc0)],
    ['3000 bytes cut from the middle', Buffer.concat([base.subarray(0, mid), base.subarray(mid + 3000)])],
    ['truncated', base.subarray(0, mid)],
  ];
}

/** Whether libjpeg (through sharp) warns or fails on it. */
async function libjpegComplains(img: Buffer): Promise<boolean> {
  return sharp(img, { failOn: 'warning' })
    .raw()
    .toBuffer()
    .then(
      () => false,
      () => true,
    );
}

// Known miss, pinned so that a change shows: entropy data cut short between intact markers
// only shows when the scan runs out of data before its last block, which takes decoding to see.
const MISSED = new Set(['3000 bytes cut from the middle']);

test('the scan names what it found', async () => {
  const all = new Map(await cases());
  assert.equal(jpegDamage(all.get('baseline')!), null);
  assert.match(
    jpegDamage(all.get('RST marker in the middle (no restart interval)')!) ?? '',
    /^marker 0xffd3 inside entropy-coded data at byte \d+$/,
  );
  assert.equal(jpegDamage(all.get('truncated')!), 'no end-of-image marker (truncated)');
});

test('judged damaged exactly when libjpeg complains (but for the pinned miss)', async () => {
  for (const [name, img] of await cases()) {
    const complains = await libjpegComplains(img);
    if (MISSED.has(name)) assert.deepEqual([jpegLooksDamaged(img), complains], [false, true], name);
    else assert.equal(jpegLooksDamaged(img), complains, name);
  }
});

test("on a GPU host, a damaged JPEG goes to sharp and gets the CPU path's warning; clean ones stay on the GPU", async () => {
  const model = fakeModelConfig({ size: 8 });
  const pre = new Preprocessor(model, { maxImagePixels: 1_000_000, acceptedFormats: ['jpeg'] });
  const all = await cases();
  const clean = all[0][1];
  const damaged = all[5][1];
  const seen: number[] = [];
  const decoder: JpegDecoderLike = {
    async decode(jpegs: Uint8Array[], spec: GpuDecodeSpec) {
      seen.push(jpegs.length);
      return {
        pixels: new Uint8Array(jpegs.length * spec.size * spec.size * 3),
        decoded: new Uint8Array(jpegs.length).fill(1),
        reasons: jpegs.map(() => null),
      };
    },
    async dispose() {},
  };
  const router = new GpuDecodeRouter('gpu', { open: async () => ({ decoder, backend: 'hardware' }) });
  const warnings: Array<[number, string]> = [];
  const cpu = {
    imageBytes: pre.imageBytes,
    one: (img: Buffer, i = 0) => pre.one(img, i, { onWarning: (w) => warnings.push([i, w]) }),
    many: (l: Buffer[]) => pre.many(l),
  };
  await router.many(model, cpu, [clean, damaged, clean], 'cuda', ['jpeg'], 1_000_000);
  assert.deepEqual(seen, [2], 'the two clean JPEGs on the GPU');
  assert.deepEqual(
    warnings.map(([i]) => i),
    [1],
  );
  assert.match(
    warnings[0][1],
    /^(VipsJpeg: Corrupt JPEG data: premature end of data segment|damaged JPEG: marker 0xffd3 inside entropy-coded data at byte \d+)$/,
  );
  assert.deepEqual(router.counts, { gpu: 2, cpu: 1 });
  await router.close();
});
