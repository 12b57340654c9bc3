// AWQ's search against its slow reference (error measured on the calibration rows themselves):
// the same exponent and scales, errors equal within float rounding; α = 0 is round-to-nearest; the
// blocks of W·diag(s) decode to W·diag(s) within a block's step and, with salient features (a few
// input features 10-30x larger than the rest), leave less output error than round-to-nearest on
// inputs the search never saw, at 4 and 2 bits, padded last block included; the clipping search
// picks the reference's factor per block and lowers the error again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { awqScales, awqSearch, clipSearch, featureMagnitudes, outputError, scaledBlocks } from '../src/kernels/awq.js';
import { awqSearchRef } from '../src/kernels/awq-ref.js';
import { mulberry32 } from '../src/kernels/random.js';

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

/** Activations whose features differ in size, every 9th one salient (as in LLMs and BERTs). */
function inputs(n: number, cols: number, seed: number): Float64Array {
  const fixed = mulberry32(cols);
  const size = Float64Array.from({ length: cols }, (_, k) => (k % 9 === 0 ? 10 + 20 * fixed() : 0.5 + fixed()));
  const next = mulberry32(seed);
  return Float64Array.from({ length: n * cols }, (_, i) => size[i % cols] * gaussian(next));
}

function gram(x: Float64Array, n: number, cols: number): Float64Array {
  const h = new Float64Array(cols * cols);
  for (let s = 0; s < n; s++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] += x[s * cols + i] * x[s * cols + j];
  return h;
}

function weights(rows: number, cols: number, seed: number): Float64Array {
  const next = mulberry32(seed);
  return Float64Array.from({ length: rows * cols }, () => 0.1 * gaussian(next));
}

for (const [bits, blockSize, symmetric, cols] of [
  [4, 32, true, 96],
  [4, 16, false, 72],
  [2, 16, false, 64],
] as const) {
  test(`awq ${bits}-bit block ${blockSize} ${symmetric ? 'sym' : 'asym'}, ${cols} features: search equals its reference, beats round-to-nearest on held-out inputs`, () => {
    const rows = 24;
    const n = 256;
    const o = { bits, blockSize, symmetric } as const;
    const w = weights(rows, cols, 7);
    const x = inputs(n, cols, 1);
    const h = gram(x, n, cols);
    const fast = awqSearch(w, rows, cols, h, o);
    const ref = awqSearchRef(w, rows, cols, x, n, o);
    assert.equal(fast.alpha, ref.alpha);
    for (let k = 0; k < cols; k++) assert.ok(Math.abs(fast.scales[k] - ref.scales[k]) <= 1e-9 * Math.max(1, ref.scales[k]));
    assert.ok(Math.abs(fast.error - ref.error) <= 1e-6 * ref.error, `${fast.error} vs ${ref.error}`);
    assert.ok(Math.abs(fast.rtnError - ref.rtnError) <= 1e-6 * ref.rtnError);
    assert.ok(fast.alpha > 0 && fast.error < fast.rtnError, JSON.stringify({ alpha: fast.alpha, error: fast.error, rtn: fast.rtnError }));
    // The clipping search (per block, then on whole rows) picks the same factors, and lowers the error further.
    assert.deepEqual(fast.clip, ref.clip);
    assert.ok(Math.abs(fast.clippedError - ref.clippedError) <= 1e-6 * ref.clippedError, `${fast.clippedError} vs ${ref.clippedError}`);
    assert.ok(fast.clippedError < fast.error && fast.clip.some((c) => c < 1));
    // Whole rows (cross-block terms) end below the per-block choice alone.
    const perBlock = clipSearch(w, rows, cols, h, fast.scales, o);
    const perBlockError = outputError(w, scaledBlocks(w, rows, cols, fast.scales, o, (b) => perBlock[b]).weights, rows, cols, h);
    assert.ok(fast.clippedError < perBlockError, `rows ${fast.clippedError} vs blocks ${perBlockError}`);

    // α = 0 is round to nearest: scales all 1.
    assert.ok(awqScales(featureMagnitudes(h, cols), 0).every((s) => s === 1));
    // The blocks decode to W·diag(s) within a step (half of one, but for the end of a symmetric range
    // with one code fewer on the positive side), padded to whole blocks.
    const { blocks, weights: back } = scaledBlocks(w, rows, cols, fast.scales, o);
    const clipped = scaledBlocks(w, rows, cols, fast.scales, o, (b) => fast.clip[b]).weights;
    assert.equal(blocks.cols, Math.ceil(cols / blockSize) * blockSize);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < cols; k++) {
        const step = Math.abs(blocks.scales[r * blocks.blocksPerRow + Math.floor(k / blockSize)]);
        assert.ok(Math.abs(back[r * cols + k] - w[r * cols + k]) * fast.scales[k] <= step * (symmetric ? 1.0001 : 0.5001) + 1e-12);
      }
    }
    // On inputs the search never saw: less output error than round-to-nearest.
    const held = gram(inputs(n, cols, 2), n, cols);
    const rtn = scaledBlocks(w, rows, cols, undefined, o).weights;
    const awqHeld = outputError(w, back, rows, cols, held);
    const clippedHeld = outputError(w, clipped, rows, cols, held);
    const rtnHeld = outputError(w, rtn, rows, cols, held);
    assert.ok(awqHeld < 0.9 * rtnHeld, `awq ${awqHeld} vs rtn ${rtnHeld}`);
    assert.ok(clippedHeld < awqHeld, `clipped ${clippedHeld} vs ${awqHeld}`);
  });
}
