import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError, SETTINGS, loadConfig } from '../src/config.js';

test('defaults', () => {
  const c = loadConfig([], {});
  assert.equal(c.port, 8080);
  assert.equal(c.grpcPort, 8081);
  assert.equal(c.modelsDir, 'engines/models');
  assert.deepEqual(c.models, []);
  assert.equal(c.backend, 'auto');
  assert.equal(c.variant, undefined);
  assert.deepEqual(c.batching, { maxBatchSize: undefined, maxQueueDelayMs: undefined, maxQueueSize: undefined, instances: undefined });
  assert.deepEqual(c.acceptedFormats, ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif']);
  assert.equal(c.requestTimeoutMs, 30000);
  assert.equal(c.logLevel, 'info');
});

test('flags win over environment variables, which win over defaults', () => {
  const c = loadConfig(['--port', '9000', '--max-batch-size=16', '--models', 'a, b'], {
    PORT: '7000',
    GRPC_PORT: '7001',
    BACKEND: 'onnxruntime',
    VARIANT: 'fold',
  });
  assert.equal(c.port, 9000);
  assert.equal(c.grpcPort, 7001);
  assert.equal(c.batching.maxBatchSize, 16);
  assert.deepEqual(c.models, ['a', 'b']);
  assert.equal(c.backend, 'onnxruntime');
  assert.equal(c.variant, 'fold');
});

test('bad values are refused with the setting named', () => {
  const bad: Array<[string[], Record<string, string>, RegExp]> = [
    [[], { PORT: 'http' }, /^PORT="http": expected an integer$/],
    [[], { PORT: '70000' }, /^PORT="70000": must be between 0 and 65535$/],
    [['--backend', 'gpu'], {}, /^--backend="gpu": must be one of auto, tensorrt, cuda, onnxruntime$/],
    [[], { MAX_BATCH_SIZE: '0' }, /^MAX_BATCH_SIZE="0": must be between 1 and 4096$/],
    [[], { VARIANT: 'both' }, /^VARIANT="both": must be one of fold, unfold$/],
    [[], { ACCEPTED_FORMATS: 'png,bmp' }, /^ACCEPTED_FORMATS: unknown format "bmp"/],
    [['--no-such-flag', '1'], {}, /^bad command line: .*no-such-flag/],
    [[], { LOG_LEVEL: 'loud' }, /^LOG_LEVEL="loud": must be one of/],
    [[], { RATE_LIMIT_RPS: '-1' }, /RATE_LIMIT_RPS/],
  ];
  for (const [argv, env, re] of bad) {
    assert.throws(
      () => loadConfig(argv, env),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      `${argv} ${JSON.stringify(env)}`,
    );
  }
});

test('docs/configuration.md documents every setting with its flag and default', () => {
  const doc = readFileSync('docs/configuration.md', 'utf8');
  for (const s of SETTINGS) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${s.env}\` `));
    assert.ok(row, `${s.env} missing from docs/configuration.md`);
    assert.ok(row.includes(`\`--${s.flag}\``), `${s.env}: flag --${s.flag} not documented`);
    if (s.def !== undefined && s.def !== '') assert.ok(row.includes(`\`${s.def}\``), `${s.env}: default ${s.def} not documented`);
  }
});
