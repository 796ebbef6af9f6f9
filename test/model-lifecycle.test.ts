// Versions and the repository extension through the real repository, service,
// HTTP app and gRPC server, with fake engines: version folders and the version
// policy, a version named on every protocol, index/load/unload over HTTP and
// gRPC, the model-control modes, a swap under load with no failed request,
// a failing new version that leaves the old one serving, and the GPU memory
// check before a second copy.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { ClassifierClient } from '../src/generated/swin/v1/Classifier.js';
import type { GRPCInferenceServiceClient } from '../src/generated/inference/GRPCInferenceService.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { registry } from '../src/observability/metrics.js';
import { IMAGE_BYTES, versionedRepo, type VersionedRepo } from './helpers/versioned-models.js';

type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;
function call<T>(fn: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res as T))));
}

function clients(r: VersionedRepo): { kserve: GRPCInferenceServiceClient; classifier: ClassifierClient; close(): void } {
  const protos = loadProtos();
  const target = `127.0.0.1:${r.grpc.port}`;
  const kserve = new protos.kserve.inference.GRPCInferenceService(target, grpc.credentials.createInsecure());
  const classifier = new protos.classifier.swin.v1.Classifier(target, grpc.credentials.createInsecure());
  return {
    kserve,
    classifier,
    close: () => {
      kserve.close();
      classifier.close();
    },
  };
}

/** A KServe REST inference of one uniform image of value 25 * cls (class cls); resolves to the reply. */
async function infer(r: VersionedRepo, model: string, version?: string, cls = 2) {
  const url = version ? `/v2/models/${model}/versions/${version}/infer` : `/v2/models/${model}/infer`;
  const data = new Array(IMAGE_BYTES).fill(25 * cls);
  return r.app.inject({ method: 'POST', url, payload: { inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, 8, 8, 3], data }] } });
}

function post(r: VersionedRepo, url: string, payload?: unknown) {
  return r.app.inject({ method: 'POST', url, ...(payload !== undefined && { payload: payload as object }) });
}

const png8 = async (v: number) => {
  const { default: sharp } = await import('sharp');
  return sharp({ create: { width: 8, height: 8, channels: 3, background: { r: v, g: v, b: v } } })
    .png()
    .toBuffer();
};

describe('version folders and the version policy', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('latest 2 of folders 1, 2, 3 serve; every protocol can name one; an unknown one is 404 / NOT_FOUND', async () => {
    r = await versionedRepo({ m: [1, 2, 3] }, {}, { version_policy: { latest: { num_versions: 2 } } });
    const c = clients(r);
    try {
      const model = (await r.app.inject({ url: '/models/m' })).json();
      assert.equal(model.version, '3');
      assert.deepEqual(model.versions, ['3', '2']);
      assert.deepEqual((await r.app.inject({ url: '/models/m?version=2' })).json().version, '2');
      assert.deepEqual((await r.app.inject({ url: '/v2/models/m' })).json().versions, ['3', '2']);

      // HTTP /classify: query and JSON field
      const png = await png8(50);
      const q = await r.app.inject({
        method: 'POST',
        url: '/classify?model=m&version=2',
        headers: { 'content-type': 'image/png' },
        payload: png,
      });
      assert.equal(q.statusCode, 200, q.body);
      assert.equal(q.json().version, '2');
      assert.equal(q.json().predictions[0][0].label, 'class2');
      const j = await r.app.inject({
        method: 'POST',
        url: '/classify',
        payload: { images: [png.toString('base64')], model: 'm', version: 2 },
      });
      assert.equal(j.json().version, '2');
      const d = await r.app.inject({ method: 'POST', url: '/classify?model=m', headers: { 'content-type': 'image/png' }, payload: png });
      assert.equal(d.json().version, '3');
      const missing = await r.app.inject({
        method: 'POST',
        url: '/classify?model=m&version=1',
        headers: { 'content-type': 'image/png' },
        payload: png,
      });
      assert.equal(missing.statusCode, 404);
      assert.deepEqual(missing.json(), {
        statusCode: 404,
        code: 'SWIN_MODEL_VERSION_NOT_FOUND',
        error: 'Not Found',
        message: 'Model m has no version "1"; available: 3, 2',
      });

      // KServe REST
      assert.equal((await infer(r, 'm', '2')).json().model_version, '2');
      assert.equal((await infer(r, 'm')).json().model_version, '3');
      const k404 = await infer(r, 'm', '1');
      assert.equal(k404.statusCode, 404);
      assert.equal(k404.headers['swin-code'], 'SWIN_MODEL_VERSION_NOT_FOUND');

      // gRPC: KServe model_version and our Predict's version field
      const raw = Buffer.alloc(IMAGE_BYTES, 50);
      const inferReq = (v: string) => ({
        model_name: 'm',
        model_version: v,
        inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, 8, 8, 3] }],
        raw_input_contents: [raw],
      });
      const res = await call<{ model_version: string }>((cb) => c.kserve.ModelInfer(inferReq('2'), cb));
      assert.equal(res.model_version, '2');
      const nf = await call((cb) => c.kserve.ModelInfer(inferReq('7'), cb)).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      assert.equal(nf?.code, grpc.status.NOT_FOUND);
      const meta = await call<{ versions: string[] }>((cb) => c.kserve.ModelMetadata({ name: 'm', version: '' }, cb));
      assert.deepEqual(meta.versions, ['3', '2']);
      const p = await call<{ version: string; predictions: { classes: { label: string }[] }[] }>((cb) =>
        c.classifier.Predict({ images: [png], model: 'm', version: '2' }, cb),
      );
      assert.equal(p.version, '2');
      assert.equal(p.predictions[0].classes[0].label, 'class2');
      const pnf = await call((cb) => c.classifier.Predict({ images: [png], model: 'm', version: '1' }, cb)).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      assert.equal(pnf?.code, grpc.status.NOT_FOUND);
    } finally {
      c.close();
    }
  });
});

describe('model control mode none (the default)', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('index answers; load and unload are refused with 403 / FAILED_PRECONDITION and change nothing', async () => {
    r = await versionedRepo({ m: [1] });
    const c = clients(r);
    try {
      const index = await post(r, '/v2/repository/index', {});
      assert.deepEqual(index.json(), [{ name: 'm', version: '1', state: 'READY', reason: '' }]);
      const load = await post(r, '/v2/repository/models/m/unload');
      assert.equal(load.statusCode, 403);
      assert.equal(load.headers['swin-code'], 'SWIN_MODEL_CONTROL_DISABLED');
      assert.match(load.json().error, /model control mode none/);
      const g = await call((cb) => c.kserve.RepositoryModelLoad({ model_name: 'm' }, cb)).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      assert.equal(g?.code, grpc.status.FAILED_PRECONDITION);
      assert.equal((await infer(r, 'm')).statusCode, 200);
    } finally {
      c.close();
    }
  });

  test('poll mode refuses them too (the folder decides)', async () => {
    const p = await versionedRepo({ m: [1] }, { MODEL_CONTROL_MODE: 'poll' });
    try {
      const res = await post(p, '/v2/repository/models/m/load');
      assert.equal(res.statusCode, 403);
      assert.match(res.json().error, /model control mode poll/);
    } finally {
      await p.close();
    }
  });
});

describe('explicit mode: index, load, unload over HTTP and gRPC', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('MODELS picks what loads at start; the others are listed UNAVAILABLE until loaded; unload drains and releases', async () => {
    r = await versionedRepo({ a: [1], b: [4] }, { MODEL_CONTROL_MODE: 'explicit', MODELS: 'a' });
    const c = clients(r);
    try {
      assert.deepEqual((await post(r, '/v2/repository/index')).json(), [
        { name: 'a', version: '1', state: 'READY', reason: '' },
        { name: 'b', version: '', state: 'UNAVAILABLE', reason: 'unloaded' },
      ]);
      assert.deepEqual((await post(r, '/v2/repository/index', { ready: true })).json(), [
        { name: 'a', version: '1', state: 'READY', reason: '' },
      ]);
      assert.equal((await infer(r, 'b')).statusCode, 404);

      const load = await post(r, '/v2/repository/models/b/load', {});
      assert.equal(load.statusCode, 200, load.body);
      assert.deepEqual(load.json(), {});
      assert.equal((await infer(r, 'b')).json().model_version, '4');

      // gRPC unload of a: its engines are released; requests for it are 404 now.
      const aEngines = r.engines.filter((e) => e.version === '1');
      await call((cb) => c.kserve.RepositoryModelUnload({ model_name: 'a' }, cb));
      assert.ok(aEngines.length > 0 && aEngines.every((e) => e.backend.disposed));
      const gauge = (await registry.getSingleMetric('swin_model_ready')!.get()).values.filter((v) => v.labels.model === 'a');
      assert.deepEqual(
        gauge.map((v) => v.value),
        [0, 0],
        'swin_model_ready of both variants of a',
      );
      assert.equal((await infer(r, 'a')).statusCode, 404);
      const idx = await call<{ models: unknown[] }>((cb) => c.kserve.RepositoryIndex({ ready: false }, cb));
      assert.deepEqual(idx.models, [
        { name: 'a', version: '', state: 'UNAVAILABLE', reason: 'unloaded' },
        { name: 'b', version: '4', state: 'READY', reason: '' },
      ]);
      await call((cb) => c.kserve.RepositoryModelLoad({ model_name: 'a' }, cb));
      assert.equal((await infer(r, 'a')).statusCode, 200);

      // Unknown model folder: 404 on both protocols; parameters are refused.
      const nf = await post(r, '/v2/repository/models/nope/load');
      assert.equal(nf.statusCode, 404);
      assert.equal(nf.headers['swin-code'], 'SWIN_MODEL_NOT_FOUND');
      const gnf = await call((cb) => c.kserve.RepositoryModelUnload({ model_name: 'nope' }, cb)).then(
        () => null,
        (e: grpc.ServiceError) => e,
      );
      assert.equal(gnf?.code, grpc.status.NOT_FOUND);
      const param = await post(r, '/v2/repository/models/a/load', { parameters: { config: '{}' } });
      assert.equal(param.statusCode, 400);
      assert.equal(param.headers['swin-code'], 'SWIN_UNKNOWN_FIELD');
    } finally {
      c.close();
    }
  });
});

describe('a model that fails its first load at run time', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('is refused with the reason and left out: the server stays ready, the index says why', async () => {
    const { writeVersionedModel } = await import('./helpers/versioned-models.js');
    r = await versionedRepo({ a: [1] }, { MODEL_CONTROL_MODE: 'explicit' });
    writeVersionedModel(r.root, 'c', [9]);
    r.modes['9'] = 'throw';
    let open!: () => void;
    r.gates['9'] = new Promise<void>((res) => (open = res));
    const pending = post(r, '/v2/repository/models/c/load');
    const states = async () =>
      ((await post(r, '/v2/repository/index')).json() as { name: string; state: string }[]).map((x) => [x.name, x.state]);
    for (let i = 0; i < 10_000 && (await states())[1][1] !== 'LOADING'; i++) await new Promise((res) => setImmediate(res));
    // While c loads for the first time: listed LOADING, not in GET /models, the server ready.
    assert.deepEqual(await states(), [
      ['a', 'READY'],
      ['c', 'LOADING'],
    ]);
    const models = await r.app.inject({ url: '/models' });
    assert.equal(models.statusCode, 200);
    assert.deepEqual(
      models.json().models.map((x: { name: string }) => x.name),
      ['a'],
    );
    assert.ok(r.service.isReady());
    open();
    const load = await pending;
    assert.equal(load.statusCode, 422);
    assert.match(load.json().error, /^Model c was not loaded: version 9: fold: onnxruntime failed its self-test/);
    assert.ok(r.service.isReady(), 'a failed load does not take the server out of rotation');
    assert.equal((await infer(r, 'c')).statusCode, 404);
    const rows = (await post(r, '/v2/repository/index')).json() as { name: string; state: string; reason: string }[];
    assert.deepEqual(
      rows.map((x) => [x.name, x.state]),
      [
        ['a', 'READY'],
        ['c', 'UNAVAILABLE'],
      ],
    );
    assert.match(rows[1].reason, /version 9: fold: onnxruntime failed its self-test/);
    assert.ok(r.engines.filter((e) => e.version === '9').every((e) => e.backend.disposed));
  });
});

describe('swaps', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('a new version under load: no request fails, traffic moves to it, the old copy drains and is released', async () => {
    r = await versionedRepo({ m: [1] }, { MODEL_CONTROL_MODE: 'explicit' });
    const statuses = new Map<number, number>();
    const versions = new Set<string>();
    let stop = false;
    let sent = 0;
    const png = await png8(50);
    // 6 clients back to back until told to stop: tensors (no await between resolving the copy and
    // queueing), and PNGs, decoded between the two, so a copy released too early fails them.
    const clientsDone = Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        while (!stop) {
          const res =
            i % 3 === 0
              ? await infer(r, 'm')
              : i % 3 === 1
                ? await r.app.inject({
                    method: 'POST',
                    url: '/v2/models/m/infer',
                    payload: { inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: [png.toString('base64')] }] },
                  })
                : await r.app.inject({ method: 'POST', url: '/classify?model=m', headers: { 'content-type': 'image/png' }, payload: png });
          sent++;
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode === 200) versions.add(res.json().model_version ?? res.json().version);
        }
      }),
    );
    while (sent < 20) await new Promise((res) => setImmediate(res));
    const old = r.engines.filter((e) => e.version === '1');
    r.addVersion('m', 2);
    const load = await post(r, '/v2/repository/models/m/load');
    assert.equal(load.statusCode, 200, load.body);
    const after = sent;
    while (sent < after + 20) await new Promise((res) => setImmediate(res));
    // The same version again: a reload of version 2 beside itself.
    const before2 = r.engines.filter((e) => e.version === '2');
    assert.equal((await post(r, '/v2/repository/models/m/load')).statusCode, 200);
    const again = sent;
    while (sent < again + 20) await new Promise((res) => setImmediate(res));
    stop = true;
    await clientsDone;

    assert.deepEqual([...statuses.keys()], [200], `statuses: ${JSON.stringify([...statuses])}`);
    assert.deepEqual([...versions].sort(), ['1', '2']);
    for (const e of [...old, ...before2]) {
      assert.ok(e.backend.disposed, `version ${e.version} engine released`);
      assert.equal(e.runsAfterDispose, 0);
    }
    assert.equal(r.engines.filter((e) => e.version === '2' && !e.backend.disposed).length, before2.length, 'one live copy of version 2');
    assert.equal((await infer(r, 'm')).json().model_version, '2');
    assert.deepEqual((await post(r, '/v2/repository/index')).json(), [{ name: 'm', version: '2', state: 'READY', reason: '' }]);
  });

  test('a new version that fails its self-test is refused with the reason; the old one keeps serving', async () => {
    r.addVersion('m', 3);
    r.modes['3'] = 'nan';
    const load = await post(r, '/v2/repository/models/m/load');
    assert.equal(load.statusCode, 422);
    assert.equal(load.headers['swin-code'], 'SWIN_MODEL_LOAD_FAILED');
    assert.match(
      load.json().error,
      /^Model m was not loaded: version 3: fold: onnxruntime failed its self-test: 1 of 20 logits are not finite; unfold: /,
    );
    assert.equal((await infer(r, 'm')).json().model_version, '2');
    assert.ok(r.service.isReady());
    const index = (await post(r, '/v2/repository/index')).json() as { version: string; state: string; reason: string }[];
    assert.deepEqual(
      index.map((x) => [x.version, x.state]),
      [
        ['2', 'READY'],
        ['3', 'UNAVAILABLE'],
      ],
    );
    assert.match(index[1].reason, /^last load failed: fold: onnxruntime failed its self-test/);
    assert.ok(
      r.engines.filter((e) => e.version === '3').every((e) => e.backend.disposed),
      'the failed copy released its engines',
    );
    assert.equal((await infer(r, 'm', '3')).statusCode, 404);
  });

  test('an engine that does not load at all: the same, and the load reply says why', async () => {
    r.modes['3'] = 'load';
    const load = await post(r, '/v2/repository/models/m/load');
    assert.equal(load.statusCode, 422);
    assert.match(load.json().error, /injected load failure of version 3/);
    assert.equal((await infer(r, 'm')).json().model_version, '2');
  });

  test('once it loads, version 3 serves; then poll: a new version folder loads, a removed model folder unloads', async () => {
    r.modes['3'] = 'ok';
    assert.equal((await post(r, '/v2/repository/models/m/load')).statusCode, 200);
    assert.equal((await infer(r, 'm')).json().model_version, '3');
    r.addVersion('m', 4);
    await r.repo.poll();
    assert.equal((await infer(r, 'm')).json().model_version, '4');
    rmSync(path.join(r.root, 'm'), { recursive: true });
    await r.repo.poll();
    assert.equal((await infer(r, 'm')).statusCode, 404);
    assert.deepEqual((await post(r, '/v2/repository/index')).json(), []);
  });
});

describe('draining', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('a copy a request holds (resolved, not yet queued: decoding) is released only after that request finished', async () => {
    r = await versionedRepo({ h: [1] }, { MODEL_CONTROL_MODE: 'explicit' });
    const held = r.repo.acquire('h');
    const old = r.engines.filter((e) => e.version === '1');
    r.addVersion('h', 2);
    let open!: () => void;
    r.gates['2'] = new Promise<void>((res) => (open = res));
    let loaded = false;
    const load = post(r, '/v2/repository/models/h/load').then((res) => {
      loaded = true;
      return res;
    });
    const index = async () =>
      ((await post(r, '/v2/repository/index')).json() as { version: string; state: string }[]).map((x) => [x.version, x.state]);
    for (let i = 0; i < 10_000 && (await index()).length < 2; i++) await new Promise((res) => setImmediate(res));
    assert.deepEqual(await index(), [
      ['1', 'READY'],
      ['2', 'LOADING'],
    ]);
    assert.deepEqual(
      (await r.app.inject({ url: '/models' })).json().models.map((x: { versions: string[] }) => x.versions),
      [['1']],
    );
    assert.equal((await infer(r, 'h')).json().model_version, '1', 'version 1 serves while 2 loads');
    open();
    // Requests move to version 2 as soon as it passed; the held copy waits.
    for (let i = 0; i < 10_000 && (await infer(r, 'h')).json().model_version !== '2'; i++) await new Promise((res) => setImmediate(res));
    assert.equal((await infer(r, 'h')).json().model_version, '2');
    assert.equal(loaded, false, 'the load waits for the drain');
    assert.ok(old.every((e) => !e.backend.disposed));
    assert.deepEqual(await index(), [
      ['2', 'READY'],
      ['1', 'UNLOADING'],
    ]);
    const out = await r.repo.infer(held, undefined, new Uint8Array(IMAGE_BYTES).fill(75), 1, {});
    assert.equal(out.logits.indexOf(Math.max(...out.logits)), 3);
    r.repo.release(held);
    assert.equal((await load).statusCode, 200);
    assert.ok(old.every((e) => e.backend.disposed && e.runsAfterDispose === 0));
  });
});

describe('poll mode timer', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('a version folder added while serving is picked up by the periodic rescan', async () => {
    r = await versionedRepo({ p: [1] }, { MODEL_CONTROL_MODE: 'poll', REPOSITORY_POLL_SECS: '1' });
    r.addVersion('p', 2);
    // Bounded wait for the rescan (every second); what is checked is the outcome, not the time.
    let version = '';
    for (let i = 0; i < 200 && version !== '2'; i++) {
      version = (await infer(r, 'p')).json().model_version;
      if (version !== '2') await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(version, '2');
    assert.ok(r.engines.filter((e) => e.version === '1').every((e) => e.backend.disposed));
  });
});

describe('GPU memory before a second copy', () => {
  let r: VersionedRepo;
  after(() => r?.close());

  test('a reload that would not fit in free GPU memory is refused; the loaded copy keeps serving', async () => {
    r = await versionedRepo({ g: [1] }, { MODEL_CONTROL_MODE: 'explicit' }, {}, 'cuda');
    r.gpus[0] = { index: 0, memoryFreeBytes: 100 * 2 ** 20 };
    r.addVersion('g', 2);
    const loads = r.engines.length;
    const load = await post(r, '/v2/repository/models/g/load');
    assert.equal(load.statusCode, 422);
    assert.match(load.json().error, /not enough free GPU memory for another copy: about 256 MiB needed .* GPU 0 has 100 MiB free/);
    assert.equal(r.engines.length, loads, 'no engine was created');
    assert.equal((await infer(r, 'g')).json().model_version, '1');
    r.gpus[0] = { index: 0, memoryFreeBytes: 4 * 2 ** 30 };
    assert.equal((await post(r, '/v2/repository/models/g/load')).statusCode, 200);
    assert.equal((await infer(r, 'g')).json().model_version, '2');
  });
});

describe('version_policy in model.json', () => {
  test('latest N, specific, all; a bad policy names the field', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const os = await import('node:os');
    const { readModelVersions } = await import('../src/models/model-versions.js');
    const { writeVersionedModel } = await import('./helpers/versioned-models.js');
    const root = mkdtempSync(path.join(os.tmpdir(), 'swin-policy-'));
    try {
      const versionsOf = async (policy: unknown) => {
        writeVersionedModel(root, 'p', [1, 2, 10], policy === undefined ? {} : { version_policy: policy as never });
        return (await readModelVersions(path.join(root, 'p'))).versions.map((v) => v.version);
      };
      assert.deepEqual(await versionsOf(undefined), ['10']);
      assert.deepEqual(await versionsOf({ latest: { num_versions: 2 } }), ['2', '10']);
      assert.deepEqual(await versionsOf({ specific: { versions: [1, 10] } }), ['1', '10']);
      assert.deepEqual(await versionsOf({ all: {} }), ['1', '2', '10']);
      writeVersionedModel(root, 'p', [1], { version_policy: { latest: { num_versions: 0 } } as never });
      await assert.rejects(readModelVersions(path.join(root, 'p')), /version_policy\.latest\.num_versions must be a positive integer/);
      writeVersionedModel(root, 'p', [1], { version_policy: { newest: {} } as never });
      await assert.rejects(readModelVersions(path.join(root, 'p')), /version_policy must have exactly one of latest, specific, all/);
      // A version folder's own model.json replaces the model-level one for that version.
      writeVersionedModel(root, 'q', [1, 2], { version_policy: { all: {} } });
      const own = JSON.parse(
        JSON.stringify({ ...(await readModelVersions(path.join(root, 'q'))).versions[1].config, description: 'v2 only' }),
      );
      writeFileSync(path.join(root, 'q', '2', 'model.json'), JSON.stringify(own));
      const q = (await readModelVersions(path.join(root, 'q'))).versions;
      assert.deepEqual(
        q.map((v) => [v.version, v.config.description ?? null]),
        [
          ['1', null],
          ['2', 'v2 only'],
        ],
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
