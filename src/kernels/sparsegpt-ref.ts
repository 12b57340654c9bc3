// The slow, obvious SparseGPT for tests (sparsegpt.ts is the fast one): the inverse Hessian is
// formed by Gauss-Jordan elimination and, after every column, downdated explicitly by removing
// that column's variable (H⁻¹ ← H⁻¹ - H⁻¹[:,k]·H⁻¹[k,:] / H⁻¹[k][k]); each pruned weight's error
// is spread over the later columns of its row at once with the OBS update
// δw_j = -(w_k / H⁻¹[k][k])·H⁻¹[k][j]. No blocks of deferred updates, no Cholesky factor.
import { dampedHessian, type SparseGptOptions, type SparseGptResult } from './sparsegpt.js';
import { prunedCount } from './sparsity.js';

/** A⁻¹ by Gauss-Jordan elimination with partial pivoting. */
export function inverseRef(a: Float64Array, n: number): Float64Array {
  const m = a.slice();
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r * n + col]) > Math.abs(m[pivot * n + col])) pivot = r;
    for (const x of [m, inv]) {
      for (let c = 0; c < n; c++) [x[col * n + c], x[pivot * n + c]] = [x[pivot * n + c], x[col * n + c]];
    }
    const p = m[col * n + col];
    for (let c = 0; c < n; c++) {
      m[col * n + c] /= p;
      inv[col * n + c] /= p;
    }
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r * n + col];
      for (let c = 0; c < n; c++) {
        m[r * n + c] -= f * m[col * n + c];
        inv[r * n + c] -= f * inv[col * n + c];
      }
    }
  }
  return inv;
}

export function sparseGptRef(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, options: SparseGptOptions): SparseGptResult {
  const blockSize = options.blockSize ?? 128;
  const pattern = options.pattern;
  const w = weights.slice();
  let inv = inverseRef(dampedHessian(hessian, cols, options.damping ?? 0.01), cols);
  // Row k of the inverse as it stands when column k is reached (it does not depend on the weights).
  const rowsAtVisit: Float64Array[] = [];
  for (let k = 0; k < cols; k++) {
    rowsAtVisit.push(inv.slice(k * cols, (k + 1) * cols));
    const next = inv.slice();
    const pivot = inv[k * cols + k];
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) next[i * cols + j] -= (inv[i * cols + k] * inv[k * cols + j]) / pivot;
    inv = next;
  }
  const pivotAt = (k: number) => rowsAtVisit[k][k];
  const score = (r: number, k: number) => (w[r * cols + k] * w[r * cols + k]) / pivotAt(k);
  const mask = new Uint8Array(rows * cols).fill(1);
  let loss = 0;
  for (let k = 0; k < cols; k++) {
    if (pattern === undefined && k % blockSize === 0) {
      const end = Math.min(cols, k + blockSize);
      const entries: { s: number; r: number; c: number; order: number }[] = [];
      for (let r = 0; r < rows; r++) for (let c = k; c < end; c++) entries.push({ s: score(r, c), r, c, order: r * (end - k) + (c - k) });
      entries.sort((a, b) => a.s - b.s || a.order - b.order);
      for (const e of entries.slice(0, prunedCount(entries.length, options.sparsity ?? 0))) mask[e.r * cols + e.c] = 0;
    }
    if (pattern !== undefined && k % pattern.m === 0) {
      for (let r = 0; r < rows; r++) {
        const run = Array.from({ length: pattern.m }, (_, j) => ({ s: score(r, k + j), j }));
        run.sort((a, b) => a.s - b.s || a.j - b.j);
        for (const e of run.slice(0, pattern.m - pattern.n)) mask[r * cols + k + e.j] = 0;
      }
    }
    const row = rowsAtVisit[k];
    for (let r = 0; r < rows; r++) {
      if (mask[r * cols + k] === 1) continue;
      const wk = w[r * cols + k];
      loss += (wk * wk) / row[k] / 2;
      for (let j = k + 1; j < cols; j++) w[r * cols + j] -= (wk / row[k]) * row[j];
      w[r * cols + k] = 0;
    }
  }
  return { weights: w, mask, loss };
}
