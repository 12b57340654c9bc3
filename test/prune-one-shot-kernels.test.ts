// One-shot pruning kernels against their slow references: SparseGPT (blocked, through the Cholesky
// factor of the inverse Hessian) against the explicit-inverse version, Wanda's mask against a sort,
// and the linear algebra under them. On inputs with a real Hessian, SparseGPT must leave a smaller
// output error than Wanda, and Wanda smaller than magnitude, at the same sparsity.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cholesky, invertSpd, inverseUpperCholesky } from '../src/kernels/linalg.js';
import { mulberry32 } from '../src/kernels/random.js';
import { sparseGpt } from '../src/kernels/sparsegpt.js';
import { inverseRef, sparseGptRef } from '../src/kernels/sparsegpt-ref.js';
import { magnitudeMask } from '../src/kernels/sparsity.js';
import { wandaMaskRef } from '../src/kernels/sparsity-ref.js';
import { wandaMask } from '../src/kernels/wanda.js';
import { gaussian, gram, outputError } from './helpers/layer-inputs.js';

/** Calibration inputs X [n, cols] with features of very different scales and some correlation (as activations have). */
function inputs(n: number, cols: number, seed: number): Float64Array {
  const next = mulberry32(seed);
  const scale = Float64Array.from({ length: cols }, (_, j) => (j % 7 === 0 ? 8 : 0.2 + next()));
  const x = new Float64Array(n * cols);
  for (let i = 0; i < n; i++) {
    const shared = gaussian(next);
    for (let j = 0; j < cols; j++) x[i * cols + j] = scale[j] * (gaussian(next) + 0.5 * shared);
  }
  return x;
}

function weights(rows: number, cols: number, seed: number): Float64Array {
  const next = mulberry32(seed);
  return Float64Array.from({ length: rows * cols }, () => gaussian(next));
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('Cholesky, the SPD inverse and the upper factor of the inverse agree with Gauss-Jordan', () => {
  const n = 24;
  const h = gram(inputs(200, n, 1), 200, n);
  const l = cholesky(h, n);
  const back = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) back[i * n + j] += l[i * n + k] * l[j * n + k];
  assert.ok(maxDiff(back, h) < 1e-8 * Math.max(...h), 'L·Lᵀ = H');
  const inv = invertSpd(h, n);
  const ref = inverseRef(h, n);
  const scale = Math.max(...ref.map(Math.abs));
  assert.ok(maxDiff(inv, ref) < 1e-9 * scale, `inverse differs by ${maxDiff(inv, ref)}`);
  const u = inverseUpperCholesky(h, n);
  const uu = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) uu[i * n + j] += u[k * n + i] * u[k * n + j];
  assert.ok(maxDiff(uu, ref) < 1e-9 * scale, 'Uᵀ·U = H⁻¹');
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(u[i * n + j], 0, 'U is upper-triangular');
  assert.throws(() => cholesky(new Float64Array([1, 2, 2, 1]), 2), /not positive definite/);
});

test('SparseGPT equals its explicit-inverse reference: unstructured over several blocks, and N:M', () => {
  const rows = 12;
  const cols = 40;
  const x = inputs(300, cols, 2);
  const h = gram(x, 300, cols);
  // A feature that never fires on the calibration data.
  for (let j = 0; j < cols; j++) {
    h[5 * cols + j] = 0;
    h[j * cols + 5] = 0;
  }
  const w = weights(rows, cols, 3);
  for (const options of [{ sparsity: 0.5, blockSize: 16 }, { sparsity: 0.3, blockSize: 128 }, { pattern: { n: 2, m: 4 }, blockSize: 16 }, { pattern: { n: 4, m: 8 }, blockSize: 8 }]) {
    const fast = sparseGpt(w, rows, cols, h, options);
    const ref = sparseGptRef(w, rows, cols, h, options);
    const what = JSON.stringify(options);
    assert.deepEqual(fast.mask, ref.mask, `${what}: same mask`);
    assert.ok(maxDiff(fast.weights, ref.weights) < 1e-9, `${what}: weights differ by ${maxDiff(fast.weights, ref.weights)}`);
    assert.ok(Math.abs(fast.loss - ref.loss) < 1e-9 * Math.max(1, ref.loss), `${what}: loss ${fast.loss} vs ${ref.loss}`);
    for (let i = 0; i < w.length; i++) if (fast.mask[i] === 0) assert.equal(fast.weights[i], 0);
    // Its weights score near zero, so they go first wherever the mask has room (not beyond it).
    const deadPruned = Array.from({ length: rows }, (_, r) => fast.mask[r * cols + 5]).filter((m) => m === 0).length;
    assert.ok(deadPruned >= rows / 2, `${what}: the dead feature is pruned in ${deadPruned} of ${rows} rows`);
    const kept = fast.mask.reduce((a, v) => a + v, 0);
    if (options.pattern !== undefined) {
      const { n, m } = options.pattern;
      for (let start = 0; start < w.length; start += m) assert.equal(fast.mask.slice(start, start + m).reduce((a, v) => a + v, 0), n, 'N of every M kept');
    } else assert.equal(kept, w.length - Math.round(w.length * (options.sparsity ?? 0)), 'the share asked for (every block is a multiple of 1/sparsity here)');
  }
});

test('Wanda masks equal the sorted reference; on real inputs SparseGPT < Wanda < magnitude in output error', () => {
  const rows = 32;
  const cols = 64;
  const n = 400;
  const x = inputs(n, cols, 4);
  const h = gram(x, n, cols);
  const norms = Float64Array.from({ length: cols }, (_, j) => Math.sqrt(h[j * cols + j]));
  const w = weights(rows, cols, 5);
  for (const target of [{ sparsity: 0.5 }, { sparsity: 0.37 }, { pattern: { n: 2, m: 4 } }]) {
    const mask = wandaMask(w, rows, cols, norms, target);
    assert.deepEqual(mask, wandaMaskRef(w, rows, cols, norms, target), JSON.stringify(target));
    for (let r = 0; r < rows; r++) {
      const kept = mask.slice(r * cols, (r + 1) * cols).reduce((a, v) => a + v, 0);
      assert.equal(kept, target.pattern === undefined ? cols - Math.round(cols * target.sparsity) : cols / 2, 'each row loses the same share');
    }
  }
  for (const target of [{ sparsity: 0.5 }, { pattern: { n: 2, m: 4 } }]) {
    const apply = (mask: Uint8Array) => w.map((v, i) => (mask[i] === 1 ? v : 0));
    const magnitude = target.pattern === undefined ? magnitudeMask(w, 0.5) : wandaMask(w, rows, cols, new Float64Array(cols).fill(1), target);
    const errors = {
      magnitude: outputError(w, apply(magnitude), x, n, rows, cols),
      wanda: outputError(w, apply(wandaMask(w, rows, cols, norms, target)), x, n, rows, cols),
      sparsegpt: outputError(w, sparseGpt(w, rows, cols, h, target).weights, x, n, rows, cols),
    };
    assert.ok(errors.sparsegpt < errors.wanda && errors.wanda < errors.magnitude, `${JSON.stringify(target)}: ${JSON.stringify(errors)}`);
  }
});
