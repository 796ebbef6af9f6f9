// Engine faults, through the real model repository and inference service with
// a fault-injecting engine (the repository's createBackend seam): an engine
// that throws or returns NaN/Inf fails the affected requests with a 5xx and a
// metric (never scores), is taken out of service, the other variant takes
// over, and it comes back after passing its self-test again, without a
// restart. An engine that fails to load leaves the service up, not ready.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import sharp from 'sharp';
import type { Backend, Variant } from '../src/backends/backend.js';
import type { BackendFactory } from '../src/backends/backend-factory.js';
import { loadConfig } from '../src/config.js';
import { ServeError } from '../src/errors.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { registry } from '../src/observability/metrics.js';
import { ModelRepository } from '../src/models/model-repository.js';
import { FakeBackend } from './helpers/fake-backend.js';
import { writeFakeModelDir, type ModelDir } from './helpers/reliability-model-dir.js';

type Fault = 'ok' | 'throw' | 'nan' | 'inf' | 'load';

/** Wraps the FakeBackend; `faults[variant]` switches its behaviour at any time. */
class FaultyBackend implements Backend {
  readonly kind = 'onnxruntime' as const;
  readonly device = 'fault-injector';
  readonly maxBatchSize: number;
  runs = 0;
  constructor(
    readonly variant: Variant,
    private readonly inner: FakeBackend,
    private readonly faults: Record<Variant, Fault>,
  ) {
    this.maxBatchSize = inner.maxBatchSize;
  }
  async run(images: Uint8Array, n: number): Promise<Float32Array> {
    this.runs++;
    const f = this.faults[this.variant];
    if (f === 'throw') throw new Error('injected engine fault\n    at secretFunction (/opt/engine/internal.cc:42)');
    const out = await this.inner.run(images, n);
    if (f === 'nan') out[out.length - 1] = Number.NaN;
    if (f === 'inf') out[0] = Number.POSITIVE_INFINITY;
    return out;
  }
  async dispose(): Promise<void> {}
}

interface Harness {
  service: CoreInferenceService;
  repo: ModelRepository;
  faults: Record<Variant, Fault>;
  loads: Record<Variant, number>;
}

async function harness(dir: ModelDir, faults: Record<Variant, Fault>, env: Record<string, string> = {}): Promise<Harness> {
  const loads: Record<Variant, number> = { fold: 0, unfold: 0 };
  const factory: BackendFactory = async (req) => {
    loads[req.variant]++;
    if (faults[req.variant] === 'load') throw new Error('injected load failure: engine file unreadable');
    return new FaultyBackend(req.variant, new FakeBackend({ variant: req.variant, imageBytes: dir.imageBytes }), faults);
  };
  const config = loadConfig([], { MODELS_DIR: dir.root, SELFTEST_RETRY_MS: '50', ...env });
  const repo = await ModelRepository.load({ config, logger: pino({ level: 'silent' }), createBackend: factory });
  return { service: new CoreInferenceService(repo, config), repo, faults, loads };
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val));
  return Number(v?.value ?? 0);
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

let grey: Buffer;
let dir: ModelDir;
before(async () => {
  grey = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 50, g: 50, b: 50 } } })
    .png()
    .toBuffer();
  dir = writeFakeModelDir();
});
after(() => dir.remove());

const classify = (h: Harness) => h.service.classify(undefined, [grey], { api: 'test' });

function assertServeError(code: string, status: number) {
  return (e: unknown) => {
    assert.ok(e instanceof ServeError, `not a ServeError: ${e}`);
    assert.equal(e.code, code);
    assert.equal(e.httpStatus, status);
    assert.ok(!/\n\s+at /.test(e.message), 'no stack trace in the message');
    return true;
  };
}

describe('runtime faults', () => {
  for (const fault of ['nan', 'inf'] as const) {
    test(`${fault} logits: 500 SWIN_NON_FINITE_OUTPUT for the whole batch, the other variant takes over, recovery`, async () => {
      const h = await harness(dir, { fold: 'ok', unfold: 'ok' });
      try {
        assert.equal((await classify(h)).variant, 'fold');
        const before = await metric('swin_backend_errors_total', { model: 'fake', variant: 'fold', reason: 'non_finite' });
        h.faults.fold = fault;
        // Four concurrent requests land in one batch (max delay 2 ms): all of them fail, none gets scores.
        const results = await Promise.allSettled([classify(h), classify(h), classify(h), classify(h)]);
        const failed = results.filter((r) => r.status === 'rejected');
        assert.ok(failed.length >= 1);
        for (const r of failed) assertServeError('SWIN_NON_FINITE_OUTPUT', 500)((r as PromiseRejectedResult).reason);
        for (const r of results) {
          if (r.status === 'fulfilled') {
            assert.equal(r.value.variant, 'unfold', 'only requests re-routed to the healthy variant may succeed');
            for (const p of r.value.predictions.flat()) assert.ok(Number.isFinite(p.score));
          }
        }
        assert.ok((await metric('swin_backend_errors_total', { model: 'fake', variant: 'fold', reason: 'non_finite' })) > before);
        assert.equal(await metric('swin_model_ready', { model: 'fake', variant: 'fold' }), 0);
        const st = h.service.getModel('fake');
        assert.equal(st.active_variant, 'unfold');
        assert.match(st.variants.find((v) => v.variant === 'fold')!.reason!, /taken out of service/);
        assert.equal(h.service.isReady(), true, 'the model still serves through unfold');
        const r = await classify(h);
        assert.equal(r.variant, 'unfold');
        // The engine heals: the periodic self-test brings fold back without a restart.
        h.faults.fold = 'ok';
        await until(() => h.service.getModel('fake').active_variant === 'fold');
        assert.equal(await metric('swin_model_ready', { model: 'fake', variant: 'fold' }), 1);
        assert.equal((await classify(h)).variant, 'fold');
      } finally {
        await h.service.close();
      }
    });
  }

  test('engine throws, single variant: 500 SWIN_INFERENCE_FAILED, then 503 not ready, recovery without restart', async () => {
    const h = await harness(dir, { fold: 'ok', unfold: 'ok' }, { VARIANT: 'fold' });
    // Make unfold unavailable too, so nothing can take over.
    h.faults.unfold = 'throw';
    try {
      await classify(h);
      h.faults.fold = 'throw';
      await assert.rejects(classify(h), (e) => {
        assertServeError('SWIN_INFERENCE_FAILED', 500)(e);
        assert.doesNotMatch((e as Error).message, /secretFunction|internal\.cc/, 'engine stack frames stay out of replies');
        return true;
      });
      // unfold is tried (and taken out) only if something routes to it; force it now.
      await assert.rejects(h.service.classify(undefined, [grey], { variant: 'unfold' }), assertServeError('SWIN_INFERENCE_FAILED', 500));
      await assert.rejects(classify(h), assertServeError('SWIN_MODEL_NOT_READY', 503));
      assert.equal(h.service.isReady(), false);
      assert.ok((await metric('swin_selftest_failures_total', { model: 'fake', variant: 'fold', reason: 'runtime_error' })) >= 1);
      h.faults.fold = 'ok';
      h.faults.unfold = 'ok';
      await until(() => h.service.isReady());
      assert.equal((await classify(h)).variant, 'fold');
    } finally {
      await h.service.close();
    }
  });
});

describe('load-time faults', () => {
  test('one variant fails to load: the other serves, the failed one is not ready with a reason', async () => {
    const h = await harness(dir, { fold: 'load', unfold: 'ok' }, { SELFTEST_RETRY_MS: '3600000' });
    try {
      const st = h.service.getModel('fake');
      assert.equal(st.active_variant, 'unfold');
      assert.match(st.variants.find((v) => v.variant === 'fold')!.reason!, /failed to load/);
      assert.equal((await classify(h)).variant, 'unfold');
      assert.ok((await metric('swin_selftest_failures_total', { model: 'fake', variant: 'fold', reason: 'load_error' })) >= 1);
    } finally {
      await h.service.close();
    }
  });

  test('every variant fails to load: the service is up and not ready, and becomes ready when the engine loads', async () => {
    const h = await harness(dir, { fold: 'load', unfold: 'load' });
    try {
      assert.equal(h.service.isReady(), false);
      assert.equal(h.service.getModel('fake').ready, false);
      await assert.rejects(classify(h), assertServeError('SWIN_MODEL_NOT_READY', 503));
      h.faults.fold = 'ok';
      await until(() => h.service.isReady());
      assert.ok(h.loads.fold >= 2, 'loaded again, not restarted');
      assert.equal((await classify(h)).variant, 'fold');
    } finally {
      await h.service.close();
    }
  });

  test('an engine that loads but fails its self-test (NaN) is refused at startup', async () => {
    const h = await harness(dir, { fold: 'nan', unfold: 'ok' }, { SELFTEST_RETRY_MS: '3600000' });
    try {
      const st = h.service.getModel('fake');
      assert.equal(st.active_variant, 'unfold');
      assert.match(st.variants.find((v) => v.variant === 'fold')!.reason!, /self-test/);
    } finally {
      await h.service.close();
    }
  });
});
