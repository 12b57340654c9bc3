// SparseGPT (Frantar & Alistarh 2023): one-shot pruning of a layer y = W·x that keeps its outputs
// on calibration inputs. W is [rows, cols] (rows: outputs, cols: input features) and H = Σ xxᵀ over
// the calibration inputs (XᵀX, cols x cols). Columns are visited left to right (obs.ts); when a
// column's masked weights are zeroed, the error they leave is spread over the columns not yet
// visited with the Optimal Brain Surgeon update. The mask is chosen per block from w² / U[k][k]² (adaptive mask selection): unstructured, the
// smallest scores of the whole block; N:M, the M - N smallest of each row's run of M columns, taken
// when the run is reached (with the weights as updated so far). sparsegpt-ref.ts is the same
// algorithm written the slow, obvious way, downdating an explicit inverse after every column.
import { inverseUpperCholesky } from './linalg.js';
import { obsSweep } from './obs.js';
import { prunedCount } from './sparsity.js';

export interface OneShotTarget {
  /** Share of each block's weights removed (unstructured). */
  sparsity?: number;
  /** N kept of every M consecutive columns in each row (N:M); takes precedence over `sparsity`. */
  pattern?: { n: number; m: number };
}

export interface SparseGptOptions extends OneShotTarget {
  /** Columns per block (default 128). */
  blockSize?: number;
  /** Added to H's diagonal, as a share of its mean (default 0.01). */
  damping?: number;
}

export interface SparseGptResult {
  /** The updated weights, [rows, cols], pruned positions exactly 0. */
  weights: Float64Array;
  /** 1 kept, 0 pruned. */
  mask: Uint8Array;
  /** The OBS estimate of the added output error, Σ (w - q)² / U[k][k]² / 2 over pruned weights. */
  loss: number;
}

/**
 * H with a dampened diagonal, ready to invert. Features that never fire on the calibration data
 * (H[k][k] = 0) get a unit diagonal: next to real features' large diagonals their weights score
 * near zero and go first, but only as far as the mask allows (the reference implementation zeroes
 * them all, which adds sparsity the user did not ask for on inputs calibration did not cover).
 */
export function dampedHessian(hessian: Float64Array, cols: number, damping: number): Float64Array {
  const h = hessian.slice();
  let mean = 0;
  for (let k = 0; k < cols; k++) mean += h[k * cols + k];
  mean /= Math.max(1, cols);
  for (let k = 0; k < cols; k++) if (h[k * cols + k] === 0) h[k * cols + k] = 1;
  const add = damping * (mean > 0 ? mean : 1);
  for (let k = 0; k < cols; k++) h[k * cols + k] += add;
  return h;
}

/** Prunes `weights` ([rows, cols], not changed) given the calibration Hessian ([cols, cols]). */
export function sparseGpt(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, options: SparseGptOptions): SparseGptResult {
  const pattern = options.pattern;
  if (pattern !== undefined && cols % pattern.m !== 0) throw new Error(`SparseGPT: ${cols} columns are not a multiple of ${pattern.m}`);
  const w = weights.slice();
  const u = inverseUpperCholesky(dampedHessian(hessian, cols, options.damping ?? 0.01), cols);
  const mask = new Uint8Array(rows * cols).fill(1);
  const loss = obsSweep(w, u, rows, cols, options.blockSize ?? 128, {
    beforeBlock: (start, end) => {
      if (pattern === undefined) blockMask(w, u, mask, rows, cols, start, end, options.sparsity ?? 0);
    },
    beforeColumn: (k) => {
      if (pattern !== undefined && k % pattern.m === 0) runMask(w, u, mask, rows, cols, k, pattern);
    },
    value: (r, k, current) => (mask[r * cols + k] === 1 ? current : 0),
  });
  return { weights: w, mask, loss };
}

/** The ranks of `scores` smallest first (ties: lower position first). */
function smallestFirst(scores: Float64Array): Uint32Array {
  const order = new Uint32Array(scores.length).map((_, i) => i);
  return order.sort((a, b) => scores[a] - scores[b] || a - b);
}

/** Unstructured mask of columns [start, end): the smallest w² / U[k][k]² of the whole block go. */
function blockMask(w: Float64Array, u: Float64Array, mask: Uint8Array, rows: number, cols: number, start: number, end: number, sparsity: number): void {
  const width = end - start;
  const scores = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < width; j++) {
      const d = u[(start + j) * cols + start + j];
      const v = w[r * cols + start + j];
      scores[r * width + j] = (v * v) / (d * d);
    }
  }
  const order = smallestFirst(scores);
  const count = prunedCount(scores.length, sparsity);
  for (let i = 0; i < count; i++) {
    const r = Math.floor(order[i] / width);
    mask[r * cols + start + (order[i] % width)] = 0;
  }
}

/** N:M mask of columns [k, k + m) of every row, from the weights as updated so far. */
function runMask(w: Float64Array, u: Float64Array, mask: Uint8Array, rows: number, cols: number, k: number, pattern: { n: number; m: number }): void {
  const scores = new Float64Array(pattern.m);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < pattern.m; j++) {
      const d = u[(k + j) * cols + k + j];
      const v = w[r * cols + k + j];
      scores[j] = (v * v) / (d * d);
    }
    const order = smallestFirst(scores);
    for (let i = 0; i < pattern.m - pattern.n; i++) mask[r * cols + k + order[i]] = 0;
  }
}
