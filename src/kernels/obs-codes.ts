// Codes for fixed codebooks chosen the GPTQ way (Frantar et al. 2023; GPTVQ, van Baalen et al.
// 2024, does the same for vector codebooks): a layer y = W·x, W [rows, cols], each row with its
// own sorted list of centroids. Nearest-centroid codes minimise the error of the weights; these
// minimise the error of the outputs on calibration inputs (H = Σ xxᵀ). Columns are visited in
// order, each weight takes the centroid nearest to its value as updated so far, and the rounding
// error is spread over the columns not visited yet (obs.ts), so later weights absorb it.
// obs-codes-ref.ts is the same algorithm with an explicit inverse, for tests.
import { inverseUpperCholesky } from './linalg.js';
import { sweepOrder } from './gptq.js';
import { obsSweep } from './obs.js';
import { dampedHessian } from './sparsegpt.js';

export interface ObsCodesOptions {
  /** Share of the mean diagonal of H added to it (default 0.01). */
  damping?: number;
  /** Columns per sweep block (default 128). */
  sweepBlock?: number;
  /** Visit the most-used features (largest H diagonal) first, as GPTQ's act-order (default false). */
  actOrder?: boolean;
}

export interface ObsCodesResult {
  /** [rows, cols]: every value one of its row's centroids. */
  weights: Float64Array;
  /** OBS estimate of the output error added. */
  loss: number;
}

/** The centroid of `centroids` (ascending) nearest to `value`: the lower one on a tie. */
export function nearestCentroid(value: number, centroids: ArrayLike<number>): number {
  let lo = 0;
  let hi = centroids.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    // The nearest is at or before mid when value lies at or below mid's midpoint with its successor.
    if (value <= (centroids[mid] + centroids[mid + 1]) / 2) hi = mid;
    else lo = mid + 1;
  }
  return centroids[lo];
}

/**
 * Assigns every weight of `weights` ([rows, cols], not changed) a centroid of its row
 * (`centroidsOfRow(r)`, ascending), given the calibration Hessian ([cols, cols]). Weights where
 * `fixed` is 1 keep their value exactly (pruned zeros) and spread no error.
 */
export function obsCodes(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, centroidsOfRow: (r: number) => ArrayLike<number>, options: ObsCodesOptions = {}, fixed?: Uint8Array): ObsCodesResult {
  // The sweep runs over permuted columns: W[:, order] and H[order][order] (the identity without act-order).
  const order = sweepOrder(hessian, cols, options.actOrder ?? false);
  const w = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) w[r * cols + j] = weights[r * cols + order[j]];
  const h = options.actOrder ? new Float64Array(cols * cols) : hessian;
  if (options.actOrder) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] = hessian[order[i] * cols + order[j]];
  const u = inverseUpperCholesky(dampedHessian(h, cols, options.damping ?? 0.01), cols);
  const books = Array.from({ length: rows }, (_, r) => centroidsOfRow(r));
  const loss = obsSweep(w, u, rows, cols, options.sweepBlock ?? 128, {
    value: (r, k, current) => {
      const at = r * cols + order[k];
      return fixed !== undefined && fixed[at] === 1 ? weights[at] : nearestCentroid(current, books[r]);
    },
  });
  const result = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) result[r * cols + order[j]] = w[r * cols + j];
  return { weights: result, loss };
}
