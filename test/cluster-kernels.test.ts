// 1-D k-means (src/kernels/kmeans.ts) against the slow reference (kmeans-ref.ts): the same
// centroids within 1e-5 from the same start, unweighted and weighted, linear and kmeans++ starts;
// the assignment picks the nearest centroid; few distinct values come back exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assignNearest, clusterInertia, kmeans1d, kmeansPlusPlusInit, linearInit } from '../src/kernels/kmeans.js';
import { kmeans1dRef, nearestRef } from '../src/kernels/kmeans-ref.js';
import { mulberry32 } from '../src/kernels/random.js';

/** Weight-like values: a Laplace-ish bulk around 0 with a few large ones, from `seed`. */
function weightLike(n: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => {
    const u = next() - 0.5;
    const big = next() < 0.01 ? 5 : 1;
    return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u)) * 0.05 * big;
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

test('fast k-means equals the reference from the same start (linear and kmeans++, k 4 to 256)', () => {
  for (const [n, k, seed] of [
    [2000, 4, 1],
    [5000, 16, 2],
    [20000, 64, 3],
    [30000, 256, 4],
  ]) {
    const values = weightLike(n, seed);
    let min = Infinity;
    let max = -Infinity;
    for (const v of values) [min, max] = [Math.min(min, v), Math.max(max, v)];
    for (const initial of [linearInit(min, max, k), kmeansPlusPlusInit(values, k, seed)]) {
      const fast = kmeans1d(values, { k, initial, maxIterations: 300 });
      const ref = kmeans1dRef(values, initial, { maxIterations: 300 });
      assert.ok(maxDiff(fast.centroids, ref.centroids) < 1e-5, `n ${n} k ${k}: centroids differ by ${maxDiff(fast.centroids, ref.centroids)}`);
    }
  }
});

test('weighted k-means equals the weighted reference; heavy values pull their centroid', () => {
  const values = weightLike(8000, 7);
  const next = mulberry32(8);
  const weights = Float64Array.from(values, () => next() * next() * 10);
  const initial = linearInit(Math.min(...values), Math.max(...values), 16);
  const fast = kmeans1d(values, { k: 16, initial, weights, maxIterations: 300 });
  const ref = kmeans1dRef(values, initial, { weights, maxIterations: 300 });
  assert.ok(maxDiff(fast.centroids, ref.centroids) < 1e-5, `weighted centroids differ by ${maxDiff(fast.centroids, ref.centroids)}`);
  // A value with all the weight gets a centroid on itself.
  const one = new Float64Array(values.length).fill(1e-9);
  one[123] = 1e6;
  const pulled = kmeans1d(values, { k: 4, weights: one });
  assert.ok(Math.min(...Array.from(pulled.centroids, (c) => Math.abs(c - values[123]))) < 1e-6);
});

test('assignment: each value gets its nearest centroid (as the reference finds it); weighted inertia falls from the start', () => {
  const values = weightLike(10000, 11);
  for (const init of ['linear', 'kmeans++'] as const) {
    const { centroids, converged } = kmeans1d(values, { k: 16, init, seed: 3 });
    assert.ok(converged);
    assert.ok(centroids.every((c, j) => j === 0 || c > centroids[j - 1]), 'ascending');
    const codes = assignNearest(values, centroids, new Uint8Array(values.length));
    for (let i = 0; i < values.length; i++) assert.equal(codes[i], nearestRef(values[i], centroids), `value ${values[i]}`);
    const start = init === 'linear' ? linearInit(Math.min(...values), Math.max(...values), 16) : kmeansPlusPlusInit(values, 16, 3);
    const before = clusterInertia(values, start, assignNearest(values, start));
    assert.ok(clusterInertia(values, centroids, codes) < before);
  }
});

test('few distinct values come back exactly; k-means++ is repeatable by seed; bad input throws', () => {
  const values = Float32Array.from({ length: 1000 }, (_, i) => [-0.5, 0, 0.25][i % 3]);
  assert.deepEqual(Array.from(kmeans1d(values, { k: 4 }).centroids), [-0.5, 0, 0.25]);
  const w = weightLike(3000, 5);
  assert.deepEqual(kmeansPlusPlusInit(w, 8, 42), kmeansPlusPlusInit(w, 8, 42));
  assert.notDeepEqual(kmeansPlusPlusInit(w, 8, 42), kmeansPlusPlusInit(w, 8, 43));
  assert.throws(() => kmeans1d([1, Number.NaN], { k: 2 }), /not finite/);
  assert.throws(() => kmeans1d([1, 2], { k: 0 }), /k must be/);
  assert.throws(() => kmeans1d([1, 2], { k: 2, weights: [1] }), /1 weights for 2 values/);
});
