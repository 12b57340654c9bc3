// The slow, obvious GPTQ for tests (gptq.ts is the fast one): the inverse Hessian by Gauss-Jordan,
// downdated explicitly after every column; each column's rounding error spread over the columns
// after it at once with δw_j = -((w_k - q_k) / H⁻¹[k][k])·H⁻¹[k][j]. Same column order and block
// parameters as the fast one.
import { blockParameters, emptyBlocks, encodeValue, type GptqOptions, type GptqResult, sweepOrder } from './gptq.js';
import { dampedHessian } from './sparsegpt.js';
import { inverseRef } from './sparsegpt-ref.js';

export function gptqRef(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, options: GptqOptions): GptqResult {
  const blocks = emptyBlocks(rows, cols, options);
  const qmax = 2 ** options.bits - 1;
  const order = Array.from(sweepOrder(hessian, cols, options.actOrder ?? false));
  const w = weights.slice();
  let inv = inverseRef(dampedHessian(hessian, cols, options.damping ?? 0.01), cols);
  if (options.actOrder) for (let g = 0; g < blocks.blocksPerRow; g++) blockParameters(weights, rows, cols, g, options, blocks);
  const done = new Set<number>();
  let loss = 0;
  for (const k of order) {
    if (!options.actOrder && k % options.blockSize === 0) blockParameters(w, rows, cols, k / options.blockSize, options, blocks);
    const pivot = inv[k * cols + k];
    for (let r = 0; r < rows; r++) {
      const b = r * blocks.blocksPerRow + Math.floor(k / options.blockSize);
      const code = encodeValue(w[r * cols + k], blocks.scales[b], blocks.zeroPoints[b], qmax);
      blocks.codes[r * blocks.cols + k] = code;
      const q = (code - blocks.zeroPoints[b]) * blocks.scales[b];
      const e = w[r * cols + k] - q;
      loss += (e * e) / pivot / 2;
      w[r * cols + k] = q;
      for (let j = 0; j < cols; j++) if (j !== k && !done.has(j)) w[r * cols + j] -= (e / pivot) * inv[k * cols + j];
    }
    done.add(k);
    // Eliminate k from the inverse.
    const next = inv.slice();
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) next[i * cols + j] -= (inv[i * cols + k] * inv[k * cols + j]) / pivot;
    inv = next;
  }
  for (let r = 0; r < rows; r++) {
    for (let column = cols; column < blocks.cols; column++) {
      const b = r * blocks.blocksPerRow + Math.floor(column / options.blockSize);
      blocks.codes[r * blocks.cols + column] = encodeValue(0, blocks.scales[b], blocks.zeroPoints[b], qmax);
    }
  }
  return { blocks, weights: w, loss };
}
