// deploy/k8s/, checked without a cluster: every manifest against the
// Kubernetes API's JSON schemas (kubernetes-validate, schemas bundled in the
// PyPI package, strict: unknown fields are errors), then the wiring between
// the pieces: probes, ports, selectors, drain timing, HPA <-> adapter rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { SETTINGS } from '../src/config.js';
import { registry } from '../src/observability/metrics.js';

const REQUIRE_TOOLS = process.env.SWIN_REQUIRE_TOOLS === '1' || process.env.CI === 'true';
const DIR = 'deploy/k8s';
const KV = existsSync('.venv/bin/kubernetes-validate') ? '.venv/bin/kubernetes-validate' : 'kubernetes-validate';
// Oldest Kubernetes the manifests claim to work with (deploy/k8s/README.md) and the newest schemas bundled.
const K8S_VERSIONS = ['1.30.0', '1.37.0'];

const manifestFiles = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .sort();
type Obj = any; // parsed YAML, navigated by the assertions themselves
const objects: Obj[] = manifestFiles.flatMap((f) =>
  parseAllDocuments(readFileSync(join(DIR, f), 'utf8'))
    .map((d) => d.toJS())
    .filter((o) => o),
);
const find = (kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name}`);
  return o;
};

function validate(files: string[], version: string) {
  return spawnSync(KV, ['--strict', '--no-warn', '-k', version, ...files], { encoding: 'utf8' });
}

function haveValidator(t: { skip: (m: string) => void }): boolean {
  if (spawnSync(KV, ['--version']).status === 0) return true;
  if (REQUIRE_TOOLS) assert.fail('kubernetes-validate not found: scripts/test.sh installs it into .venv');
  t.skip('kubernetes-validate not installed');
  return false;
}

test('every manifest validates strictly against the Kubernetes API schemas', (t) => {
  if (!haveValidator(t)) return;
  assert.deepEqual(manifestFiles, ['deployment.yaml', 'hpa.yaml', 'namespace.yaml', 'pdb.yaml', 'service.yaml']);
  for (const v of K8S_VERSIONS) {
    const r = validate(
      manifestFiles.map((f) => join(DIR, f)),
      v,
    );
    assert.equal(r.status, 0, `Kubernetes ${v}:\n${r.stdout}${r.stderr}`);
    assert.equal((r.stdout.match(/passed for resource/g) ?? []).length, objects.length, r.stdout);
  }
});

test('the validator rejects a misspelt field and a wrong type (the check has teeth)', (t) => {
  if (!haveValidator(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'k8s-'));
  try {
    const dep = readFileSync(join(DIR, 'deployment.yaml'), 'utf8');
    writeFileSync(join(dir, 'a.yaml'), dep.replace('terminationGracePeriodSeconds:', 'terminationGracePeriodSecond:'));
    writeFileSync(join(dir, 'b.yaml'), dep.replace('replicas: 2', 'replicas: two'));
    for (const f of ['a.yaml', 'b.yaml']) {
      const r = validate([join(dir, f)], K8S_VERSIONS[0]);
      assert.notEqual(r.status, 0, f);
      assert.match(r.stdout + r.stderr, /did not validate/, f);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kustomization lists every manifest', () => {
  const k = parseYaml(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'));
  assert.deepEqual([...k.resources].sort(), manifestFiles);
  const images = k.images.map((i: { name: string }) => i.name).sort();
  const used = new Set(
    objects
      .filter((o) => o.kind === 'Deployment')
      .flatMap((o) => [...o.spec.template.spec.containers, ...(o.spec.template.spec.initContainers ?? [])])
      .map((c: { image: string }) => c.image.split(':')[0]),
  );
  assert.deepEqual(images, [...used].sort());
});

test('kubectl kustomize renders the set into the swin-serve namespace', (t) => {
  // Renders offline. scripts/test.sh installs Debian's kubernetes-client (kubectl 1.20, kustomize
  // built in) where no kubectl is on PATH.
  if (spawnSync('kubectl', ['version', '--client']).status !== 0) {
    if (REQUIRE_TOOLS) assert.fail('kubectl not found: apt-get install kubernetes-client (scripts/test.sh does)');
    return t.skip('kubectl not installed');
  }
  const r = spawnSync('kubectl', ['kustomize', DIR], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const rendered = parseAllDocuments(r.stdout).map((d) => d.toJS());
  assert.equal(rendered.length, objects.length);
  for (const o of rendered) {
    if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'swin-serve', `${o.kind}/${o.metadata.name}`);
  }
});

test('the pod asks for a GPU, probes our health endpoints and outlives its drain', () => {
  const dep = find('Deployment', 'swin-serve');
  const pod = dep.spec.template.spec;
  const c = pod.containers.find((x: Obj) => x.name === 'swin-serve');
  assert.equal(c.resources.limits['nvidia.com/gpu'], 1);
  assert.equal(c.readinessProbe.httpGet.path, '/health/ready');
  assert.equal(c.livenessProbe.httpGet.path, '/health/live');
  assert.equal(c.startupProbe.httpGet.path, '/health/live');
  for (const p of [c.readinessProbe, c.livenessProbe, c.startupProbe]) assert.equal(p.httpGet.port, 'http');
  const env = Object.fromEntries(c.env.map((e: { name: string; value: string }) => [e.name, e.value]));
  const ports = Object.fromEntries(c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
  assert.equal(String(ports.http), env.PORT);
  assert.equal(String(ports.grpc), env.GRPC_PORT);
  assert.equal(env.PORT, SETTINGS.find((s) => s.env === 'PORT')!.def);
  assert.equal(env.GRPC_PORT, SETTINGS.find((s) => s.env === 'GRPC_PORT')!.def);
  // grace > preStop + drain
  const drainS = Number(env.DRAIN_TIMEOUT_MS) / 1000;
  const preStop: string[] = c.lifecycle.preStop.exec.command;
  assert.equal(preStop[0], 'sleep');
  const sleepS = Number(preStop[1]);
  assert.ok(
    pod.terminationGracePeriodSeconds > sleepS + drainS,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= preStop ${sleepS} + drain ${drainS}`,
  );
  // zero-downtime rollout and a non-root pod
  assert.equal(dep.spec.strategy.rollingUpdate.maxUnavailable, 0);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.runAsUser, 10001);
  // the plan builder shares the plan cache with the server
  const init = pod.initContainers.find((x: Obj) => x.name === 'trt-plans');
  assert.equal(init.volumeMounts[0].mountPath, c.volumeMounts.find((m: Obj) => m.name === 'trt-plans').mountPath);
});

test('Services select the pods and target their named ports; gRPC is marked as HTTP/2 for L7 balancers', () => {
  const labels = find('Deployment', 'swin-serve').spec.template.metadata.labels;
  const services = objects.filter((o) => o.kind === 'Service');
  assert.deepEqual(services.map((s) => s.metadata.name).sort(), ['swin-serve-grpc', 'swin-serve-grpc-headless', 'swin-serve-http']);
  for (const s of services) {
    for (const [k, v] of Object.entries(s.spec.selector)) assert.equal(labels[k], v, `${s.metadata.name} selector ${k}`);
  }
  assert.equal(find('Service', 'swin-serve-http').spec.ports[0].targetPort, 'http');
  for (const name of ['swin-serve-grpc', 'swin-serve-grpc-headless']) {
    const p = find('Service', name).spec.ports[0];
    assert.equal(p.targetPort, 'grpc');
    assert.equal(p.appProtocol, 'kubernetes.io/h2c');
  }
  assert.equal(find('Service', 'swin-serve-grpc-headless').spec.clusterIP, 'None');
  const pdb = find('PodDisruptionBudget', 'swin-serve');
  for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(labels[k], v);
});

test('the HPA scales the Deployment on metrics the Prometheus adapter rules define from real swin_* series', async () => {
  const hpa = find('HorizontalPodAutoscaler', 'swin-serve');
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'swin-serve' });
  assert.ok(hpa.spec.minReplicas >= 2, 'at least two replicas, so the PDB never blocks a drain forever');
  const adapter = parseYaml(readFileSync(join(DIR, 'prometheus-adapter/values.yaml'), 'utf8'));
  const rules: Obj[] = adapter.rules.custom;
  const defined = new Set(rules.map((r) => r.name.as));
  const wanted: string[] = hpa.spec.metrics.map((m: Obj) => m.pods.metric.name);
  assert.ok(wanted.includes('swin_queue_depth'));
  for (const m of hpa.spec.metrics) assert.equal(m.type, 'Pods');
  for (const w of wanted) assert.ok(defined.has(w), `HPA metric ${w} has no adapter rule`);
  const exposed = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    exposed.add(m.name);
    if (String(m.type) === 'histogram') exposed.add(`${m.name}_bucket`);
  }
  for (const r of rules) {
    const series = /^(\w+)\{/.exec(r.seriesQuery)![1];
    assert.ok(exposed.has(series), `adapter rule reads ${series}, which src/observability/metrics.ts does not expose`);
    assert.match(r.seriesQuery, /namespace!="",pod!=""/);
    assert.deepEqual(r.resources.overrides, { namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
    for (const tpl of ['<<.Series>>', '<<.LabelMatchers>>', '<<.GroupBy>>']) assert.ok(r.metricsQuery.includes(tpl), tpl);
  }
});

test('the in-cluster scrape job gives series the namespace and pod labels the adapter needs', () => {
  const cfg = parseYaml(readFileSync(join(DIR, 'prometheus/scrape-config.yml'), 'utf8'));
  const job = cfg.scrape_configs[0];
  assert.equal(job.job_name, 'swin-serve'); // the alerts select job="swin-serve"
  assert.equal(job.kubernetes_sd_configs[0].role, 'pod');
  const targets = job.relabel_configs.map((r: Obj) => r.target_label).filter(Boolean);
  for (const l of ['namespace', 'pod', '__metrics_path__']) assert.ok(targets.includes(l), l);
  const ann = find('Deployment', 'swin-serve').spec.template.metadata.annotations;
  assert.equal(ann['prometheus.io/scrape'], 'true');
  assert.equal(ann['prometheus.io/path'], '/metrics');
  assert.deepEqual(job.kubernetes_sd_configs[0].namespaces.names, [
    parseYaml(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')).namespace,
  ]);
});

test('README explains scaling out and names an L7 balancer for gRPC', () => {
  const readme = readFileSync(join(DIR, 'README.md'), 'utf8');
  assert.match(readme, /## Scaling out/);
  assert.match(readme, /L7/);
  assert.match(readme, /Linkerd|Envoy|Istio/);
  assert.match(readme, /HTTP\/2/);
});
