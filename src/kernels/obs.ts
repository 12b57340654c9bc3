// The column sweep SparseGPT and GPTQ share (Optimal Brain Surgeon with a fixed column order):
// for a layer W [rows, cols] and the upper Cholesky factor U of its inverse Hessian (H⁻¹ = UᵀU),
// columns are visited left to right; each weight of the column is replaced by the value the method
// allows it (0 when pruned, its quantized value), and the error that leaves, scaled by 1/U[k][k],
// is spread over the columns not visited yet along row k of U. Work goes in blocks of columns:
// inside a block the update is applied column by column, to the columns after the block once per
// block (the same arithmetic, regrouped so most of it is one pass over the matrix). Methods choose
// what each weight becomes through hooks that see the weights as updated so far.

export interface SweepHooks {
  /** Called before the columns [start, end) are visited. */
  beforeBlock?(start: number, end: number): void;
  /** Called before column k is visited. */
  beforeColumn?(k: number): void;
  /** The value the weight at (r, k) keeps, given its current value. */
  value(r: number, k: number, current: number): number;
}

/**
 * Sweeps `w` ([rows, cols], changed in place) with `u` ([cols, cols]); returns the OBS estimate of
 * the output error added, Σ ((w - q) / U[k][k])² / 2.
 */
export function obsSweep(w: Float64Array, u: Float64Array, rows: number, cols: number, blockSize: number, hooks: SweepHooks): number {
  let loss = 0;
  for (let start = 0; start < cols; start += blockSize) {
    const end = Math.min(cols, start + blockSize);
    const width = end - start;
    hooks.beforeBlock?.(start, end);
    // err[r][j]: the scaled error of column start + j, spread over the columns after the block at its end.
    const err = new Float64Array(rows * width);
    for (let k = start; k < end; k++) {
      hooks.beforeColumn?.(k);
      const d = u[k * cols + k];
      const urow = k * cols;
      for (let r = 0; r < rows; r++) {
        const row = r * cols;
        const current = w[row + k];
        const kept = hooks.value(r, k, current);
        w[row + k] = kept;
        if (kept === current) continue;
        const e = (current - kept) / d;
        loss += (e * e) / 2;
        err[r * width + (k - start)] = e;
        for (let j = k + 1; j < end; j++) w[row + j] -= e * u[urow + j];
      }
    }
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let j = 0; j < width; j++) {
        const e = err[r * width + j];
        if (e === 0) continue;
        const urow = (start + j) * cols;
        for (let c = end; c < cols; c++) w[row + c] -= e * u[urow + c];
      }
    }
  }
  return loss;
}
