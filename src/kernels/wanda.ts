// Wanda (Sun et al. 2023): prune by |W_ij|·‖X_j‖, the weight's magnitude times the L2 norm of the
// input feature it multiplies over the calibration data, compared within each output row (each
// output loses the same share of its inputs), with no weight update. W is [rows, cols] (rows:
// outputs, cols: input features). N:M: the M - N smallest scores of each run of M columns go.
// Reference: wandaMaskRef in sparsity-ref.ts.
import type { OneShotTarget } from './sparsegpt.js';
import { prunedCount, type Values } from './sparsity.js';

/** The Wanda mask (1 kept, 0 pruned) of `weights` [rows, cols] given each column's input norm. */
export function wandaMask(weights: Values, rows: number, cols: number, norms: Values, target: OneShotTarget): Uint8Array {
  const pattern = target.pattern;
  if (pattern !== undefined && cols % pattern.m !== 0) throw new Error(`Wanda: ${cols} columns are not a multiple of ${pattern.m}`);
  const mask = new Uint8Array(rows * cols).fill(1);
  const group = pattern?.m ?? cols;
  const drop = pattern === undefined ? prunedCount(cols, target.sparsity ?? 0) : pattern.m - pattern.n;
  const scores = new Float64Array(group);
  const order = new Uint32Array(group);
  for (let r = 0; r < rows; r++) {
    for (let start = 0; start < cols; start += group) {
      for (let j = 0; j < group; j++) {
        scores[j] = Math.abs(weights[r * cols + start + j]) * norms[start + j];
        order[j] = j;
      }
      order.sort((a, b) => scores[a] - scores[b] || a - b);
      for (let i = 0; i < drop; i++) mask[r * cols + start + order[i]] = 0;
    }
  }
  return mask;
}
