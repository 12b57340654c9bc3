// The slow reference for quantize-search.ts: a brute-force grid over scales (and, asymmetric, over
// zero points), every block rounded to nearest at every grid point, keeping the least weighted
// squared error. No candidates, no least squares: what the search should come close to (the
// test allows a small margin either way, since neither is exhaustive over the reals).

export interface GridFit {
  scale: number;
  zero: number;
  error: number;
}

function errorOf(block: number[], w: number[], scale: number, zero: number, qmax: number): number {
  let total = 0;
  for (let i = 0; i < block.length; i++) {
    const q = Math.min(qmax, Math.max(0, Math.round(block[i] / scale + zero)));
    total += w[i] * (block[i] - (q - zero) * scale) ** 2;
  }
  return total;
}

/**
 * Best (scale, zero) on a grid: scales from 0.25x to 1.5x of 2 max|w| / qmax in `points` steps;
 * symmetric blocks keep zero = mid, integer zero points try every code, float ones 4 * qmax + 1
 * values over [0, qmax].
 */
export function gridSearchBlockRef(block: number[], w: number[], bits: number, form: 'symmetric' | 'integer' | 'float', points = 400): GridFit {
  const qmax = 2 ** bits - 1;
  const mid = 2 ** (bits - 1);
  const range = Math.max(...block.map(Math.abs)) * 2;
  const zeros = form === 'symmetric' ? [mid] : form === 'integer' ? Array.from({ length: qmax + 1 }, (_, z) => z) : Array.from({ length: 4 * qmax + 1 }, (_, k) => k / 4);
  let best: GridFit = { scale: 0, zero: 0, error: Number.POSITIVE_INFINITY };
  // Symmetric grids take both signs: a negative scale puts the extra code on the positive side.
  const signs = form === 'symmetric' ? [1, -1] : [1];
  for (let p = 0; p <= points; p++) {
    for (const sign of signs) {
      const scale = sign * (range / qmax) * (0.25 + (1.25 * p) / points);
      for (const zero of zeros) {
        const error = errorOf(block, w, scale, zero, qmax);
        if (error < best.error) best = { scale, zero, error };
      }
    }
  }
  return best;
}
