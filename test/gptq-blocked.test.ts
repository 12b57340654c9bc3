// The blocked GPTQ (kernels/gptq-blocked.ts: Cholesky of the reversed Hessian, left-looking block
// updates on a matrix engine) against gptq.ts on small layers: the same codes (but for a few
// rounding ties of float32 sums), block parameters and loss, with the products in JS loops and in
// onnxruntime; and the blocked Cholesky against linalg.ts's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { choleskyBlocked } from '../src/kernels/cholesky-blocked.js';
import { gptq } from '../src/kernels/gptq.js';
import { gptqBlocked } from '../src/kernels/gptq-blocked.js';
import { cholesky } from '../src/kernels/linalg.js';
import { jsMatrixProducts, type MatrixProducts } from '../src/kernels/matrix-products.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { OrtMatrixProducts } from '../src/runtime/ort-matrix-products.js';

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

/** X [n, cols] with correlated features of different scales, and H = XᵀX. */
function hessian(n: number, cols: number, seed: number): Float64Array {
  const next = mulberry32(seed);
  const factors = 6;
  const mixing = Float64Array.from({ length: factors * cols }, () => gaussian(next));
  const x = new Float64Array(n * cols);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: factors }, () => gaussian(next));
    for (let j = 0; j < cols; j++) {
      let v = 0.3 * gaussian(next);
      for (let f = 0; f < factors; f++) v += z[f] * mixing[f * cols + j];
      x[i * cols + j] = (j % 5 === 0 ? 3 : 1) * v;
    }
  }
  const h = new Float64Array(cols * cols);
  for (let i = 0; i < n; i++) for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) h[a * cols + b] += x[i * cols + a] * x[i * cols + b];
  return h;
}

const engines: [string, () => Promise<MatrixProducts & { release?: () => Promise<void> }>][] = [
  ['JS loops', async () => jsMatrixProducts],
  ['onnxruntime', async () => OrtMatrixProducts.create(nodeOrt, { threads: 1 })],
];

for (const [engine, create] of engines) {
  test(`blocked Cholesky equals linalg.ts's (${engine})`, async () => {
    const products = await create();
    try {
      const n = 150;
      const h = hessian(200, n, 3);
      for (let k = 0; k < n; k++) h[k * n + k] += 1;
      const expected = cholesky(h, n);
      const got = await choleskyBlocked(h, n, products, 64);
      let worst = 0;
      let largest = 0;
      for (let i = 0; i < n * n; i++) {
        worst = Math.max(worst, Math.abs(got[i] - expected[i]));
        largest = Math.max(largest, Math.abs(expected[i]));
      }
      assert.ok(worst < 1e-4 * largest, `max difference ${worst} against entries up to ${largest}`);
    } finally {
      await products.release?.();
    }
  });

  for (const [bits, blockSize, actOrder] of [[4, 32, false], [2, 16, false], [4, 32, true]] as const) {
    test(`blocked GPTQ equals gptq.ts: int${bits} g${blockSize}${actOrder ? ' act-order' : ''} (${engine})`, async () => {
      const products = await create();
      try {
        const rows = 24;
        const cols = 300; // two sweep blocks and a partial one, and a padded last group
        const h = hessian(400, cols, 7);
        const next = mulberry32(11);
        const w = Float64Array.from({ length: rows * cols }, () => gaussian(next) * 0.1);
        const wt = new Float32Array(cols * rows);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) wt[c * rows + r] = w[r * cols + c];
        // The reference on the float32 weights the blocked one sees.
        const w32 = Float64Array.from({ length: wt.length }, (_, i) => wt[(i % cols) * rows + Math.floor(i / cols)]);
        const options = { bits, blockSize, symmetric: false, actOrder, sweepBlock: 128 };
        const expected = gptq(w32, rows, cols, h, options);
        const got = await gptqBlocked(wt, rows, cols, h, options, products);
        let differentCodes = 0;
        for (let i = 0; i < expected.blocks.codes.length; i++) if (expected.blocks.codes[i] !== got.blocks.codes[i]) differentCodes++;
        // A float32 sum may land a value on the other side of a rounding boundary; rarely.
        assert.ok(differentCodes <= expected.blocks.codes.length * 0.002, `${differentCodes} of ${expected.blocks.codes.length} codes differ`);
        let worstScale = 0;
        for (let i = 0; i < expected.blocks.scales.length; i++) worstScale = Math.max(worstScale, Math.abs(expected.blocks.scales[i] - got.blocks.scales[i]) / Math.abs(expected.blocks.scales[i]));
        assert.ok(worstScale < 1e-3, `scales differ by up to ${worstScale} (relative)`);
        assert.ok(Math.abs(got.loss - expected.loss) < 1e-3 * expected.loss, `loss ${got.loss} vs ${expected.loss}`);
        // The returned weights are what the codes decode to.
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) {
            const b = r * got.blocks.blocksPerRow + Math.floor(c / blockSize);
            const decoded = (got.blocks.codes[r * got.blocks.cols + c] - got.blocks.zeroPoints[b]) * got.blocks.scales[b];
            assert.ok(Math.abs(got.weightsT[c * rows + r] - decoded) < 1e-6, `(${r}, ${c})`);
          }
        }
      } finally {
        await products.release?.();
      }
    });
  }
}
