// The first-request tool's arithmetic and options (the GPU host runs it; here it is also run on the CPU model).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { p50, parseOptions, parseSizes, rows } from '../bench/loadgen/first-request.js';

test('sizes: single values and ranges; bad ones are refused', () => {
  assert.deepEqual(parseSizes('1-4,8'), [1, 2, 3, 4, 8]);
  assert.deepEqual(parseSizes('16'), [16]);
  assert.throws(() => parseSizes('4-2'), /rising range/);
  assert.throws(() => parseSizes('0'), /rising range/);
  assert.throws(() => parseSizes('a'), /not N or N-M/);
});

test('rows: first latency over the p50 of the steady-state runs of the same size', () => {
  assert.equal(p50([5, 1, 3, 2]), 2);
  assert.deepEqual(
    rows(
      new Map([
        [1, 30],
        [2, 10],
      ]),
      new Map([
        [1, [10, 11, 9]],
        [2, [20, 20, 30]],
      ]),
    ),
    [
      { batch: 1, first_ms: 30, p50_ms: 10, ratio: 3 },
      { batch: 2, first_ms: 10, p50_ms: 20, ratio: 0.5 },
    ],
  );
});

test('options: the server command follows --', () => {
  const o = parseOptions(['--sizes', '1-2', '--repeats', '5', '--', 'node', 'dist/src/main.js', '--backend', 'cuda']);
  assert.deepEqual([o.sizes, o.repeats, o.maxRatio, o.server], [[1, 2], 5, 2, ['node', 'dist/src/main.js', '--backend', 'cuda']]);
  assert.throws(() => parseOptions(['--sizes', '1']), /after --/);
});
