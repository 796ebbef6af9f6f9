// Reads the Fashion-MNIST test split from the Debian package dataset-fashion-mnist
// (/usr/share/datasets/fashion-mnist/t10k-*-ubyte.gz, IDX format).
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export const FMNIST_DIR = process.env.FMNIST_DIR ?? '/usr/share/datasets/fashion-mnist';

export function fashionMnistAvailable(): boolean {
  return existsSync(`${FMNIST_DIR}/t10k-images-idx3-ubyte.gz`) && existsSync(`${FMNIST_DIR}/t10k-labels-idx1-ubyte.gz`);
}

/** First `count` test images (28 x 28 uint8 each) and their labels. */
export function readFashionMnistTest(count: number): { images: Buffer[]; labels: number[] } {
  const img = gunzipSync(readFileSync(`${FMNIST_DIR}/t10k-images-idx3-ubyte.gz`));
  const lab = gunzipSync(readFileSync(`${FMNIST_DIR}/t10k-labels-idx1-ubyte.gz`));
  if (img.readUInt32BE(0) !== 0x803 || lab.readUInt32BE(0) !== 0x801) throw new Error('not IDX image/label files');
  const n = Math.min(count, img.readUInt32BE(4));
  const [rows, cols] = [img.readUInt32BE(8), img.readUInt32BE(12)];
  const images = Array.from({ length: n }, (_, i) => img.subarray(16 + i * rows * cols, 16 + (i + 1) * rows * cols));
  const labels = Array.from(lab.subarray(8, 8 + n));
  return { images, labels };
}
