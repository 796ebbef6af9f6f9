// The metrics registry, the GPU gauges, the alert rules (promtool) and
// docs/metrics.md against each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ERRORS } from '../src/errors.js';
import { normaliseGpuInfo, registry, setGpuInfoSource } from '../src/observability/metrics.js';

const REQUIRE_TOOLS = process.env.SWIN_REQUIRE_TOOLS === '1' || process.env.CI === 'true';

function hasPromtool(): boolean {
  const found = spawnSync('promtool', ['--version']).status === 0;
  if (!found && REQUIRE_TOOLS) assert.fail('promtool not found: apt-get install prometheus (scripts/test.sh does)');
  return found;
}

/** Runs promtool; returns its output, failing the test with it on a non-zero exit. */
function promtool(...args: string[]): string {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${out}`);
  return out;
}

async function gpuLines(): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((l) => l.startsWith('swin_gpu_'));
}

// First, before any test replaces the source: on this host there is either no
// native backend module or no GPU behind it, and a scrape must still succeed.
test('without a native addon or GPU the GPU gauges have no series and scrapes still work', async () => {
  assert.deepEqual(await gpuLines(), []);
  const text = await registry.metrics();
  assert.match(text, /# TYPE swin_gpu_memory_used_bytes gauge/);
});

test('GPU gauges report what the GPU source returns, per GPU, at scrape time', async () => {
  let used = 5e9;
  setGpuInfoSource(() => [
    { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryUsedBytes: used, memoryTotalBytes: 85e9, utilization: 0.75 },
    { index: 1, name: 'NVIDIA H100 80GB HBM3', memoryUsedBytes: 1e9, memoryTotalBytes: 85e9, utilization: null },
  ]);
  try {
    assert.deepEqual((await gpuLines()).sort(), [
      'swin_gpu_memory_total_bytes{gpu="0",name="NVIDIA H100 80GB HBM3"} 85000000000',
      'swin_gpu_memory_total_bytes{gpu="1",name="NVIDIA H100 80GB HBM3"} 85000000000',
      'swin_gpu_memory_used_bytes{gpu="0",name="NVIDIA H100 80GB HBM3"} 5000000000',
      'swin_gpu_memory_used_bytes{gpu="1",name="NVIDIA H100 80GB HBM3"} 1000000000',
      'swin_gpu_utilization_ratio{gpu="0",name="NVIDIA H100 80GB HBM3"} 0.75',
    ]);
    used = 7e9;
    await new Promise((r) => setTimeout(r, 1100)); // one sample serves a scrape's three gauges for 1 s
    assert.ok((await gpuLines()).includes('swin_gpu_memory_used_bytes{gpu="0",name="NVIDIA H100 80GB HBM3"} 7000000000'));
  } finally {
    setGpuInfoSource(null);
  }
  assert.deepEqual(await gpuLines(), []);
});

test('a GPU source that throws empties the gauges instead of failing the scrape', async () => {
  setGpuInfoSource(() => {
    throw Object.assign(new Error('no device'), { code: 'ERR_NO_DEVICE' });
  });
  try {
    assert.deepEqual(await gpuLines(), []);
  } finally {
    setGpuInfoSource(null);
  }
});

test("normaliseGpuInfo takes the addon's gpuInfo() fields and skips what does not fit them", () => {
  assert.deepEqual(
    normaliseGpuInfo([
      { index: 2, name: 'A', memoryUsedBytes: 10, memoryTotalBytes: 20, utilization: 0.5 },
      { name: 'B', memoryUsedBytes: 1, memoryTotalBytes: 2, utilization: null },
      { index: 3, name: 'C', memoryUsedBytes: 5, memoryTotalBytes: 6, utilization: 1.7 }, // clamped to 1
      { name: 'D', memoryUsed: 3, memoryTotal: 4 }, // not the addon's spelling: skipped
      { name: 'E', memoryUsedBytes: 3 }, // no total: skipped
      null,
    ]),
    [
      { index: 2, name: 'A', memoryUsedBytes: 10, memoryTotalBytes: 20, utilization: 0.5 },
      { index: 1, name: 'B', memoryUsedBytes: 1, memoryTotalBytes: 2, utilization: null },
      { index: 3, name: 'C', memoryUsedBytes: 5, memoryTotalBytes: 6, utilization: 1 },
    ],
  );
  assert.deepEqual(normaliseGpuInfo(undefined), []);
});

test('the registry exposes the issue #7 metric set with Prometheus naming and 1 ms..10 s latency buckets', async () => {
  const byName = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, m]));
  const want: Record<string, string> = {
    swin_requests_total: 'counter',
    swin_images_total: 'counter',
    swin_selftest_failures_total: 'counter',
    swin_dropped_requests_total: 'counter',
    swin_backend_errors_total: 'counter',
    swin_request_duration_seconds: 'histogram',
    swin_queue_duration_seconds: 'histogram',
    swin_preprocess_duration_seconds: 'histogram',
    swin_inference_duration_seconds: 'histogram',
    swin_batch_size: 'histogram',
    swin_queue_depth: 'gauge',
    swin_queue_capacity: 'gauge',
    swin_inflight_batches: 'gauge',
    swin_model_ready: 'gauge',
    swin_gpu_memory_used_bytes: 'gauge',
    swin_gpu_memory_total_bytes: 'gauge',
    swin_gpu_utilization_ratio: 'gauge',
    process_cpu_seconds_total: 'counter',
    process_resident_memory_bytes: 'gauge',
    nodejs_eventloop_lag_p99_seconds: 'gauge',
  };
  for (const [name, type] of Object.entries(want)) {
    assert.ok(byName.has(name), `missing ${name}`);
    assert.equal(String(byName.get(name)!.type), type, name);
  }
  for (const m of byName.values()) {
    if (!m.name.startsWith('swin_')) continue;
    if (String(m.type) === 'counter') assert.match(m.name, /_total$/);
    if (m.name.endsWith('_seconds')) {
      const bounds = (registry.getSingleMetric(m.name) as unknown as { upperBounds: number[] }).upperBounds;
      assert.equal(bounds[0], 0.001, `${m.name} resolves 1 ms`);
      assert.equal(bounds.at(-1), 10, `${m.name} reaches 10 s`);
    }
  }
});

// ---------------------------------------------------------------------------
// Alert rules

const alertsDoc = parseYaml(readFileSync('deploy/prometheus/alerts.yml', 'utf8')) as {
  groups: { name: string; rules: { alert: string; expr: string; for?: string; labels: { severity: string } }[] }[];
};
const alerts = alertsDoc.groups.flatMap((g) => g.rules);

test('the server-error alert counts exactly the error codes whose HTTP status is 5xx', () => {
  const rule = alerts.find((r) => r.alert === 'SwinServeHighErrorRate');
  assert.ok(rule);
  const m = /code=~"([^"]+)"/.exec(rule.expr);
  assert.ok(m, 'the numerator selects codes by regex');
  const inRule = m[1].split('|').sort();
  const fiveHundreds = Object.entries(ERRORS)
    .filter(([, e]) => e.httpStatus >= 500)
    .map(([c]) => c)
    .sort();
  assert.deepEqual(inRule, fiveHundreds);
});

test('the alerts cover error rate, p99 latency, queue near full, readiness, self-tests and GPU memory', () => {
  const names = alerts.map((r) => r.alert);
  for (const a of [
    'SwinServeHighErrorRate',
    'SwinServeHighLatencyP99',
    'SwinServeQueueNearFull',
    'SwinServeModelNotReady',
    'SwinServeVariantNotServing',
    'SwinServeSelfTestFailures',
    'SwinServeGpuMemoryHigh',
    'SwinServeDown',
  ]) {
    assert.ok(names.includes(a), a);
  }
  const queue = alerts.find((r) => r.alert === 'SwinServeQueueNearFull')!;
  assert.match(queue.expr, /swin_queue_depth\s*\/\s*\(swin_queue_capacity > 0\)/);
  for (const r of alerts) assert.ok(['critical', 'warning'].includes(r.labels.severity), r.alert);
});

test('promtool: the Prometheus config and the rules are valid, and every alert fires on its test series', (t) => {
  if (!hasPromtool()) return t.skip('promtool not installed');
  assert.match(promtool('check', 'config', 'deploy/prometheus/prometheus.yml'), /SUCCESS: 1 rule files found/);
  assert.match(promtool('check', 'rules', 'deploy/prometheus/alerts.yml'), new RegExp(`SUCCESS: ${alerts.length} rules found`));
  assert.match(promtool('test', 'rules', 'deploy/prometheus/alerts.test.yml'), /SUCCESS/);
  // Every alert has at least one test case that expects it to fire.
  const cases = parseYaml(readFileSync('deploy/prometheus/alerts.test.yml', 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const fired = new Set(
    cases.tests
      .flatMap((c) => c.alert_rule_test ?? [])
      .filter((a) => a.exp_alerts.length > 0)
      .map((a) => a.alertname),
  );
  assert.deepEqual(
    alerts.map((r) => r.alert).filter((a) => !fired.has(a)),
    [],
  );
});

test('promtool test rules fails when an alert threshold no longer matches its test', (t) => {
  if (!hasPromtool()) return t.skip('promtool not installed');
  // Guards against a test file that passes whatever the rules say.
  const dir = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  const rules = readFileSync('deploy/prometheus/alerts.yml', 'utf8').replace('> 0.8', '> 0.95');
  assert.notEqual(rules, readFileSync('deploy/prometheus/alerts.yml', 'utf8'));
  execFileSync('cp', ['deploy/prometheus/alerts.test.yml', dir]);
  execFileSync('sh', ['-c', 'cat > "$1/alerts.yml"', 'sh', dir], { input: rules });
  const r = spawnSync('promtool', ['test', 'rules', `${dir}/alerts.test.yml`], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(`${r.stdout}${r.stderr}`, /SwinServeQueueNearFull/);
  execFileSync('rm', ['-rf', dir]);
});

// ---------------------------------------------------------------------------
// docs/metrics.md

test('docs/metrics.md documents every swin_* metric with its type and labels, and every alert', async () => {
  assert.ok(existsSync('docs/metrics.md'));
  const doc = readFileSync('docs/metrics.md', 'utf8');
  for (const m of await registry.getMetricsAsJSON()) {
    if (!m.name.startsWith('swin_')) continue;
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${m.name}\``));
    assert.ok(row, `no table row for ${m.name}`);
    assert.ok(row.includes(`| ${String(m.type)} |`), `${m.name}: type ${m.type} not in its row`);
    const labels =
      (m as unknown as { labelNames?: string[] }).labelNames ??
      (registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames;
    for (const l of labels) assert.ok(row.includes(`\`${l}\``), `${m.name}: label ${l} not in its row`);
  }
  for (const r of alerts) {
    assert.ok(doc.includes(`### ${r.alert}`), `no section for alert ${r.alert}`);
  }
});
