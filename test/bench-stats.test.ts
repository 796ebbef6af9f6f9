// The benchmark client's latency histogram: exact below 1 ms, within 0.2% above,
// nearest-rank percentiles, merge equal to recording everything in one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketOf, bucketRange, ErrorCounts, LatencyHistogram } from '../bench/loadgen/stats.js';

test('percentiles of 1..1000 us are exact (nearest rank)', () => {
  const h = new LatencyHistogram();
  // shuffled order must not matter
  const values = Array.from({ length: 1000 }, (_, i) => i + 1).sort((a, b) => ((a * 7919) % 1000) - ((b * 7919) % 1000));
  for (const v of values) h.record(v);
  assert.equal(h.count, 1000);
  assert.equal(h.percentile(50), 500);
  assert.equal(h.percentile(90), 900);
  assert.equal(h.percentile(99), 990);
  assert.equal(h.percentile(100), 1000);
  assert.equal(h.percentile(0.01), 1);
  assert.equal(h.mean(), 500.5);
  assert.equal(h.min, 1);
  assert.equal(h.max, 1000);
});

test('buckets above 1 ms are at most 1/512 wide and contain their values', () => {
  for (const v of [1024, 1025, 2047, 2048, 4095, 12_345, 99_999, 1_000_000, 2 ** 31 + 17, 12_000_000_000]) {
    const [lo, hi] = bucketRange(bucketOf(v));
    assert.ok(lo <= v && v <= hi, `${v} outside [${lo}, ${hi}]`);
    assert.ok((hi - lo + 1) / lo <= 1 / 512 + 1e-12, `bucket of ${v} too wide: [${lo}, ${hi}]`);
  }
  // consecutive buckets tile the line with no gap or overlap
  for (let b = 1000; b < 5000; b++) assert.equal(bucketRange(b)[1] + 1, bucketRange(b + 1)[0]);
});

test('large latencies keep 0.2% precision', () => {
  const h = new LatencyHistogram();
  // 10..1000 ms in 10 ms steps, in us
  for (let ms = 10; ms <= 1000; ms += 10) h.recordMs(ms);
  const p50 = h.percentile(50) / 1000;
  const p99 = h.percentile(99) / 1000;
  assert.ok(Math.abs(p50 - 500) / 500 < 0.002, `p50 ${p50}`);
  assert.ok(Math.abs(p99 - 990) / 990 < 0.002, `p99 ${p99}`);
  const s = h.summary();
  assert.equal(s.count, 100);
  assert.equal(s.min_ms, 10);
  assert.equal(s.max_ms, 1000);
  assert.equal(s.mean_ms, 505);
});

test('merging histograms equals recording all values in one', () => {
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  const all = new LatencyHistogram();
  let x = 12345;
  for (let i = 0; i < 5000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const v = (x % 200_000) + 50; // 50 us .. 200 ms
    (i % 3 === 0 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  assert.equal(a.count, all.count);
  assert.equal(a.sum, all.sum);
  assert.equal(a.min, all.min);
  assert.equal(a.max, all.max);
  for (const p of [50, 90, 95, 99, 99.9]) assert.equal(a.percentile(p), all.percentile(p));
  assert.deepEqual(a.toSparse(), all.toSparse());
});

test('an empty histogram reports NaN, not zero', () => {
  const h = new LatencyHistogram();
  assert.ok(Number.isNaN(h.percentile(50)));
  assert.ok(Number.isNaN(h.summary().p99_ms));
  h.merge(new LatencyHistogram());
  assert.equal(h.count, 0);
});

test('error counts merge and sort by count', () => {
  const a = new ErrorCounts();
  a.add('timeout');
  a.add('HTTP 503 SWIN_QUEUE_FULL', 3);
  const b = new ErrorCounts();
  b.add('timeout', 4);
  a.merge(b);
  assert.equal(a.total, 8);
  assert.deepEqual(Object.entries(a.toObject()), [
    ['timeout', 5],
    ['HTTP 503 SWIN_QUEUE_FULL', 3],
  ]);
});
