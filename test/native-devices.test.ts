// Native backends with the addon's fault engines standing in for GPUs (no GPU
// here, nor a multi-GPU host anywhere we ran): the self-test tolerance follows
// the precision of the artifact loaded (a TensorRT fp16 plan, a CUDA fp16
// engine), every device is self-tested on its own and one that fails is left
// out and reported, and the batcher keeps `instances` batches in flight per GPU.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import type { BackendFactory } from '../src/backends/backend-factory.js';
import { loadAddon, type FaultSpec, type NativeEngine, type SwinAddon } from '../src/native/addon.js';
import { createNativeBackend, loadedPrecision } from '../src/backends/native-backend.js';
import { loadConfig } from '../src/config.js';
import type { ModelConfig } from '../src/models/model-config.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { selfTestDevices, type SelfTestData } from '../src/models/selftest.js';
import { fakeModelConfig } from './helpers/fake-model.js';

const SIZE = 4;
const CLASSES = 10;
const IMAGE = SIZE * SIZE * 3;

function addon(): SwinAddon {
  const load = loadAddon();
  assert.ok(load.addon, 'reason' in load ? load.reason : '');
  return load.addon;
}

/** Two uniform images (10, 20); the fault engine answers mean + c, so the reference is that. */
function selftestData(): SelfTestData {
  const images = new Uint8Array(2 * IMAGE);
  images.fill(10, 0, IMAGE);
  images.fill(20, IMAGE);
  const expected = Float32Array.from([10, 20].flatMap((v) => Array.from({ length: CLASSES }, (_, c) => v + c)));
  return { images, count: 2, expected, numClasses: CLASSES, tolerance: { fp32: 1e-4, fp16: 0.1 } };
}

const model = fakeModelConfig({ size: SIZE });
model.architecture.num_classes = CLASSES;

/** Fault engines on `devices`, device d with spec specs[d] (precision, logit offset). */
function loader(specs: Record<number, FaultSpec>, loaded: NativeEngine[] = []) {
  return async (deviceIndex: number, o: { instances?: number; maxBatch?: number }) => {
    const e = await addon()._testing.loadFaultEngine({
      height: SIZE,
      width: SIZE,
      numClasses: CLASSES,
      maxBatch: o.maxBatch || 8,
      instances: o.instances,
      deviceIndex,
      ...specs[deviceIndex],
    });
    loaded.push(e);
    return e;
  };
}

describe('self-test tolerance follows the precision of the artifact loaded', () => {
  const data = selftestData();

  it('a TensorRT fp16 plan (reporting no precision, as plans do) within the fp16 bound is accepted', async () => {
    const b = await createNativeBackend('tensorrt', '/m/fake.unfold.fp16.plan', model, 'unfold', {
      instances: 1,
      loadEngine: loader({ 0: { precision: '', logitOffset: 0.05 } }),
    });
    const { result, leftOut } = await selfTestDevices(b, data);
    await b.dispose();
    assert.equal(b.precision, 'fp16');
    assert.equal(result.ok, true, result.reason);
    assert.equal(result.tolerance, 0.1);
    assert.ok(Math.abs(result.maxAbsDiff - 0.05) < 1e-5, String(result.maxAbsDiff));
    assert.deepEqual(leftOut, []);
  });

  it('the same plan outside the fp16 bound is refused', async () => {
    const b = await createNativeBackend('tensorrt', '/m/fake.unfold.fp16.plan', model, 'unfold', {
      instances: 1,
      loadEngine: loader({ 0: { precision: '', logitOffset: 0.5 } }),
    });
    const { result } = await selfTestDevices(b, data);
    await b.dispose();
    assert.equal(result.ok, false);
    assert.equal(result.failure, 'mismatch');
    assert.equal(result.reason, 'max abs diff 5.00e-1 to the reference exceeds 0.1');
  });

  it('an fp32 plan 0.05 off is refused against the fp32 bound', async () => {
    const b = await createNativeBackend('tensorrt', '/m/fake.unfold.fp32.plan', model, 'unfold', {
      instances: 1,
      loadEngine: loader({ 0: { precision: '', logitOffset: 0.05 } }),
    });
    const { result } = await selfTestDevices(b, data);
    await b.dispose();
    assert.equal(result.ok, false);
    assert.equal(result.tolerance, 1e-4);
    assert.equal(result.failure, 'mismatch');
  });

  it('a CUDA engine reporting fp16 gets the fp16 bound; one reporting fp32 the fp32 bound', async () => {
    const fp16 = await createNativeBackend('cuda', '/m/fake.unfold.swin', model, 'unfold', {
      instances: 1,
      loadEngine: loader({ 0: { precision: 'fp16', logitOffset: 0.05 } }),
    });
    const fp32 = await createNativeBackend('cuda', '/m/fake.unfold.swin', model, 'unfold', {
      instances: 1,
      loadEngine: loader({ 0: { precision: 'fp32', logitOffset: 0.05 } }),
    });
    const [a, b] = await Promise.all([selfTestDevices(fp16, data), selfTestDevices(fp32, data)]);
    await Promise.all([fp16.dispose(), fp32.dispose()]);
    assert.deepEqual([a.result.ok, a.result.tolerance, b.result.ok, b.result.tolerance], [true, 0.1, false, 1e-4]);
  });

  it('loadedPrecision: the engine first, then the plan name, then fp16 for an unnamed plan', () => {
    assert.equal(loadedPrecision('cuda', '/m/x.fp16.swin', 'fp32'), 'fp32');
    assert.equal(loadedPrecision('tensorrt', '/m/x.fold.fp32.plan', ''), 'fp32');
    assert.equal(loadedPrecision('tensorrt', '/m/x.fold.fp16.plan', ''), 'fp16');
    assert.equal(loadedPrecision('tensorrt', '/m/x.plan', ''), 'fp16');
    assert.equal(loadedPrecision('cuda', '/m/x.swin', ''), 'fp32');
  });
});

describe('several GPUs (fault engines as devices 0..2)', () => {
  const data = selftestData();

  it('every device is self-tested; one that fails is left out and reported, the others serve', async () => {
    const b = await createNativeBackend('cuda', '/m/fake.unfold.swin', model, 'unfold', {
      instances: 2,
      devices: [0, 1, 2],
      loadEngine: loader({ 0: {}, 1: { logitOffset: 3 }, 2: {} }),
    });
    assert.equal(b.perDevice?.length, 3);
    const { result, leftOut } = await selfTestDevices(b, data);
    assert.equal(result.ok, true);
    assert.deepEqual(leftOut, [
      { device: 'fault #1', reason: 'max abs diff 3.00e+0 to the reference exceeds 0.0001', failure: 'mismatch' },
    ]);
    assert.deepEqual(
      b.perDevice!.map((p) => p.device),
      ['fault #0', 'fault #2'],
    );
    assert.equal(b.device, 'fault #0, fault #2');
    await b.dispose();
  });

  it('a device whose engine does not load is left out and reported; all failing refuses the backend', async () => {
    const b = await createNativeBackend('cuda', '/m/fake.unfold.swin', model, 'unfold', {
      instances: 1,
      devices: [0, 1],
      loadEngine: loader({ 1: { fault: 'engine', faultOnLoad: true } }),
    });
    const { result, leftOut } = await selfTestDevices(b, data);
    assert.equal(result.ok, true);
    assert.deepEqual(leftOut, [{ device: 'GPU 1', reason: 'injected engine error', failure: 'load_error' }]);
    await b.dispose();

    const bad = await createNativeBackend('cuda', '/m/fake.unfold.swin', model, 'unfold', {
      instances: 1,
      devices: [0, 1],
      loadEngine: loader({ 0: { logitOffset: 1 }, 1: { logitOffset: 2 } }),
    });
    const all = await selfTestDevices(bad, data);
    assert.equal(all.result.ok, false);
    assert.equal(
      all.result.reason,
      'fault #0: max abs diff 1.00e+0 to the reference exceeds 0.0001; fault #1: max abs diff 2.00e+0 to the reference exceeds 0.0001',
    );
    await bad.dispose();
  });

  describe('through the model repository', () => {
    const root = mkdtempSync(join(tmpdir(), 'swin-devices-'));
    after(() => rmSync(root, { recursive: true, force: true }));

    function modelDir(): void {
      const cfg: ModelConfig = {
        ...model,
        batching: { ...model.batching, instances: 2, max_batch_size: 1, max_queue_delay_ms: 0, max_queue_size: 64 },
      };
      mkdirSync(join(root, cfg.name), { recursive: true });
      const d = selftestData();
      writeFileSync(join(root, cfg.name, 'model.json'), JSON.stringify(cfg));
      writeFileSync(join(root, cfg.name, 'selftest.u8'), d.images);
      writeFileSync(
        join(root, cfg.name, 'selftest.json'),
        JSON.stringify([Array.from(d.expected.subarray(0, CLASSES)), Array.from(d.expected.subarray(CLASSES))]),
      );
    }

    it('instances x devices batches in flight, at most `instances` on each GPU; /models lists the device left out', async () => {
      modelDir();
      // Engine calls wait here until the test opens the gate, so what is in flight can be counted.
      let inflight = 0;
      let peak = 0;
      const perEngine = new Map<string, { now: number; peak: number }>();
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const counting = (e: NativeEngine): NativeEngine => ({
        info: e.info,
        dispose: () => e.dispose(),
        inferImages: (images, jpeg, spec) => e.inferImages(images, jpeg, spec),
        infer: async (images, n) => {
          const c = perEngine.get(e.info.device) ?? { now: 0, peak: 0 };
          perEngine.set(e.info.device, c);
          inflight++;
          c.now++;
          peak = Math.max(peak, inflight);
          c.peak = Math.max(c.peak, c.now);
          try {
            if (inflight > 2 && !selftesting) await gate;
            return await e.infer(images, n);
          } finally {
            inflight--;
            c.now--;
          }
        },
      });
      let selftesting = true;
      const factory: BackendFactory = async (req) => {
        const load = loader({ 0: {}, 1: {}, 2: {}, 3: { logitOffset: 3 } });
        return createNativeBackend('cuda', '/m/fake.swin', req.config, req.variant, {
          ...req.opts,
          loadEngine: async (i, o) => counting(await load(i, o)),
        });
      };
      const config = loadConfig([], { MODELS_DIR: root, DEVICES: '0,1,2,3', VARIANT: 'unfold' });
      const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
      try {
        selftesting = false;
        perEngine.clear();
        peak = 0;
        const unfold = repo.status('fake').variants.find((v) => v.variant === 'unfold')!;
        assert.deepEqual(unfold.devices, [
          { device: 'fault #0', ready: true },
          { device: 'fault #1', ready: true },
          { device: 'fault #2', ready: true },
          { device: 'fault #3', ready: false, reason: 'max abs diff 3.00e+0 to the reference exceeds 0.0001' },
        ]);
        const pixels = new Uint8Array(IMAGE).fill(10);
        const requests = Array.from({ length: 12 }, () => repo.infer(repo.get('fake'), 'unfold', pixels, 1, {}));
        // Let the batcher dispatch everything it may, then release the engines.
        for (let i = 0; i < 100 && inflight < 6; i++) await new Promise((r) => setImmediate(r));
        const inflightBeforeRelease = inflight;
        open();
        const results = await Promise.all(requests);
        assert.equal(inflightBeforeRelease, 6, 'instances (2) x serving GPUs (3)');
        assert.equal(peak, 6);
        assert.deepEqual([...perEngine.keys()].sort(), ['fault #0', 'fault #1', 'fault #2'], 'the device left out gets no batch');
        for (const [dev, c] of perEngine) assert.equal(c.peak, 2, dev);
        assert.deepEqual(
          Array.from(results[0].logits),
          Array.from({ length: CLASSES }, (_, c) => 10 + c),
        );
      } finally {
        open();
        await repo.close();
      }
    });

    it('a GPU that starts answering NaN is left out at the re-test; the others come back in service', async () => {
      modelDir();
      const poisoned = new Set<string>();
      const factory: BackendFactory = async (req) => {
        const load = loader({ 0: {}, 1: {} });
        return createNativeBackend('cuda', '/m/fake.swin', req.config, req.variant, {
          ...req.opts,
          loadEngine: async (i, o) => {
            const e = await load(i, o);
            return {
              info: e.info,
              dispose: () => e.dispose(),
              inferImages: (images, jpeg, spec) => e.inferImages(images, jpeg, spec),
              infer: async (images, n) => {
                const out = await e.infer(images, n);
                if (poisoned.has(e.info.device)) out.fill(Number.NaN);
                return out;
              },
            };
          },
        });
      };
      // The repository's log line is the event the test waits for.
      let backInService!: () => void;
      let giveUp!: (e: Error) => void;
      const back = new Promise<void>((r, j) => {
        backInService = r;
        giveUp = j;
      });
      // The re-test timer is unref'd; this bound keeps the loop alive while waiting (cleared below).
      const bound = setTimeout(() => giveUp(new Error('no re-test passed within 20 s')), 20_000);
      const stream = {
        write: (line: string) => {
          if (line.includes('passed its self-test again and is back in service')) backInService();
        },
      };
      const config = loadConfig([], { MODELS_DIR: root, DEVICES: '0,1', VARIANT: 'unfold', SELFTEST_RETRY_MS: '20' });
      const repo = await ModelRepository.load({ config, logger: pino({ level: 'info' }, stream), createBackend: factory });
      try {
        const unfold = () => repo.status('fake').variants.find((v) => v.variant === 'unfold')!;
        assert.deepEqual(unfold().devices, [
          { device: 'fault #0', ready: true },
          { device: 'fault #1', ready: true },
        ]);
        poisoned.add('fault #1');
        const pixels = new Uint8Array(IMAGE).fill(10);
        const codes: string[] = [];
        for (let i = 0; i < 2; i++) {
          await repo.infer(repo.get('fake'), 'unfold', pixels, 1, {}).then(
            () => codes.push('ok'),
            (e: { code: string }) => codes.push(e.code),
          );
        }
        assert.deepEqual(codes, ['ok', 'SWIN_NON_FINITE_OUTPUT']);
        await back;
        assert.deepEqual(unfold(), {
          variant: 'unfold',
          backend: 'onnxruntime',
          ready: true,
          devices: [
            { device: 'fault #0', ready: true },
            { device: 'fault #1', ready: false, reason: '20 of 20 logits are not finite' },
          ],
        });
        const r = await repo.infer(repo.get('fake'), 'unfold', pixels, 1, {});
        assert.deepEqual(
          Array.from(r.logits),
          Array.from({ length: CLASSES }, (_, c) => 10 + c),
        );
        const r2 = await repo.infer(repo.get('fake'), 'unfold', pixels, 1, {});
        assert.ok(Array.from(r2.logits).every(Number.isFinite), 'no batch reaches the GPU left out');
      } finally {
        clearTimeout(bound);
        await repo.close();
      }
    });
  });
});
