// The weights a layer should have when its input has drifted (asymmetric calibration; GPTAQ, Li et
// al. 2025, does the same for GPTQ): the layer y = W·x of a reference model reads x, the same layer
// of a changed model (earlier layers quantized or clustered) reads x̃. Fitting the codes to W on x̃
// (plain GPTQ/OBS) keeps the layer's own error small but passes the drift on; fitting them to the
// reference's outputs W·x takes the drift out as well. With X̃ and X the calibration inputs as rows,
// H = X̃ᵀX̃ and C = X̃ᵀX, the damped least-squares problem
//     min_Q ‖X Wᵀ - X̃ Qᵀ‖² + λ‖Q - W‖²      (λ: the damping added to H's diagonal, H_d = H + λI)
// has its minimum at Q* = W + W (C - H)ᵀ H_d⁻¹, and its objective is ‖(Q - Q*) H_d^½‖² plus a
// constant: the OBS sweep on Q* with H_d then rounds for the reference's outputs. Q* = W when the
// inputs have not drifted (C = H). The reference layer may have other weights than the one being
// fitted (a pruned model's layer against the original's, with the removed channels zeroed):
// min_Q ‖X W_refᵀ - X̃ Qᵀ‖² + λ‖Q - W‖² has Q* = W + (W_ref Cᵀ - W H) H_d⁻¹.
// asymmetric-target-ref.ts solves the normal equations directly.
import { solveSpd } from './linalg.js';
import { dampedHessian } from './sparsegpt.js';

/**
 * Q* for `weights` ([rows, cols], not changed), the Gram matrix H of the layer's inputs in the
 * changed model and their cross product C with the reference's (C[i][j] = Σ x̃_i x_j), both
 * [cols, cols]; `reference` is the reference layer's W ([rows, cols]; default `weights`).
 */
export function asymmetricTarget(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, cross: Float64Array, damping = 0.01, reference: Float64Array = weights): Float64Array {
  // B = C·W_refᵀ - H·Wᵀ, [cols, rows]; then H_d·Z = B, and Q* = W + Zᵀ.
  const b = new Float64Array(cols * rows);
  for (let i = 0; i < cols; i++) {
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      const w = r * cols;
      for (let j = 0; j < cols; j++) sum += cross[i * cols + j] * reference[w + j] - hessian[i * cols + j] * weights[w + j];
      b[i * rows + r] = sum;
    }
  }
  const z = solveSpd(dampedHessian(hessian, cols, damping), cols, b, rows);
  const target = Float64Array.from(weights);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) target[r * cols + j] += z[j * rows + r];
  return target;
}
