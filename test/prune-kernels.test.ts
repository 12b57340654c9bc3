// Pruning kernels against their slow references (src/kernels/sparsity-ref.ts): magnitude masks
// per tensor and ranked globally (ties included), N:M masks along every axis, per-channel norms
// and gathers. Masks must agree exactly: a reproducible cut is part of the contract.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '../src/kernels/random.js';
import { axisNorms, gatherAxis, globalMagnitudeMasks, magnitudeMask, nmMask, prunedCount, zeroCount } from '../src/kernels/sparsity.js';
import { axisNormsRef, gatherAxisRef, magnitudeMasksRef, nmMaskRef } from '../src/kernels/sparsity-ref.js';

function randomValues(count: number, seed: number, levels?: number): Float32Array {
  const next = mulberry32(seed);
  // With `levels`, values repeat, so ties at the threshold are common.
  return Float32Array.from({ length: count }, () => (levels === undefined ? next() * 2 - 1 : Math.round((next() * 2 - 1) * levels) / levels));
}

const ones = (mask: Uint8Array) => mask.reduce((n, v) => n + v, 0);

test('magnitude masks equal the sorted reference, ties and all, per tensor and globally', () => {
  for (const [seed, levels] of [
    [1, undefined],
    [2, 4],
    [3, 1],
  ] as const) {
    const a = randomValues(1000, seed, levels);
    const b = randomValues(333, seed + 10, levels);
    for (const sparsity of [0, 0.1, 0.5, 0.8, 0.999]) {
      assert.deepEqual(magnitudeMask(a, sparsity), magnitudeMasksRef([a], sparsity)[0], `seed ${seed} sparsity ${sparsity}`);
      const fast = globalMagnitudeMasks([a, b], sparsity);
      const ref = magnitudeMasksRef([a, b], sparsity);
      assert.deepEqual(fast, ref, `global, seed ${seed} sparsity ${sparsity}`);
      assert.equal(ones(fast[0]) + ones(fast[1]), 1333 - prunedCount(1333, sparsity));
    }
  }
});

test('N:M masks equal the reference on every axis and keep exactly N of each M', () => {
  const dims = [8, 12, 3, 4];
  const values = randomValues(8 * 12 * 3 * 4, 7, 3);
  for (const [n, m] of [
    [2, 4],
    [4, 8],
    [1, 4],
  ]) {
    for (let axis = 0; axis < dims.length; axis++) {
      if (dims[axis] % m !== 0) {
        assert.throws(() => nmMask(values, dims, axis, n, m), /not a multiple of/);
        continue;
      }
      const mask = nmMask(values, dims, axis, n, m);
      assert.deepEqual(mask, nmMaskRef(values, dims, axis, n, m), `${n}:${m} axis ${axis}`);
      assert.equal(ones(mask), (values.length / m) * n);
    }
  }
});

test('axis norms and gathers equal the coordinate-by-coordinate reference', () => {
  const dims = [5, 6, 2, 3];
  const values = randomValues(5 * 6 * 2 * 3, 11);
  for (let axis = 0; axis < dims.length; axis++) {
    for (const p of [1, 2] as const) {
      const fast = axisNorms(values, dims, axis, p);
      const ref = axisNormsRef(values, dims, axis, p);
      for (let i = 0; i < fast.length; i++) assert.ok(Math.abs(fast[i] - ref[i]) <= 1e-9 * Math.max(1, ref[i]), `axis ${axis} p ${p} index ${i}`);
    }
    const keep = Array.from({ length: dims[axis] }, (_, i) => i).filter((i) => i % 2 === 0);
    assert.deepEqual(Array.from(gatherAxis(values, dims, axis, keep)), gatherAxisRef(values, dims, axis, keep), `gather axis ${axis}`);
  }
  assert.equal(zeroCount(new Float32Array([0, 1, -0, 2])), 2);
});
