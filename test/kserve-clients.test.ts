// Clients we did not write, against the real server (src/main.ts, the
// swin-fmnist model on onnxruntime): Triton's tritonclient over KServe v2 HTTP
// and gRPC, and a grpcio client of swin.v1.Classifier/Predict. They run from
// the Python venv scripts/test.sh builds in .venv (tritonclient, grpcio-tools);
// without it these tests skip, unless SWIN_REQUIRE_PYTHON_CLIENTS=1 (CI) makes
// that a failure.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { readModelConfig } from '../src/models/model-json.js';
import { Preprocessor } from '../src/decode/preprocess.js';
import { ROOT, startServer, type ServerProcess } from './helpers/reliability-harness.js';

const run = promisify(execFile);
const PYTHON = process.env.SWIN_PYTHON ?? join(ROOT, '.venv/bin/python');
const DATASET = '/usr/share/datasets/fashion-mnist';
const MODEL = 'swin-fmnist';
/** Fashion-MNIST test images used (the first N of t10k). */
const N = Number(process.env.SWIN_CLIENT_TEST_IMAGES ?? 200);

function pythonClientsMissing(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found (scripts/test.sh creates it)`;
  return null;
}

const missing = pythonClientsMissing();
const required = process.env.SWIN_REQUIRE_PYTHON_CLIENTS === '1';
const skip = missing !== null && !required ? `Python clients unavailable: ${missing}` : false;

let server: ServerProcess | undefined;
let data: string;
/** /classify top-1 per image, as the tritonclient script measured it. */
let classifyTop1: number[] | undefined;

/** First n images of an idx3/idx1 gz pair: 28x28 grey pixels and labels. */
function fashionMnist(n: number): { images: Buffer[]; labels: Buffer } {
  const img = gunzipSync(readFileSync(join(DATASET, 't10k-images-idx3-ubyte.gz')));
  const lab = gunzipSync(readFileSync(join(DATASET, 't10k-labels-idx1-ubyte.gz')));
  assert.equal(img.readUInt32BE(0), 2051);
  assert.equal(lab.readUInt32BE(0), 2049);
  const images = Array.from({ length: n }, (_, i) => img.subarray(16 + i * 784, 16 + (i + 1) * 784));
  return { images, labels: lab.subarray(8, 8 + n) };
}

before(async () => {
  if (skip) return;
  assert.equal(missing, null, `SWIN_REQUIRE_PYTHON_CLIENTS=1 but ${missing}`);
  data = mkdtempSync(join(tmpdir(), 'kserve-clients-'));
  const { images, labels } = fashionMnist(N);
  // PNG files (what users send) and the model's uint8 input made from them by
  // the server's own preprocessing code (what a UINT8 tensor client sends).
  const pngs = await Promise.all(
    images.map((px) =>
      sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
        .png()
        .toBuffer(),
    ),
  );
  const cfg = await readModelConfig(join(ROOT, 'engines/models', MODEL));
  const pixels = await new Preprocessor(cfg, { maxImagePixels: 1e6, acceptedFormats: ['png'] }).many(pngs);
  writeFileSync(
    join(data, 'images.bin'),
    Buffer.concat(
      pngs.flatMap((p) => {
        const len = Buffer.alloc(4);
        len.writeUInt32LE(p.length);
        return [len, p];
      }),
    ),
  );
  writeFileSync(join(data, 'labels.u8'), labels);
  writeFileSync(join(data, 'pixels.u8'), pixels);
  server = await startServer({ BACKEND: 'onnxruntime', LOG_LEVEL: 'warn' });
});

after(async () => {
  if (server) {
    server.proc.kill('SIGTERM');
    await server.exited;
  }
  if (data) rmSync(data, { recursive: true, force: true });
});

async function python(script: string, extra: string[] = []): Promise<any> {
  const args = [join(ROOT, 'test/clients', script), ...extra];
  const { stdout } = await run(PYTHON, args, {
    cwd: ROOT,
    timeout: 600_000,
    maxBuffer: 16 << 20,
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  }).catch((err) => {
    throw new Error(`${script} failed:\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  });
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

const serverArgs = () => [
  '--http',
  `127.0.0.1:${server!.port}`,
  '--grpc',
  `127.0.0.1:${server!.grpcPort}`,
  '--data',
  data,
  '--model',
  MODEL,
];

test("our KServe proto is wire-compatible with Triton's (tritonclient descriptors)", { skip }, async () => {
  const r = await python('test_wire_compat.py');
  assert.deepEqual(r.problems, []);
  assert.ok(r.messages_checked >= 15, `only ${r.messages_checked} messages compared`);
});

test('tritonclient (HTTP and gRPC): health, metadata, and the same accuracy as /classify', { skip, timeout: 900_000 }, async () => {
  const r = await python('check_triton_clients.py', serverArgs());
  classifyTop1 = r.classify_top1;
  const { classify_top1: _, ...summary } = r;
  console.log(`tritonclient: ${JSON.stringify(summary)}`);
  assert.equal(r.images, N);
  for (const path of ['kserve_http_uint8', 'kserve_http_bytes_classification', 'kserve_grpc_uint8', 'kserve_grpc_bytes_classification']) {
    // Same preprocessing and engine: the same top-1 for every image, bar a float tie.
    assert.ok(
      r[path].top1_agrees_with_classify >= N - 1,
      `${path}: top-1 agrees with /classify on ${r[path].top1_agrees_with_classify}/${N}`,
    );
    assert.ok(
      Math.abs(r[path].accuracy - r.classify_accuracy) <= 1 / N + 1e-9,
      `${path}: accuracy ${r[path].accuracy} vs /classify ${r.classify_accuracy}`,
    );
  }
  assert.match(r.errors.grpc_wrong_shape, /^Bad input tensor: input 'image' has shape \[1,\d+,\d+,3\]; model swin-fmnist takes UINT8/);
  assert.match(r.errors.http_wrong_datatype, /has datatype FP32/);
});

test('grpcio client of swin.v1.Classifier/Predict: results, and status + swin-code on errors', { skip, timeout: 900_000 }, async () => {
  const r = await python('check_grpcio_predict.py', serverArgs());
  console.log(`grpcio Predict: accuracy ${r.accuracy} on ${r.images} images, served by ${JSON.stringify(r.served_by)}`);
  assert.equal(r.top1.length, N);
  // /classify's top-1 for the same images, from the tritonclient run above.
  assert.ok(classifyTop1, 'the tritonclient test did not run first');
  const top1 = classifyTop1;
  const agree = top1.filter((t, i) => t === r.top1[i]).length;
  console.log(`grpcio Predict: top-1 equal to /classify on ${agree}/${N} images`);
  assert.ok(agree >= N - 1, `Predict top-1 agrees with /classify on ${agree}/${N}`);
  assert.equal(r.errors.unknown_model.code, 'NOT_FOUND');
  assert.equal(r.errors.no_images.swin_code, 'SWIN_EMPTY_BODY');
  assert.equal(r.errors.bad_top_k.swin_code, 'SWIN_BAD_TOP_K');
  assert.equal(r.errors.expired_deadline.code, 'DEADLINE_EXCEEDED');
});
