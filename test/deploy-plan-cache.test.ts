// The container entry points that manage TensorRT plans, run here without
// Docker or a GPU: deploy/docker/build-plans.sh (the trt-plans image) with the
// real engines/build_trt_plans.sh and stand-ins for nvidia-smi and trtexec,
// then deploy/docker/serve.sh (the gpu image) deciding where to serve from.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readModelConfig } from '../src/models/model-json.js';

const MODEL = 'swin-fmnist';
const IMAGE_MODELS = resolve('engines/models');
let work = '';
let cache = '';
let bin = '';

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: work,
    FAKE_GPU: 'NVIDIA H100 80GB HBM3',
    TRT_VERSION_FILE: join(work, 'TRT_VERSION'),
    TRT_PLAN_CACHE: cache,
    TRTEXEC: join(bin, 'trtexec'),
    TRTEXEC_CALLS: join(work, 'trtexec-calls'),
    ...extra,
  };
}

function buildPlans(extra: Record<string, string> = {}) {
  return spawnSync('bash', ['deploy/docker/build-plans.sh'], {
    encoding: 'utf8',
    env: env({ MODELS_DIR: IMAGE_MODELS, BUILD_TRT_PLANS: resolve('engines/build_trt_plans.sh'), ...extra }),
  });
}

function serve(extra: Record<string, string> = {}) {
  return spawnSync('bash', ['deploy/docker/serve.sh', '--port', '9'], {
    encoding: 'utf8',
    env: env({ IMAGE_MODELS_DIR: IMAGE_MODELS, SWIN_MAIN: join(work, 'main.mjs'), ...extra }),
  });
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'plan-cache-'));
  cache = join(work, 'cache');
  bin = join(work, 'bin');
  mkdirSync(bin);
  mkdirSync(cache);
  writeFileSync(join(work, 'TRT_VERSION'), '10.13.3\n');
  // nvidia-smi --query-gpu=name --format=csv,noheader
  writeFileSync(join(bin, 'nvidia-smi'), '#!/bin/sh\necho "$FAKE_GPU"\n');
  // trtexec: records its arguments, writes the engine file it is asked for
  writeFileSync(
    join(bin, 'trtexec'),
    [
      '#!/bin/sh',
      '[ "$1" = --help ] && exit 0',
      'echo "$@" >> "$TRTEXEC_CALLS"',
      'for a in "$@"; do case $a in --saveEngine=*) echo "plan for $FAKE_GPU" > "${a#--saveEngine=}";; esac; done',
    ].join('\n'),
  );
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
  chmodSync(join(bin, 'trtexec'), 0o755);
  // stands in for dist/src/main.js: says where it would serve from
  writeFileSync(
    join(work, 'main.mjs'),
    'console.log(JSON.stringify({ modelsDir: process.env.MODELS_DIR, argv: process.argv.slice(2) }));\n',
  );
});

after(() => rmSync(work, { recursive: true, force: true }));

const calls = () => (existsSync(join(work, 'trtexec-calls')) ? readFileSync(join(work, 'trtexec-calls'), 'utf8').trim().split('\n') : []);

test('build-plans.sh builds fp16 plans per variant into a model folder in the cache, and stamps it', async () => {
  const r = buildPlans();
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /swin-fmnist: building plans for NVIDIA H100 80GB HBM3 \/ TensorRT 10\.13\.3/);
  const dir = join(cache, 'models', MODEL);
  const c = calls();
  assert.equal(c.length, 2, c.join('\n')); // fold and unfold, fp16 only
  for (const v of ['fold', 'unfold']) {
    const call = c.find((l) => l.includes(`.${v}.onnx`))!;
    assert.ok(call, v);
    assert.match(call, /--fp16/);
    // built beside the live folder, then swapped in whole
    assert.ok(call.includes(`--saveEngine=${dir}.tmp/${MODEL}.${v}.fp16.plan`), call);
    assert.match(call, /--minShapes=image:1x256x256x3/);
    assert.equal(readFileSync(join(dir, `${MODEL}.${v}.fp16.plan`), 'utf8'), 'plan for NVIDIA H100 80GB HBM3\n');
  }
  // the image's files are links, model.json a copy that names the plans
  assert.ok(lstatSync(join(dir, `${MODEL}.fold.onnx`)).isSymbolicLink());
  assert.equal(readlinkSync(join(dir, `${MODEL}.fold.onnx`)), join(IMAGE_MODELS, MODEL, `${MODEL}.fold.onnx`));
  assert.ok(!lstatSync(join(dir, 'model.json')).isSymbolicLink());
  const cfg = await readModelConfig(dir); // the service's own model.json validation
  assert.equal(cfg.artifacts.fold?.tensorrt, `${MODEL}.fold.fp16.plan`);
  assert.equal(cfg.artifacts.unfold?.tensorrt, `${MODEL}.unfold.fp16.plan`);
  assert.equal(cfg.artifacts.fold?.onnxruntime, `${MODEL}.fold.onnx`);
  // the image's own model.json is untouched
  assert.equal((await readModelConfig(join(IMAGE_MODELS, MODEL))).artifacts.fold?.tensorrt, undefined);
  assert.match(readFileSync(join(dir, '.stamp'), 'utf8'), /^model\.json [0-9a-f]{64} tensorrt 10\.13\.3 gpu NVIDIA H100 80GB HBM3\n$/);
  assert.ok(!existsSync(`${dir}.tmp`));
});

test('a second run on the same GPU finds the plans current and builds nothing', () => {
  const before = calls().length;
  const r = buildPlans();
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /swin-fmnist: plans for NVIDIA H100 80GB HBM3 \/ TensorRT 10\.13\.3 are up to date/);
  assert.equal(calls().length, before);
});

test('serve.sh serves from the cache when its plans match this GPU and TensorRT', () => {
  const r = serve();
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { modelsDir: join(cache, 'models'), argv: ['--port', '9'] });
  assert.match(r.stderr, /TensorRT plans from/);
});

test('serve.sh serves the image models when the plans were built for another GPU or TensorRT, or are missing', () => {
  const cases: Record<string, string>[] = [{ FAKE_GPU: 'NVIDIA L4' }, { TRT_PLAN_CACHE: join(work, 'empty') }];
  for (const extra of cases) {
    const r = serve(extra);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).modelsDir, IMAGE_MODELS, JSON.stringify(extra));
  }
  writeFileSync(join(work, 'TRT_VERSION'), '10.14.1\n');
  try {
    const r = serve();
    assert.equal(JSON.parse(r.stdout).modelsDir, IMAGE_MODELS);
    assert.match(r.stderr, /no current TensorRT plans for swin-fmnist/);
  } finally {
    writeFileSync(join(work, 'TRT_VERSION'), '10.13.3\n');
  }
});

test('serve.sh leaves an operator-set MODELS_DIR alone', () => {
  const r = serve({ MODELS_DIR: '/models' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).modelsDir, '/models');
});

test('a new GPU rebuilds the plans in place', () => {
  const before = calls().length;
  const r = buildPlans({ FAKE_GPU: 'NVIDIA L4' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(calls().length, before + 2);
  const dir = join(cache, 'models', MODEL);
  assert.equal(readFileSync(join(dir, `${MODEL}.fold.fp16.plan`), 'utf8'), 'plan for NVIDIA L4\n');
  assert.match(readFileSync(join(dir, '.stamp'), 'utf8'), /gpu NVIDIA L4/);
  assert.equal(JSON.parse(serve({ FAKE_GPU: 'NVIDIA L4' }).stdout).modelsDir, join(cache, 'models'));
});

test('build-plans.sh refuses to run without a GPU', () => {
  const r = buildPlans({ FAKE_GPU: '' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /no GPU visible/);
});
