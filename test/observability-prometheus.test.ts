// A real Prometheus (Debian's prometheus 2.42) scrapes a running swin-serve on
// loopback while the test sends good and bad requests; then every PromQL
// expression of the Grafana dashboard, its variables, the alert rules and the
// Prometheus adapter rules is evaluated through the Prometheus HTTP API. A
// dashboard panel must return data; an alert must evaluate, with the metrics
// it reads present.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import pino from 'pino';
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import * as grpc from '@grpc/grpc-js';
import type { ClassifierClient } from '../src/generated/swin/v1/Classifier.js';
import { startGrpcServer } from '../src/api/grpc/grpc-server.js';
import { loadProtos } from '../src/api/grpc/protos.js';
import { buildApp } from '../src/api/http/app.js';
import { CoreInferenceService } from '../src/service/inference-service.js';
import { setGpuInfoSource } from '../src/observability/metrics.js';
import { ModelRepository } from '../src/models/model-repository.js';

const REQUIRE_TOOLS = process.env.SWIN_REQUIRE_TOOLS === '1' || process.env.CI === 'true';
const HAVE_PROMETHEUS = spawnSync('prometheus', ['--version']).status === 0;
if (!HAVE_PROMETHEUS && REQUIRE_TOOLS) throw new Error('prometheus not found: apt-get install prometheus (scripts/test.sh does)');

const SCRAPE_S = 1;
const MODEL = 'swin-fmnist';
const BROKEN = 'swin-fmnist-broken'; // its fold variant cannot load: a self-test failure, a variant not ready
// Values for the dashboard's variables and Grafana's macros.
const VARS: Record<string, string> = {
  $__rate_interval: '1m',
  $__interval: `${SCRAPE_S}s`,
  $__range: '5m',
  $job: 'swin-serve',
  $instance: '.*',
  $model: '.*',
};
// Test labels the in-cluster scrape job would add; the adapter rules need them.
const POD_LABELS = { namespace: 'swin-serve', pod: 'swin-serve-test-0' };

let work = '';
let prom: ChildProcess | null = null;
let promUrl = '';
let service: { url: string; grpcTarget: string; close: () => Promise<void> } | null = null;
let promLog = '';

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}\n${promLog.slice(-2000)}`);
    await sleep(250);
  }
}

interface PromResult {
  status: string;
  error?: string;
  data: { resultType: string; result: { metric: Record<string, string>; value?: [number, string] }[] };
}

async function query(q: string): Promise<PromResult> {
  const r = await fetch(`${promUrl}/api/v1/query?${new URLSearchParams({ query: q })}`);
  return (await r.json()) as PromResult;
}

function substitute(expr: string): string {
  // longest names first: $__rate_interval before $__range
  return Object.keys(VARS)
    .sort((a, b) => b.length - a.length)
    .reduce((e, k) => e.split(k).join(VARS[k]), expr)
    .replace(/\$\{(\w+)\}/g, (_, k: string) => VARS[`$${k}`] ?? `\${${k}}`);
}

/** The service under test: the real HTTP and gRPC servers (as src/server.ts starts them) on the real model repository. */
async function startService(modelsDir: string): Promise<{ url: string; grpcTarget: string; close: () => Promise<void> }> {
  const config = loadConfig(
    ['--models-dir', modelsDir, '--backend', 'onnxruntime', '--log-level', 'silent', '--selftest-retry-ms', '3600000'],
    {},
  );
  const logger = pino({ level: 'silent' });
  const repo = await ModelRepository.load({ config, logger });
  const svc = new CoreInferenceService(repo, config);
  const app = await buildApp(config, svc, { logger: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const grpcServer = await startGrpcServer(svc, { host: '127.0.0.1', port: 0, maxMessageBytes: config.limits.maxBodyBytes }, logger);
  const { port } = app.server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    grpcTarget: `127.0.0.1:${grpcServer.port}`,
    close: async () => {
      await Promise.all([app.close(), grpcServer.close(1000)]);
      await svc.close();
    },
  };
}

/** A models folder with swin-fmnist and a copy whose fold ONNX file is garbage. */
function makeModelsDir(): string {
  const src = resolve('engines/models', MODEL);
  const dir = join(work, 'models');
  mkdirSync(join(dir, MODEL), { recursive: true });
  mkdirSync(join(dir, BROKEN), { recursive: true });
  for (const f of readdirSync(src)) {
    symlinkSync(join(src, f), join(dir, MODEL, f));
    if (f.endsWith('.fold.onnx')) writeFileSync(join(dir, BROKEN, f), 'not an onnx file');
    else if (f === 'model.json') {
      const cfg = JSON.parse(readFileSync(join(src, f), 'utf8'));
      cfg.name = BROKEN;
      // A short queue, so that a burst overflows it (503 SWIN_QUEUE_FULL, dropped images).
      cfg.batching = { ...cfg.batching, max_batch_size: 8, max_queue_size: 8, max_queue_delay_ms: 50, instances: 1 };
      writeFileSync(join(dir, BROKEN, f), JSON.stringify(cfg, null, 2));
    } else symlinkSync(join(src, f), join(dir, BROKEN, f));
  }
  return dir;
}

before(async () => {
  if (!HAVE_PROMETHEUS) return;
  work = mkdtempSync(join(tmpdir(), 'swin-prom-'));
  // A GPU the collector reports, so the GPU panels and alert have series on this GPU-less host.
  setGpuInfoSource(() => [{ index: 0, name: 'simulated GPU (test)', memoryUsedBytes: 3e9, memoryTotalBytes: 80e9, utilization: 0.4 }]);
  service = await startService(makeModelsDir());

  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  copyFileSync('deploy/prometheus/alerts.yml', join(work, 'alerts.yml'));
  const base = parseYaml(readFileSync('deploy/prometheus/prometheus.yml', 'utf8'));
  const target = new URL(service.url).host;
  const cfg = {
    global: { scrape_interval: `${SCRAPE_S}s`, evaluation_interval: `${SCRAPE_S}s` },
    rule_files: base.rule_files,
    scrape_configs: [
      {
        job_name: 'swin-serve',
        metrics_path: '/metrics',
        static_configs: [{ targets: [target], labels: POD_LABELS }],
      },
    ],
  };
  writeFileSync(join(work, 'prometheus.yml'), toYaml(cfg));
  const check = spawnSync('promtool', ['check', 'config', join(work, 'prometheus.yml')], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  prom = spawn(
    'prometheus',
    [
      `--config.file=${join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(work, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prom.stdout!.on('data', (d) => {
    promLog += d;
  });
  prom.stderr!.on('data', (d) => {
    promLog += d;
  });
  await until('Prometheus ready', async () => ((await fetch(`${promUrl}/-/ready`)).ok ? true : undefined));
});

after(async () => {
  setGpuInfoSource(null);
  prom?.kill('SIGTERM');
  await service?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Traffic

/** Panels and alerts that need a failing engine batch; a healthy onnxruntime backend produces none. */
const NEEDS_BACKEND_FAILURE = /swin_backend_errors_total/;

interface Reply {
  status: number;
  code: string;
}
let counted = 0; // requests the service must count in swin_requests_total
const replies: Record<string, Reply[]> = {};

async function send(kind: string, path: string, init: RequestInit, isCounted = true): Promise<Reply> {
  const r = await fetch(service!.url + path, init);
  // REST error bodies carry `code`; KServe's carry only `error` (its protocol).
  const body = (await r.json()) as { code?: string };
  const reply = { status: r.status, code: r.ok ? 'OK' : String(body.code ?? '') };
  (replies[kind] ??= []).push(reply);
  if (isCounted) counted++;
  return reply;
}

async function testImages(): Promise<{ png: Buffer[]; raw: Buffer }> {
  const cfg = JSON.parse(readFileSync(`engines/models/${MODEL}/model.json`, 'utf8'));
  const size = cfg.architecture.img_size as number;
  const raw = readFileSync(`engines/models/${MODEL}/${cfg.selftest.input}`);
  const png: Buffer[] = [];
  for (let i = 0; i < cfg.selftest.count; i++) {
    const one = raw.subarray(i * size * size * 3, (i + 1) * size * size * 3);
    png.push(
      await sharp(one, { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  return { png, raw: raw.subarray(0, size * size * 3) };
}

function kserveBinary(raw: Buffer, parameters: Record<string, unknown> = {}): RequestInit {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'image', shape: [1, 256, 256, 3], datatype: 'UINT8', parameters: { binary_data_size: raw.length } }],
      outputs: [{ name: 'logits', parameters: { binary_data: false } }],
      parameters,
    }),
  );
  return {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
    body: new Uint8Array(Buffer.concat([header, raw])),
  };
}

const png = (b: Buffer, q = ''): [string, RequestInit] => [
  `/classify${q}`,
  { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(b) },
];

test('traffic: good and bad requests over REST, KServe REST and gRPC get the replies they should', { skip: !HAVE_PROMETHEUS }, async () => {
  const { png: images, raw } = await testImages();
  // good single images, sequential and concurrent (batches > 1)
  for (const img of images) await send('good', ...png(img, `?model=${MODEL}`));
  await Promise.all(Array.from({ length: 12 }, (_, i) => send('good', ...png(images[i % images.length], `?model=${MODEL}`))));
  // the broken model serves through its unfold variant
  for (const img of images.slice(0, 2)) await send('good', ...png(img, `?model=${BROKEN}`));
  // KServe v2 binary tensor
  for (let i = 0; i < 2; i++) await send('good', `/v2/models/${MODEL}/infer`, kserveBinary(raw));
  // gRPC swin.v1.Classifier/Predict: two good calls, one for a model that does not exist
  const protos = loadProtos();
  const client: ClassifierClient = new protos.classifier.swin.v1.Classifier(service!.grpcTarget, grpc.credentials.createInsecure());
  const predict = (req: { images: Buffer[]; model: string }) =>
    new Promise<string>((res) => {
      client.Predict(req, (err) => res(err ? grpc.status[err.code!] : 'OK'));
    });
  try {
    for (const model of [MODEL, MODEL, 'no-such-model']) {
      const code = await predict({ images: [images[0]], model });
      (replies.grpc ??= []).push({ status: 0, code });
      counted++;
    }
  } finally {
    client.close();
  }
  await until('Prometheus to scrape the first traffic', async () => {
    const r = await query('sum(swin_requests_total{job="swin-serve"})');
    return r.data.result.length > 0 ? true : undefined;
  });

  // client errors
  await send('decode', ...png(images[0].subarray(0, 200), `?model=${MODEL}`)); // a truncated PNG
  await send('unknown_model', ...png(images[0], '?model=no-such-model'));
  await send('top_k', ...png(images[0], `?model=${MODEL}&top_k=0`));
  await send('empty', `/classify?model=${MODEL}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(0) });
  await send('kserve_bad', `/v2/models/${MODEL}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"inputs": 3}',
  });
  // server-side: a variant that is not ready, a deadline that has passed, an overflowing queue
  await send('not_ready', ...png(images[0], `?model=${BROKEN}&variant=fold`));
  await send('deadline', `/v2/models/${MODEL}/infer`, kserveBinary(raw, { timeout: 1 }));
  const many = (n: number) => {
    const form = new FormData();
    for (let i = 0; i < n; i++)
      form.append('image', new Blob([new Uint8Array(images[i % images.length])], { type: 'image/png' }), `${i}.png`);
    return form;
  };
  await Promise.all(Array.from({ length: 8 }, () => send('burst', `/classify?model=${BROKEN}`, { method: 'POST', body: many(4) })));

  assert.ok(
    replies.good.every((r) => r.status === 200),
    JSON.stringify(replies.good.filter((r) => r.status !== 200)),
  );
  assert.deepEqual(
    replies.grpc.map((r) => r.code),
    ['OK', 'OK', 'NOT_FOUND'],
  );
  assert.deepEqual(replies.decode, [{ status: 400, code: 'SWIN_IMAGE_DECODE_FAILED' }]);
  assert.deepEqual(replies.unknown_model, [{ status: 404, code: 'SWIN_MODEL_NOT_FOUND' }]);
  assert.deepEqual(replies.top_k, [{ status: 400, code: 'SWIN_BAD_TOP_K' }]);
  assert.deepEqual(replies.empty, [{ status: 400, code: 'SWIN_EMPTY_BODY' }]);
  assert.equal(replies.kserve_bad[0].status, 400);
  assert.deepEqual(replies.not_ready, [{ status: 503, code: 'SWIN_MODEL_NOT_READY' }]);
  assert.equal(replies.deadline[0].status, 504);
  const burst = replies.burst.map((r) => r.code);
  assert.ok(burst.includes('OK'), burst.join());
  assert.ok(burst.includes('SWIN_QUEUE_FULL'), `the burst should overflow an 8-image queue: ${burst.join()}`);
});

test('the endpoints the Docker HEALTHCHECK and the Kubernetes probes call answer 200', { skip: !HAVE_PROMETHEUS }, async () => {
  for (const path of ['/health/live', '/health/ready']) {
    const r = await fetch(service!.url + path);
    assert.equal(r.status, 200, path);
  }
});

test('Prometheus scraped a count of requests equal to what was sent', { skip: !HAVE_PROMETHEUS }, async () => {
  const got = await until('every request in swin_requests_total', async () => {
    const r = await query('sum(swin_requests_total{job="swin-serve"})');
    const v = Number(r.data.result[0]?.value?.[1]);
    return v === counted ? v : undefined;
  });
  assert.equal(got, counted);
  // every front end recorded its requests under its own api label
  const apis = await query('sum by (api) (swin_requests_total{job="swin-serve"})');
  assert.deepEqual(apis.data.result.map((r) => r.metric.api).sort(), ['grpc', 'http', 'kserve_http']);
  // the scrape target is healthy
  const up = await query('up{job="swin-serve"}');
  assert.equal(up.data.result[0].value![1], '1');
});

// ---------------------------------------------------------------------------
// Dashboard

interface Panel {
  type: string;
  title: string;
  targets?: { refId: string; expr: string }[];
}
const dashboard = JSON.parse(readFileSync('deploy/grafana/dashboards/swin-serve.json', 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: { query: string } | string }[] };
};

function finite(r: PromResult): boolean {
  return r.data.result.some((s) => s.value && Number.isFinite(Number(s.value[1])));
}

/**
 * Queries until `ok` holds or a few scrapes have passed. A counter series born
 * in the last burst of traffic has one sample until the next scrape, and rate()
 * needs two: asking at once would report a panel as empty when it is not yet.
 */
async function settledQuery(q: string, ok: (r: PromResult) => boolean): Promise<PromResult> {
  const end = Date.now() + 10 * SCRAPE_S * 1000;
  for (;;) {
    const r = await query(q);
    if (r.status !== 'success' || ok(r) || Date.now() > end) return r;
    await new Promise((res) => setTimeout(res, 250));
  }
}

test('every dashboard panel query returns data from the live Prometheus', { skip: !HAVE_PROMETHEUS }, async () => {
  const failures: string[] = [];
  let checked = 0;
  for (const p of dashboard.panels) {
    for (const t of p.targets ?? []) {
      const q = substitute(t.expr);
      assert.doesNotMatch(q, /\$/, `unsubstituted variable in ${q}`);
      const r = NEEDS_BACKEND_FAILURE.test(q) ? await query(q) : await settledQuery(q, finite);
      checked++;
      if (r.status !== 'success') failures.push(`${p.title} ${t.refId}: ${r.error}`);
      else if (!finite(r) && !NEEDS_BACKEND_FAILURE.test(q)) failures.push(`${p.title} ${t.refId}: no data for ${q}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(checked >= 25, `${checked} queries`);
});

test('every dashboard variable finds values', { skip: !HAVE_PROMETHEUS }, async () => {
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
    assert.ok(m, `variable ${v.name}: ${q}`);
    const r = await query(`group by (${m[2]}) (${substitute(m[1])})`);
    assert.equal(r.status, 'success', r.error);
    const values = r.data.result.map((s) => s.metric[m[2]]);
    assert.ok(values.length > 0, `variable ${v.name} has no values`);
    if (v.name === 'model') assert.deepEqual(values.sort(), [MODEL, BROKEN].sort());
    if (v.name === 'job') assert.deepEqual(values, ['swin-serve']);
  }
});

test(
  'metrics without series here are still exposed by the service (no panel on a metric that does not exist)',
  { skip: !HAVE_PROMETHEUS },
  async () => {
    const text = await (await fetch(`${service!.url}/metrics`)).text();
    assert.match(text, /^# TYPE swin_backend_errors_total counter$/m);
  },
);

// ---------------------------------------------------------------------------
// Alerts

const alertRules = (
  parseYaml(readFileSync('deploy/prometheus/alerts.yml', 'utf8')) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  }
).groups.flatMap((g) => g.rules);

test('every alert expression evaluates, and the value it compares has series', { skip: !HAVE_PROMETHEUS }, async () => {
  const failures: string[] = [];
  for (const rule of alertRules) {
    const r = await query(rule.expr);
    if (r.status !== 'success') {
      failures.push(`${rule.alert}: ${r.error}`);
      continue;
    }
    // The expression without its final threshold: the quantity the alert watches.
    const value = rule.expr.trim().replace(/\s*(==|!=|>=|<=|>|<)\s*[-+0-9.e]+$/, '');
    assert.notEqual(value, rule.expr.trim(), `${rule.alert}: no trailing comparison`);
    const v = NEEDS_BACKEND_FAILURE.test(value) ? await query(value) : await settledQuery(value, (x) => x.data.result.length > 0);
    if (v.status !== 'success') failures.push(`${rule.alert} (value): ${v.error}`);
    else if (v.data.result.length === 0 && !NEEDS_BACKEND_FAILURE.test(value)) failures.push(`${rule.alert}: no series for ${value}`);
  }
  assert.deepEqual(failures, []);
});

test('Prometheus loaded every rule and evaluates it without error', { skip: !HAVE_PROMETHEUS }, async () => {
  const rules = await until('every rule evaluated', async () => {
    const r = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[] }[] };
    };
    const all = r.data.groups.flatMap((g) => g.rules);
    return all.every((x) => !x.lastEvaluation.startsWith('0001')) ? all : undefined;
  });
  assert.deepEqual(rules.map((r) => r.name).sort(), alertRules.map((r) => r.alert).sort());
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
});

test('the broken fold variant makes SwinServeSelfTestFailures fire, for that variant only', { skip: !HAVE_PROMETHEUS }, async () => {
  const firing = await until('SwinServeSelfTestFailures firing', async () => {
    const r = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as {
      data: { alerts: { labels: Record<string, string>; state: string }[] };
    };
    const a = r.data.alerts.filter((x) => x.labels.alertname === 'SwinServeSelfTestFailures' && x.state === 'firing');
    return a.length > 0 ? a : undefined;
  });
  assert.deepEqual(
    firing.map((a) => [a.labels.model, a.labels.variant, a.labels.backend]),
    [[BROKEN, 'fold', 'onnxruntime']],
  );
  // and the model is still ready through unfold: the readiness alert stays quiet
  const ready = await query(`max by (model) (swin_model_ready{job="swin-serve"})`);
  assert.deepEqual(Object.fromEntries(ready.data.result.map((s) => [s.metric.model, s.value![1]])), { [MODEL]: '1', [BROKEN]: '1' });
  const variantDown = await query(alertRules.find((r) => r.alert === 'SwinServeVariantNotServing')!.expr);
  assert.deepEqual(
    variantDown.data.result.map((s) => [s.metric.model, s.metric.variant]),
    [[BROKEN, 'fold']],
  );
});

// ---------------------------------------------------------------------------
// Prometheus adapter rules (deploy/k8s/prometheus-adapter/values.yaml)

test('the Prometheus adapter rules give one value per pod, as the HPA reads them', { skip: !HAVE_PROMETHEUS }, async () => {
  const adapter = parseYaml(readFileSync('deploy/k8s/prometheus-adapter/values.yaml', 'utf8'));
  for (const rule of adapter.rules.custom as { seriesQuery: string; metricsQuery: string; name: { as: string } }[]) {
    const series = (await (await fetch(`${promUrl}/api/v1/series?${new URLSearchParams({ 'match[]': rule.seriesQuery })}`)).json()) as {
      data: unknown[];
    };
    assert.ok(series.data.length > 0, `${rule.name.as}: seriesQuery ${rule.seriesQuery} finds nothing`);
    const seriesName = /^(\w+)/.exec(rule.seriesQuery)![1];
    // What the adapter sends for GET .../namespaces/swin-serve/pods/*/<metric>
    const q = rule.metricsQuery
      .replace('<<.Series>>', seriesName)
      .replace('<<.LabelMatchers>>', `namespace="${POD_LABELS.namespace}",pod=~"${POD_LABELS.pod}"`)
      .replace('<<.GroupBy>>', 'pod');
    const r = await query(q);
    assert.equal(r.status, 'success', `${rule.name.as}: ${r.error}`);
    assert.equal(r.data.result.length, 1, `${rule.name.as}: ${q}`);
    assert.equal(r.data.result[0].metric.pod, POD_LABELS.pod);
    assert.ok(Number.isFinite(Number(r.data.result[0].value![1])), `${rule.name.as} = ${r.data.result[0].value![1]}`);
  }
});
