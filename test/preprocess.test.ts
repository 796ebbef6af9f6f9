import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { Preprocessor } from '../src/decode/preprocess.js';
import { ServeError } from '../src/errors.js';
import { fakeModelConfig } from './helpers/fake-model.js';

const ACCEPTED = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'];
const pre = (over = {}, limits = {}) =>
  new Preprocessor(fakeModelConfig(over), { maxImagePixels: 1_000_000, acceptedFormats: ACCEPTED, ...limits });

const solid = (w: number, h: number, rgb: [number, number, number], alpha = 1) =>
  sharp({ create: { width: w, height: h, channels: alpha === 1 ? 3 : 4, background: { r: rgb[0], g: rgb[1], b: rgb[2], alpha } } });

/** Pixel (x, y) of a size x size x 3 buffer. */
const px = (buf: Uint8Array, size: number, x: number, y: number) => [...buf.subarray((y * size + x) * 3, (y * size + x) * 3 + 3)];

async function code(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => 'resolved',
    (e: unknown) => e,
  );
  assert.ok(err instanceof ServeError, `expected a ServeError, got ${String(err)}`);
  return `${err.httpStatus} ${err.code}`;
}

test('a greyscale PNG becomes size x size x 3 RGB of the same grey', async () => {
  const png = await sharp(Buffer.alloc(28 * 28, 100), { raw: { width: 28, height: 28, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
  assert.equal((await sharp(png).metadata()).channels, 1);
  const out = await pre().one(png);
  assert.equal(out.length, 8 * 8 * 3);
  assert.ok(out.every((v) => v === 100));
});

test('EXIF orientation is applied before resizing', async () => {
  // 2 x 1 image, left red, right blue, tagged "rotate 90 clockwise" (6): upright it is 1 x 2, red on top.
  const raw = Buffer.from([255, 0, 0, 0, 0, 255]);
  const jpeg = await sharp(raw, { raw: { width: 2, height: 1, channels: 3 } })
    .resize(40, 20, { kernel: 'nearest' })
    .jpeg({ quality: 100 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const out = await pre().one(jpeg);
  const top = px(out, 8, 4, 0);
  const bottom = px(out, 8, 4, 7);
  assert.ok(top[0] > 200 && top[2] < 60, `top should be red, got ${top}`);
  assert.ok(bottom[2] > 200 && bottom[0] < 60, `bottom should be blue, got ${bottom}`);
});

test('transparent pixels are flattened onto white, or onto the model background', async () => {
  const png = await solid(10, 10, [255, 0, 0], 0).png().toBuffer();
  assert.deepEqual(px(await pre().one(png), 8, 3, 3), [255, 255, 255]);
  const black = pre({ preprocess: { ...fakeModelConfig().preprocess, background: [0, 0, 0] } });
  assert.deepEqual(px(await black.one(png), 8, 3, 3), [0, 0, 0]);
});

test('shorter_side_crop resizes the shorter side and keeps the centre', async () => {
  // 40 x 10: black left half, white right half. Resize to 32 x 8, centre crop 8 x 8: 4 black then 4 white columns.
  const raw = Buffer.alloc(40 * 10 * 3, 0);
  for (let y = 0; y < 10; y++) raw.fill(255, (y * 40 + 20) * 3, (y * 40 + 40) * 3);
  const png = await sharp(raw, { raw: { width: 40, height: 10, channels: 3 } })
    .png()
    .toBuffer();
  const p = pre({ preprocess: { ...fakeModelConfig().preprocess, mode: 'shorter_side_crop', resize: 8, crop: 8 } });
  const out = await p.one(png);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((x) => px(out, 8, x, 4)[0]),
    [0, 0, 0, 0, 255, 255, 255, 255],
  );
});

test('shorter_side_crop on an extreme aspect ratio crops before resizing (bounded memory), also when EXIF-rotated', async () => {
  // 4000 x 2: left half black, right half white. The centre crop straddles the edge.
  const raw = Buffer.alloc(4000 * 2 * 3, 0);
  for (let y = 0; y < 2; y++) raw.fill(255, (y * 4000 + 2000) * 3, (y * 4000 + 4000) * 3);
  const p = pre({ preprocess: { ...fakeModelConfig().preprocess, mode: 'shorter_side_crop', resize: 8, crop: 8, kernel: 'nearest' } });
  const png = await sharp(raw, { raw: { width: 4000, height: 2, channels: 3 } })
    .png()
    .toBuffer();
  const out = await p.one(png);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((x) => px(out, 8, x, 4)[0]),
    [0, 0, 0, 0, 255, 255, 255, 255],
  );
  // Tagged "rotate 90": upright it is 2 x 4000, black on top.
  const rotated = await sharp(raw, { raw: { width: 4000, height: 2, channels: 3 } })
    .jpeg({ quality: 100 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const outR = await p.one(rotated);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((y) => (px(outR, 8, 4, y)[0] > 128 ? 255 : 0)),
    [0, 0, 0, 0, 255, 255, 255, 255],
  );
});

test('CMYK, 16-bit, WebP, GIF, TIFF and AVIF inputs all come out as 8-bit RGB', async () => {
  const p = pre();
  const base = solid(16, 12, [40, 120, 180]); // inside the CMYK gamut
  const inputs: Record<string, Buffer> = {
    cmyk: await base.clone().toColourspace('cmyk').jpeg().toBuffer(),
    png16: await base.clone().toColourspace('rgb16').png().toBuffer(),
    webp: await base.clone().webp({ lossless: true }).toBuffer(),
    gif: await base.clone().gif().toBuffer(),
    tiff: await base.clone().tiff().toBuffer(),
    avif: await base.clone().avif().toBuffer(),
  };
  for (const [name, buf] of Object.entries(inputs)) {
    const out = await p.one(buf);
    assert.equal(out.length, 192, name);
    const [r, g, b] = px(out, 8, 4, 4);
    assert.ok(Math.abs(r - 40) < 30 && Math.abs(g - 120) < 30 && Math.abs(b - 180) < 30, `${name}: ${[r, g, b]}`);
  }
});

test('an animated GIF is classified by its first frame', async () => {
  const red = await solid(8, 8, [255, 0, 0]).png().toBuffer();
  const blue = await solid(8, 8, [0, 0, 255]).png().toBuffer();
  const gif = await sharp([red, blue], { join: { animated: true } })
    .gif()
    .toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const [r, , b] = px(await pre().one(gif), 8, 4, 4);
  assert.ok(r > 200 && b < 60);
});

test('bad inputs get their stable codes', async () => {
  const p = pre();
  const jpeg = await sharp({
    create: { width: 64, height: 64, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
  })
    .jpeg()
    .toBuffer();
  assert.equal(await code(p.one(Buffer.alloc(0))), '400 SWIN_EMPTY_BODY');
  assert.equal(await code(p.one(jpeg.subarray(0, jpeg.length >> 1))), '400 SWIN_IMAGE_DECODE_FAILED');
  assert.equal(await code(p.one(Buffer.from('definitely not an image, just some bytes'))), '415 SWIN_UNSUPPORTED_MEDIA_TYPE');
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>');
  assert.equal(await code(p.one(svg)), '415 SWIN_UNSUPPORTED_MEDIA_TYPE');
  const big = await solid(2000, 1000, [0, 0, 0]).png().toBuffer();
  assert.equal(await code(p.one(big)), '413 SWIN_IMAGE_TOO_LARGE');
  const pngOnly = pre({}, { acceptedFormats: ['png'] });
  assert.equal(await code(pngOnly.one(jpeg)), '415 SWIN_UNSUPPORTED_MEDIA_TYPE');
  // and still works afterwards
  assert.equal((await p.one(jpeg)).length, 192);
});

test('many() keeps the order of the images', async () => {
  const imgs = await Promise.all([10, 20, 30].map((v) => solid(5, 5, [v, v, v]).png().toBuffer()));
  const out = await pre().many(imgs);
  assert.deepEqual([out[0], out[192], out[384]], [10, 20, 30]);
});
