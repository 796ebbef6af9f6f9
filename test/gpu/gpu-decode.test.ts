// GPU JPEG decoding (addon JpegDecoder, nvJPEG) against sharp on a GPU host.
// Skipped where the addon has no nvJPEG or no GPU is visible. Prints one JSON
// line per measurement (prefix "RESULT ") and writes them all to
// $SWIN_GPU_DECODE_OUT when set. Inputs:
//   SWIN_GPU_DECODE_PHOTOS  folder of photographs (*.jpg), default test/fixtures/photos
//   FMNIST_DIR              Fashion-MNIST IDX files (test/helpers/fashion-mnist.ts)
//   SWIN_TEST_CUDA_ENGINE   swin-fmnist CUDA engine file: adds the top-1 comparison
//   SWIN_GPU_DECODE_SECONDS seconds per throughput measurement (default 3)
// docs/gpu-decode.md has the command and the results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { loadAddon } from '../../src/native/addon.js';
import { GpuDecodeRouter, openAddonDecoder, type GpuDecodeSpec, type JpegDecoderLike } from '../../src/decode/gpu-decode.js';
import { Preprocessor } from '../../src/decode/preprocess.js';
import type { ModelConfig } from '../../src/models/model-config.js';
import { ServeError } from '../../src/errors.js';
import { fashionMnistAvailable, readFashionMnistTest } from '../helpers/fashion-mnist.js';

const results: unknown[] = [];
function report(r: Record<string, unknown>): void {
  results.push(r);
  console.log(`RESULT ${JSON.stringify(r)}`);
  if (process.env.SWIN_GPU_DECODE_OUT) writeFileSync(process.env.SWIN_GPU_DECODE_OUT, JSON.stringify(results, null, 1));
}

const addon = loadAddon().addon;
const gpus = (() => {
  try {
    return addon?.capabilities().gpus ?? 0;
  } catch {
    return 0;
  }
})();
const skip = !addon?.JpegDecoder.built
  ? `addon without nvJPEG (${addon?.JpegDecoder.buildStatus ?? 'not loaded'})`
  : gpus < 1
    ? 'no GPU visible'
    : false;

const fmnistModel: ModelConfig = JSON.parse(readFileSync('engines/models/swin-fmnist/model.json', 'utf8'));
const ACCEPTED = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'];
const LIMIT = 25_000_000;

/** A model config with another preprocess block (photographs at ImageNet sizes). */
function withPreprocess(
  mode: 'squash' | 'shorter_side_crop',
  size: number,
  resize: number,
  kernel: ModelConfig['preprocess']['kernel'],
): ModelConfig {
  return {
    ...fmnistModel,
    architecture: { ...fmnistModel.architecture, img_size: size },
    preprocess: { ...fmnistModel.preprocess, mode, resize, crop: size, kernel },
  };
}
const specOf = (m: ModelConfig): GpuDecodeSpec => ({
  size: m.architecture.img_size,
  mode: m.preprocess.mode,
  resize: m.preprocess.mode === 'squash' ? m.architecture.img_size : m.preprocess.resize,
  kernel: m.preprocess.kernel,
  maxPixels: LIMIT,
});

function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number; over2: number } {
  assert.equal(a.length, b.length);
  let max = 0,
    sum = 0,
    over2 = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    if (d > 2) over2++;
    sum += d;
  }
  return { max, mean: Number((sum / a.length).toFixed(4)), over2: Number((over2 / a.length).toFixed(5)) };
}

function photos(): Buffer[] {
  const dir = process.env.SWIN_GPU_DECODE_PHOTOS ?? 'test/fixtures/photos';
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /\.jpe?g$/i.test(f))
    .sort()
    .map((f) => readFileSync(path.join(dir, f)));
}

let decoder: JpegDecoderLike | null = null;

test('GPU JPEG decoding against sharp', { skip }, async (t) => {
  const opened = await openAddonDecoder();
  assert.ok('decoder' in opened, 'reason' in opened ? opened.reason : '');
  decoder = opened.decoder;
  report({ what: 'decoder', backend: opened.backend });

  await t.test('photographs: same geometry and kernel as sharp, per preprocess config', async () => {
    const imgs = photos();
    assert.ok(imgs.length > 0, 'no photographs');
    const configs: [string, ModelConfig][] = [
      ['squash 256 linear', withPreprocess('squash', 256, 256, 'linear')],
      ['shorter_side_crop 256->224 cubic', withPreprocess('shorter_side_crop', 224, 256, 'cubic')],
      ['shorter_side_crop 256->224 lanczos3', withPreprocess('shorter_side_crop', 224, 256, 'lanczos3')],
      ['squash 256 nearest', withPreprocess('squash', 256, 256, 'nearest')],
    ];
    for (const [name, m] of configs) {
      const pre = new Preprocessor(m, { maxImagePixels: LIMIT, acceptedFormats: ACCEPTED });
      const ref = await pre.many(imgs);
      const r = await decoder!.decode(imgs, specOf(m));
      assert.equal(
        r.decoded.reduce((a, b) => a + b, 0),
        imgs.length,
        `refused: ${r.reasons.join(', ')}`,
      );
      const d = diff(r.pixels, ref);
      report({ what: 'photos', config: name, images: imgs.length, maxAbsDiff: d.max, meanAbsDiff: d.mean, fractionOver2: d.over2 });
      assert.ok(d.mean < 3, `${name}: mean abs diff ${d.mean}`);
    }
  });

  await t.test("EXIF orientations 1..8 give sharp's upright image", async () => {
    const base = photos()[0];
    const m = withPreprocess('shorter_side_crop', 224, 256, 'linear');
    const pre = new Preprocessor(m, { maxImagePixels: LIMIT, acceptedFormats: ACCEPTED });
    const tagged = await Promise.all(
      [1, 2, 3, 4, 5, 6, 7, 8].map((o) => sharp(base).jpeg({ quality: 95 }).withMetadata({ orientation: o }).toBuffer()),
    );
    const r = await decoder!.decode(tagged, specOf(m));
    const per: number[] = [];
    for (let i = 0; i < 8; i++) {
      const ref = await pre.one(tagged[i]);
      per.push(diff(r.pixels.subarray(i * ref.length, (i + 1) * ref.length), ref).mean);
    }
    report({ what: 'exif', meanAbsDiffPerOrientation: per });
    // A wrong rotation gives a mean difference of tens of levels on a photograph.
    assert.ok(
      per.every((d) => d < 3),
      per.join(', '),
    );
  });

  await t.test('progressive, greyscale, CMYK and corrupt JPEGs: GPU or refused, and the service path matches the CPU path', async () => {
    const base = photos()[1];
    const m = withPreprocess('squash', 256, 256, 'linear');
    const pre = new Preprocessor(m, { maxImagePixels: LIMIT, acceptedFormats: ACCEPTED });
    const cases: [string, Buffer][] = [
      ['progressive', await sharp(base).jpeg({ progressive: true }).toBuffer()],
      ['greyscale', await sharp(base).toColourspace('b-w').jpeg().toBuffer()],
      ['cmyk', await sharp(base).toColourspace('cmyk').jpeg().toBuffer()],
      ['444', await sharp(base).jpeg({ chromaSubsampling: '4:4:4' }).toBuffer()],
    ];
    const r = await decoder!.decode(
      cases.map((c) => c[1]),
      specOf(m),
    );
    const router = new GpuDecodeRouter('gpu', { open: async () => ({ decoder: decoder!, backend: 'test' }) });
    for (let i = 0; i < cases.length; i++) {
      const ref = await pre.one(cases[i][1]);
      const viaRouter = await router.many(m, pre, [cases[i][1]], 'cuda', ACCEPTED, LIMIT);
      const d = diff(viaRouter, ref);
      report({
        what: 'special',
        case: cases[i][0],
        onGpu: r.decoded[i] === 1,
        reason: r.reasons[i],
        meanAbsDiff: d.mean,
        maxAbsDiff: d.max,
      });
      assert.ok(d.mean < 3, cases[i][0]);
    }
    assert.equal(r.decoded[2], 0, 'CMYK goes to sharp');
    const good = await sharp(base).jpeg().toBuffer();
    const corrupt = Buffer.concat([good.subarray(0, Math.floor(good.length / 3)), Buffer.alloc(200, 0x37)]);
    const rc = await decoder!.decode([good, corrupt, good], specOf(m));
    report({ what: 'corrupt', decoded: [...rc.decoded], reasons: rc.reasons });
    assert.equal(rc.decoded[0], 1);
    assert.equal(rc.decoded[1], 0, 'a truncated JPEG goes to sharp (nvJPEG would decode it)');
    assert.equal(rc.decoded[2], 1);
    const cpuErr = await pre.many([good, corrupt]).then(
      () => null,
      (e: unknown) => e,
    );
    const gpuErr = await router.many(m, pre, [good, corrupt], 'cuda', ACCEPTED, LIMIT).then(
      () => null,
      (e: unknown) => e,
    );
    report({
      what: 'corrupt-http',
      cpu: cpuErr instanceof ServeError ? `${cpuErr.httpStatus} ${cpuErr.code}` : String(cpuErr),
      gpu: gpuErr instanceof ServeError ? `${gpuErr.httpStatus} ${gpuErr.code}` : String(gpuErr),
    });
    assert.ok(cpuErr instanceof ServeError && gpuErr instanceof ServeError);
    assert.equal(gpuErr.code, cpuErr.code);
  });

  await t.test(
    'Fashion-MNIST test images as JPEG: pixels and top-1 against sharp',
    { skip: !fashionMnistAvailable() && 'no FMNIST_DIR' },
    async () => {
      const count = Number(process.env.SWIN_GPU_DECODE_FMNIST ?? 2000);
      const { images, labels } = readFashionMnistTest(count);
      const jpegs = await Promise.all(
        images.map((raw) =>
          sharp(raw, { raw: { width: 28, height: 28, channels: 1 } })
            .jpeg({ quality: 90 })
            .toBuffer(),
        ),
      );
      const pre = new Preprocessor(fmnistModel, { maxImagePixels: LIMIT, acceptedFormats: ACCEPTED });
      const cpuPx = await pre.many(jpegs);
      const gpuPx = new Uint8Array(cpuPx.length);
      const B = 64;
      for (let i = 0; i < jpegs.length; i += B) {
        const r = await decoder!.decode(jpegs.slice(i, i + B), specOf(fmnistModel));
        assert.equal(
          r.decoded.reduce((a, b) => a + b, 0),
          Math.min(B, jpegs.length - i),
          r.reasons.join(','),
        );
        gpuPx.set(r.pixels, i * pre.imageBytes);
      }
      const d = diff(gpuPx, cpuPx);
      const row: Record<string, unknown> = {
        what: 'fmnist',
        images: jpegs.length,
        maxAbsDiff: d.max,
        meanAbsDiff: d.mean,
        fractionOver2: d.over2,
      };
      const enginePath = process.env.SWIN_TEST_CUDA_ENGINE;
      if (enginePath) {
        const engine = await addon!.loadEngine('cuda', enginePath, { maxBatch: B });
        const C = fmnistModel.architecture.num_classes;
        const top1 = async (px: Uint8Array) => {
          const out: number[] = [];
          for (let i = 0; i < jpegs.length; i += B) {
            const n = Math.min(B, jpegs.length - i);
            const logits = await engine.infer(px.subarray(i * pre.imageBytes, (i + n) * pre.imageBytes), n);
            for (let k = 0; k < n; k++) {
              let best = 0;
              for (let c = 1; c < C; c++) if (logits[k * C + c] > logits[k * C + best]) best = c;
              out.push(best);
            }
          }
          return out;
        };
        const [tc, tg] = [await top1(cpuPx), await top1(gpuPx)];
        await engine.dispose();
        row.sameTop1 = tc.filter((v, i) => v === tg[i]).length;
        row.accuracyCpu = tc.filter((v, i) => v === labels[i]).length / labels.length;
        row.accuracyGpu = tg.filter((v, i) => v === labels[i]).length / labels.length;
      }
      report(row);
      assert.ok(d.mean < 2, `mean abs diff ${d.mean}`);
      if (row.sameTop1 !== undefined) assert.ok(Math.abs((row.accuracyCpu as number) - (row.accuracyGpu as number)) <= 0.003);
    },
  );

  await t.test('throughput: 500x375 photographs, GPU batches vs sharp on the thread pool', async () => {
    const imgs = photos().filter((b) => b.length > 0);
    const m = withPreprocess('squash', 256, 256, 'linear');
    const pre = new Preprocessor(m, { maxImagePixels: LIMIT, acceptedFormats: ACCEPTED });
    const seconds = Number(process.env.SWIN_GPU_DECODE_SECONDS ?? 3);
    for (const batch of [64, 256]) {
      const set = Array.from({ length: batch }, (_, i) => imgs[i % imgs.length]);
      await decoder!.decode(set, specOf(m)); // warm-up: allocations, batch init
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < seconds * 1000) {
        await decoder!.decode(set, specOf(m));
        n += batch;
      }
      report({
        what: 'throughput',
        path: 'gpu (one decoder, one stream)',
        batch,
        imagesPerSecond: Math.round(n / ((performance.now() - t0) / 1000)),
      });
    }
    {
      // Four decoders (four streams, four worker threads), each with its own batch in flight.
      const cls = addon!.JpegDecoder;
      const ds = [new cls({ deviceIndex: 0 }), new cls({ deviceIndex: 0 }), new cls({ deviceIndex: 0 }), new cls({ deviceIndex: 0 })];
      await Promise.all(ds.map((d) => d.open()));
      const set = Array.from({ length: 128 }, (_, i) => imgs[i % imgs.length]);
      await Promise.all(ds.map((d) => d.decode(set, specOf(m))));
      let n = 0;
      const t0 = performance.now();
      await Promise.all(
        ds.map(async (d) => {
          while (performance.now() - t0 < seconds * 1000) {
            await d.decode(set, specOf(m));
            n += set.length;
          }
        }),
      );
      report({
        what: 'throughput',
        path: 'gpu (4 decoders in one process)',
        batch: 128,
        imagesPerSecond: Math.round(n / ((performance.now() - t0) / 1000)),
      });
      await Promise.all(ds.map((d) => d.dispose()));
    }
    {
      const set = Array.from({ length: 64 }, (_, i) => imgs[i % imgs.length]);
      await pre.many(set);
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < seconds * 1000) {
        await pre.many(set);
        n += set.length;
      }
      report({
        what: 'throughput',
        path: `sharp (one process, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4})`,
        batch: 64,
        imagesPerSecond: Math.round(n / ((performance.now() - t0) / 1000)),
      });
    }
  });

  await decoder.dispose();
});
