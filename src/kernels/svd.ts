// Randomized SVD (Halko, Martinsson, Tropp 2011, algorithms 4.4 and 5.1): the top `rank`
// singular triplets of A [m, n] from a few products with A. A Gaussian sketch Y = A Ω with
// Ω [n, rank + oversampling] captures A's dominant column space; power iterations
// (Y = A Aᵀ Y, re-orthonormalised between products) sharpen it where the spectrum decays slowly;
// Q = orth(Y) is found by modified Gram-Schmidt run twice ("twice is enough", Giraud et al. 2005);
// then the small B = Qᵀ A [l, n] gets an exact SVD by the Jacobi kernel (svd-ref.ts) and
// U = Q U_B. The products with A are the heavy part (m n l each): they go through a
// MatrixOperator, so the caller decides where they run (plain JS here, onnxruntime in
// src/runtime/ort-products.ts); everything else stays in float64 JS.
import { mulberry32 } from './random.js';
import { type Svd, svdJacobi } from './svd-ref.js';

/**
 * A fixed matrix A [rows, cols] seen through its products: `times(x, l)` is A X for X
 * [cols, l], `transposeTimes(y, l)` is Aᵀ Y for Y [rows, l]; all row-major.
 */
export interface MatrixOperator {
  readonly rows: number;
  readonly cols: number;
  times(x: Float64Array, l: number): Float64Array | Promise<Float64Array>;
  transposeTimes(y: Float64Array, l: number): Float64Array | Promise<Float64Array>;
  /** Where the other products of the SVD run (lifting the small factors back): default JS loops. */
  readonly products?: Products;
}

/** General products: A B for A [m, k], B [k, n], and Aᵀ B for A [m, k], B [m, n]; row-major float64. */
export interface Products {
  multiply(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Float64Array | Promise<Float64Array>;
  transposeMultiply(a: Float64Array, m: number, k: number, b: Float64Array, n: number): Float64Array | Promise<Float64Array>;
}

/** The products in plain JS. */
export const jsProducts: Products = { multiply: matmul, transposeMultiply: matmulTransposed };

/** Products with `a` ([m, n] row-major) in plain JS, accumulating in float64. */
export function jsOperator(a: ArrayLike<number>, m: number, n: number): MatrixOperator {
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values for a ${m} x ${n} matrix`);
  const values = a instanceof Float64Array ? a : Float64Array.from(a);
  return {
    rows: m,
    cols: n,
    times: (x, l) => matmul(values, m, n, x, l),
    transposeTimes: (y, l) => matmulTransposed(values, m, n, y, l),
  };
}

/** A [m, k] times B [k, n], row-major, in float64 (the i-k-j loop: streams rows of B and C). */
export function matmul(a: ArrayLike<number>, m: number, k: number, b: ArrayLike<number>, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const co = i * n;
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      if (x === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) c[co + j] += x * b[bo + j];
    }
  }
  return c;
}

/** Aᵀ B for A [m, k], B [m, n]: [k, n] row-major, in float64. */
export function matmulTransposed(a: ArrayLike<number>, m: number, k: number, b: ArrayLike<number>, n: number): Float64Array {
  const c = new Float64Array(k * n);
  for (let i = 0; i < m; i++) {
    const bo = i * n;
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      if (x === 0) continue;
      const co = p * n;
      for (let j = 0; j < n; j++) c[co + j] += x * b[bo + j];
    }
  }
  return c;
}

export interface RandomizedSvdOptions {
  /** Extra sketch columns beyond the rank (default 10, Halko et al.'s recommendation). */
  oversample?: number;
  /** Power iterations (default 2): each costs two more products and sharpens a slowly decaying spectrum. */
  powerIterations?: number;
  /** Seed of the Gaussian sketch (default 0): the same seed gives the same factors. */
  seed?: number;
}

/**
 * The top `rank` singular triplets of the operator's matrix (all of them when `rank` reaches
 * min(m, n): the sketch then spans A's whole column space and the result is exact to rounding).
 */
export async function randomizedSvd(a: MatrixOperator, rank: number, options: RandomizedSvdOptions = {}): Promise<Svd> {
  const full = await sketchedSvd(a, rank + (options.oversample ?? 10), options);
  return truncate(full, Math.min(rank, full.k));
}

/** The SVD of Qᵀ A for a sketch of `width` columns, lifted back to A (all `width` triplets, not truncated). */
async function sketchedSvd(a: MatrixOperator, width: number, options: RandomizedSvdOptions): Promise<Svd> {
  const { rows: m, cols: n } = a;
  const l = Math.max(1, Math.min(width, m, n));
  let q = orthonormalize(await a.times(gaussian(n * l, options.seed ?? 0), l), m, l);
  // A sketch as wide as A's smaller side already spans its whole column space: nothing to sharpen.
  const iterations = l === Math.min(m, n) ? 0 : (options.powerIterations ?? 2);
  for (let i = 0; i < iterations; i++) {
    const z = orthonormalize(await a.transposeTimes(q, l), n, l);
    q = orthonormalize(await a.times(z, l), m, l);
  }
  // B = Qᵀ A, taken as Bᵀ = Aᵀ Q [n, l]: the operator only needs its two products.
  const bt = await a.transposeTimes(q, l);
  // Jacobi on the l x l triangle-sized factor of Bᵀ = Q₂ R (l³ per sweep instead of n l²):
  // R = U_R S V_Rᵀ gives Bᵀ = (Q₂ U_R) S V_Rᵀ, so B = V_R S (Q₂ U_R)ᵀ.
  const q2 = orthonormalize(bt, n, l);
  const products = a.products ?? jsProducts;
  const r = await products.transposeMultiply(q2, n, l, bt, l);
  const small = svdJacobi(r, l, l);
  return { m, n, k: small.k, u: await products.multiply(q, m, l, small.v, small.k), s: small.s, v: await products.multiply(q2, n, l, small.u, small.k) };
}

export interface EnergySvd {
  svd: Svd;
  /** ‖A‖_F²: the energy the kept share is of. */
  total: number;
  /** Smallest rank whose triplets hold at least the asked share of `total`; undefined when more than `maxRank` would be needed. */
  rank: number | undefined;
}

/**
 * Enough of the top singular triplets to hold `share` of A's energy (Σσ² = ‖A‖_F², given as
 * `total`): sketches of 32 + oversampling columns, doubled until the rank that reaches the share
 * still leaves the oversampling margin, or the sketch covers min(m, n) (then exact). Sketched
 * singular values never exceed the true ones, so the rank found is never too small. With
 * `maxRank`, the search stops once a sketch wide enough for that rank shows it falls short.
 */
export async function randomizedSvdToEnergy(
  a: MatrixOperator,
  share: number,
  total: number,
  options: RandomizedSvdOptions & { start?: number; maxRank?: number } = {},
): Promise<EnergySvd> {
  const oversample = options.oversample ?? 10;
  const limit = Math.min(a.rows, a.cols);
  const enough = Math.min(limit, (options.maxRank ?? limit) + oversample);
  for (let width = Math.min(enough, (options.start ?? 32) + oversample); ; width = Math.min(enough, width * 2)) {
    const svd = await sketchedSvd(a, width, options);
    const rank = rankForEnergy(svd.s, share, total);
    const tooHigh = rank === undefined || (options.maxRank !== undefined && rank > options.maxRank);
    if (!tooHigh && (rank + oversample <= width || width === enough)) return { svd: truncate(svd, rank), total, rank };
    if (width === enough) return { svd, total, rank: undefined };
  }
}

/** Smallest r with s[0]² + ... + s[r-1]² >= share · total, or undefined when all of `s` falls short. */
export function rankForEnergy(s: ArrayLike<number>, share: number, total: number): number | undefined {
  const target = share * total;
  let sum = 0;
  for (let r = 0; r < s.length; r++) {
    sum += s[r] * s[r];
    // A relative slack of 1e-12 so that share 1 of an exact spectrum is met despite rounding.
    if (sum >= target * (1 - 1e-12)) return r + 1;
  }
  return total === 0 ? 0 : undefined;
}

/** The first `rank` triplets of `svd`. */
export function truncate(svd: Svd, rank: number): Svd {
  const { m, n, k } = svd;
  if (rank === k) return svd;
  const u = new Float64Array(m * rank);
  const v = new Float64Array(n * rank);
  for (let i = 0; i < m; i++) for (let r = 0; r < rank; r++) u[i * rank + r] = svd.u[i * k + r];
  for (let i = 0; i < n; i++) for (let r = 0; r < rank; r++) v[i * rank + r] = svd.v[i * k + r];
  return { m, n, k: rank, u, s: svd.s.slice(0, rank), v };
}

/** Σ x² in float64. */
export function sumOfSquares(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return sum;
}

/**
 * Orthonormal columns spanning those of `y` ([m, l] row-major), by modified Gram-Schmidt applied
 * twice. A column that vanishes (y of rank below l) stays zero: Qᵀ A then has a zero row and the
 * triplet it yields has σ = 0, harmless.
 */
export function orthonormalize(y: Float64Array, m: number, l: number): Float64Array {
  const cols = new Float64Array(m * l);
  for (let i = 0; i < m; i++) for (let j = 0; j < l; j++) cols[j * m + i] = y[i * l + j];
  for (let j = 0; j < l; j++) {
    const jo = j * m;
    const before = Math.sqrt(columnDot(cols, jo, jo, m));
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        const po = p * m;
        const d = columnDot(cols, po, jo, m);
        if (d !== 0) for (let i = 0; i < m; i++) cols[jo + i] -= d * cols[po + i];
      }
    }
    const norm = Math.sqrt(columnDot(cols, jo, jo, m));
    // What is left after removing the earlier directions is rounding noise: drop the column.
    const scale = norm > 1e-12 * before && norm > 0 ? 1 / norm : 0;
    for (let i = 0; i < m; i++) cols[jo + i] *= scale;
  }
  const q = new Float64Array(m * l);
  for (let i = 0; i < m; i++) for (let j = 0; j < l; j++) q[i * l + j] = cols[j * m + i];
  return q;
}

function columnDot(cols: Float64Array, xo: number, yo: number, m: number): number {
  let sum = 0;
  for (let i = 0; i < m; i++) sum += cols[xo + i] * cols[yo + i];
  return sum;
}

/** `count` standard normal values from `seed` (Box-Muller over mulberry32). */
export function gaussian(count: number, seed: number): Float64Array {
  const next = mulberry32(seed ^ 0x5bd1e995);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - next();
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < count) out[i + 1] = r * Math.sin(t);
  }
  return out;
}
