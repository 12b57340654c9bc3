// The slow, obvious OBS codes for tests (obs-codes.ts is the fast one): the inverse Hessian by
// Gauss-Jordan, downdated explicitly after every column; each column's rounding error spread over
// the columns after it at once with δw_j = -((w_k - q_k) / H⁻¹[k][k])·H⁻¹[k][j].
import { nearestCentroid, type ObsCodesOptions, type ObsCodesResult } from './obs-codes.js';
import { sweepOrder } from './gptq.js';
import { dampedHessian } from './sparsegpt.js';
import { inverseRef } from './sparsegpt-ref.js';

export function obsCodesRef(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, centroidsOfRow: (r: number) => ArrayLike<number>, options: ObsCodesOptions = {}, fixed?: Uint8Array): ObsCodesResult {
  const w = weights.slice();
  let inv = inverseRef(dampedHessian(hessian, cols, options.damping ?? 0.01), cols);
  let loss = 0;
  const done = new Set<number>();
  for (const k of sweepOrder(hessian, cols, options.actOrder ?? false)) {
    const pivot = inv[k * cols + k];
    for (let r = 0; r < rows; r++) {
      const q = fixed !== undefined && fixed[r * cols + k] === 1 ? weights[r * cols + k] : nearestCentroid(w[r * cols + k], centroidsOfRow(r));
      const e = w[r * cols + k] - q;
      w[r * cols + k] = q;
      if (e === 0) continue;
      loss += (e * e) / pivot / 2;
      for (let j = 0; j < cols; j++) if (j !== k && !done.has(j)) w[r * cols + j] -= (e / pivot) * inv[k * cols + j];
    }
    done.add(k);
    const next = inv.slice();
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) next[i * cols + j] -= (inv[i * cols + k] * inv[k * cols + j]) / pivot;
    inv = next;
  }
  return { weights: w, loss };
}
