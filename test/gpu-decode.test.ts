// The DECODE switch and the GPU decode path's fallbacks, without a GPU: a test
// double stands in for the addon's JpegDecoder (it marks what it "decoded" with
// a constant fill), the real sharp path decodes everything else. The addon's
// host-side JPEG header parser (JpegDecoder.inspect) is tested where the addon loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { ConfigError, loadConfig } from '../src/config.js';
import { ServeError } from '../src/errors.js';
import { GpuDecodeRouter, isJpeg, openAddonDecoder, type GpuDecodeSpec, type JpegDecoderLike } from '../src/decode/gpu-decode.js';
import { loadAddon } from '../src/native/addon.js';
import { Preprocessor } from '../src/decode/preprocess.js';
import { fakeModelConfig } from './helpers/fake-model.js';

const ACCEPTED = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'];
const model = fakeModelConfig({ size: 8 });
const cpu = new Preprocessor(model, { maxImagePixels: 1_000_000, acceptedFormats: ACCEPTED });
const BYTES = 8 * 8 * 3;
const FILL = 7; // what the double writes for an image it "decodes"

const image = (rgb: [number, number, number]) =>
  sharp({ create: { width: 20, height: 12, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });

class FakeDecoder implements JpegDecoderLike {
  calls: { n: number; spec: GpuDecodeSpec }[] = [];
  disposed = false;
  constructor(
    private readonly refuse: (img: Uint8Array) => string | null,
    private readonly fail = false,
  ) {}
  async decode(jpegs: Uint8Array[], spec: GpuDecodeSpec) {
    this.calls.push({ n: jpegs.length, spec });
    if (this.fail) throw Object.assign(new Error('CUDA error cudaErrorLaunchFailure'), { code: 'ERR_CUDA' });
    const pixels = new Uint8Array(jpegs.length * spec.size * spec.size * 3);
    const decoded = new Uint8Array(jpegs.length);
    const reasons = jpegs.map((j, i) => {
      const why = this.refuse(j);
      if (why === null) {
        decoded[i] = 1;
        pixels.fill(FILL, i * BYTES, (i + 1) * BYTES);
      }
      return why;
    });
    return { pixels, decoded, reasons };
  }
  async dispose() {
    this.disposed = true;
  }
}

const opener = (d: FakeDecoder) => async () => ({ decoder: d, backend: 'hardware' });

test('DECODE: auto by default, cpu/gpu by flag or environment, anything else refused', () => {
  assert.equal(loadConfig([], {}).decode, 'auto');
  assert.equal(loadConfig(['--decode', 'gpu'], {}).decode, 'gpu');
  assert.equal(loadConfig([], { DECODE: 'cpu' }).decode, 'cpu');
  assert.throws(
    () => loadConfig([], { DECODE: 'nvjpeg' }),
    (e: unknown) => e instanceof ConfigError && /DECODE/.test(e.message),
  );
});

test('which backends take the GPU path in each mode', () => {
  const none = async () => ({ reason: 'unused' });
  assert.deepEqual(
    ['onnxruntime', 'tensorrt', 'cuda', null].map((k) => new GpuDecodeRouter('auto', { open: none }).wants(k as never)),
    [false, true, true, false],
  );
  assert.ok(['onnxruntime', 'tensorrt', 'cuda'].every((k) => !new GpuDecodeRouter('cpu', { open: none }).wants(k as never)));
  assert.ok(['onnxruntime', 'tensorrt', 'cuda'].every((k) => new GpuDecodeRouter('gpu', { open: none }).wants(k as never)));
});

test('auto on a GPU backend: JPEGs go to the GPU decoder, other formats and refused JPEGs to sharp, in request order', async () => {
  const red = await image([200, 0, 0]).jpeg().toBuffer();
  const green = await image([0, 200, 0]).png().toBuffer();
  const blue = await image([0, 0, 200]).jpeg({ progressive: true }).toBuffer();
  const d = new FakeDecoder((j) => (j === blue || Buffer.compare(Buffer.from(j), blue) === 0 ? 'progressive' : null));
  const told: string[] = [];
  const router = new GpuDecodeRouter('auto', { open: opener(d), onFallback: (r) => told.push(r) });
  const out = await router.many(model, cpu, [red, green, blue], 'cuda', ACCEPTED, 1_000_000);
  assert.equal(out.length, 3 * BYTES);
  assert.equal(d.calls.length, 1);
  assert.equal(d.calls[0].n, 2, 'only the two JPEGs reach the GPU decoder');
  assert.deepEqual(d.calls[0].spec, { size: 8, mode: 'squash', resize: 8, kernel: 'nearest', maxPixels: 1_000_000 });
  assert.ok(
    out.subarray(0, BYTES).every((v) => v === FILL),
    'image 0 from the GPU',
  );
  assert.deepEqual(Buffer.from(out.subarray(BYTES, 2 * BYTES)), await cpu.one(green), 'image 1 (PNG) from sharp');
  assert.deepEqual(Buffer.from(out.subarray(2 * BYTES)), await cpu.one(blue), 'image 2 (refused) from sharp');
  await router.many(model, cpu, [blue], 'cuda', ACCEPTED, 1_000_000);
  assert.deepEqual(told, ['GPU decoder refused a JPEG: progressive'], 'each refusal reason is told once');
  assert.deepEqual(router.counts, { gpu: 1, cpu: 3 });
});

test("a corrupt JPEG the GPU refuses gets the CPU path's 400", async () => {
  const good = await image([10, 20, 30]).jpeg().toBuffer();
  const corrupt = Buffer.concat([good.subarray(0, 200), Buffer.alloc(50, 0x55)]);
  const d = new FakeDecoder((j) => (j.length === corrupt.length ? 'nvJPEG: NVJPEG_STATUS_BAD_JPEG' : null));
  const router = new GpuDecodeRouter('auto', { open: opener(d) });
  const cpuErr = await cpu.many([good, corrupt]).then(
    () => null,
    (e: unknown) => e,
  );
  const gpuErr = await router.many(model, cpu, [good, corrupt], 'tensorrt', ACCEPTED, 1_000_000).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(cpuErr instanceof ServeError && gpuErr instanceof ServeError, `${String(cpuErr)} / ${String(gpuErr)}`);
  assert.equal(gpuErr.code, cpuErr.code);
  assert.equal(gpuErr.httpStatus, 400);
  // Same code, status and image index. The text after "could not be decoded:" is libvips'
  // error buffer, which is shared by the threads decoding at once, so its detail can
  // differ between two runs of the same image ("corrupt header:" with or without
  // "VipsJpeg: Bogus Huffman table definition"): only the stable part is compared.
  const stable = (m: string) => m.split(':').slice(0, 2).join(':');
  assert.match(gpuErr.message, /^Image 1 could not be decoded: \S/);
  assert.equal(stable(gpuErr.message), stable(cpuErr.message));
});

test('auto on onnxruntime, DECODE=cpu, and jpeg not accepted: the GPU decoder is never opened', async () => {
  const jpeg = await image([1, 2, 3]).jpeg().toBuffer();
  let opened = 0;
  const open = async () => {
    opened++;
    return { decoder: new FakeDecoder(() => null), backend: 'hardware' };
  };
  const expect = await cpu.many([jpeg]);
  assert.deepEqual(await new GpuDecodeRouter('auto', { open }).many(model, cpu, [jpeg], 'onnxruntime', ACCEPTED, 1e6), expect);
  assert.deepEqual(await new GpuDecodeRouter('cpu', { open }).many(model, cpu, [jpeg], 'cuda', ACCEPTED, 1e6), expect);
  const noJpeg = new Preprocessor(model, { maxImagePixels: 1e6, acceptedFormats: ['png'] });
  const err = await new GpuDecodeRouter('gpu', { open }).many(model, noJpeg, [jpeg], 'cuda', ['png'], 1e6).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ServeError && err.httpStatus === 415, String(err));
  assert.equal(opened, 0);
});

test('no decoder (CPU-only host) or a failing one: sharp decodes everything, each reason reported once', async () => {
  const jpeg = await image([50, 60, 70]).jpeg().toBuffer();
  const expect = await cpu.many([jpeg, jpeg]);
  const told: string[] = [];
  const absent = new GpuDecodeRouter('gpu', {
    open: async () => ({ reason: 'addon built without nvJPEG' }),
    onFallback: (r) => told.push(r),
  });
  assert.deepEqual(await absent.many(model, cpu, [jpeg, jpeg], 'cuda', ACCEPTED, 1e6), expect);
  assert.deepEqual(await absent.many(model, cpu, [jpeg, jpeg], 'cuda', ACCEPTED, 1e6), expect);
  assert.equal(absent.reason, 'addon built without nvJPEG');
  assert.equal(told.length, 1);

  const failing = new FakeDecoder(() => null, true);
  const broken = new GpuDecodeRouter('auto', { open: opener(failing), onFallback: (r) => told.push(r) });
  assert.deepEqual(await broken.many(model, cpu, [jpeg, jpeg], 'cuda', ACCEPTED, 1e6), expect);
  assert.match(told[1], /GPU decode failed.*cudaErrorLaunchFailure/);
  await broken.close();
  assert.ok(failing.disposed);
});

test('concurrent requests spread over the decoders the router opened', async () => {
  const jpeg = await image([5, 5, 5]).jpeg().toBuffer();
  const made: FakeDecoder[] = [];
  const open = async () => {
    const d = new FakeDecoder(() => null);
    const decode = d.decode.bind(d);
    d.decode = async (j, spec) => {
      await new Promise((r) => setTimeout(r, 30)); // held long enough for the others to arrive
      return decode(j, spec);
    };
    made.push(d);
    return { decoder: d, backend: 'hardware' };
  };
  const router = new GpuDecodeRouter('auto', { open, decoders: 3 });
  const outs = await Promise.all([0, 1, 2].map(() => router.many(model, cpu, [jpeg], 'cuda', ACCEPTED, 1e6)));
  assert.ok(outs.every((o) => o.every((v) => v === FILL)));
  assert.equal(made.length, 3);
  assert.deepEqual(
    made.map((d) => d.calls.length),
    [1, 1, 1],
  );
  await router.close();
  assert.ok(made.every((d) => d.disposed));
});

test('a decoder pool per GPU: `decoders` opened on each device, requests take the least busy of any GPU', async () => {
  const jpeg = await image([5, 5, 5]).jpeg().toBuffer();
  const made: { d: FakeDecoder; device: number }[] = [];
  let release!: () => void;
  let entered = 0;
  const gate = new Promise<void>((r) => (release = r));
  const open = async (device = 0) => {
    if (device === 2) return { reason: 'nvJPEG: no memory on GPU 2' };
    const d = new FakeDecoder(() => null);
    const decode = d.decode.bind(d);
    d.decode = async (j, spec) => {
      entered++;
      await gate; // held until every request has taken a decoder
      return decode(j, spec);
    };
    made.push({ d, device });
    return { decoder: d, backend: 'hardware' };
  };
  const told: string[] = [];
  const router = new GpuDecodeRouter('auto', { open, decoders: 2, devices: [0, 1, 2], onFallback: (r) => told.push(r) });
  const pending = [0, 1, 2, 3].map(() => router.many(model, cpu, [jpeg], 'cuda', ACCEPTED, 1e6));
  for (let i = 0; i < 100 && entered < 4; i++) await new Promise((r) => setImmediate(r));
  assert.equal(entered, 4);
  release();
  const outs = await Promise.all(pending);
  assert.ok(outs.every((o) => o.every((v) => v === FILL)));
  assert.deepEqual(
    made.map((m) => m.device),
    [0, 0, 1, 1],
  );
  assert.deepEqual(
    made.map((m) => m.d.calls.length),
    [1, 1, 1, 1],
  );
  assert.deepEqual(told, ['GPU JPEG decoding unavailable on one GPU: nvJPEG: no memory on GPU 2']);
  await router.close();
});

test('warm-up opens every decoder and decodes once on each, with the model geometry, uncounted; not on a CPU backend', async () => {
  const jpeg = await image([10, 20, 30]).jpeg().toBuffer();
  const decoders: FakeDecoder[] = [];
  const open = async () => {
    const d = new FakeDecoder(() => null);
    decoders.push(d);
    return { decoder: d, backend: 'hardware' };
  };
  assert.equal(await new GpuDecodeRouter('auto', { open, decoders: 3 }).warm(model, jpeg, 'onnxruntime', 1e6), 0);
  assert.equal(decoders.length, 0, 'a CPU backend in auto mode opens nothing');
  const router = new GpuDecodeRouter('auto', { open, decoders: 3, devices: [0, 1] });
  assert.equal(await router.warm(model, jpeg, 'cuda', 1e6), 6);
  assert.equal(decoders.length, 6);
  assert.ok(decoders.every((d) => d.calls.length === 1 && d.calls[0].n === 1 && d.calls[0].spec.size === 8));
  assert.deepEqual(router.counts, { gpu: 0, cpu: 0 });
  const told: string[] = [];
  const failing = new GpuDecodeRouter('auto', { open: opener(new FakeDecoder(() => null, true)), onFallback: (r) => told.push(r) });
  assert.equal(await failing.warm(model, jpeg, 'cuda', 1e6), 0);
  assert.match(told.join('\n'), /warm-up failed/);
});

test('isJpeg looks at the bytes', async () => {
  assert.ok(isJpeg(await image([0, 0, 0]).jpeg().toBuffer()));
  assert.ok(!isJpeg(await image([0, 0, 0]).png().toBuffer()));
  assert.ok(!isJpeg(Buffer.from([0xff, 0xd8])));
});

// ---- the addon on this host (CI builds it without CUDA)

const addon = loadAddon().addon;
const inspectSkip = !addon ? 'native addon not loaded here' : false;

test(
  'JpegDecoder.inspect: size, EXIF orientation, progressive, and why CMYK/corrupt JPEGs go to sharp',
  { skip: inspectSkip },
  async () => {
    const J = addon!.JpegDecoder;
    const plain = J.inspect(await image([9, 9, 9]).jpeg().toBuffer());
    assert.deepEqual(plain, { width: 20, height: 12, components: 3, progressive: false, orientation: 1, reason: null });
    for (const o of [3, 6, 8]) {
      const tagged = await image([9, 9, 9]).jpeg().withMetadata({ orientation: o }).toBuffer();
      assert.equal(J.inspect(tagged).orientation, o);
    }
    assert.equal(J.inspect(await image([9, 9, 9]).jpeg({ progressive: true }).toBuffer()).progressive, true);
    const grey = J.inspect(await image([9, 9, 9]).toColourspace('b-w').jpeg().toBuffer());
    assert.equal(grey.components, 1);
    assert.equal(grey.reason, null);
    const cmyk = J.inspect(await image([9, 9, 9]).toColourspace('cmyk').jpeg().toBuffer());
    assert.equal(cmyk.components, 4);
    assert.match(cmyk.reason ?? '', /CMYK/);
    assert.equal(J.inspect(Buffer.from('not an image')).reason, 'not a JPEG');
    const whole = await image([9, 9, 9]).jpeg().toBuffer();
    assert.notEqual(J.inspect(whole.subarray(0, 30)).reason, null);
    // Cut inside the scan and padded with junk: nvJPEG decodes this without an error (H100 run), sharp refuses it.
    const noisy = await sharp({
      create: { width: 200, height: 150, channels: 3, background: { r: 0, g: 0, b: 0 }, noise: { type: 'gaussian', mean: 128, sigma: 30 } },
    })
      .jpeg()
      .toBuffer();
    const cut = Buffer.concat([noisy.subarray(0, Math.floor((noisy.length * 2) / 3)), Buffer.alloc(200, 0x37)]);
    assert.equal(J.inspect(cut).reason, 'truncated (no end-of-image marker)');
    assert.equal(J.inspect(Buffer.concat([whole, Buffer.alloc(16)])).reason, null, 'bytes after the end-of-image marker are allowed');
  },
);

test('openAddonDecoder says why where the GPU decoder cannot run', { skip: inspectSkip }, async (t) => {
  if (addon!.JpegDecoder.built) return t.skip('this addon has nvJPEG (GPU host): test/gpu/gpu-decode.test.ts covers it');
  const r = await openAddonDecoder();
  assert.ok('reason' in r);
  assert.match(r.reason, /nvJPEG/);
});
