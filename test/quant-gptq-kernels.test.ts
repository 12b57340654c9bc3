// GPTQ against its slow reference (explicit inverse downdates, no blocks), and against
// round-to-nearest: same codes and block parameters from both implementations, codes that decode
// to the returned weights, the layout MatMulNBits reads (padded last block), and less output error
// than round-to-nearest on inputs the Hessian never saw, at 4 and 2 bits, with and without act-order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gptq } from '../src/kernels/gptq.js';
import { gptqRef } from '../src/kernels/gptq-ref.js';
import { quantizeBlocks } from '../src/kernels/quantize-blocks.js';
import { mulberry32 } from '../src/kernels/random.js';
import { factorInputs, gaussian, gram, outputError } from './helpers/layer-inputs.js';

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('GPTQ equals its explicit-inverse reference, and its codes decode to its weights', () => {
  const rows = 10;
  const cols = 40;
  const h = gram(factorInputs(300, cols, 1), 300, cols);
  const next = mulberry32(2);
  const w = Float64Array.from({ length: rows * cols }, () => gaussian(next));
  for (const options of [
    { bits: 4, blockSize: 16, symmetric: true, sweepBlock: 8 },
    { bits: 4, blockSize: 16, symmetric: false, sweepBlock: 128 },
    { bits: 2, blockSize: 16, symmetric: false, sweepBlock: 16 },
    { bits: 4, blockSize: 16, symmetric: true, actOrder: true, sweepBlock: 8 },
    { bits: 8, blockSize: 32, symmetric: true },
  ] as const) {
    const what = JSON.stringify(options);
    const fast = gptq(w, rows, cols, h, options);
    const ref = gptqRef(w, rows, cols, h, options);
    assert.deepEqual(fast.blocks.scales, ref.blocks.scales, `${what}: scales`);
    assert.deepEqual(fast.blocks.zeroPoints, ref.blocks.zeroPoints, `${what}: zero points`);
    assert.deepEqual(fast.blocks.codes, ref.blocks.codes, `${what}: codes`);
    assert.ok(maxDiff(fast.weights, ref.weights) < 1e-9, `${what}: weights`);
    assert.ok(Math.abs(fast.loss - ref.loss) < 1e-9 * Math.max(1, ref.loss), `${what}: loss ${fast.loss} vs ${ref.loss}`);
    assert.equal(fast.blocks.cols, Math.ceil(cols / options.blockSize) * options.blockSize, 'K padded to whole blocks');
    const b = fast.blocks;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const k = r * b.blocksPerRow + Math.floor(c / b.blockSize);
        assert.ok(Math.abs((b.codes[r * b.cols + c] - b.zeroPoints[k]) * b.scales[k] - fast.weights[r * cols + c]) < 1e-12);
      }
      for (let c = cols; c < b.cols; c++) {
        const k = r * b.blocksPerRow + Math.floor(c / b.blockSize);
        assert.ok((b.codes[r * b.cols + c] - b.zeroPoints[k]) * b.scales[k] === 0, 'padding decodes to 0');
      }
    }
  }
});

test('GPTQ leaves less output error than round-to-nearest on new inputs (4 and 2 bits, act-order or not)', () => {
  const rows = 24;
  const cols = 64;
  const n = 400;
  const h = gram(factorInputs(n, cols, 3), n, cols);
  const heldOut = factorInputs(n, cols, 4);
  const next = mulberry32(5);
  const w = Float64Array.from({ length: rows * cols }, () => gaussian(next));
  for (const options of [
    { bits: 4, blockSize: 32, symmetric: true },
    { bits: 4, blockSize: 16, symmetric: false, actOrder: true },
    { bits: 2, blockSize: 16, symmetric: false },
  ] as const) {
    const rtn = quantizeBlocks(Float32Array.from(w), rows, cols, options);
    const rtnWeights = Float64Array.from({ length: rows * cols }, (_, i) => (rtn.codes[i] - rtn.zeroPoints[Math.floor(i / options.blockSize)]) * rtn.scales[Math.floor(i / options.blockSize)]);
    const errors = { rtn: outputError(w, rtnWeights, heldOut, n, rows, cols), gptq: outputError(w, gptq(w, rows, cols, h, options).weights, heldOut, n, rows, cols) };
    assert.ok(errors.gptq < 0.5 * errors.rtn, `${JSON.stringify(options)}: ${JSON.stringify(errors)}`);
  }
});
