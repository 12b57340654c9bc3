// The singular value decomposition the slow, sure way: one-sided Jacobi (Hestenes 1958) in
// float64. Pairs of columns are rotated until every pair is orthogonal; the column norms are then
// the singular values, the normalised columns U, and the product of the rotations V. It is exact
// to rounding on any matrix (no sketch, no iteration count to tune), which makes it the reference
// the randomized SVD of svd.ts is tested against, and the small exact SVD that svd.ts finishes
// with (of an l x n matrix, l = rank + oversampling). Cost: about 3 m n² per sweep, 6-12 sweeps.

/** A = U diag(s) Vᵀ, truncated to k columns; row-major, s descending. */
export interface Svd {
  /** Rows and columns of A. */
  m: number;
  n: number;
  /** Singular triplets held (min(m, n) for a full decomposition). */
  k: number;
  /** [m, k] row-major: left singular vectors as columns. */
  u: Float64Array;
  /** [k], descending, >= 0. */
  s: Float64Array;
  /** [n, k] row-major: right singular vectors as columns. */
  v: Float64Array;
}

export interface JacobiOptions {
  /** A pair counts as orthogonal when |x·y| <= tolerance ‖x‖ ‖y‖ (default 1e-15). */
  tolerance?: number;
  /** Give up after this many sweeps (default 60; convergence is quadratic, 6-12 is typical). */
  maxSweeps?: number;
}

/** The full SVD of `a` ([m, n], row-major): k = min(m, n) triplets. */
export function svdJacobi(a: ArrayLike<number>, m: number, n: number, options: JacobiOptions = {}): Svd {
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values for a ${m} x ${n} matrix`);
  if (m < n) {
    // Aᵀ = V S Uᵀ: decompose the transpose (more rows than columns) and swap the factors.
    const t = svdJacobi(transpose(a, m, n), n, m, options);
    return { m, n, k: t.k, u: t.v, s: t.s, v: t.u };
  }
  const tolerance = options.tolerance ?? 1e-15;
  const maxSweeps = options.maxSweeps ?? 60;
  // Columns of A and of V, each contiguous (column-major), so a rotation streams two rows of memory.
  const w = transpose(a, m, n);
  const v = new Float64Array(n * n);
  for (let j = 0; j < n; j++) v[j * n + j] = 1;
  // Squared column norms, updated through each rotation and recomputed every sweep (the update
  // drifts by rounding; recomputing keeps the convergence test honest).
  const squares = new Float64Array(n);
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    for (let j = 0; j < n; j++) squares[j] = dot(w, j * m, j * m, m);
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const po = p * m;
      for (let q = p + 1; q < n; q++) {
        const qo = q * m;
        const alpha = squares[p];
        const beta = squares[q];
        const gamma = dot(w, po, qo, m);
        if (gamma === 0 || Math.abs(gamma) <= tolerance * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        // The rotation that zeroes the off-diagonal entry of the 2 x 2 Gram matrix [[α, γ], [γ, β]].
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(w, po, qo, m, c, s);
        rotate(v, p * n, q * n, n, c, s);
        squares[p] = alpha - t * gamma;
        squares[q] = beta + t * gamma;
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let sum = 0;
    for (let i = 0; i < m; i++) sum += w[j * m + i] ** 2;
    norms[j] = Math.sqrt(sum);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => norms[y] - norms[x] || x - y);
  const u = new Float64Array(m * n);
  const vOut = new Float64Array(n * n);
  const sOut = new Float64Array(n);
  order.forEach((j, col) => {
    const sigma = norms[j];
    sOut[col] = sigma;
    // A zero singular value leaves its column of U zero: nothing in A points that way.
    if (sigma > 0) for (let i = 0; i < m; i++) u[i * n + col] = w[j * m + i] / sigma;
    for (let i = 0; i < n; i++) vOut[i * n + col] = v[j * n + i];
  });
  return { m, n, k: n, u, s: sOut, v: vOut };
}

function dot(data: Float64Array, xo: number, yo: number, length: number): number {
  let sum = 0;
  for (let i = 0; i < length; i++) sum += data[xo + i] * data[yo + i];
  return sum;
}

/** x' = c x - s y, y' = s x + c y over `length` values at offsets `xo` and `yo` of `data`. */
function rotate(data: Float64Array, xo: number, yo: number, length: number, c: number, s: number): void {
  for (let i = 0; i < length; i++) {
    const x = data[xo + i];
    const y = data[yo + i];
    data[xo + i] = c * x - s * y;
    data[yo + i] = s * x + c * y;
  }
}

/** [n, m] row-major transpose of `a` ([m, n]), in float64. */
export function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

/** U_k diag(s_k) V_kᵀ of the first `rank` triplets, [m, n] row-major: the plain triple loop. */
export function reconstructRef(svd: Svd, rank = svd.k): Float64Array {
  const { m, n, k } = svd;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let r = 0; r < Math.min(rank, k); r++) sum += svd.u[i * k + r] * svd.s[r] * svd.v[j * k + r];
      out[i * n + j] = sum;
    }
  }
  return out;
}
