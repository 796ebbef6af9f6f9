// Builds the benchmark image sets into bench/.images/ (git-ignored):
//   photos/  ImageNet-like JPEG photographs: crops of the 12 photographs in Debian's
//            mate-backgrounds package (its nature set),
//            resized to 500x375 (landscape) or 375x500 (portrait), quality 95 (mean size near ImageNet validation JPEGs'), 4:2:0.
//   fmnist/  Fashion-MNIST test images as 28x28 grayscale PNGs named
//            <index>-<label>.png, for the CPU model swin-fmnist.
//   fmnist-jpeg/  the same images as JPEG (quality 90, as test/accuracy.test.ts sends
//            them): what the GPU decoder takes (bench/fmnist_service_accuracy.py).
//
//   apt-get install -y --no-install-recommends mate-backgrounds dataset-fashion-mnist
//   npm run bench:images -- [--photos 96] [--fmnist 1000] [--out bench/.images]
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { rng } from './loadgen/images.js';

/** The photographs (not drawings or gradients) among Debian's wallpapers: mate-backgrounds' nature set. */
const PHOTO_SOURCES = [
  '/usr/share/backgrounds/mate/nature/Aqua.jpg',
  '/usr/share/backgrounds/mate/nature/Blinds.jpg',
  '/usr/share/backgrounds/mate/nature/Dune.jpg',
  '/usr/share/backgrounds/mate/nature/FreshFlower.jpg',
  '/usr/share/backgrounds/mate/nature/Garden.jpg',
  '/usr/share/backgrounds/mate/nature/GreenMeadow.jpg',
  '/usr/share/backgrounds/mate/nature/LadyBird.jpg',
  '/usr/share/backgrounds/mate/nature/RainDrops.jpg',
  '/usr/share/backgrounds/mate/nature/Storm.jpg',
  '/usr/share/backgrounds/mate/nature/TwoWings.jpg',
  '/usr/share/backgrounds/mate/nature/Wood.jpg',
  '/usr/share/backgrounds/mate/nature/YellowFlower.jpg',
];

const FMNIST_LABELS = ['T-shirt_top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle_boot'];

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function makePhotos(outDir: string, count: number): Promise<number> {
  const sources = PHOTO_SOURCES.filter((p) => existsSync(p));
  if (sources.length === 0) {
    throw new Error('no wallpaper photographs found: apt-get install -y --no-install-recommends mate-backgrounds');
  }
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const random = rng(7);
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const src = sources[i % sources.length];
    const meta = await sharp(src).metadata();
    const W = meta.width ?? 0;
    const H = meta.height ?? 0;
    // Every 4th image portrait, like a share of ImageNet's.
    const portrait = i % 4 === 3;
    const [ow, oh] = portrait ? [375, 500] : [500, 375];
    // A crop of the output's aspect covering 35-100% of the largest such crop,
    // at a random place: each image a different scene detail and scale.
    const maxW = Math.min(W, Math.floor((H * ow) / oh));
    const scale = 0.35 + 0.65 * random();
    const cw = Math.max(ow / 2, Math.floor(maxW * scale));
    const ch = Math.floor((cw * oh) / ow);
    const left = Math.floor(random() * (W - cw + 1));
    const top = Math.floor(random() * (H - ch + 1));
    const jpeg = await sharp(src)
      .extract({ left, top, width: cw, height: ch })
      .resize(ow, oh, { kernel: 'lanczos3' })
      .removeAlpha()
      .jpeg({ quality: 95, chromaSubsampling: '4:2:0' })
      .toBuffer();
    bytes += jpeg.length;
    const base = src
      .split('/')
      .pop()!
      .replace(/\.\w+$/, '');
    await writeFile(join(outDir, `${String(i).padStart(3, '0')}-${base}-${ow}x${oh}.jpg`), jpeg);
  }
  console.log(`photos: ${count} JPEGs from ${sources.length} photographs in ${outDir}, mean ${Math.round(bytes / count / 1024)} KiB`);
  return count;
}

/** IDX files: big-endian magic (type, ndim), dims, then uint8 data. */
function parseIdx(gz: Buffer): { dims: number[]; data: Buffer } {
  const buf = gunzipSync(gz);
  const ndim = buf[3];
  const dims = Array.from({ length: ndim }, (_, k) => buf.readUInt32BE(4 + 4 * k));
  return { dims, data: buf.subarray(4 + 4 * ndim) };
}

async function makeFmnist(outDir: string, jpegDir: string, count: number): Promise<number> {
  const dir = '/usr/share/datasets/fashion-mnist';
  const imagesPath = join(dir, 't10k-images-idx3-ubyte.gz');
  const labelsPath = join(dir, 't10k-labels-idx1-ubyte.gz');
  if (!existsSync(imagesPath)) {
    throw new Error(`${imagesPath} missing: apt-get install -y dataset-fashion-mnist`);
  }
  const images = parseIdx(await readFile(imagesPath));
  const labels = parseIdx(await readFile(labelsPath));
  const [n, h, w] = images.dims;
  const take = Math.min(count, n);
  for (const dir of [outDir, jpegDir]) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  }
  for (let i = 0; i < take; i++) {
    const pixels = images.data.subarray(i * h * w, (i + 1) * h * w);
    const gray = () => sharp(pixels, { raw: { width: w, height: h, channels: 1 } });
    const name = `${String(i).padStart(5, '0')}-${FMNIST_LABELS[labels.data[i]] ?? String(labels.data[i])}`;
    await writeFile(join(outDir, `${name}.png`), await gray().png().toBuffer());
    await writeFile(join(jpegDir, `${name}.jpg`), await gray().jpeg({ quality: 90 }).toBuffer());
  }
  console.log(`fmnist: ${take} PNGs and JPEGs (${w}x${h} grayscale) in ${outDir}, ${jpegDir}`);
  return take;
}

async function main(): Promise<void> {
  const out = flag('--out', 'bench/.images');
  await makePhotos(join(out, 'photos'), Number(flag('--photos', '96')));
  await makeFmnist(join(out, 'fmnist'), join(out, 'fmnist-jpeg'), Number(flag('--fmnist', '1000')));
}

main().catch((err) => {
  console.error(`make-images: ${(err as Error).message}`);
  process.exitCode = 1;
});
