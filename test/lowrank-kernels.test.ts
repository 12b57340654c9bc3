// The SVD kernels: the Jacobi reference against matrices built from known singular values, and
// the randomized SVD (plain JS products and onnxruntime products) against the reference on
// matrices of known low rank plus noise: singular values within 1e-4 relative, reconstruction
// error equal to the energy of the dropped singular values, orthonormal factors; the energy
// search returns the exact rank; the rank choice for a parameter budget.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ranksForRatio, largestSavingRank } from '../src/methods/lowrank/ranks.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { OrtProducts } from '../src/runtime/ort-products.js';
import { reconstructRef, type Svd, svdJacobi } from '../src/kernels/svd-ref.js';
import { gaussian, jsOperator, matmul, orthonormalize, randomizedSvd, randomizedSvdToEnergy, rankForEnergy, sumOfSquares } from '../src/kernels/svd.js';

let products: OrtProducts | undefined;
after(async () => products?.release());
async function ortProducts(): Promise<OrtProducts> {
  products ??= await OrtProducts.create(nodeOrt, { threads: 1 });
  return products;
}

/** U diag(s) Vᵀ with random orthonormal U [m, k], V [n, k]. */
function withSingularValues(m: number, n: number, s: number[], seed: number): Float64Array {
  const k = s.length;
  const u = orthonormalize(gaussian(m * k, seed), m, k);
  const v = orthonormalize(gaussian(n * k, seed + 1), n, k);
  const us = Float64Array.from(u, (x, i) => x * s[i % k]);
  const vt = new Float64Array(k * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) vt[j * n + i] = v[i * k + j];
  return matmul(us, m, k, vt, n);
}

/** A rank-r matrix with singular values 100, 90, ... plus Gaussian noise of standard deviation `noise`. */
function lowRankPlusNoise(m: number, n: number, r: number, noise: number, seed: number): Float64Array {
  const a = withSingularValues(m, n, Array.from({ length: r }, (_, i) => 100 - (90 * i) / r), seed);
  const e = gaussian(m * n, seed + 7);
  return a.map((x, i) => x + noise * e[i]);
}

function assertOrthonormal(x: Float64Array, rows: number, k: number, tolerance: number, what: string): void {
  let worst = 0;
  for (let a = 0; a < k; a++) {
    for (let b = a; b < k; b++) {
      let dot = 0;
      for (let i = 0; i < rows; i++) dot += x[i * k + a] * x[i * k + b];
      worst = Math.max(worst, Math.abs(dot - (a === b ? 1 : 0)));
    }
  }
  assert.ok(worst <= tolerance, `${what}: |XᵀX - I| = ${worst}`);
}

function squaredError(a: Float64Array, svd: Svd, rank: number): number {
  const approx = reconstructRef(svd, rank);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - approx[i]) ** 2;
  return sum;
}

test('Jacobi SVD recovers known singular values, reconstructs exactly, and has orthonormal factors (tall, wide, rank-deficient)', () => {
  for (const [m, n, s] of [
    [40, 25, Array.from({ length: 25 }, (_, i) => 2 ** -i * 50)],
    [20, 60, Array.from({ length: 20 }, (_, i) => 20 - i)],
    [30, 30, [9, 4, 1, 0.5]],
  ] as const) {
    const a = withSingularValues(m, n, [...s], m + n);
    const svd = svdJacobi(a, m, n);
    assert.equal(svd.k, Math.min(m, n));
    for (let i = 0; i < svd.k; i++) {
      const expected = s[i] ?? 0;
      assert.ok(Math.abs(svd.s[i] - expected) <= 1e-12 * s[0], `${m}x${n} σ${i} ${svd.s[i]} vs ${expected}`);
      if (i > 0) assert.ok(svd.s[i] <= svd.s[i - 1], 'descending');
    }
    assert.ok(Math.sqrt(squaredError(a, svd, svd.k)) <= 1e-12 * s[0], `${m}x${n} reconstruction`);
    const nonzero = s.length;
    assertOrthonormal(svd.u.filter((_, i) => i % svd.k < nonzero), m, nonzero, 1e-12, `${m}x${n} U`);
    assertOrthonormal(svd.v.filter((_, i) => i % svd.k < nonzero), n, nonzero, 1e-12, `${m}x${n} V`);
  }
});

test('randomized SVD agrees with Jacobi on low rank + noise (σ within 1e-4, error = dropped energy, orthonormal), JS and onnxruntime products', async () => {
  const ort = await ortProducts();
  for (const [m, n, r] of [
    [120, 360, 16],
    [300, 80, 24],
    [784, 256, 40],
  ] as const) {
    const a = lowRankPlusNoise(m, n, r, 0.05, m);
    const exact = svdJacobi(a, m, n);
    for (const [engine, operator] of [
      ['js', jsOperator(a, m, n)],
      ['ort', ort.operator(a, m, n)],
    ] as const) {
      const svd = await randomizedSvd(operator, r, { seed: 1 });
      assert.equal(svd.k, r);
      let worst = 0;
      for (let i = 0; i < r; i++) worst = Math.max(worst, Math.abs(svd.s[i] - exact.s[i]) / exact.s[i]);
      assert.ok(worst <= 1e-4, `${engine} ${m}x${n}: σ relative error ${worst}`);
      // ‖A − U S Vᵀ‖² = ‖A‖² − Σσ² exactly for the sketched factors, ≈ the exact tail Σ_{i≥r} σ_i².
      const dropped = exact.s.slice(r).reduce((sum, x) => sum + x * x, 0);
      const error = squaredError(a, svd, r);
      const identity = sumOfSquares(a) - sumOfSquares(svd.s);
      assert.ok(Math.abs(error - identity) <= 1e-9 * sumOfSquares(a), `${engine} ${m}x${n}: error ${error} vs ‖A‖² − Σσ² ${identity}`);
      assert.ok(Math.abs(error - dropped) / dropped <= 1e-3, `${engine} ${m}x${n}: error ${error} vs dropped energy ${dropped}`);
      assertOrthonormal(svd.u, m, r, 1e-10, `${engine} ${m}x${n} U`);
      assertOrthonormal(svd.v, n, r, 1e-10, `${engine} ${m}x${n} V`);
    }
  }
});

test('a sketch as wide as the matrix is an exact SVD; the energy search finds the exact rank', async () => {
  const m = 90;
  const n = 50;
  const a = withSingularValues(m, n, Array.from({ length: 50 }, (_, i) => Math.exp(-i / 8)), 3);
  const exact = svdJacobi(a, m, n);
  const full = await randomizedSvd(jsOperator(a, m, n), 50);
  for (let i = 0; i < 50; i++) assert.ok(Math.abs(full.s[i] - exact.s[i]) <= 1e-12, `σ${i}`);
  const total = sumOfSquares(a);
  for (const share of [0.5, 0.9, 0.99, 0.999, 1]) {
    const expected = rankForEnergy(exact.s, share, total);
    const found = await randomizedSvdToEnergy(jsOperator(a, m, n), share, total, { start: 4 });
    assert.equal(found.rank, expected, `share ${share}`);
    assert.ok(sumOfSquares(found.svd.s) >= share * total * (1 - 1e-12));
  }
  const capped = await randomizedSvdToEnergy(jsOperator(a, m, n), 0.999, total, { start: 4, maxRank: 10 });
  assert.equal(capped.rank, undefined, 'beyond maxRank');
});

test('ranks for a parameter budget: least energy per parameter saved, budget met, savings only', () => {
  assert.equal(largestSavingRank(784, 256), 192);
  assert.equal(largestSavingRank(10, 128), 9);
  assert.equal(largestSavingRank(1, 5), 0);
  // Layer 0 has a fast-decaying spectrum (cheap to cut), layer 1 a flat one (dear).
  const fast = Float64Array.from({ length: 40 }, (_, i) => Math.exp(-i / 3));
  const flat = Float64Array.from({ length: 40 }, () => 1);
  const candidates = [
    { rows: 100, cols: 40, s: fast, total: sumOfSquares(fast) },
    { rows: 100, cols: 40, s: flat, total: sumOfSquares(flat) },
  ];
  const before = 2 * 100 * 40 + 500;
  const choice = ranksForRatio(candidates, before, 0.7);
  assert.ok(choice.reached);
  assert.ok(choice.parameters <= 0.7 * before, `${choice.parameters}`);
  assert.equal(choice.ranks[1], undefined, 'the flat layer stays');
  assert.ok((choice.ranks[0] as number) < largestSavingRank(100, 40));
  // The budget is met as closely as one rank step allows (one more rank would miss it).
  assert.ok(choice.parameters + 140 > 0.7 * before);
  const tight = ranksForRatio(candidates, before, 0.05);
  assert.equal(tight.reached, false);
  assert.deepEqual(tight.ranks, [1, 1]);
});
