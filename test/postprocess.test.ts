import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classificationStrings, softmaxRows, topIndices, topK } from '../src/service/postprocess.js';

// Logits are float32: ln 2 and ln 3 carry ~1e-8 relative error.
const close = (a: number, b: number) => Math.abs(a - b) < 1e-6;

test('softmax probabilities, best first, of the requested row', () => {
  const logits = Float32Array.from([9, 9, 9, 0, Math.log(2), Math.log(3)]);
  const top = topK(logits, 1, 3, 2, ['a', 'b', 'c']);
  assert.deepEqual(
    top.map((p) => [p.label, p.index]),
    [
      ['c', 2],
      ['b', 1],
    ],
  );
  assert.ok(close(top[0].score, 3 / 6) && close(top[1].score, 2 / 6), JSON.stringify(top));
});

test('large logits do not overflow; k is capped at the class count; ties keep index order', () => {
  const top = topK(Float32Array.from([1000, 1001, 1000]), 0, 3, 10, ['a', 'b', 'c']);
  assert.equal(top.length, 3);
  assert.deepEqual(
    top.map((p) => p.index),
    [1, 0, 2],
  );
  assert.ok(top.every((p) => Number.isFinite(p.score)));
  assert.ok(
    close(
      top.reduce((s, p) => s + p.score, 0),
      1,
    ),
  );
});

test('topIndices agrees with a full sort (value descending, lower index first on ties) for every k', () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 200; trial++) {
    const c = 1 + Math.floor(rand() * 40);
    const rows = 2;
    // Few distinct values, so ties are common.
    const values = Float32Array.from({ length: rows * c }, () => Math.floor(rand() * 6));
    for (let row = 0; row < rows; row++) {
      const expected = Array.from({ length: c }, (_, i) => i).sort((a, b) => values[row * c + b] - values[row * c + a] || a - b);
      for (const k of [1, 2, 5, c, c + 3])
        assert.deepEqual(topIndices(values, row, c, k), expected.slice(0, k), `c=${c} row=${row} k=${k}`);
    }
  }
});

test('softmaxRows rows sum to 1; classificationStrings is "value:index:label", best first per row', () => {
  const probs = softmaxRows(Float32Array.from([0, Math.log(3), 5, 5]), 2, 2);
  assert.ok(close(probs[0], 0.25) && close(probs[1], 0.75) && close(probs[2], 0.5) && close(probs[3], 0.5), String(probs));
  const strings = classificationStrings(probs, 2, 2, 1, ['cat', 'dog']).map(String);
  assert.deepEqual(strings, ['0.750000:1:dog', '0.500000:0:cat']);
});
