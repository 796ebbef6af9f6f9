// Resizes Fashion-MNIST images the way the service does, to measure how closely the
// training pipeline (swintools.fmnist.to_service_input) reproduces sharp.
//   node engines/tools/sharp-resize.mjs IN.u8 COUNT SIZE KERNEL OUT.rgb
// IN.u8: COUNT x 28 x 28 uint8 (python -m swintools.fmnist dump). Each image is encoded
// as a grayscale PNG first, then decoded like a request body: auto-orient, sRGB,
// resize to SIZE x SIZE ignoring aspect ratio ("squash"), raw RGB out.
// OUT.rgb: COUNT x SIZE x SIZE x 3 uint8 (NHWC). Run from the repository root.
import { readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';

const [input, countArg, sizeArg, kernel, output] = process.argv.slice(2);
if (!output) {
  console.error('usage: node engines/tools/sharp-resize.mjs IN.u8 COUNT SIZE KERNEL OUT.rgb');
  process.exit(2);
}
const count = Number(countArg);
const size = Number(sizeArg);
const src = readFileSync(input);
const out = Buffer.alloc(count * size * size * 3);
for (let i = 0; i < count; i++) {
  const gray = src.subarray(i * 784, (i + 1) * 784);
  const png = await sharp(gray, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
  const { data, info } = await sharp(png)
    .rotate()
    .toColourspace('srgb')
    .resize(size, size, { fit: 'fill', kernel })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== size || info.height !== size) {
    throw new Error(`unexpected sharp output ${JSON.stringify(info)}`);
  }
  data.copy(out, i * size * size * 3);
}
writeFileSync(output, out);
console.log(`sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}): ${count} images -> ${size}x${size} ${kernel} -> ${output}`);
