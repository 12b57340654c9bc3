// Cholesky factor of a large symmetric positive definite matrix (a GPTQ Hessian, K up to 16384), by
// blocks of columns, left-looking: block column j is A[j:, j:j+w] less L[j:, :j]·L[j:j+w, :j]ᵀ (one
// product handed to the engine), its top w x w is factored in float64 loops, and the rows below
// are solved against it with one more product (L21 = P21·L11⁻ᵀ). Left-looking computes only the
// lower triangle's products (n³/6 multiply-adds, half of a right-looking update with full GEMMs),
// and each product reads L in place. linalg.ts `cholesky` is the float64 reference.
import { cholesky, invertLower } from './linalg.js';
import type { MatrixProducts } from './matrix-products.js';

/** Columns per block: big enough for the engine's GEMMs, small enough for the JS panel work (w³). */
export const CHOLESKY_BLOCK = 256;

/**
 * Lower-triangular L (float32, [n, n], row-major) with A = L·Lᵀ; `a` ([n, n], only its lower
 * triangle is read) is not changed. Throws when A is not positive definite.
 */
export async function choleskyBlocked(a: Float32Array | Float64Array, n: number, products: MatrixProducts, block = CHOLESKY_BLOCK): Promise<Float32Array> {
  const l = new Float32Array(n * n);
  for (let j = 0; j < n; j += block) {
    const w = Math.min(block, n - j);
    const below = n - j;
    // P = A[j:, j:j+w] - L[j:, :j]·L[j:j+w, :j]ᵀ, [n - j, w].
    const panel = j === 0 ? new Float32Array(below * w) : await products.prefixProduct(l, n, n, j, n, j, j + w, j);
    for (let i = 0; i < below; i++) {
      const arow = (j + i) * n + j;
      for (let c = 0; c < w; c++) panel[i * w + c] = a[arow + c] - (j === 0 ? 0 : panel[i * w + c]);
    }
    // Only the lower triangle of A is read: mirror the top block's lower triangle.
    const top = new Float64Array(w * w);
    for (let r = 0; r < w; r++) {
      for (let c = 0; c <= r; c++) {
        top[r * w + c] = panel[r * w + c];
        top[c * w + r] = panel[r * w + c];
      }
    }
    let l11: Float64Array;
    try {
      l11 = cholesky(top, w);
    } catch {
      throw new Error(`Cholesky: the matrix is not positive definite (in columns ${j}-${j + w - 1})`);
    }
    for (let r = 0; r < w; r++) for (let c = 0; c <= r; c++) l[(j + r) * n + j + c] = l11[r * w + c];
    const rest = below - w;
    if (rest === 0) continue;
    // L21 = P21·L11⁻ᵀ: b = (L11⁻¹)ᵀ, [w, w].
    const inverse = invertLower(l11, w);
    const b = new Float32Array(w * w);
    for (let r = 0; r < w; r++) for (let c = 0; c <= r; c++) b[c * w + r] = inverse[r * w + c];
    const l21 = await products.matmul(panel.subarray(w * w), b, rest, w, w);
    for (let i = 0; i < rest; i++) l.set(l21.subarray(i * w, (i + 1) * w), (j + w + i) * n + j);
  }
  return l;
}
