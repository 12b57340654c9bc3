// Dense linear algebra on small symmetric matrices, in float64 and row-major: what the one-shot
// pruners (SparseGPT) and GPTQ need from a Hessian H = XᵀX. The matrices are K x K with K the
// width of a layer's input (hundreds to a few thousand), so plain loops in the cache-friendly order
// are enough; the expensive part, forming XᵀX from activations, runs in onnxruntime elsewhere.

/** Lower-triangular L with A = L·Lᵀ, in a new array; throws when A is not positive definite. */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    const lj = j * n;
    for (let k = 0; k < j; k++) d -= l[lj + k] * l[lj + k];
    if (!(d > 0)) throw new Error(`Cholesky: the matrix is not positive definite (pivot ${j} is ${d})`);
    const djj = Math.sqrt(d);
    l[lj + j] = djj;
    for (let i = j + 1; i < n; i++) {
      const li = i * n;
      let s = a[li + j];
      for (let k = 0; k < j; k++) s -= l[li + k] * l[lj + k];
      l[li + j] = s / djj;
    }
  }
  return l;
}

/** L⁻¹ of a lower-triangular L, lower-triangular, in a new array. */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / l[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += l[i * n + k] * inv[k * n + j];
      inv[i * n + j] = -s / l[i * n + i];
    }
  }
  return inv;
}

/** A⁻¹ of a symmetric positive definite A, through its Cholesky factor: A⁻¹ = L⁻ᵀ·L⁻¹. */
export function invertSpd(a: Float64Array, n: number): Float64Array {
  const m = invertLower(cholesky(a, n), n);
  const inv = new Float64Array(n * n);
  // (L⁻ᵀ L⁻¹)[i][j] = Σ_k M[k][i]·M[k][j] over k >= max(i, j), M = L⁻¹ lower-triangular.
  for (let k = 0; k < n; k++) {
    const mk = k * n;
    for (let i = 0; i <= k; i++) {
      const v = m[mk + i];
      if (v === 0) continue;
      const row = i * n;
      for (let j = 0; j <= k; j++) inv[row + j] += v * m[mk + j];
    }
  }
  return inv;
}

/**
 * Upper-triangular U with A⁻¹ = Uᵀ·U. Row k of U is row k of the inverse left after eliminating
 * the variables before k, scaled by 1/sqrt of its pivot: SparseGPT's and GPTQ's column-by-column
 * weight updates read it directly instead of downdating the inverse after every column.
 */
export function inverseUpperCholesky(a: Float64Array, n: number): Float64Array {
  const lower = cholesky(invertSpd(a, n), n);
  const upper = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) upper[j * n + i] = lower[i * n + j];
  return upper;
}

/**
 * X with A·X = B for a symmetric positive definite A [n, n] and B [n, m] (row-major), through
 * A's Cholesky factor: L·Y = B forward, then Lᵀ·X = Y backward. Least-squares compensation
 * solves its ridge normal equations with it.
 */
export function solveSpd(a: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  const l = cholesky(a, n);
  const x = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    const row = i * m;
    for (let k = 0; k < i; k++) {
      const lik = l[i * n + k];
      if (lik === 0) continue;
      const other = k * m;
      for (let j = 0; j < m; j++) x[row + j] -= lik * x[other + j];
    }
    const d = l[i * n + i];
    for (let j = 0; j < m; j++) x[row + j] /= d;
  }
  for (let i = n - 1; i >= 0; i--) {
    const row = i * m;
    for (let k = i + 1; k < n; k++) {
      const lki = l[k * n + i];
      if (lki === 0) continue;
      const other = k * m;
      for (let j = 0; j < m; j++) x[row + j] -= lki * x[other + j];
    }
    const d = l[i * n + i];
    for (let j = 0; j < m; j++) x[row + j] /= d;
  }
  return x;
}
