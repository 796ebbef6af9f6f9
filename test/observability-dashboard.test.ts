// The Grafana dashboard and its provisioning, checked without Grafana (Debian
// ships no grafana package, so no Grafana server runs here). Every PromQL
// expression in it is evaluated against a real Prometheus in
// observability-prometheus.test.ts; this file pins the structure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { registry } from '../src/observability/metrics.js';

const DASHBOARD = 'deploy/grafana/dashboards/swin-serve.json';

interface Target {
  refId: string;
  expr?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: unknown;
  datasource?: { type: string; uid: string };
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
  schemaVersion: number;
}

const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const panels = dash.panels.filter((p) => p.type !== 'row');
const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));

/** Metric names the registry exposes, histograms with their _bucket/_sum/_count series. */
async function exposedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

/** Metric names used in a PromQL expression: identifiers followed by a selector or range. */
function metricNames(expr: string): string[] {
  const out = new Set<string>();
  // Functions and aggregations are followed by "(", never by "{" or "[".
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/g)) out.add(m[1]);
  return [...out];
}

test('the dashboard has a fixed uid, a title and a Prometheus datasource variable', () => {
  assert.equal(dash.uid, 'swin-serve-overview');
  assert.ok(dash.uid.length <= 40, 'Grafana uids are at most 40 characters');
  assert.equal(dash.title, 'swin-serve');
  const ds = dash.templating.list.find((v) => v.type === 'datasource');
  assert.ok(ds, 'a datasource template variable');
  assert.equal(ds.name, 'datasource');
  assert.equal(ds.query, 'prometheus');
});

test('every panel queries through the datasource variable and has targets with expressions', () => {
  assert.ok(panels.length >= 15, `expected the full dashboard, got ${panels.length} panels`);
  const ids = new Set<number>();
  for (const p of dash.panels) {
    assert.ok(!ids.has(p.id), `duplicate panel id ${p.id}`);
    ids.add(p.id);
  }
  for (const p of panels) {
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
    assert.ok(p.targets && p.targets.length > 0, `panel "${p.title}" has no targets`);
    const refIds = new Set<string>();
    for (const t of p.targets) {
      assert.ok(t.expr && t.expr.trim().length > 0, `panel "${p.title}" target ${t.refId} has no expr`);
      assert.ok(!refIds.has(t.refId), `panel "${p.title}" repeats refId ${t.refId}`);
      refIds.add(t.refId);
      assert.deepEqual(t.datasource, { type: 'prometheus', uid: '${datasource}' }, `${p.title} ${t.refId}`);
    }
  }
});

test('every metric a panel or variable queries is exposed by the registry in src/observability/metrics.ts', async () => {
  const exposed = await exposedNames();
  const varQueries = dash.templating.list.filter((v) => v.type === 'query').map((v) => (v.query as { query: string }).query);
  const used = new Set([...exprs, ...varQueries].flatMap(metricNames));
  assert.ok(used.size > 10);
  const missing = [...used].filter((n) => !exposed.has(n));
  assert.deepEqual(missing, [], `queried but not exposed: ${missing.join(', ')}`);
});

test('the panels cover throughput, every latency stage at p50/p90/p99, batching, queue, errors, readiness and GPU', () => {
  const all = exprs.join('\n');
  for (const m of [
    'swin_requests_total',
    'swin_images_total',
    'swin_batch_size_bucket',
    'swin_queue_depth',
    'swin_queue_capacity',
    'swin_inflight_batches',
    'swin_model_ready',
    'swin_selftest_failures_total',
    'swin_dropped_requests_total',
    'swin_backend_errors_total',
    'swin_gpu_memory_used_bytes',
    'swin_gpu_memory_total_bytes',
    'swin_gpu_utilization_ratio',
  ]) {
    assert.ok(all.includes(m), `no panel queries ${m}`);
  }
  for (const stage of [
    'swin_request_duration_seconds',
    'swin_queue_duration_seconds',
    'swin_preprocess_duration_seconds',
    'swin_inference_duration_seconds',
  ]) {
    for (const q of ['0.5', '0.9', '0.99']) {
      const re = new RegExp(`histogram_quantile\\(${q.replace('.', '\\.')},[^\\n]*${stage}_bucket`);
      assert.ok(
        exprs.some((e) => re.test(e)),
        `no p${Number(q) * 100} of ${stage}`,
      );
    }
  }
  assert.ok(
    exprs.some((e) => /by \(code\)/.test(e) && e.includes('code!="OK"')),
    'errors by code',
  );
  assert.ok(
    exprs.some((e) => /by \(model, variant, backend\)/.test(e) && e.includes('swin_model_ready')),
    'readiness per model/variant/backend',
  );
});

test('rate windows use $__rate_interval and selectors honour the job/instance variables', () => {
  for (const e of exprs) {
    for (const w of e.matchAll(/\[([^\]]+)\]/g)) assert.equal(w[1], '$__rate_interval', e);
    for (const sel of e.matchAll(/\{([^}]*)\}/g)) {
      assert.match(sel[1], /job=~"\$job"/, e);
      assert.match(sel[1], /instance=~"\$instance"/, e);
    }
  }
});

test('panels sit on the 24-column grid without overlapping', () => {
  const cells = new Set<string>();
  for (const p of dash.panels) {
    const g = p.gridPos;
    assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24, `${p.title} leaves the grid`);
    for (let y = g.y; y < g.y + g.h; y++) {
      for (let x = g.x; x < g.x + g.w; x++) {
        const k = `${x},${y}`;
        assert.ok(!cells.has(k), `"${p.title}" overlaps another panel at ${k}`);
        cells.add(k);
      }
    }
  }
});

test('provisioning loads this dashboard folder and a Prometheus datasource', () => {
  const ds = parseYaml(readFileSync('deploy/grafana/provisioning/datasources/prometheus.yml', 'utf8'));
  assert.equal(ds.apiVersion, 1);
  assert.equal(ds.datasources.length, 1);
  assert.equal(ds.datasources[0].type, 'prometheus');
  assert.equal(ds.datasources[0].url, 'http://prometheus:9090');
  const prov = parseYaml(readFileSync('deploy/grafana/provisioning/dashboards/swin-serve.yml', 'utf8'));
  assert.equal(prov.apiVersion, 1);
  assert.equal(prov.providers[0].type, 'file');
  const compose = parseYaml(readFileSync('deploy/docker-compose.yml', 'utf8'));
  const mounts: string[] = compose.services.grafana.volumes;
  assert.ok(
    mounts.includes(`./grafana/dashboards:${prov.providers[0].options.path}:ro`),
    `compose mounts the dashboards where the provider looks (${prov.providers[0].options.path})`,
  );
  assert.ok(mounts.includes('./grafana/provisioning:/etc/grafana/provisioning:ro'));
});
