import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topK } from '../src/topk.js';

// Logits are float32: ln 2 and ln 3 carry ~1e-8 relative error.
const close = (a: number, b: number) => Math.abs(a - b) < 1e-6;

test('softmax probabilities, best first, of the requested row', () => {
  const logits = Float32Array.from([9, 9, 9, 0, Math.log(2), Math.log(3)]);
  const top = topK(logits, 1, 3, 2, ['a', 'b', 'c']);
  assert.deepEqual(top.map((p) => [p.label, p.index]), [['c', 2], ['b', 1]]);
  assert.ok(close(top[0].score, 3 / 6) && close(top[1].score, 2 / 6), JSON.stringify(top));
});

test('large logits do not overflow; k is capped at the class count; ties keep index order', () => {
  const top = topK(Float32Array.from([1000, 1001, 1000]), 0, 3, 10, ['a', 'b', 'c']);
  assert.equal(top.length, 3);
  assert.deepEqual(top.map((p) => p.index), [1, 0, 2]);
  assert.ok(top.every((p) => Number.isFinite(p.score)));
  assert.ok(close(top.reduce((s, p) => s + p.score, 0), 1));
});
