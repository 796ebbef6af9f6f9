// Encodes Fashion-MNIST images the way test/accuracy.test.ts does (grayscale PNG, or JPEG
// quality 90) and decodes them again with sharp, so that swintools.reference_predictions
// runs PyTorch on the pixels the service receives.
//   node engines/tools/sharp-codec.mjs IN.u8 COUNT png|jpeg OUT.u8
// IN.u8 and OUT.u8: COUNT x 28 x 28 uint8. Run from the repository root.
import { readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';

const [input, countArg, format, output] = process.argv.slice(2);
if (!output || !['png', 'jpeg'].includes(format)) {
  console.error('usage: node engines/tools/sharp-codec.mjs IN.u8 COUNT png|jpeg OUT.u8');
  process.exit(2);
}
const count = Number(countArg);
const src = readFileSync(input);
const out = Buffer.alloc(count * 784);
for (let i = 0; i < count; i++) {
  const gray = sharp(src.subarray(i * 784, (i + 1) * 784), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w');
  const encoded = await (format === 'png' ? gray.png() : gray.jpeg({ quality: 90 })).toBuffer();
  const { data, info } = await sharp(encoded).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 1 || info.width !== 28 || info.height !== 28) throw new Error(`unexpected decode ${JSON.stringify(info)}`);
  data.copy(out, i * 784);
}
writeFileSync(output, out);
console.log(`sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}): ${count} images through ${format} -> ${output}`);
