// The obvious 1-D k-means, kept slow on purpose as the reference of kmeans.ts: every iteration
// measures every value against every centroid (ties go to the lower index), then moves each
// centroid to the weighted mean of its values; an empty cluster keeps its centroid. O(n k) per
// iteration, no sorting, no prefix sums.

export function kmeans1dRef(values: ArrayLike<number>, initial: ArrayLike<number>, options: { weights?: ArrayLike<number>; maxIterations?: number } = {}): { centroids: Float64Array; iterations: number } {
  let c = Float64Array.from(initial).sort();
  const n = values.length;
  const codes = new Int32Array(n);
  const maxIterations = options.maxIterations ?? 100;
  let iterations = 0;
  while (iterations < maxIterations) {
    iterations++;
    for (let i = 0; i < n; i++) codes[i] = nearestRef(values[i], c);
    const sumW = new Float64Array(c.length);
    const sumWX = new Float64Array(c.length);
    for (let i = 0; i < n; i++) {
      const w = options.weights === undefined ? 1 : options.weights[i];
      sumW[codes[i]] += w;
      sumWX[codes[i]] += w * values[i];
    }
    const updated = c.map((old, j) => (sumW[j] > 0 ? sumWX[j] / sumW[j] : old)).sort();
    const moved = updated.some((v, j) => v !== c[j]);
    c = updated;
    if (!moved) break;
  }
  return { centroids: c, iterations };
}

/** Index of the centroid nearest to `v`; the lower index on a tie. */
export function nearestRef(v: number, centroids: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < centroids.length; j++) if (Math.abs(v - centroids[j]) < Math.abs(v - centroids[best])) best = j;
  return best;
}
