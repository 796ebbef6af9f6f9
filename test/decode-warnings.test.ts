// Damaged images (issue 15): a JPEG damaged in its middle decodes (as far as
// libjpeg can), and the reply says so per image, the same in process and in a
// decode process; swin_image_warnings_total counts it; DECODE_STRICT refuses
// it with 400 SWIN_IMAGE_DAMAGED. A decode process running a dear decode whose
// request is gone is retired (killed and replaced).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { DecodePool, RETIRE_COST_MS } from '../src/decode/decode-pool.js';
import { registry } from '../src/observability/metrics.js';
import { Preprocessor } from '../src/decode/preprocess.js';
import { fakeModelConfig } from './helpers/fake-model.js';
import { fakeService, type FakeService } from './helpers/fake-service.js';
import { greyPng } from './helpers/http-bodies.js';
import { stripPng } from './helpers/strip-png.js';

let clean: Buffer;
let damaged: Buffer;
before(async () => {
  clean = await sharp({
    create: { width: 320, height: 240, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
  })
    .jpeg()
    .toBuffer();
  // Two marker bytes in the middle of the entropy-coded data: libjpeg warns "premature end of data segment".
  damaged = Buffer.from(clean);
  const mid = damaged.length >> 1;
  damaged[mid] = 0xff;
  damaged[mid + 1] = 0xd3;
});

/**
 * The warning for `damaged`: libjpeg's words, or, when a concurrent decode took them from
 * libvips' one error buffer, the marker scan's (src/decode/preprocess.ts warningText).
 */
const DAMAGE =
  /^(VipsJpeg: Corrupt JPEG data: premature end of data segment|damaged JPEG: marker 0xffd3 inside entropy-coded data at byte \d+)$/;

function assertWarnings(actual: Array<{ image: number; warning: string }> | undefined, image: number): void {
  assert.ok(actual, 'warnings present');
  assert.deepEqual(
    actual.map((w) => w.image),
    [image],
  );
  assert.match(actual[0].warning, DAMAGE);
}

async function warningsCounted(): Promise<number> {
  const m = await registry.getSingleMetric('swin_image_warnings_total')?.get();
  return (m?.values ?? []).reduce((a, v) => a + v.value, 0);
}

function post(s: FakeService, images: Buffer[]) {
  const boundary = 'b0undary';
  const parts = images.flatMap((img, i) => [
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
    img,
    Buffer.from('\r\n'),
  ]);
  return s.app.inject({
    method: 'POST',
    url: '/classify',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]),
  });
}

for (const processes of ['0', '1']) {
  test(`a damaged JPEG is classified with its warning, a clean one without (DECODE_PROCESSES=${processes})`, async () => {
    const s = await fakeService({ env: { DECODE_PROCESSES: processes } });
    try {
      await s.service.decodePool?.ready();
      const before = await warningsCounted();
      const r = await post(s, [clean, damaged, clean]);
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json();
      assert.equal(body.predictions.length, 3);
      assertWarnings(body.warnings, 1);
      assert.equal(await warningsCounted(), before + 1);
      const plain = await post(s, [clean]);
      assert.equal(plain.statusCode, 200);
      assert.equal(plain.json().warnings, undefined, 'no warnings field for clean images');
    } finally {
      await s.close();
    }
  });
}

test("KServe REST: BYTES images' warnings in the reply parameters, as JSON", async () => {
  const s = await fakeService();
  try {
    const body = {
      inputs: [{ name: 'pixels', shape: [2], datatype: 'BYTES', data: [damaged.toString('base64'), clean.toString('base64')] }],
    };
    const r = await s.app.inject({ method: 'POST', url: '/v2/models/fake/infer', payload: body });
    assert.equal(r.statusCode, 200, r.body);
    assertWarnings(JSON.parse(r.json().parameters.swin_image_warnings), 0);
    const plain = await s.app.inject({
      method: 'POST',
      url: '/v2/models/fake/infer',
      payload: { inputs: [{ ...body.inputs[0], shape: [1], data: [clean.toString('base64')] }] },
    });
    assert.equal(plain.json().parameters, undefined);
  } finally {
    await s.close();
  }
});

test('a decode whose request is gone by the time its header is read is not run', async () => {
  const pre = new Preprocessor(fakeModelConfig({ size: 8 }), { maxImagePixels: 30_000_000, acceptedFormats: ['png'] });
  const ac = new AbortController();
  const decoding = pre.one(await stripPng(1, 3_000_000), 0, { signal: ac.signal });
  ac.abort(); // while sharp reads the header
  await assert.rejects(decoding, { code: 'SWIN_CANCELLED' });
});

test('DECODE_STRICT=true refuses the damaged image with 400 SWIN_IMAGE_DAMAGED; truncated files keep their code', async () => {
  const s = await fakeService({ env: { DECODE_STRICT: 'true' } });
  try {
    const r = await post(s, [clean, damaged]);
    const body = r.json();
    assert.deepEqual(
      { ...body, message: undefined },
      { statusCode: 400, code: 'SWIN_IMAGE_DAMAGED', error: 'Bad Request', message: undefined },
    );
    const m = /^Image 1 is damaged \(the decoder warned: (.*)\); DECODE_STRICT refuses damaged images$/.exec(body.message);
    assert.ok(m, body.message);
    assert.match(m[1], DAMAGE);
    const truncated = await post(s, [clean.subarray(0, clean.length >> 1)]);
    assert.equal(truncated.json().code, 'SWIN_IMAGE_DECODE_FAILED');
    assert.equal((await post(s, [clean])).statusCode, 200);
  } finally {
    await s.close();
  }
});

test('a decode process whose dear decode lost its request is retired and replaced; the pool keeps serving', async () => {
  const exits: Array<{ retired: boolean; replaced: boolean }> = [];
  const pool = new DecodePool(1, { onExit: (info) => exits.push(info) });
  try {
    await pool.ready();
    const pre = pool.preprocessor(
      new Preprocessor(fakeModelConfig({ size: 8 }), { maxImagePixels: 30_000_000, acceptedFormats: ['png', 'jpeg'] }),
    );
    const strip = await stripPng(1, 6_000_000); // about a second of decoding
    const [pid] = pool.pids;
    const ac = new AbortController();
    const gone = pre.one(strip, 0, { signal: ac.signal, costMs: RETIRE_COST_MS * 2 });
    const timer = setTimeout(() => ac.abort(), 100);
    await assert.rejects(gone, { code: 'SWIN_CANCELLED' });
    clearTimeout(timer);
    // Replaced: a new child decodes the next image.
    const pixels = await pre.one(await greyPng(40), 0);
    assert.equal(pixels.length, 8 * 8 * 3);
    assert.deepEqual(
      exits.map((e) => ({ retired: e.retired, replaced: e.replaced })),
      [{ retired: true, replaced: true }],
    );
    assert.notEqual(pool.pids[0], pid);
  } finally {
    await pool.close();
  }
});
