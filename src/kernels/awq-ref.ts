// The slow, obvious AWQ search for tests (awq.ts is the fast one): measured on the calibration rows
// X [samples, cols] themselves instead of their Gram matrix: the magnitude of feature k is its RMS
// over the rows, and a candidate's error is Σ_n ‖(W - Ŵ)·x_n‖², each output computed one by one.
// Each row of W·diag(s) is rounded on its own; each block's clipping factor is tried on that block
// alone, its error Σ_n (Σ_k∈block d_k·x_nk)², then block by block again on the whole row's error
// Σ_n (Σ_k d_k·x_nk)², two sweeps.
import type { AwqOptions, AwqResult } from './awq.js';
import { dequantizeBlocks, quantizeBlocks } from './quantize-blocks.js';

export function awqSearchRef(weights: Float64Array, rows: number, cols: number, x: Float64Array, samples: number, options: AwqOptions): AwqResult {
  const rms: number[] = [];
  for (let k = 0; k < cols; k++) {
    let sum = 0;
    for (let n = 0; n < samples; n++) sum += x[n * cols + k] ** 2;
    rms.push(Math.sqrt(sum / samples));
  }
  const largest = Math.max(...rms);
  const magnitudes = rms.map((m) => Math.max(m, largest > 0 ? largest * 1e-6 : 1));
  const padded = Math.ceil(cols / options.blockSize) * options.blockSize;
  const grid = options.grid ?? 20;
  const candidates: Pick<AwqResult, 'scales' | 'alpha' | 'error'>[] = [];
  for (let i = 0; i < grid; i++) {
    const alpha = i / grid;
    const raw = magnitudes.map((m) => m ** alpha);
    const norm = Math.sqrt(Math.max(...raw) * Math.min(...raw));
    const scales = Float64Array.from(raw, (v) => v / norm);
    let error = 0;
    for (let r = 0; r < rows; r++) {
      const row = new Float32Array(padded);
      for (let k = 0; k < cols; k++) row[k] = weights[r * cols + k] * scales[k];
      const decoded = dequantizeBlocks(quantizeBlocks(row, 1, padded, { bits: options.bits, blockSize: options.blockSize, symmetric: options.symmetric, scaleType: options.scaleType }));
      for (let n = 0; n < samples; n++) {
        let y = 0;
        for (let k = 0; k < cols; k++) y += (weights[r * cols + k] - decoded[k] / scales[k]) * x[n * cols + k];
        error += y * y;
      }
    }
    candidates.push({ scales, alpha, error });
  }
  const best = candidates.reduce((a, b) => (b.error < a.error ? b : a));
  const per = padded / options.blockSize;
  const clip = new Float32Array(rows * per).fill(1);
  let clippedError = best.error;
  const clipGrid = options.clipGrid ?? 20;
  if (clipGrid > 0) {
    clippedError = 0;
    const factors = Array.from({ length: Math.floor(clipGrid / 2) + 1 }, (_, i) => 1 - i / clipGrid);
    for (let r = 0; r < rows; r++) {
      const row = new Float32Array(padded);
      for (let k = 0; k < cols; k++) row[k] = weights[r * cols + k] * best.scales[k];
      // Every block clipped by every factor and rounded, decoded back to the original space.
      const decodedBy = (g: number, c: number): Float64Array => {
        const block = row.slice(g * options.blockSize, (g + 1) * options.blockSize);
        const max = Math.max(...block);
        const min = Math.min(...block);
        const hi = options.symmetric ? c * Math.max(max, -min) : c * max;
        const lo = options.symmetric ? -hi : c * min;
        const clamped = block.map((v) => Math.min(hi, Math.max(lo, v)));
        const decoded = dequantizeBlocks(quantizeBlocks(clamped, 1, options.blockSize, { bits: options.bits, blockSize: options.blockSize, symmetric: options.symmetric, scaleType: options.scaleType }));
        return Float64Array.from(decoded, (v, j) => (g * options.blockSize + j < cols ? v / best.scales[g * options.blockSize + j] : 0));
      };
      const options_ = factors.map((c) => Array.from({ length: per }, (_, g) => decodedBy(g, c)));
      const choice = new Array<number>(per).fill(0);
      // Σ_n ‖y_n‖² of the row's error over the blocks `only` (all when undefined), each block from its choice.
      const error = (only?: number): number => {
        let total = 0;
        for (let n = 0; n < samples; n++) {
          let y = 0;
          for (let k = 0; k < cols; k++) {
            const g = Math.floor(k / options.blockSize);
            if (only !== undefined && g !== only) continue;
            y += (weights[r * cols + k] - options_[choice[g]][g][k - g * options.blockSize]) * x[n * cols + k];
          }
          total += y * y;
        }
        return total;
      };
      // Per block, on that block alone.
      for (let g = 0; g < per; g++) {
        let least = Infinity;
        let pick = 0;
        for (let f = 0; f < factors.length; f++) {
          choice[g] = f;
          const e = error(g);
          if (e < least) {
            least = e;
            pick = f;
          }
        }
        choice[g] = pick;
      }
      // Then two sweeps over the blocks, each measured on the whole row.
      for (let sweep = 0; sweep < 2; sweep++) {
        for (let g = 0; g < per; g++) {
          const kept = choice[g];
          let least = error();
          let pick = kept;
          for (let f = 0; f < factors.length; f++) {
            choice[g] = f;
            const e = error();
            if (e < least * (1 - 1e-12)) {
              least = e;
              pick = f;
            }
          }
          choice[g] = pick;
        }
      }
      for (let g = 0; g < per; g++) clip[r * per + g] = factors[choice[g]];
      clippedError += error();
    }
  }
  return { ...best, clip, clippedError, rtnError: candidates[0].error };
}
