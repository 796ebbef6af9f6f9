// What an image will cost to decode and resize, estimated from its header
// alone (sharp's metadata(): no pixels decoded), in milliseconds of one core
// of the 2-core development VM. Admission (src/decode-gate.ts) refuses images
// above MAX_DECODE_COST_MS and admits the rest against DECODE_COST_BUDGET_MS.
//
// The constants come from bench/decode-cost.ts (docs/reliability.md quotes a
// run): decoding is linear in source pixels at a per-format rate; libjpeg's
// DCT scaling (shrink-on-load) saves the inverse DCT but still reads every
// coefficient, so JPEG stays per source pixel; a progressive JPEG is about 4x
// a baseline one (every scan, whole-image coefficient buffer); PNG pays per
// row (libpng's per-row call: a 1 x 25,000,000 PNG is 25 M rows, 3.9 s here
// against 0.1 s for a 4000 x 3000 one); the resize pays per source column and
// row once the ratio is extreme (25,000,000 x 1: 1.3 s). Estimates are within
// about 2x of the measured time, which is enough to tell a 5 ms photo from a
// 4 s strip.
import type { Metadata } from 'sharp';

/** ns per source pixel, by sharp's format name (unknown formats: the dearest). */
const NS_PER_PIXEL: Record<string, number> = {
  jpeg: 6,
  png: 9,
  gif: 10,
  tiff: 10,
  webp: 36,
  heif: 60,
  avif: 60,
  svg: 60,
  jp2k: 60,
};
const NS_PROGRESSIVE_JPEG = 18;
/** ns per row of image (decoder call per scanline). */
const NS_PER_ROW = 110;
/** ns per source row and column in the resize (matters only at extreme aspect ratios). */
const NS_PER_EDGE_PIXEL = 50;

/** Estimated CPU ms to decode and resize one image of this header to the model's input. */
export function estimateDecodeCost(
  meta: Pick<Metadata, 'format' | 'width' | 'height' | 'pageHeight' | 'isProgressive' | 'compression'>,
): number {
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  const format = String(meta.format ?? 'unknown');
  const perPixel = format === 'jpeg' && meta.isProgressive ? NS_PROGRESSIVE_JPEG : (NS_PER_PIXEL[format] ?? 60);
  const ns = w * h * perPixel + h * NS_PER_ROW + (w + h) * NS_PER_EDGE_PIXEL;
  return ns / 1e6;
}
