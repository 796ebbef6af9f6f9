// Decode cost calibration: times src/decode/preprocess.ts on images of awkward shapes
// and prints the measured CPU time next to the header-based estimate that
// admission uses (src/decode/decode-cost.ts), so the constants there can be checked
// on a new machine. One image at a time, single thread (sharp.concurrency(1)).
//   npx tsx bench/decode-cost.ts [--model engines/models/swin-fmnist]
import sharp from 'sharp';
import { readModelConfig } from '../src/models/model-json.js';
import { Preprocessor } from '../src/decode/preprocess.js';
import { estimateDecodeCost } from '../src/decode/decode-cost.js';

const args = process.argv.slice(2);
const modelDir =
  args[args.indexOf('--model') + 1] && args.includes('--model') ? args[args.indexOf('--model') + 1] : 'engines/models/swin-fmnist';

function noise(width: number, height: number) {
  return sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });
}

async function cases(): Promise<Array<[string, Buffer]>> {
  return [
    ['jpeg 640x480', await noise(640, 480).jpeg().toBuffer()],
    ['jpeg 4000x3000', await noise(4000, 3000).jpeg().toBuffer()],
    ['jpeg progressive 4000x3000', await noise(4000, 3000).jpeg({ progressive: true }).toBuffer()],
    ['png 640x480', await noise(640, 480).png({ compressionLevel: 1 }).toBuffer()],
    ['png 4000x3000', await noise(4000, 3000).png({ compressionLevel: 1 }).toBuffer()],
    ['webp 4000x3000', await noise(4000, 3000).webp().toBuffer()],
    [
      'png 1x25000000',
      await sharp({ create: { width: 1, height: 25_000_000, channels: 3, background: '#808080' } })
        .png()
        .toBuffer(),
    ],
    [
      'png 25000000x1',
      await sharp({ create: { width: 25_000_000, height: 1, channels: 3, background: '#808080' } })
        .png()
        .toBuffer(),
    ],
    [
      'png 1x5000000',
      await sharp({ create: { width: 1, height: 5_000_000, channels: 3, background: '#808080' } })
        .png()
        .toBuffer(),
    ],
    ['jpeg 60000x400', await noise(60000, 400).jpeg().toBuffer()],
    ['gif 2000x2000', await noise(2000, 2000).gif().toBuffer()],
  ];
}

const model = await readModelConfig(modelDir);
const pre = new Preprocessor(model, { maxImagePixels: 1_000_000_000, acceptedFormats: ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] });
console.log(`model ${model.name} (${pre.size} px, ${model.preprocess.mode})`);
console.log('image                          bytes      cpu_ms  wall_ms  estimate_ms');
for (const [name, img] of await cases()) {
  const meta = await sharp(img, { limitInputPixels: false }).metadata();
  const est = estimateDecodeCost(meta);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await pre.one(img);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${name.padEnd(30)} ${String(img.length).padStart(9)} ${((cpu.user + cpu.system) / 1000).toFixed(0).padStart(8)} ${wall.toFixed(0).padStart(8)} ${est.toFixed(0).padStart(12)}`,
  );
}
