// Encoded image -> the model's input: uint8 RGB NHWC, img_size x img_size x 3.
// All pixel work happens in libvips (sharp) on libuv's thread pool; nothing
// here loops over pixels in JavaScript. Order of operations, as model.json's
// preprocess block describes it:
//   sniff format (bytes, not the Content-Type) -> check pixel budget ->
//   EXIF orientation -> sRGB -> flatten alpha onto the background ->
//   resize ("squash" to size x size, or shorter side to `resize` then centre
//   crop `crop`) with the model's kernel -> raw 8-bit RGB.
// Large JPEG and WebP inputs are shrunk while decoding (libjpeg DCT scaling,
// sharp's fastShrinkOnLoad) when the target is at most half their size, so a
// 12 MP photo is never fully decoded to feed a 224-pixel model.
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { abortError, ServeError } from '../errors.js';
import { jpegDamage } from './jpeg-damage.js';
import { preprocessDuration } from '../observability/metrics.js';
import type { ModelConfig } from '../models/model-config.js';

// Images are small and many: parallelism comes from handling several images at
// once on the thread pool, not from splitting one image across threads, and
// request images are never repeated, so libvips' operation cache only costs memory.
sharp.concurrency(1);
sharp.cache(false);

export interface PreprocessLimits {
  /** Largest width x height accepted (of the first frame/page). */
  maxImagePixels: number;
  /** Format names as reported below: jpeg, png, webp, gif, tiff, avif, heif, svg. */
  acceptedFormats: string[];
  /** DECODE_STRICT: an image the decoder warns about is refused (400 SWIN_IMAGE_DAMAGED). */
  strict?: boolean;
}

/** Per-image extras of one decode: where its decoder warnings go, and when it stops mattering. */
export interface DecodeContext {
  onWarning?: (warning: string) => void;
  /** Aborted when the request is cancelled or past its deadline (decode processes retire runaway decodes). */
  signal?: AbortSignal;
  /** The image's estimated decode cost, ms (src/decode-cost.ts). */
  costMs?: number;
  /** A start-up warm-up request's image: not in the preprocess metrics. */
  warmup?: boolean;
}

const RESIZE_KERNELS = new Set(['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3']);

/** Output side length and operations for one model. */
export class Preprocessor {
  readonly size: number;
  /** Bytes of one preprocessed image: size * size * 3. */
  readonly imageBytes: number;
  /** What a decode process needs to build the same Preprocessor (src/decode-pool.ts). */
  readonly model: ModelConfig;
  readonly limits: PreprocessLimits;
  private readonly background: { r: number; g: number; b: number };

  constructor(model: ModelConfig, limits: PreprocessLimits) {
    const pre = model.preprocess;
    if (!RESIZE_KERNELS.has(pre.kernel)) throw new Error(`preprocess.kernel ${pre.kernel} is not a sharp kernel`);
    this.model = model;
    this.limits = limits;
    this.size = model.architecture.img_size;
    this.imageBytes = this.size * this.size * 3;
    const [r, g, b] = pre.background ?? [255, 255, 255];
    this.background = { r, g, b };
  }

  /** Several images, preprocessed concurrently, concatenated: n x size x size x 3 bytes. */
  many(images: Buffer[], ctx: DecodeContext[] = []): Promise<Uint8Array> {
    return decodeEach(images, (img, i) => this.one(img, i, ctx[i]));
  }

  /** One encoded image -> size x size x 3 bytes. `index` names the image in error messages. */
  async one(input: Buffer, index = 0, ctx: DecodeContext = {}): Promise<Buffer> {
    const start = performance.now();
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    if (input.length === 0) throw new ServeError('SWIN_EMPTY_BODY');
    const accepted = this.limits.acceptedFormats;
    // XML/SVG is refused before libvips sees it (librsvg would parse it, and could follow references).
    if (!accepted.includes('svg') && looksLikeMarkup(input)) {
      throw new ServeError('SWIN_UNSUPPORTED_MEDIA_TYPE', 'svg/xml', accepted.join(', '));
    }
    let meta: Metadata;
    try {
      meta = await sharp(input, { limitInputPixels: false }).metadata();
    } catch (err) {
      throw decodeError(err, index, accepted, input);
    }
    const format = formatName(meta);
    if (!accepted.includes(format)) throw new ServeError('SWIN_UNSUPPORTED_MEDIA_TYPE', format, accepted.join(', '));
    const width = meta.width ?? 0;
    const height = meta.pageHeight ?? meta.height ?? 0;
    if (width < 1 || height < 1) throw new ServeError('SWIN_IMAGE_DECODE_FAILED', index, 'no dimensions');
    if (width * height > this.limits.maxImagePixels) {
      throw new ServeError('SWIN_IMAGE_TOO_LARGE', index, `${width} x ${height} pixels is more than ${this.limits.maxImagePixels}`);
    }
    // EXIF orientations 5..8 swap width and height.
    const swap = (meta.orientation ?? 1) >= 5;
    const [w, h] = swap ? [height, width] : [width, height];

    // Its request went away while the header was read (both wait in libuv's queue): skip the decode.
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    const build = (failOn: 'warning' | 'error') => this.pipeline(input, failOn, w, h);
    let out: { data: Buffer; info: OutputInfo };
    try {
      // Damaged images: libvips reports a decoder's warnings (libjpeg's "Corrupt JPEG data", a
      // PNG's bad CRC in an ancillary chunk) only by failing at failOn 'warning'. Clean images
      // decode once; one that fails is decoded again at 'error', the level that refuses only
      // what cannot be decoded, and the first failure's message becomes its warning (or, with
      // DECODE_STRICT, its 400).
      out = await build('warning');
    } catch (first) {
      try {
        out = await build('error');
      } catch (err) {
        throw decodeError(err, index, accepted);
      }
      const warning = warningText(first, input);
      if (this.limits.strict) throw new ServeError('SWIN_IMAGE_DAMAGED', index, warning);
      ctx.onWarning?.(warning);
    }
    if (out.info.channels !== 3 || out.data.length !== this.imageBytes) {
      throw new ServeError('SWIN_IMAGE_DECODE_FAILED', index, `decoded to ${out.info.width}x${out.info.height}x${out.info.channels}`);
    }
    if (!ctx.warmup) preprocessDuration.observe({ model: this.model.name }, (performance.now() - start) / 1000);
    return out.data;
  }

  /** Decode, orient, flatten, resize and crop one image of w x h (after EXIF orientation). */
  private pipeline(input: Buffer, failOn: 'warning' | 'error', w: number, h: number): Promise<{ data: Buffer; info: OutputInfo }> {
    let pipeline = sharp(input, { limitInputPixels: this.limits.maxImagePixels, failOn, pages: 1, sequentialRead: true })
      .rotate()
      .flatten({ background: this.background })
      .toColourspace('srgb');
    const pre = this.model.preprocess;
    if (pre.mode === 'squash') {
      pipeline = pipeline.resize(this.size, this.size, { fit: 'fill', kernel: pre.kernel, fastShrinkOnLoad: true });
    } else {
      // torchvision's Resize(int): shorter side -> resize, longer side floored, then CenterCrop.
      const scale = pre.resize / Math.min(w, h);
      const nw = w <= h ? pre.resize : Math.max(pre.resize, Math.floor(w * scale));
      const nh = h < w ? pre.resize : Math.max(pre.resize, Math.floor(h * scale));
      const crop = this.size;
      if (nw * nh <= 4 * pre.resize * pre.resize) {
        pipeline = pipeline
          .resize(nw, nh, { fit: 'fill', kernel: pre.kernel, fastShrinkOnLoad: true })
          .extract({ left: Math.round((nw - crop) / 2), top: Math.round((nh - crop) / 2), width: crop, height: crop });
      } else {
        // Extreme aspect ratios (a 20000 x 1 strip would resize to 5 M x 256 first): cut the
        // same centre region out of the source, then resize only that. Differs from the
        // above only in the kernel's support at the crop border.
        const sw = Math.min(w, Math.max(1, Math.round(crop / scale)));
        const sh = Math.min(h, Math.max(1, Math.round(crop / scale)));
        pipeline = pipeline
          .extract({ left: Math.floor((w - sw) / 2), top: Math.floor((h - sh) / 2), width: sw, height: sh })
          .resize(crop, crop, { fit: 'fill', kernel: pre.kernel, fastShrinkOnLoad: true });
      }
    }
    return pipeline.removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  }
}

// libvips keeps one error buffer per process: a failing decode's message can be taken by
// another image's failure at the same moment, or cleared by a decode starting, leaving only
// this generic line.
const GENERIC = /^(Warning treated as error due to failOn setting|error in tile .*|)$/;

/**
 * The decoder's own words for an image it warned about (libjpeg's "Corrupt JPEG data: ..."),
 * or, where another decode took them, what src/jpeg-damage.ts finds in a JPEG's markers.
 */
function warningText(err: unknown, input: Buffer): string {
  const lines = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim());
  const specific = lines.find((l) => !GENERIC.test(l));
  if (specific) return specific.slice(0, 200);
  const jpeg = jpegDamage(input);
  return jpeg ? `damaged JPEG: ${jpeg}` : 'the decoder reported damaged data';
}

/** Every image through `one`, concurrently, concatenated in request order (one image: no copy). */
export async function decodeEach(images: Buffer[], one: (image: Buffer, index: number) => Promise<Buffer>): Promise<Uint8Array> {
  const raws = await Promise.all(images.map((img, i) => one(img, i)));
  return raws.length === 1 ? raws[0] : Buffer.concat(raws);
}

/** sharp reports AVIF as heif + av1; we name it avif, as users do. */
export function formatName(meta: Metadata): string {
  const f = String(meta.format ?? 'unknown');
  if (f === 'heif') return meta.compression === 'av1' ? 'avif' : 'heif';
  if (f === 'jp2k') return 'jp2';
  return f;
}

export function looksLikeMarkup(buf: Buffer): boolean {
  for (let i = 0; i < Math.min(buf.length, 256); i++) {
    const c = buf[i];
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0xef || c === 0xbb || c === 0xbf) continue; // space, BOM
    return c === 0x3c; // '<'
  }
  return false;
}

// Leading bytes of formats libvips reads: a file that starts like one of them
// but will not load is damaged (400), not of an unknown format (415).
const SIGNATURES: Buffer[] = [
  [0xff, 0xd8, 0xff],
  [0x89, 0x50, 0x4e, 0x47],
  [0x47, 0x49, 0x46, 0x38],
  [0x49, 0x49, 0x2a, 0x00],
  [0x4d, 0x4d, 0x00, 0x2a],
  [0x52, 0x49, 0x46, 0x46],
].map((b) => Buffer.from(b));

function decodeError(err: unknown, index: number, accepted: string[], input?: Buffer): ServeError {
  const message = err instanceof Error ? err.message : String(err);
  const damaged = input !== undefined && SIGNATURES.some((sig) => input.subarray(0, sig.length).equals(sig));
  if (/unsupported image format/i.test(message) && !damaged)
    return new ServeError('SWIN_UNSUPPORTED_MEDIA_TYPE', 'unknown', accepted.join(', '));
  if (/pixel limit/i.test(message)) return new ServeError('SWIN_IMAGE_TOO_LARGE', index, 'more pixels than allowed');
  // libvips messages name the decoder and the defect ("VipsJpeg: premature end of JPEG image"); no paths.
  return new ServeError('SWIN_IMAGE_DECODE_FAILED', index, message.split('\n')[0].slice(0, 200));
}
