// `npm run bench` flags: defaults, lists, durations, refusals.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HELP, parseBenchArgs, parseDuration, UsageError } from '../bench/loadgen/args.js';

test('defaults: closed-loop HTTP sweep against loopback', () => {
  const o = parseBenchArgs([]);
  assert.equal(o.api, 'http');
  assert.equal(o.mode, 'closed');
  assert.equal(o.url, 'http://127.0.0.1:8080');
  assert.equal(o.path, '/classify');
  assert.deepEqual(o.concurrency, [1, 2, 4, 8, 16, 32]);
  assert.deepEqual(o.rates, []);
  assert.equal(o.warmup, 2);
  assert.equal(o.duration, 10);
  assert.equal(o.timeoutMs, 30_000);
  assert.equal(o.progressMs, 500);
  assert.equal(o.check, false);
});

test('open loop with rates, arrival and = syntax', () => {
  const o = parseBenchArgs([
    '--mode',
    'open',
    '--rate=50,100.5',
    '--arrival',
    'constant',
    '--duration',
    '1500ms',
    '--warmup=0',
    '--json',
    'x.json',
  ]);
  assert.equal(o.mode, 'open');
  assert.deepEqual(o.rates, [50, 100.5]);
  assert.equal(o.arrival, 'constant');
  assert.equal(o.duration, 1.5);
  assert.equal(o.warmup, 0);
  assert.equal(o.json, 'x.json');
  assert.equal(o.label, 'http open');
});

test('gRPC target, model, top-k, trailing slash of the URL dropped', () => {
  const o = parseBenchArgs([
    '--api',
    'grpc',
    '--grpc-target',
    'localhost:9000',
    '--model',
    'swin-fmnist',
    '--top-k',
    '3',
    '--url',
    'http://localhost:1234/',
  ]);
  assert.equal(o.api, 'grpc');
  assert.equal(o.grpcTarget, 'localhost:9000');
  assert.equal(o.model, 'swin-fmnist');
  assert.equal(o.topK, 3);
  assert.equal(o.url, 'http://localhost:1234');
});

test('durations', () => {
  assert.equal(parseDuration('250ms', 'x'), 0.25);
  assert.equal(parseDuration('2m', 'x'), 120);
  assert.equal(parseDuration('7', 'x'), 7);
  assert.throws(() => parseDuration('soon', 'x'), UsageError);
});

test('refusals name the flag', () => {
  const bad: Array<[string[], RegExp]> = [
    [['--mode', 'open'], /needs --rate/],
    [['--rate', '10'], /--mode open only/],
    [['--concurrency', '0'], /--concurrency/],
    [['--concurrency', '2,x'], /--concurrency/],
    [['--api', 'ws'], /--api/],
    [['--bogus'], /unknown option/],
    [['--duration'], /needs a value/],
    [['--duration', '0s'], /--duration/],
    [['--url', 'http://10.1.2.3:8080'], /not loopback/],
    [['--api', 'grpc', '--grpc-target', 'example.com:443'], /not loopback/],
    [['--url', 'https://127.0.0.1'], /only http/],
    [['--check=yes'], /takes no value/],
  ];
  for (const [argv, msg] of bad)
    assert.throws(
      () => parseBenchArgs(argv),
      (e: unknown) => e instanceof UsageError && msg.test(e.message),
      argv.join(' '),
    );
});

test('--allow-remote lets a remote URL through', () => {
  assert.equal(parseBenchArgs(['--url', 'http://10.1.2.3:8080', '--allow-remote']).url, 'http://10.1.2.3:8080');
});

test('--help documents every flag the parser accepts', () => {
  const flags = [
    '--api',
    '--url',
    '--path',
    '--grpc-target',
    '--proto',
    '--model',
    '--top-k',
    '--allow-remote',
    '--images',
    '--max-images',
    '--mode',
    '--concurrency',
    '--rate',
    '--arrival',
    '--max-in-flight',
    '--connections',
    '--warmup',
    '--duration',
    '--timeout',
    '--json',
    '--csv',
    '--label',
    '--progress',
    '--check',
    '--seed',
    '--help',
  ];
  for (const f of flags) assert.ok(HELP.includes(f), `${f} missing from --help`);
  assert.equal(parseBenchArgs(['-h']).help, true);
});
