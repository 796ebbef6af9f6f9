// SVG is refused unless ACCEPTED_FORMATS lists it; and even when it is
// accepted, rendering never reads local files or fetches URLs. The references
// point at a loopback canary server (counts hits) and at a FIFO: opening a
// FIFO for reading blocks until a writer appears, so a render that tried to
// read it could not finish, and a non-blocking open for writing fails with
// ENXIO exactly when no reader is waiting.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ServeError } from '../src/errors.js';
import type { ModelConfig } from '../src/models/model-config.js';
import { Preprocessor } from '../src/decode/preprocess.js';
import { hostileCorpus } from './fixtures/hostile/generate.js';
import { within } from './helpers/timeout.js';

const model = {
  name: 'svg-test',
  architecture: { img_size: 32 },
  preprocess: { mode: 'squash', resize: 32, crop: 32, kernel: 'cubic', mean: [0, 0, 0], std: [1, 1, 1] },
} as unknown as ModelConfig;

let dir: string;
let fifo: string;
let canary: http.Server;
let canaryUrl: string;
let hits = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'swin-svg-'));
  fifo = join(dir, 'canary.fifo');
  execFileSync('mkfifo', [fifo]);
  canary = http.createServer((_req, res) => {
    hits++;
    res.end('x');
  });
  await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
  canaryUrl = `http://127.0.0.1:${(canary.address() as { port: number }).port}`;
});

after(async () => {
  await new Promise((r) => canary.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function nobodyOpenedFifo(): boolean {
  try {
    const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    closeSync(fd); // a reader was blocked in open(): it is released now
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') return true;
    throw err;
  }
}

async function svgCases() {
  const all = await hostileCorpus({ canaryUrl, canaryFile: fifo, maxBodyBytes: 1 << 20, maxImagesPerRequest: 4 });
  return all.filter((c) => /^SVG/.test(c.name) && /image\/svg|octet/.test(c.contentType));
}

describe('SVG', () => {
  test('refused with 415 by default, before any parsing', async () => {
    const p = new Preprocessor(model, { maxImagePixels: 1e6, acceptedFormats: ['png', 'jpeg'] });
    const cases = await svgCases();
    assert.ok(cases.length >= 4);
    for (const c of cases) {
      await assert.rejects(p.one(c.body), (e: ServeError) => e.code === 'SWIN_UNSUPPORTED_MEDIA_TYPE' && e.httpStatus === 415, c.name);
    }
    assert.equal(hits, 0);
    assert.ok(nobodyOpenedFifo());
  });

  test('when accepted, rendering reads no file and fetches no URL', async () => {
    const p = new Preprocessor(model, { maxImagePixels: 1e6, acceptedFormats: ['png', 'svg'] });
    for (const c of await svgCases()) {
      const outcome = await within(
        p.one(c.body).then(
          () => 'rendered',
          (e: ServeError) => e.code,
        ),
        10_000,
        'timeout',
      );
      assert.notEqual(outcome, 'timeout', `${c.name}: render blocked (it opened the FIFO)`);
      assert.ok(['rendered', 'SWIN_IMAGE_DECODE_FAILED'].includes(outcome as string), `${c.name}: ${outcome}`);
    }
    assert.ok(nobodyOpenedFifo(), 'something opened the referenced file');
    assert.equal(hits, 0, 'something fetched the referenced URL');
  });
});
