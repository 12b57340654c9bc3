// The matrix products the blocked kernels (cholesky-blocked.ts, gptq-blocked.ts) hand to a faster
// engine: onnxruntime's GEMMs in practice (runtime/ort-matrix-products.ts: ~50-75 GFLOP/s on this
// machine against ~1 for JS loops), the plain loops below in tests. Matrices are row-major float32;
// the engine accumulates in float32 (the loops here in float64: the reference).

export interface MatrixProducts {
  /** a · b with a [m, k] (or aᵀ with a [k, m] when `transposeA`) and b [k, n]: a new [m, n]. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transposeA?: boolean): Promise<Float32Array>;
  /**
   * X[r0:r1, 0:p] · X[s0:s1, 0:p]ᵀ for X [rows, cols] (p <= cols): a new [r1 - r0, s1 - s0]. The
   * engine reads the slices in place (X is whole matrices: a copy per call would cost more than the product).
   */
  prefixProduct(x: Float32Array, rows: number, cols: number, r0: number, r1: number, s0: number, s1: number, p: number): Promise<Float32Array>;
}

/** The products as plain loops, float64 sums: the reference the fast engines are tested against. */
export const jsMatrixProducts: MatrixProducts = {
  async matmul(a, b, m, k, n, transposeA = false) {
    const out = new Float32Array(m * n);
    const row = new Float64Array(n);
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let t = 0; t < k; t++) {
        const v = transposeA ? a[t * m + i] : a[i * k + t];
        if (v === 0) continue;
        for (let j = 0; j < n; j++) row[j] += v * b[t * n + j];
      }
      out.set(row, i * n);
    }
    return out;
  },
  async prefixProduct(x, _rows, cols, r0, r1, s0, s1, p) {
    const m = r1 - r0;
    const n = s1 - s0;
    const out = new Float32Array(m * n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        const a = (r0 + i) * cols;
        const b = (s0 + j) * cols;
        for (let t = 0; t < p; t++) sum += x[a + t] * x[b + t];
        out[i * n + j] = sum;
      }
    }
    return out;
  },
};
