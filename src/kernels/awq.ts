// AWQ (Lin et al. 2024): activation-aware scaling before round-to-nearest. For a layer y = W·x
// with W [rows, cols] (rows: outputs, cols: input features, the axis MatMulNBits cuts into
// blocks), the features the activations use most are protected by scaling them up before rounding:
// with s_k = m_k^α (m_k the magnitude of feature k), the layer computes (W·diag(s))·(x / s), and
// only W·diag(s) is quantized, so its rounding error in the original space is
// Ŵ - W = (Q(W·diag(s)) - W·diag(s))·diag(1/s): large for rarely used features, small for the
// salient ones. α is searched on a grid, each candidate measured by the layer's output error on
// the calibration inputs, tr((W - Ŵ) H (W - Ŵ)ᵀ) with H = Σ xxᵀ; α = 0 is plain round-to-nearest,
// so the search never ends worse than it on the calibration data.
// m_k is the RMS of feature k, sqrt(H_kk / samples), taken from H itself (the paper uses mean |x_k|:
// both rank features by size, the RMS a little more towards outliers, and it needs no statistic
// besides the Gram matrix the error already needs). s is normalised to sqrt(max·min) = 1, as the
// paper does (scaling all of s by one factor changes nothing but the float rounding).
// awq-ref.ts is the same search measured on the calibration rows themselves.
import type { QuantBits, ScaleType } from './quant-formats.js';
import { type QuantizedBlocks, dequantizeBlocks, quantizeBlocks } from './quantize-blocks.js';

export interface AwqOptions {
  bits: QuantBits;
  /** Weights per block along the columns (MatMulNBits' block_size). */
  blockSize: number;
  symmetric: boolean;
  scaleType?: ScaleType;
  /** Exponents tried: 0, 1/grid, ..., (grid-1)/grid (default 20, as the paper). */
  grid?: number;
  /** Clipping factors tried per block after the scales: 1, 1 - 1/clipGrid, ... down to 1/2 (default 20; 0: no clipping search). */
  clipGrid?: number;
}

export interface AwqResult {
  /** Per input feature: the layer reads x / s and its weight is W·diag(s). */
  scales: Float64Array;
  alpha: number;
  /** Per block of W·diag(s) ([rows, blocksPerRow]): its range is shrunk by this factor before rounding (1: none). */
  clip: Float32Array;
  /** Output error tr(D H Dᵀ) at the chosen α (before clipping), after clipping, and at α = 0 (round to nearest). */
  error: number;
  clippedError: number;
  rtnError: number;
}

/** Feature magnitudes m_k = sqrt(H_kk), the RMS up to a factor AWQ's normalisation removes. */
export function featureMagnitudes(hessian: Float64Array, cols: number): Float64Array {
  const m = new Float64Array(cols);
  let largest = 0;
  for (let k = 0; k < cols; k++) {
    m[k] = Math.sqrt(Math.max(0, hessian[k * cols + k]));
    largest = Math.max(largest, m[k]);
  }
  // A feature never seen (all zeros) would get s = 0: give it the smallest scale any feature can have.
  const floor = largest > 0 ? largest * 1e-6 : 1;
  for (let k = 0; k < cols; k++) m[k] = Math.max(m[k], floor);
  return m;
}

/** s = m^α, normalised to sqrt(max(s)·min(s)) = 1. */
export function awqScales(magnitudes: Float64Array, alpha: number): Float64Array {
  const s = magnitudes.map((m) => m ** alpha);
  let max = 0;
  let min = Infinity;
  for (const v of s) {
    max = Math.max(max, v);
    min = Math.min(min, v);
  }
  const norm = Math.sqrt(max * min);
  return s.map((v) => v / norm);
}

/**
 * Round-to-nearest blocks of W·diag(s) ([rows, cols], zero-padded to whole blocks as MatMulNBits
 * stores them), and what they decode to back in the original space, Q(W·diag(s))·diag(1/s).
 */
export function scaledBlocks(weights: Float64Array, rows: number, cols: number, scales: Float64Array | undefined, o: AwqOptions, clip?: (block: number) => number): { blocks: QuantizedBlocks; weights: Float64Array } {
  const padded = Math.ceil(cols / o.blockSize) * o.blockSize;
  const values = new Float32Array(rows * padded);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) values[r * padded + k] = weights[r * cols + k] * (scales === undefined ? 1 : scales[k]);
  if (clip !== undefined) clipBlocks(values, (rows * padded) / o.blockSize, o, clip);
  const blocks = quantizeBlocks(values, rows, padded, { bits: o.bits, blockSize: o.blockSize, symmetric: o.symmetric, scaleType: o.scaleType });
  const decoded = dequantizeBlocks(blocks);
  const back = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) back[r * cols + k] = decoded[r * padded + k] / (scales === undefined ? 1 : scales[k]);
  return { blocks, weights: back };
}

/**
 * Shrinks the range of each block to `clip(b)` times its own (b = row·blocksPerRow + block): values
 * clamped to [c·min, c·max] (symmetric: ±c·max|w|), so round-to-nearest picks a finer step and the
 * outliers of the block saturate. The codes of the clamped values are those of the originals under
 * the same scale and zero point (encoding clamps to the code range too).
 */
export function clipBlocks(values: Float32Array, blocks: number, o: AwqOptions, clip: (block: number) => number): void {
  for (let b = 0; b < blocks; b++) {
    const c = clip(b);
    if (c >= 1) continue;
    const start = b * o.blockSize;
    let min = Infinity;
    let max = -Infinity;
    for (let j = start; j < start + o.blockSize; j++) {
      min = Math.min(min, values[j]);
      max = Math.max(max, values[j]);
    }
    const hi = o.symmetric ? c * Math.max(Math.abs(min), Math.abs(max)) : c * max;
    const lo = o.symmetric ? -hi : c * min;
    for (let j = start; j < start + o.blockSize; j++) values[j] = Math.min(hi, Math.max(lo, values[j]));
  }
}

/** tr((W - Ŵ) H (W - Ŵ)ᵀ): the output error summed over the calibration inputs. */
export function outputError(weights: Float64Array, approx: Float64Array, rows: number, cols: number, hessian: Float64Array): number {
  const d = new Float64Array(cols);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) d[k] = weights[r * cols + k] - approx[r * cols + k];
    // dᵀ H d with H symmetric: the diagonal once, each pair above it twice.
    let sum = 0;
    for (let i = 0; i < cols; i++) {
      const di = d[i];
      if (di === 0) continue;
      const row = i * cols;
      let inner = 0;
      for (let j = i + 1; j < cols; j++) inner += hessian[row + j] * d[j];
      sum += di * (hessian[row + i] * di + 2 * inner);
    }
    total += sum;
  }
  return total;
}

/**
 * Per block, the clipping factor c in {1, 1 - 1/grid, ..., 1/2} with the least output error of the
 * block's own features, d_b H_bb d_bᵀ (the paper's per-group search; errors across blocks are
 * left out, as there; clipSearchRows adds them).
 */
export function clipSearch(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, scales: Float64Array, o: AwqOptions): Float32Array {
  const grid = o.clipGrid ?? 20;
  const blocksPerRow = Math.ceil(cols / o.blockSize);
  const clip = new Float32Array(rows * blocksPerRow).fill(1);
  const best = new Float64Array(rows * blocksPerRow).fill(Infinity);
  const d = new Float64Array(o.blockSize);
  for (let i = 0; i <= grid / 2; i++) {
    const c = 1 - i / grid;
    const approx = scaledBlocks(weights, rows, cols, scales, o, () => c).weights;
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < blocksPerRow; g++) {
        const first = g * o.blockSize;
        const n = Math.min(o.blockSize, cols - first);
        for (let j = 0; j < n; j++) d[j] = weights[r * cols + first + j] - approx[r * cols + first + j];
        let error = 0;
        for (let a = 0; a < n; a++) {
          const row = (first + a) * cols + first;
          let inner = 0;
          for (let b = 0; b < n; b++) inner += hessian[row + b] * d[b];
          error += d[a] * inner;
        }
        const at = r * blocksPerRow + g;
        if (error < best[at]) {
          best[at] = error;
          clip[at] = c;
        }
      }
    }
  }
  return clip;
}

/**
 * The clipping factors refined on each row's whole output error d H dᵀ, cross-block terms
 * included: starting from `start` (the per-block choice), block after block takes the factor that
 * lowers the row's error most given the others, for `sweeps` passes. With g = H d kept current, a
 * block's change δ moves the error by 2 δ·g_b + δ H_bb δ, so each try costs a block, not a row.
 */
export function clipSearchRows(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, scales: Float64Array, o: AwqOptions, start: Float32Array, sweeps = 2): Float32Array {
  const grid = o.clipGrid ?? 20;
  const factors: number[] = [];
  for (let i = 0; i <= grid / 2; i++) factors.push(1 - i / grid);
  const approx = factors.map((c) => scaledBlocks(weights, rows, cols, scales, o, () => c).weights);
  const blocksPerRow = Math.ceil(cols / o.blockSize);
  const clip = Float32Array.from(start);
  const d = new Float64Array(cols);
  const g = new Float64Array(cols);
  const delta = new Float64Array(o.blockSize);
  for (let r = 0; r < rows; r++) {
    const choice = (b: number) => {
      const c = clip[r * blocksPerRow + b];
      let best = 0;
      for (let i = 1; i < factors.length; i++) if (Math.abs(factors[i] - c) < Math.abs(factors[best] - c)) best = i;
      return best;
    };
    for (let b = 0; b < blocksPerRow; b++) {
      const a = approx[choice(b)];
      for (let k = b * o.blockSize; k < Math.min(cols, (b + 1) * o.blockSize); k++) d[k] = weights[r * cols + k] - a[r * cols + k];
    }
    for (let i = 0; i < cols; i++) {
      let sum = 0;
      for (let j = 0; j < cols; j++) sum += hessian[i * cols + j] * d[j];
      g[i] = sum;
    }
    for (let sweep = 0; sweep < sweeps; sweep++) {
      let moved = false;
      for (let b = 0; b < blocksPerRow; b++) {
        const first = b * o.blockSize;
        const n = Math.min(o.blockSize, cols - first);
        let bestChange = 0;
        let bestFactor = -1;
        for (const [f, a] of approx.entries()) {
          let linear = 0;
          for (let j = 0; j < n; j++) {
            delta[j] = weights[r * cols + first + j] - a[r * cols + first + j] - d[first + j];
            linear += delta[j] * g[first + j];
          }
          let quadratic = 0;
          for (let x = 0; x < n; x++) {
            if (delta[x] === 0) continue;
            const row = (first + x) * cols + first;
            let inner = 0;
            for (let y = 0; y < n; y++) inner += hessian[row + y] * delta[y];
            quadratic += delta[x] * inner;
          }
          const change = 2 * linear + quadratic;
          if (change < bestChange - 1e-12 * Math.abs(bestChange)) {
            bestChange = change;
            bestFactor = f;
          }
        }
        if (bestFactor < 0) continue;
        const a = approx[bestFactor];
        for (let j = 0; j < n; j++) delta[j] = weights[r * cols + first + j] - a[r * cols + first + j] - d[first + j];
        for (let i = 0; i < cols; i++) {
          let sum = 0;
          const row = i * cols + first;
          for (let j = 0; j < n; j++) sum += hessian[row + j] * delta[j];
          g[i] += sum;
        }
        for (let j = 0; j < n; j++) d[first + j] += delta[j];
        clip[r * blocksPerRow + b] = factors[bestFactor];
        moved = true;
      }
      if (!moved) break;
    }
  }
  return clip;
}

/** Searches α for `weights` ([rows, cols], not changed) given the calibration Gram matrix H ([cols, cols]). */
export function awqSearch(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, options: AwqOptions): AwqResult {
  const grid = options.grid ?? 20;
  const magnitudes = featureMagnitudes(hessian, cols);
  let best: Pick<AwqResult, 'scales' | 'alpha' | 'error'> | undefined;
  let rtnError = 0;
  for (let i = 0; i < grid; i++) {
    const alpha = i / grid;
    const scales = awqScales(magnitudes, alpha);
    const error = outputError(weights, scaledBlocks(weights, rows, cols, scales, options).weights, rows, cols, hessian);
    if (i === 0) rtnError = error;
    if (best === undefined || error < best.error) best = { scales, alpha, error };
  }
  if (best === undefined) throw new Error('awq: the grid needs at least one exponent');
  const blocksPerRow = Math.ceil(cols / options.blockSize);
  if ((options.clipGrid ?? 20) === 0) return { ...best, clip: new Float32Array(rows * blocksPerRow).fill(1), clippedError: best.error, rtnError };
  // Per block first (the paper's search), then refined on each row's whole error: at int2 the
  // per-block choice alone ended worse than round to nearest on gpt-spam's held-out perplexity.
  const clip = clipSearchRows(weights, rows, cols, hessian, best.scales, options, clipSearch(weights, rows, cols, hessian, best.scales, options));
  const clippedError = outputError(weights, scaledBlocks(weights, rows, cols, best.scales, options, (b) => clip[b]).weights, rows, cols, hessian);
  return { ...best, clip, clippedError, rtnError };
}
