// The native addon on a machine without GPU libraries (CI): it builds, loads,
// reports no GPU backend, rejects bad engine files with stable codes, and turns
// every C++ failure raised on its worker threads into a rejected promise.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gpuInfo, loadAddon, nativeCapabilities, type NativeEngine, type SwinAddon } from '../src/native/addon.js';
import { createNativeBackend } from '../src/backends/native-backend.js';
import type { ModelConfig } from '../src/models/model-config.js';

const load = loadAddon();
const dir = mkdtempSync(path.join(tmpdir(), 'swin-addon-'));

function addon(): SwinAddon {
  assert.ok(load.addon, `the addon must build and load in CI: ${'reason' in load ? load.reason : ''}`);
  return load.addon;
}

/** A safetensors container: 8-byte little-endian header length, JSON header, data. */
function safetensors(header: string, declaredLength?: number): Buffer {
  const json = Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(declaredLength ?? json.length));
  return Buffer.concat([len, json, Buffer.alloc(16)]);
}

function file(name: string, content: Buffer | string): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<Error & { code: string }> {
  const err = await p.then(
    () => assert.fail(`expected a rejection with ${code}`),
    (e: Error & { code: string }) => e,
  );
  assert.ok(err instanceof Error, 'rejections are Error objects');
  assert.equal(err.code, code, err.message);
  if (message) assert.match(err.message, message);
  return err;
}

/** n images of h*w*3 bytes, image i filled with the value 10*(i+1). */
function images(n: number, h = 4, w = 4): Uint8Array {
  const a = new Uint8Array(n * h * w * 3);
  for (let i = 0; i < n; i++) a.fill(10 * (i + 1), i * h * w * 3, (i + 1) * h * w * 3);
  return a;
}

describe('addon: error codes', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const enumCodes = [...readFileSync(path.join(root, 'addon/common/errors.h'), 'utf8').matchAll(/return "(ERR_[A-Z_]+)";/g)].map(
    (m) => m[1],
  );
  const codes = [...new Set(enumCodes)].sort();

  it('docs/addon.md lists exactly the codes of addon/common/errors.h', () => {
    const docs = readFileSync(path.join(root, 'docs/addon.md'), 'utf8');
    const section = docs.slice(docs.indexOf('## Errors'), docs.indexOf('\n## ', docs.indexOf('## Errors') + 1));
    const documented = [...section.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]).sort();
    assert.ok(codes.length >= 11, `errors.h names ${codes.length} codes`);
    assert.deepEqual(documented, codes);
  });

  it('C++ and CUDA sources take codes from the enum, never as string literals', () => {
    const sources = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory()
          ? e.name === 'build'
            ? []
            : sources(path.join(dir, e.name))
          : /\.(cc|h|cu|cuh)$/.test(e.name)
            ? [path.join(dir, e.name)]
            : [],
      );
    const literal = sources(path.join(root, 'addon'))
      .filter((f) => !f.endsWith(path.join('common', 'errors.h')) && /"ERR_[A-Z_]+"/.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(root, f));
    assert.deepEqual(literal, []);
  });
});

describe('addon: build and capabilities without GPU libraries', () => {
  it('loads from addon/build/Release', () => {
    assert.ok(load.addon, 'reason' in load ? load.reason : '');
    if (!process.env.SWIN_ADDON_PATH) assert.match(load.path, /addon\/build\/Release\/swin_addon\.node$/);
  });

  it('capabilities() reports no GPU backend, and why', () => {
    const caps = addon().capabilities();
    assert.equal(caps.gpus, 0);
    assert.equal(caps.backends.tensorrt, false);
    assert.equal(caps.backends.cuda, false);
    assert.equal(typeof caps.reasons.tensorrt, 'string');
    assert.equal(typeof caps.reasons.cuda, 'string');
    assert.equal(typeof caps.deviceReason, 'string');
    // Where the build found no TensorRT it says so, rather than pretending.
    if (!caps.tensorrt.built) assert.match(caps.reasons.tensorrt!, /^not built: /);
    if (!caps.cudaEngine.built) assert.match(caps.reasons.cuda!, /^not built: /);
  });

  it('nativeCapabilities() gives the factory the same answer', () => {
    const caps = nativeCapabilities();
    assert.equal(caps.tensorrt, false);
    assert.equal(caps.cuda, false);
    assert.equal(caps.gpus, 0);
    assert.match(caps.reason ?? '', /tensorrt: .*; cuda: /);
  });

  it('gpuInfo() is empty without a GPU', async () => {
    assert.deepEqual(await addon().gpuInfo(), []);
    assert.deepEqual(await gpuInfo(), []);
  });
});

describe('addon: loadEngine rejects bad engine files with stable codes', () => {
  let ftrt: string;
  let onnx: string;
  let goodSafetensors: string;
  before(() => {
    ftrt = file('model.plan', Buffer.concat([Buffer.from('ftrt'), Buffer.alloc(64, 7)]));
    onnx = file('model.onnx', Buffer.from([0x08, 0x07, 0x12, 0x04, 0x74, 0x65, 0x73, 0x74]));
    goodSafetensors = file('model.swin', safetensors('{"__metadata__":{"format":"test"}}   '));
  });

  it('missing file -> ERR_ENGINE_FILE', async () => {
    for (const kind of ['tensorrt', 'cuda']) {
      await rejectsWith(addon().loadEngine(kind, path.join(dir, 'nope.plan')), 'ERR_ENGINE_FILE', /No such file/);
    }
  });

  it('empty file or a directory -> ERR_ENGINE_FILE', async () => {
    const empty = file('empty.plan', '');
    const sub = path.join(dir, 'a-directory');
    mkdirSync(sub, { recursive: true });
    await rejectsWith(addon().loadEngine('tensorrt', empty), 'ERR_ENGINE_FILE', /is empty/);
    await rejectsWith(addon().loadEngine('cuda', empty), 'ERR_ENGINE_FILE', /is empty/);
    await rejectsWith(addon().loadEngine('cuda', sub), 'ERR_ENGINE_FILE', /not a regular file/);
  });

  it('corrupt CUDA engine files -> ERR_ENGINE_FILE', async () => {
    const tooLong = file('long.swin', safetensors('{"a":1}', 1 << 20));
    const notJson = file('notjson.swin', safetensors('{"a":1 garbage'));
    const garbage = file('garbage.swin', Buffer.from('hello, not an engine at all'));
    await rejectsWith(addon().loadEngine('cuda', tooLong), 'ERR_ENGINE_FILE', /corrupt safetensors header \(length/);
    await rejectsWith(addon().loadEngine('cuda', notJson), 'ERR_ENGINE_FILE', /not a JSON object/);
    await rejectsWith(addon().loadEngine('cuda', garbage), 'ERR_ENGINE_FILE', /not a CUDA engine file/);
  });

  it('an engine of the other kind -> ERR_ENGINE_KIND', async () => {
    await rejectsWith(addon().loadEngine('cuda', ftrt), 'ERR_ENGINE_KIND', /is a TensorRT plan, not a CUDA engine/);
    await rejectsWith(addon().loadEngine('tensorrt', goodSafetensors), 'ERR_ENGINE_KIND', /safetensors.*not a TensorRT plan/);
    await rejectsWith(addon().loadEngine('tensorrt', onnx), 'ERR_ENGINE_KIND', /ONNX model.*build_trt_plans\.sh/);
    await rejectsWith(addon().loadEngine('cuda', onnx), 'ERR_ENGINE_KIND', /ONNX model/);
    await rejectsWith(addon().loadEngine('onnxruntime', ftrt), 'ERR_ENGINE_KIND', /unknown engine kind 'onnxruntime'/);
  });

  it('a well-formed file for a backend this build lacks -> ERR_BACKEND_UNAVAILABLE', async () => {
    const caps = addon().capabilities();
    if (!caps.tensorrt.built) {
      await rejectsWith(addon().loadEngine('tensorrt', ftrt), 'ERR_BACKEND_UNAVAILABLE', /TensorRT >= 10 was not found/);
    }
    if (!caps.cudaEngine.built) {
      await rejectsWith(addon().loadEngine('cuda', goodSafetensors), 'ERR_BACKEND_UNAVAILABLE', /cuda backend is not in this build/);
    } else {
      // Built with the CUDA engine but no GPU: the engine itself must refuse.
      const err = await addon()
        .loadEngine('cuda', goodSafetensors)
        .then(
          () => null,
          (e: Error & { code: string }) => e,
        );
      assert.ok(err && err.code.startsWith('ERR_'), 'coded rejection');
    }
  });

  it('bad arguments -> ERR_INVALID_ARGUMENT, as rejections', async () => {
    const a = addon() as unknown as { loadEngine(...args: unknown[]): Promise<unknown> };
    await rejectsWith(a.loadEngine(), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(a.loadEngine('tensorrt', 42), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(a.loadEngine('tensorrt', ftrt, { instances: 0 }), 'ERR_INVALID_ARGUMENT', /instances/);
    await rejectsWith(a.loadEngine('tensorrt', ftrt, { deviceIndex: 1.5 }), 'ERR_INVALID_ARGUMENT', /deviceIndex/);
    await rejectsWith(a.loadEngine('tensorrt', ftrt, { inputName: 3 }), 'ERR_INVALID_ARGUMENT', /inputName/);
  });
});

describe('addon: worker-thread failures become rejected promises', () => {
  const engines: NativeEngine[] = [];
  after(async () => {
    await Promise.all(engines.map((e) => e.dispose()));
  });
  async function fault(spec: Parameters<SwinAddon['_testing']['loadFaultEngine']>[0]): Promise<NativeEngine> {
    const e = await addon()._testing.loadFaultEngine(spec);
    engines.push(e);
    return e;
  }

  it('a healthy engine returns one row of logits per image', async () => {
    const e = await fault({ numClasses: 3 });
    const { imageBatchesReason, ...info } = e.info;
    assert.deepEqual(info, {
      kind: 'fault',
      variant: 'fold',
      precision: 'fp32',
      device: 'fault #0',
      deviceIndex: 0,
      maxBatch: 8,
      height: 4,
      width: 4,
      numClasses: 3,
      instances: 1,
      imageBatches: false,
    });
    // Only the CUDA engine takes image batches; the reason names what is missing.
    assert.match(imageBatchesReason ?? '', /nvJPEG|cuda backend|takes no device input/);
    const logits = await e.infer(images(3), 3);
    assert.ok(logits instanceof Float32Array);
    assert.deepEqual([...logits], [10, 11, 12, 20, 21, 22, 30, 31, 32]);
    const spec = { size: 4, mode: 'squash' as const, resize: 4, kernel: 'linear', maxPixels: 1e6 };
    const refused = await rejectsWith(e.inferImages([images(1)], new Uint8Array([0]), spec), 'ERR_BACKEND_UNAVAILABLE');
    assert.equal(refused.message, imageBatchesReason);
  });

  const cases: Array<[string, string, RegExp]> = [
    ['engine', 'ERR_BATCH_RANGE', /^injected engine error$/],
    ['std', 'ERR_INTERNAL', /unexpected C\+\+ exception: injected std::runtime_error/],
    ['bad_alloc', 'ERR_OUT_OF_MEMORY', /host memory exhausted/],
    ['nonstd', 'ERR_INTERNAL', /unknown C\+\+ exception \(not derived from std::exception\)/],
  ];
  for (const [name, code, message] of cases) {
    it(`fault '${name}' thrown in infer() -> ${code}`, async () => {
      const e = await fault({ fault: name as never });
      await rejectsWith(e.infer(images(1), 1), code, message);
      // The engine and its thread survive: the next call fails the same way.
      await rejectsWith(e.infer(images(2), 2), code, message);
    });
    it(`fault '${name}' thrown while loading -> ${code}`, async () => {
      await rejectsWith(addon()._testing.loadFaultEngine({ fault: name as never, faultOnLoad: true }), code, message);
    });
  }

  it('a CUDA error is reported with the library message and file:line', async () => {
    const caps = addon().capabilities();
    const e = await fault({ fault: 'cuda' });
    if (caps.cuda.built) {
      // Real CUDA call; without a GPU the worker's cudaSetDevice fails first.
      await rejectsWith(e.infer(images(1), 1), 'ERR_NO_DEVICE', /CUDA error cuda\w+ \(\d+\): .* at .*\.cc:\d+/);
    } else {
      await rejectsWith(
        e.infer(images(1), 1),
        'ERR_CUDA',
        /^CUDA error cudaErrorInvalidValue \(1\): invalid argument .* in `cudaMemcpy\(.*\)` at .*fault_engine\.cc:\d+$/,
      );
      const oom = await fault({ fault: 'cuda_oom' });
      await rejectsWith(oom.infer(images(1), 1), 'ERR_OUT_OF_MEMORY', /cudaErrorMemoryAllocation \(2\)/);
    }
  });

  it('bad batches are rejected before reaching the engine', async () => {
    const e = await fault({ maxBatch: 4 });
    const a = e as unknown as { infer(...args: unknown[]): Promise<unknown> };
    await rejectsWith(e.infer(images(5), 5), 'ERR_BATCH_RANGE', /outside 1\.\.4/);
    await rejectsWith(e.infer(new Uint8Array(0), 0), 'ERR_BATCH_RANGE');
    await rejectsWith(e.infer(images(2), 1.5), 'ERR_BATCH_RANGE');
    await rejectsWith(e.infer(images(2), 3), 'ERR_INVALID_ARGUMENT', /holds 96 bytes; 3 RGB images of 4x4 need 144/);
    await rejectsWith(a.infer(new Float32Array(48), 1), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(a.infer(images(1)), 'ERR_INVALID_ARGUMENT');
    assert.equal(addon()._testing.faultStats(e).calls, 0);
  });

  it('runs `instances` batches at once, and no more', async () => {
    const two = await fault({ instances: 2, delayMs: 120 });
    const one = await fault({ instances: 1, delayMs: 40 });
    await Promise.all([0, 1, 2, 3].map(() => two.infer(images(1), 1)));
    await Promise.all([0, 1, 2].map(() => one.infer(images(1), 1)));
    assert.deepEqual(addon()._testing.faultStats(two), { calls: 4, peakConcurrency: 2 });
    assert.deepEqual(addon()._testing.faultStats(one), { calls: 3, peakConcurrency: 1 });
  });

  it('the event loop keeps running while a batch runs', async () => {
    const e = await fault({ delayMs: 300 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      await e.infer(images(1), 1);
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 5, `timers fired ${ticks} times during a 300 ms batch`);
  });

  it('dispose() lets queued batches finish, then refuses new ones', async () => {
    const e = await addon()._testing.loadFaultEngine({ delayMs: 30 });
    const queued = [0, 1, 2].map(() => e.infer(images(1), 1));
    const disposed = e.dispose();
    await rejectsWith(e.infer(images(1), 1), 'ERR_DISPOSED');
    const results = await Promise.all(queued);
    assert.deepEqual(
      results.map((r) => r[0]),
      [10, 10, 10],
    );
    await disposed;
    await e.dispose(); // idempotent
    assert.equal(e.info, null);
  });

  it('Engine cannot be constructed from JS', () => {
    const Engine = (addon() as unknown as { Engine: new (...args: unknown[]) => unknown }).Engine;
    assert.throws(
      () => new Engine(),
      (err: Error & { code?: string }) => err.code === 'ERR_INVALID_ARGUMENT',
    );
  });
});

describe('addon: the process survives every injected failure', () => {
  it('a child process runs all faults, drops an engine without dispose, and exits 0', async () => {
    const { spawnSync } = await import('node:child_process');
    const script = `
      const a = require(${JSON.stringify(load.addon ? load.path : '')});
      (async () => {
        const codes = [];
        for (const fault of ['engine', 'std', 'bad_alloc', 'nonstd', 'cuda', 'cuda_oom']) {
          const e = await a._testing.loadFaultEngine({ fault });
          codes.push(await e.infer(new Uint8Array(48), 1).then(() => 'resolved', (err) => err.code));
          await a._testing.loadFaultEngine({ fault, faultOnLoad: true }).then(() => codes.push('loaded'), (err) => codes.push(err.code));
        }
        let leaked = await a._testing.loadFaultEngine({ delayMs: 5, instances: 3 });
        await leaked.infer(new Uint8Array(48), 1);
        leaked = null;
        global.gc();
        await new Promise((r) => setTimeout(r, 50));
        global.gc();
        console.log(JSON.stringify(codes));
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.signal, null, `child killed by ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    const codes = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
    assert.equal(codes.length, 12);
    assert.ok(
      codes.every((c) => /^ERR_[A-Z_]+$/.test(c)),
      codes.join(','),
    );
  });
});

describe('native backend on a host without GPUs', () => {
  const model = {
    input: { name: 'image', datatype: 'UINT8', shape: [-1, 256, 256, 3], layout: 'NHWC' },
    output: { name: 'logits', datatype: 'FP32', shape: [-1, 10] },
    architecture: { img_size: 256, num_classes: 10 },
  } as unknown as ModelConfig;

  it('createNativeBackend rejects with ERR_NO_DEVICE', async () => {
    await rejectsWith(createNativeBackend('tensorrt', path.join(dir, 'x.plan'), model, 'fold', { instances: 1 }), 'ERR_NO_DEVICE');
  });

  it('with a device named, the engine file is checked first', async () => {
    const err = await rejectsWith(
      createNativeBackend('cuda', path.join(dir, 'missing.swin'), model, 'unfold', { instances: 1, deviceIndex: 0 }),
      'ERR_ENGINE_FILE',
    );
    assert.equal(err.name, 'NativeBackendError');
  });
});
