// The slow, obvious asymmetric target for tests (asymmetric-target.ts is the fast one): the normal
// equations of min_Q ‖X W_refᵀ - X̃ Qᵀ‖² + λ‖Q - W‖², written out: H_d Qᵀ = C W_refᵀ + (H_d - H) Wᵀ,
// with H_d⁻¹ by Gauss-Jordan and every product a plain loop.
import { dampedHessian } from './sparsegpt.js';
import { inverseRef } from './sparsegpt-ref.js';

export function asymmetricTargetRef(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, cross: Float64Array, damping = 0.01, reference: Float64Array = weights): Float64Array {
  const damped = dampedHessian(hessian, cols, damping);
  const inverse = inverseRef(damped, cols);
  // Right-hand side per row r: C·w_ref,r + (H_d - H)·w_r.
  const target = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const rhs = new Float64Array(cols);
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) rhs[i] += cross[i * cols + j] * reference[r * cols + j] + (damped[i * cols + j] - hessian[i * cols + j]) * weights[r * cols + j];
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) target[r * cols + i] += inverse[i * cols + j] * rhs[j];
  }
  return target;
}
