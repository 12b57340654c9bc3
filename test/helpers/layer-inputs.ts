// Inputs of a layer y = W·x for the kernel tests of the one-shot methods (SparseGPT, GPTQ, OBS
// codes): Gaussian draws, correlated activations, their Hessian Σ xxᵀ and the output error a
// changed W leaves on them.
import { mulberry32 } from '../../src/kernels/random.js';

export function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

/**
 * Inputs as activations are: features of different scales that move together (most of their
 * variance in a few directions, here 8 factors, plus noise). The mixing is fixed by `cols`, so
 * calibration and held-out sets (other seeds) share a distribution.
 */
export function factorInputs(n: number, cols: number, seed: number): Float64Array {
  const fixed = mulberry32(cols);
  const factors = 8;
  const mixing = Float64Array.from({ length: factors * cols }, () => gaussian(fixed));
  const scale = Float64Array.from({ length: cols }, (_, j) => (j % 7 === 0 ? 4 : 0.3 + fixed()));
  const next = mulberry32(seed);
  const x = new Float64Array(n * cols);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: factors }, () => gaussian(next));
    for (let j = 0; j < cols; j++) {
      let v = 0.2 * gaussian(next);
      for (let f = 0; f < factors; f++) v += z[f] * mixing[f * cols + j];
      x[i * cols + j] = scale[j] * v;
    }
  }
  return x;
}

/** Σ xxᵀ over the n rows of x [n, cols]. */
export function gram(x: Float64Array, n: number, cols: number): Float64Array {
  const h = new Float64Array(cols * cols);
  for (let i = 0; i < n; i++) for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) h[a * cols + b] += x[i * cols + a] * x[i * cols + b];
  return h;
}

/** ‖(W - Ŵ)·xᵀ‖² summed over the inputs: the output error a changed weight adds. */
export function outputError(w: ArrayLike<number>, changed: ArrayLike<number>, x: Float64Array, n: number, rows: number, cols: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rows; r++) {
      let d = 0;
      for (let c = 0; c < cols; c++) d += (w[r * cols + c] - changed[r * cols + c]) * x[i * cols + c];
      total += d * d;
    }
  }
  return total;
}
