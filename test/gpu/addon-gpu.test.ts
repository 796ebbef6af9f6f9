// The native addon on a GPU host (not run by CI; docs/addon.md says how to run
// it). Skips itself where the addon sees no GPU.
//   SWIN_TEST_CUDA_ENGINE=/path/model.swin  also runs our CUDA engine through the
//   native backend (engines/swintools/cuda_engine.py builds one from swin-fmnist).
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { gpuInfo, loadAddon, type SwinAddon } from '../../src/native/addon.js';
import { createNativeBackend } from '../../src/backends/native-backend.js';
import type { ModelConfig } from '../../src/models/model-config.js';

const load = loadAddon();
const caps = load.addon?.capabilities();
const noGpu = !caps ? ('reason' in load ? load.reason : 'no addon') : caps.gpus === 0 ? (caps.deviceReason ?? 'no GPU') : false;

function addon(): SwinAddon {
  assert.ok(load.addon);
  return load.addon;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (e: Error & { code: string }) => ({ code: e.code, message: e.message }),
  );
}

/** Runs `work` while a 10 ms interval timer counts how often the event loop turns. */
async function ticksDuring<T>(work: () => Promise<T>): Promise<{ ticks: number; ms: number; result: T }> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const t0 = performance.now();
  try {
    const result = await work();
    return { ticks, ms: performance.now() - t0, result };
  } finally {
    clearInterval(timer);
  }
}

/** swin-fmnist's model.json with its self-test images and reference logits (the repository as committed). */
function fmnistModel(): { model: ModelConfig; input: Uint8Array; expected: number[][] } {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), process.env.SWIN_REPO_ROOT ?? '../..');
  const modelDir = path.join(root, 'engines/models/swin-fmnist');
  const model = JSON.parse(readFileSync(path.join(modelDir, 'model.json'), 'utf8')) as ModelConfig;
  const input = new Uint8Array(readFileSync(path.join(modelDir, model.selftest.input)));
  const expected = JSON.parse(readFileSync(path.join(modelDir, model.selftest.expected_logits), 'utf8')) as number[][];
  return { model, input, expected };
}

describe('addon on a GPU host', { skip: noGpu }, () => {
  it('capabilities() sees the GPUs and the CUDA build', () => {
    const c = addon().capabilities();
    console.log(JSON.stringify(c));
    assert.ok(c.gpus >= 1);
    assert.equal(c.cuda.built, true);
    assert.match(c.cuda.runtimeVersion, /^\d+\.\d+$/);
    assert.match(c.cuda.driverVersion, /^\d+\.\d+$/);
  });

  it('gpuInfo() reports memory per GPU', async () => {
    const gpus = await gpuInfo();
    console.log(JSON.stringify(gpus));
    assert.equal(gpus.length, addon().capabilities().gpus);
    for (const g of gpus) {
      assert.ok(g.name.length > 0);
      assert.ok(g.memoryTotalBytes > 1e9, `total ${g.memoryTotalBytes}`);
      assert.ok(g.memoryUsedBytes >= 0 && g.memoryUsedBytes <= g.memoryTotalBytes);
      assert.ok(g.memoryFreeBytes <= g.memoryTotalBytes);
      assert.match(g.computeCapability, /^\d+\.\d+$/);
    }
  });

  it('timers keep firing while a kernel occupies the GPU', { skip: !caps?.cuda.testKernels && 'no test kernels (nvcc)' }, async () => {
    const e = await addon()._testing.loadFaultEngine({ gpuSpinMs: 500 });
    try {
      const { ticks, ms } = await ticksDuring(() => e.infer(new Uint8Array(48), 1));
      console.log(`GPU spin of 500 ms: resolved after ${ms.toFixed(0)} ms, ${ticks} timer ticks (10 ms interval)`);
      assert.ok(ms >= 450, `the kernel ran (${ms} ms)`);
      assert.ok(ticks >= 20, `the event loop turned ${ticks} times`);
    } finally {
      await e.dispose();
    }
  });

  it('two instances run two batches on the GPU at once', { skip: !caps?.cuda.testKernels && 'no test kernels (nvcc)' }, async () => {
    const e = await addon()._testing.loadFaultEngine({ gpuSpinMs: 300, instances: 2 });
    try {
      const { ms } = await ticksDuring(() => Promise.all([e.infer(new Uint8Array(48), 1), e.infer(new Uint8Array(48), 1)]));
      console.log(`two 300 ms kernels on two streams: ${ms.toFixed(0)} ms`);
      assert.equal(addon()._testing.faultStats(e).peakConcurrency, 2);
      assert.ok(ms < 540, `overlapped (${ms} ms for 2 x 300 ms)`);
    } finally {
      await e.dispose();
    }
  });

  it('real CUDA errors become coded rejections and the device stays usable', async () => {
    const bad = await addon()._testing.loadFaultEngine({ fault: 'cuda' });
    const oom = await addon()._testing.loadFaultEngine({ fault: 'cuda_oom' });
    const e1 = await codeOf(bad.infer(new Uint8Array(48), 1));
    const e2 = await codeOf(oom.infer(new Uint8Array(48), 1));
    console.log(e1, e2);
    assert.equal(e1.code, 'ERR_CUDA');
    assert.match(e1.message, /cudaErrorInvalidValue .* at .*fault_engine\.cc:\d+/);
    assert.equal(e2.code, 'ERR_OUT_OF_MEMORY');
    assert.match(e2.message, /cudaErrorMemoryAllocation/);
    await Promise.all([bad.dispose(), oom.dispose()]);
    if (caps?.cuda.testKernels) {
      const ok = await addon()._testing.loadFaultEngine({ gpuSpinMs: 10 });
      assert.equal((await ok.infer(new Uint8Array(48), 1)).length, 3);
      await ok.dispose();
    }
  });

  it('a plan for a missing TensorRT build is refused with a code', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'swin-gpu-'));
    const plan = path.join(dir, 'x.plan');
    writeFileSync(plan, Buffer.concat([Buffer.from('ftrt'), Buffer.alloc(256, 1)]));
    const err = await codeOf(addon().loadEngine('tensorrt', plan));
    // Without TensorRT: not built. With it: a corrupt plan, which TensorRT may
    // report as a serialization-version mismatch.
    if (caps?.tensorrt.built) assert.match(err.code, /^ERR_ENGINE_(FILE|MISMATCH)$/, err.message);
    else assert.equal(err.code, 'ERR_BACKEND_UNAVAILABLE', err.message);
  });

  const engineFile = process.env.SWIN_TEST_CUDA_ENGINE;
  it(
    'the CUDA engine serves swin-fmnist through the native backend without blocking the loop',
    {
      skip: !engineFile ? 'set SWIN_TEST_CUDA_ENGINE' : !caps?.backends.cuda && 'cuda backend not built',
    },
    async () => {
      const { model, input, expected } = fmnistModel();
      const backend = await createNativeBackend('cuda', engineFile!, model, 'unfold', { instances: 2 });
      try {
        // The self-test picks its tolerance from this; an fp16 engine judged by the fp32 bound is refused.
        assert.equal(backend.precision, 'fp16');
        const n = model.selftest.count;
        const { ticks, ms, result } = await ticksDuring(async () => {
          let last: Float32Array | undefined;
          for (let i = 0; i < 50; i++) last = await backend.run(input, n);
          return last!;
        });
        let maxDiff = 0;
        for (let i = 0; i < n; i++) {
          for (let c = 0; c < model.architecture.num_classes; c++) {
            const v = result[i * model.architecture.num_classes + c];
            assert.ok(Number.isFinite(v));
            maxDiff = Math.max(maxDiff, Math.abs(v - expected[i][c]));
          }
        }
        console.log(
          `cuda backend on ${backend.device}: 50 batches of ${n} in ${ms.toFixed(1)} ms, ${ticks} timer ticks; max |diff| to PyTorch ${maxDiff}`,
        );
        assert.ok(maxDiff <= model.selftest.tolerance.fp16, `max abs diff ${maxDiff}`);
      } finally {
        await backend.dispose();
      }
    },
  );

  it(
    'inferImages decodes JPEGs into the engine input: the logits of JpegDecoder.decode + infer, pixels beside them, a truncated JPEG refused',
    {
      skip: !engineFile ? 'set SWIN_TEST_CUDA_ENGINE' : !caps?.backends.cuda && 'cuda backend not built',
    },
    async () => {
      const { model, input } = fmnistModel();
      const size = model.architecture.img_size;
      const k = model.architecture.num_classes;
      const bytes = size * size * 3;
      const n = model.selftest.count;
      // The self-test images as JPEGs, larger than the input so the resize runs.
      const jpegs = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          sharp(input.subarray(i * bytes, (i + 1) * bytes), { raw: { width: size, height: size, channels: 3 } })
            .resize(size * 3, size * 2)
            .jpeg({ quality: 90 })
            .toBuffer(),
        ),
      );
      const spec = {
        size,
        mode: model.preprocess.mode,
        resize: model.preprocess.mode === 'squash' ? size : model.preprocess.resize,
        kernel: model.preprocess.kernel,
        maxPixels: 1e8,
      };
      const backend = await createNativeBackend('cuda', engineFile!, model, 'unfold', { instances: 2 });
      const decoder = new (addon().JpegDecoder)();
      try {
        assert.ok(backend.runImages, 'the cuda backend takes image batches');
        const ref = await decoder.decode(jpegs, spec);
        assert.equal(
          ref.decoded.reduce((a, b) => a + b, 0),
          n,
        );
        const want = await backend.run(ref.pixels, n);
        const got = await backend.runImages!(
          jpegs,
          jpegs.map(() => true),
          spec,
        );
        const maxDiff = (a: Float32Array, b: Float32Array, rows: number[]) =>
          Math.max(...rows.flatMap((r) => Array.from({ length: k }, (_, c) => Math.abs(a[r * k + c] - b[r * k + c]))));
        const all = [...Array(n).keys()];
        assert.deepEqual(
          got.decoded,
          all.map(() => true),
        );
        const d1 = maxDiff(got.logits, want, all);
        // Mixed: odd images as pixels; one truncated JPEG in the middle.
        const truncated = jpegs[0].subarray(0, Math.floor(jpegs[0].length / 2));
        const mixed = [...all.map((i) => (i % 2 ? ref.pixels.subarray(i * bytes, (i + 1) * bytes) : jpegs[i])), truncated];
        const flags = [...all.map((i) => i % 2 === 0), true];
        const got2 = await backend.runImages!(mixed, flags, spec);
        assert.deepEqual(got2.decoded, [...all.map(() => true), false]);
        assert.match(got2.reasons[n] ?? '', /truncated/);
        const d2 = maxDiff(got2.logits, want, all);
        // Both engine threads at once, each with its own decoder, buffers and stream.
        const together = await Promise.all(
          Array.from({ length: 6 }, () =>
            backend.runImages!(
              jpegs,
              jpegs.map(() => true),
              spec,
            ),
          ),
        );
        const d3 = Math.max(...together.map((r) => maxDiff(r.logits, want, all)));
        const s = got.stages;
        console.log(
          `inferImages: ${n} JPEGs, max |diff| to decode + infer ${d1}; mixed with pixels ${d2}; 6 at once ${d3}; ` +
            `stages ms: ${JSON.stringify(s)}`,
        );
        // Same pixels in the same engine: only the batch's order of work may differ.
        assert.ok(d1 <= 1e-3 && d2 <= 1e-3 && d3 <= 1e-3, `${d1} ${d2} ${d3}`);
        assert.ok(s && s.engineMs > 0 && s.decodeMs > 0 && s.wallMs >= s.engineMs, `stages ${JSON.stringify(s)}`);
      } finally {
        await Promise.all([backend.dispose(), decoder.dispose()]);
      }
    },
  );
});
