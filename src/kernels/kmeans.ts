// 1-D k-means for weight sharing (Deep Compression, Han et al. 2016): the values of a weight are
// replaced by the nearest of k shared centroids. Lloyd's iterations, made fast by the fact that in
// one dimension every cluster is an interval of the sorted values: the values are sorted once with
// prefix sums of w and w·x, and each iteration finds the boundaries between neighbouring centroids
// (their midpoints) by binary search, so an iteration costs O(k log n) instead of O(n k).
// Initialisation: 'linear' (k points evenly spaced between min and max, which the paper found best:
// it keeps centroids for the rare large weights), or 'kmeans++' (Arthur & Vassilvitskii) from a
// seeded generator. Optional per-value weights (importance) make every sum a weighted one.
// kmeans-ref.ts is the slow, obvious form (every point against every centroid); the test holds
// the two to the same centroids from the same start.
import { mulberry32 } from './random.js';

export type KMeansInit = 'linear' | 'kmeans++';

export interface KMeansOptions {
  /** Centroids wanted (at least 1). Fewer come back when the values have fewer distinct values. */
  k: number;
  /** Default 'linear'. */
  init?: KMeansInit;
  /** Seed of kmeans++ (default 0). */
  seed?: number;
  /** Importance of each value (>= 0), same length as the values; default 1 each. */
  weights?: ArrayLike<number>;
  /** Most Lloyd iterations (default 100). */
  maxIterations?: number;
  /** Start from these centroids instead of `init` (tests compare kernels from one start). */
  initial?: ArrayLike<number>;
}

export interface KMeansResult {
  /** Ascending; length <= k. */
  centroids: Float64Array;
  iterations: number;
  /** True when an iteration left every centroid where it was. */
  converged: boolean;
}

/** Values sorted once, with the prefix sums every iteration reads. */
interface Sorted {
  x: Float64Array;
  /** Prefix sums: cw[i] = sum of w over the first i sorted values, cwx the same of w·x. */
  cw: Float64Array | undefined;
  cwx: Float64Array;
}

function sortValues(values: ArrayLike<number>, weights: ArrayLike<number> | undefined): Sorted {
  const n = values.length;
  if (weights === undefined) {
    // Sorting float32 values as float32 is faster and gives the same order.
    const x = Float64Array.from(values instanceof Float32Array ? values.slice().sort() : Float64Array.from(values).sort());
    const cwx = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) cwx[i + 1] = cwx[i] + x[i];
    return { x, cw: undefined, cwx };
  }
  if (weights.length !== n) throw new Error(`kmeans: ${weights.length} weights for ${n} values`);
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b]);
  const x = new Float64Array(n);
  const cw = new Float64Array(n + 1);
  const cwx = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    const v = values[order[i]];
    const w = weights[order[i]];
    if (!(w >= 0)) throw new Error(`kmeans: weight ${w} at index ${order[i]} is not a number >= 0`);
    x[i] = v;
    cw[i + 1] = cw[i] + w;
    cwx[i + 1] = cwx[i] + w * v;
  }
  return { x, cw, cwx };
}

/** First index of sorted `x` whose value is greater than `t` (values equal to t stay below). */
function upperBound(x: Float64Array, t: number): number {
  let lo = 0;
  let hi = x.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The distinct values of sorted `x`, or undefined when there are more than `k`. */
function fewDistinct(x: Float64Array, k: number): Float64Array | undefined {
  const distinct: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (i === 0 || x[i] !== x[i - 1]) {
      if (distinct.length === k) return undefined;
      distinct.push(x[i]);
    }
  }
  return Float64Array.from(distinct);
}

/** k points evenly spaced from min to max (one point, the mean of the two, when k is 1). */
export function linearInit(min: number, max: number, k: number): Float64Array {
  if (k === 1) return Float64Array.of((min + max) / 2);
  return Float64Array.from({ length: k }, (_, j) => min + ((max - min) * j) / (k - 1));
}

/**
 * kmeans++: the first centroid drawn with probability proportional to w, each next one to
 * w · (distance to the nearest chosen)². O(n k); values must be finite.
 */
export function kmeansPlusPlusInit(values: ArrayLike<number>, k: number, seed = 0, weights?: ArrayLike<number>): Float64Array {
  const n = values.length;
  const next = mulberry32(seed);
  const w = (i: number) => (weights === undefined ? 1 : weights[i]);
  const draw = (score: (i: number) => number): number => {
    let total = 0;
    for (let i = 0; i < n; i++) total += score(i);
    if (!(total > 0)) return -1;
    let r = next() * total;
    for (let i = 0; i < n; i++) {
      r -= score(i);
      if (r < 0) return i;
    }
    return n - 1;
  };
  const chosen: number[] = [];
  const first = draw(w);
  if (first < 0) return new Float64Array(0);
  chosen.push(values[first]);
  const nearest = new Float64Array(n);
  for (let i = 0; i < n; i++) nearest[i] = (values[i] - chosen[0]) ** 2;
  while (chosen.length < k) {
    const at = draw((i) => w(i) * nearest[i]);
    if (at < 0) break; // every value sits on a centroid already
    const c = values[at];
    chosen.push(c);
    for (let i = 0; i < n; i++) nearest[i] = Math.min(nearest[i], (values[i] - c) ** 2);
  }
  return Float64Array.from(chosen).sort();
}

/**
 * Clusters `values` into at most `options.k` centroids. Values with zero total weight between two
 * boundaries leave that centroid where it was (an empty cluster), as in the reference.
 */
export function kmeans1d(values: ArrayLike<number>, options: KMeansOptions): KMeansResult {
  const k = options.k;
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`kmeans: k must be a whole number >= 1, got ${k}`);
  if (values.length === 0) return { centroids: new Float64Array(0), iterations: 0, converged: true };
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) throw new Error(`kmeans: value ${values[i]} at index ${i} is not finite`);
  const sorted = sortValues(values, options.weights);
  const { x, cw, cwx } = sorted;
  const n = x.length;
  if (options.initial === undefined) {
    // k or fewer distinct values: they are the centroids, exactly.
    const distinct = fewDistinct(x, k);
    if (distinct !== undefined) return { centroids: distinct, iterations: 0, converged: true };
  }
  let c =
    options.initial !== undefined
      ? Float64Array.from(options.initial).sort()
      : options.init === 'kmeans++'
        ? kmeansPlusPlusInit(values, k, options.seed, options.weights)
        : linearInit(x[0], x[n - 1], k);
  const weightBetween = (a: number, b: number) => (cw === undefined ? b - a : cw[b] - cw[a]);
  const maxIterations = options.maxIterations ?? 100;
  let iterations = 0;
  let converged = false;
  while (iterations < maxIterations) {
    iterations++;
    const updated = new Float64Array(c.length);
    let start = 0;
    for (let j = 0; j < c.length; j++) {
      // Cluster j holds the sorted values up to the midpoint with the next centroid (ties go down).
      const end = j === c.length - 1 ? n : upperBound(x, (c[j] + c[j + 1]) / 2);
      const w = weightBetween(start, Math.max(start, end));
      updated[j] = end > start && w > 0 ? (cwx[end] - cwx[start]) / w : c[j];
      start = Math.max(start, end);
    }
    updated.sort();
    let moved = false;
    for (let j = 0; j < c.length; j++) if (updated[j] !== c[j]) moved = true;
    c = updated;
    if (!moved) {
      converged = true;
      break;
    }
  }
  return { centroids: c, iterations, converged };
}

/**
 * Index of the nearest centroid for each value (ties go to the lower index), by binary search over
 * the midpoints of ascending `centroids`: O(n log k).
 */
export function assignNearest(values: ArrayLike<number>, centroids: ArrayLike<number>, out: Uint8Array | Uint16Array | Int32Array = new Int32Array(values.length)): typeof out {
  const k = centroids.length;
  const mids = new Float64Array(Math.max(0, k - 1));
  for (let j = 0; j + 1 < k; j++) mids[j] = (centroids[j] + centroids[j + 1]) / 2;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    let lo = 0;
    let hi = mids.length;
    // The number of midpoints strictly below v is the index of the nearest centroid.
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (mids[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    out[i] = lo;
  }
  return out;
}

/** Weighted sum of squared distances of the values to their centroids under `codes`. */
export function clusterInertia(values: ArrayLike<number>, centroids: ArrayLike<number>, codes: ArrayLike<number>, weights?: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (weights === undefined ? 1 : weights[i]) * (values[i] - centroids[codes[i]]) ** 2;
  return sum;
}
