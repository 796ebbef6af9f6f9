// deploy/docker-compose.yml, checked without a Docker engine: docker-compose
// (Debian's 1.29 client; no `docker compose` v2 plugin is packaged for
// Debian 12) and compose-go (Compose v2's loader) validate and resolve it,
// then the structure is pinned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SETTINGS } from '../src/config.js';

const REQUIRE_TOOLS = process.env.SWIN_REQUIRE_TOOLS === '1' || process.env.CI === 'true';
const FILE = 'deploy/docker-compose.yml';

function compose(file: string, ...args: string[]) {
  return spawnSync('docker-compose', ['-f', file, ...args], {
    encoding: 'utf8',
    env: { ...process.env, COMPOSE_PROJECT_NAME: 'swin-serve' },
  });
}

function haveCompose(t: { skip: (m: string) => void }): boolean {
  if (spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0) return true;
  if (REQUIRE_TOOLS) assert.fail('docker-compose not found: apt-get install docker-compose (scripts/test.sh does)');
  t.skip('docker-compose not installed');
  return false;
}

const raw = parseYaml(readFileSync(FILE, 'utf8'), { merge: true }) as {
  services: Record<
    string,
    {
      profiles?: string[];
      image?: string;
      build?: { target: string };
      environment?: Record<string, string>;
      ports?: string[];
      depends_on?: Record<string, { condition: string }>;
      volumes?: string[];
      networks?: { default: { aliases: string[] } };
      stop_grace_period?: string;
      command?: string[];
      deploy?: { resources: { reservations: { devices: { driver: string; count: number; capabilities: string[] }[] } } };
    }
  >;
  volumes: Record<string, unknown>;
};
const svc = raw.services;

test('docker-compose config accepts the file for both profiles', (t) => {
  if (!haveCompose(t)) return;
  for (const profile of ['gpu', 'cpu']) {
    const r = compose(FILE, '--profile', profile, 'config', '--quiet');
    assert.equal(r.status, 0, `profile ${profile}:\n${r.stderr}`);
  }
  const resolved = parseYaml(compose(FILE, 'config').stdout);
  assert.deepEqual(Object.keys(resolved.services).sort(), ['grafana', 'prometheus', 'swin-serve', 'swin-serve-cpu', 'trt-plans']);
  // YAML anchors resolved: both serving services carry the shared settings
  for (const name of ['swin-serve', 'swin-serve-cpu']) {
    assert.equal(resolved.services[name].environment.DRAIN_TIMEOUT_MS, '30000', name);
    assert.equal(resolved.services[name].stop_grace_period, '45s', name);
  }
});

test('docker-compose config rejects a broken variant of the file (the check has teeth)', (t) => {
  if (!haveCompose(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'compose-'));
  try {
    const bad = join(dir, 'docker-compose.yml');
    writeFileSync(bad, readFileSync(FILE, 'utf8').replace('stop_grace_period: 45s', 'stop_grace_periods: 45s'));
    const r = compose(bad, 'config', '--quiet');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /stop_grace_periods/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// compose-go (the loader behind `docker compose` v2) through deploy/tools/compose-config:
// Go >= 1.24 and the Go module proxy are needed to build it (the CI machine's image has Go;
// scripts/test.sh installs Debian's golang-go where there is none). Without Go it is skipped
// outside CI and fails in CI (SWIN_REQUIRE_TOOLS).
test("compose-go, the loader of docker compose v2, accepts the file and selects each profile's services", { timeout: 300_000 }, (t) => {
  if (spawnSync('go', ['version']).status !== 0) {
    if (REQUIRE_TOOLS)
      assert.fail('go not found: the Compose v2 loader check needs Go >= 1.24 (scripts/test.sh installs golang-go where none is present)');
    return t.skip('go not installed: the Compose v2 loader check needs it');
  }
  const dir = mkdtempSync(join(tmpdir(), 'compose-go-'));
  try {
    const bin = join(dir, 'compose-config');
    const b = spawnSync('go', ['build', '-o', bin, '.'], { cwd: 'deploy/tools/compose-config', encoding: 'utf8' });
    assert.equal(b.status, 0, b.stderr);
    const want: Record<string, string[]> = {
      gpu: ['grafana', 'prometheus', 'swin-serve', 'trt-plans'],
      cpu: ['grafana', 'prometheus', 'swin-serve-cpu'],
    };
    for (const [profile, services] of Object.entries(want)) {
      const r = spawnSync(bin, [profile, FILE], { encoding: 'utf8', env: { ...process.env, COMPOSE_PROJECT_NAME: '' } });
      assert.equal(r.status, 0, `${profile}: ${r.stderr}`);
      const project = parseYaml(r.stdout);
      assert.equal(project.name, 'deploy', 'the project is named after the folder, as docs/deploy.md says');
      assert.deepEqual(Object.keys(project.services).sort(), services, profile);
    }
    const bad = join(dir, 'docker-compose.yml');
    writeFileSync(bad, readFileSync(FILE, 'utf8').replace('capabilities: [gpu]', 'capabilities: gpu'));
    const r = spawnSync(bin, ['gpu', bad], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /capabilities/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the gpu profile reserves an NVIDIA GPU for the service and the plan builder; the cpu profile needs none', () => {
  for (const name of ['swin-serve', 'trt-plans']) {
    assert.deepEqual(svc[name].profiles, ['gpu'], name);
    const dev = svc[name].deploy?.resources.reservations.devices[0];
    assert.deepEqual(dev, { driver: 'nvidia', count: 1, capabilities: ['gpu'] }, name);
  }
  assert.deepEqual(svc['swin-serve-cpu'].profiles, ['cpu']);
  assert.equal(svc['swin-serve-cpu'].deploy, undefined);
  assert.equal(svc['swin-serve'].build?.target, 'gpu');
  assert.equal(svc['swin-serve-cpu'].build?.target, 'cpu');
  assert.equal(svc['trt-plans'].build?.target, 'trt-plans');
  assert.equal(svc['swin-serve-cpu'].environment?.BACKEND, 'onnxruntime');
  // plans: written by trt-plans, read-only for the service, one named volume
  assert.ok(svc['trt-plans'].volumes?.includes('trt-plans:/var/cache/swin-serve/trt'));
  assert.ok(svc['swin-serve'].volumes?.includes('trt-plans:/var/cache/swin-serve/trt:ro'));
  assert.ok('trt-plans' in raw.volumes);
  // the server starts only after trt-plans has finished (it reads the plan stamps once, at start)
  assert.deepEqual(svc['swin-serve'].depends_on, { 'trt-plans': { condition: 'service_completed_successfully' } });
  // Prometheus and Grafana belong to no profile: they come up with either
  assert.equal(svc.prometheus.profiles, undefined);
  assert.equal(svc.grafana.profiles, undefined);
});

test('Prometheus scrapes the service by the alias both profiles share, on the configured HTTP port', () => {
  const port = SETTINGS.find((s) => s.env === 'PORT')!.def;
  for (const name of ['swin-serve', 'swin-serve-cpu']) {
    assert.ok(svc[name].networks?.default.aliases.includes('swin-serve'), name);
    assert.equal(svc[name].environment?.PORT, port, name);
    assert.ok(svc[name].ports?.includes(`${port}:${port}`), name);
  }
  const prom = parseYaml(readFileSync('deploy/prometheus/prometheus.yml', 'utf8'));
  const job = prom.scrape_configs.find((j: { job_name: string }) => j.job_name === 'swin-serve');
  assert.deepEqual(job.static_configs[0].targets, [`swin-serve:${port}`]);
  assert.equal(job.metrics_path, '/metrics');
  assert.deepEqual(prom.rule_files, ['alerts.yml']);
});

test('every file the stack mounts exists, and mounts land where the configs expect them', () => {
  for (const [name, s] of Object.entries(svc)) {
    for (const v of s.volumes ?? []) {
      const src = v.split(':')[0];
      if (!src.startsWith('.')) continue; // named volume
      assert.ok(existsSync(join('deploy', src)), `${name} mounts missing ${src}`);
    }
  }
  assert.ok(svc.prometheus.volumes?.includes('./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro'));
  assert.ok(svc.prometheus.volumes?.includes('./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro'));
  assert.ok(svc.prometheus.command?.includes('--config.file=/etc/prometheus/prometheus.yml'));
  for (const s of Object.values(svc)) if (s.image) assert.doesNotMatch(s.image, /:latest$|^[^:]+$/, `${s.image} is not pinned`);
});

test('stop_grace_period outlasts the drain timeout', () => {
  const drainMs = Number(svc['swin-serve'].environment?.DRAIN_TIMEOUT_MS);
  assert.equal(String(drainMs), SETTINGS.find((s) => s.env === 'DRAIN_TIMEOUT_MS')!.def);
  for (const name of ['swin-serve', 'swin-serve-cpu']) {
    const grace = Number(/^(\d+)s$/.exec(svc[name].stop_grace_period ?? '')![1]);
    assert.ok(grace * 1000 > drainMs, `${name}: ${grace}s <= ${drainMs} ms`);
  }
});
