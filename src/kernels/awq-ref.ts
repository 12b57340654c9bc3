// The slow, obvious AWQ search for tests (awq.ts is the fast one): measured on the calibration rows
// X [samples, cols] themselves instead of their Gram matrix: the magnitude of feature k is its RMS
// over the rows, and a candidate's error is Σ_n ‖(W - Ŵ)·x_n‖², each output computed one by one.
// Each row of W·diag(s) is rounded on its own; each block's clipping factor is tried on that block
// alone, its error Σ_n (Σ_k∈block d_k·x_nk)².
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
    for (let r = 0; r < rows; r++) {
      const row = new Float32Array(padded);
      for (let k = 0; k < cols; k++) row[k] = weights[r * cols + k] * best.scales[k];
      const chosen = new Float64Array(padded);
      for (let g = 0; g < per; g++) {
        let least = Infinity;
        for (let i = 0; i <= clipGrid / 2; i++) {
          const c = 1 - i / clipGrid;
          const block = row.slice(g * options.blockSize, (g + 1) * options.blockSize);
          const max = Math.max(...block);
          const min = Math.min(...block);
          const hi = options.symmetric ? c * Math.max(max, -min) : c * max;
          const lo = options.symmetric ? -hi : c * min;
          const clamped = block.map((v) => Math.min(hi, Math.max(lo, v)));
          const decoded = dequantizeBlocks(quantizeBlocks(clamped, 1, options.blockSize, { bits: options.bits, blockSize: options.blockSize, symmetric: options.symmetric, scaleType: options.scaleType }));
          let error = 0;
          for (let n = 0; n < samples; n++) {
            let y = 0;
            for (let j = 0; j < options.blockSize && g * options.blockSize + j < cols; j++) {
              const k = g * options.blockSize + j;
              y += (weights[r * cols + k] - decoded[j] / best.scales[k]) * x[n * cols + k];
            }
            error += y * y;
          }
          if (error < least) {
            least = error;
            clip[r * per + g] = c;
            for (let j = 0; j < options.blockSize; j++) chosen[g * options.blockSize + j] = decoded[j];
          }
        }
      }
      for (let n = 0; n < samples; n++) {
        let y = 0;
        for (let k = 0; k < cols; k++) y += (weights[r * cols + k] - chosen[k] / best.scales[k]) * x[n * cols + k];
        clippedError += y * y;
      }
    }
  }
  return { ...best, clip, clippedError, rtnError: candidates[0].error };
}
