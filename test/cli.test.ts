// The command line: --help is printed from the settings table (every flag,
// its variables and default), --version from package.json, and SWIN_-prefixed
// variables are read before the plain (older) names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cliAction, helpText, versionText } from '../src/cli.js';
import { ConfigError, ENV_ONLY, SETTINGS, loadConfig } from '../src/config.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string; bin: Record<string, string> };

test('--help lists every setting with its flag, both variable names and its default', () => {
  const help = helpText();
  const lines = help.split('\n');
  for (const s of SETTINGS) {
    const at = lines.findIndex((l) => l.startsWith(`  --${s.flag} `));
    assert.ok(at >= 0, `--${s.flag} missing`);
    assert.ok(lines[at + 2].startsWith(`      env SWIN_${s.env} or ${s.env}; default: `), `${s.env}: variables not listed`);
    if (s.def) assert.ok(lines[at + 2].endsWith(`default: ${s.def}`), `${s.env}: default ${s.def} not listed`);
  }
  for (const e of ENV_ONLY) assert.ok(help.includes(`\n  SWIN_${e.env} or ${e.env}\n`), `${e.env} missing`);
  assert.match(
    help,
    /\n {2}--backend <auto\|tensorrt\|cuda\|onnxruntime>\n {6}engine per variant: auto tries tensorrt, cuda, then onnxruntime\n {6}env SWIN_BACKEND or BACKEND; default: auto\n/,
  );
  assert.match(
    help,
    /\n {2}--max-batch-size <n>\n {6}images per engine run, at most\n {6}env SWIN_MAX_BATCH_SIZE or MAX_BATCH_SIZE; default: model.json\n/,
  );
});

test('--help and --version are recognised before any setting is parsed', () => {
  assert.equal(cliAction(['--port', '1', '--help']), 'help');
  assert.equal(cliAction(['-h']), 'help');
  assert.equal(cliAction(['--version']), 'version');
  assert.equal(cliAction(['--port', '1']), null);
  assert.equal(versionText(), `swin-serve ${pkg.version}\n`);
});

test('the entry point prints help and version and exits 0; package.json has a bin entry', () => {
  const run = (arg: string) =>
    execFileSync(process.execPath, ['--import', 'tsx', 'src/main.ts', arg], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run('--version'), `swin-serve ${pkg.version}\n`);
  assert.equal(run('--help'), helpText());
  assert.deepEqual(pkg.bin, { 'swin-serve': 'dist/src/main.js' });
  assert.match(readFileSync('src/main.ts', 'utf8'), /^#!\/usr\/bin\/env node\n/);
});

test('SWIN_ names are read, win over the plain names, and errors name the variable used', () => {
  const c = loadConfig([], { SWIN_PORT: '9000', PORT: '7000', GRPC_PORT: '7001', SWIN_RATE_LIMIT_RPS: '5', SWIN_MODELS: 'a,b' });
  assert.equal(c.port, 9000);
  assert.equal(c.grpcPort, 7001);
  assert.deepEqual(c.models, ['a', 'b']);
  assert.equal(c.access.rateLimitRps, 5);
  assert.equal(loadConfig(['--port', '1'], { SWIN_PORT: '9000' }).port, 1);
  assert.equal(loadConfig([], { SWIN_PORT: '', PORT: '7000' }).port, 7000);
  assert.throws(
    () => loadConfig([], { SWIN_PORT: 'http' }),
    (e: unknown) => e instanceof ConfigError && e.message === 'SWIN_PORT="http": expected an integer',
  );
  assert.throws(
    () => loadConfig([], { PORT: 'http' }),
    (e: unknown) => e instanceof ConfigError && e.message === 'PORT="http": expected an integer',
  );
});
