// GPTQ for large layers (K x N up to 16384 x 16384): the same algorithm and results as gptq.ts
// (within float32 rounding), with the heavy work handed to a matrix engine (onnxruntime's GEMMs):
//
// - H⁻¹ = UᵀU is never formed. With H = ŨŨᵀ (Ũ upper: the Cholesky factor of H with its axes
//   reversed, cholesky-blocked.ts), U = Ũ⁻¹; one factorization (K³/6 multiply-adds on the engine)
//   instead of gptq.ts's factor, inverse and second factor.
// - Left-looking updates: the sweep keeps R = W - Q (original minus quantized) of the columns done.
//   Since W - Q = E·U (E the scaled errors), the columns of block B as the sweep reaches them are
//   W_B + R_P·Ũ_PB·U_BB (P: the columns before B): two products per block of 128 columns on the
//   engine, reading R in place, instead of updating every later column after every block.
// - Weights are transposed, Wᵀ [K, N] (a MatMul's own layout), so a column of W is a contiguous row.
// The column sweep inside a block stays in JS, in float64 (the obs.ts sweep on the block), 32
// columns at a time, the rest of the block updated by a product after each 32.
import { emptyBlocks, encodeValue, type GptqOptions, sweepOrder } from './gptq.js';
import { choleskyBlocked } from './cholesky-blocked.js';
import type { MatrixProducts } from './matrix-products.js';
import type { QuantizedBlocks } from './quantize-blocks.js';
import { quantizeBlocks } from './quantize-blocks.js';

/** Columns swept in JS between two products inside a block (a quarter of the JS work of whole blocks). */
const INNER = 32;

export interface GptqBlockedResult {
  /** As gptq.ts: [rows, padded cols] codes, scales and zero points. */
  blocks: QuantizedBlocks;
  /** The weights the codes decode to, transposed as the input: [cols, rows]. */
  weightsT: Float32Array;
  /** OBS estimate of the output error added. */
  loss: number;
}

/**
 * Quantizes a layer given as Wᵀ (`weightsT`, [cols, rows]: cols = K input features, rows = N
 * outputs; not changed) and its calibration Hessian ([cols, cols], float64 or float32).
 */
export async function gptqBlocked(weightsT: Float32Array, rows: number, cols: number, hessian: Float64Array | Float32Array, options: GptqOptions, products: MatrixProducts): Promise<GptqBlockedResult> {
  const blocks = emptyBlocks(rows, cols, options);
  const padded = blocks.cols;
  const qmax = 2 ** options.bits - 1;
  const groupSize = options.blockSize;
  // A sweep block holds whole quantization groups, so a group's parameters see every update before it.
  const sweep = Math.max(groupSize, Math.ceil((options.sweepBlock ?? 128) / groupSize) * groupSize);
  const actOrder = options.actOrder ?? false;
  const order = sweepOrder(hessian as Float64Array, cols, actOrder);
  const u = await reversedFactor(hessian, cols, order, options.damping ?? 0.01, products);
  if (actOrder) for (let g = 0; g < blocks.blocksPerRow; g++) groupParameters(weightsT, rows, cols, g * groupSize, options, blocks, g);
  // r: R = W - Q in sweep order, transposed ([cols, rows]); becomes Q at the end.
  const r = new Float32Array(cols * rows);
  const original = (k: number) => weightsT.subarray(order[k] * rows, (order[k] + 1) * rows);
  let loss = 0;
  for (let start = 0; start < cols; start += sweep) {
    const end = Math.min(cols, start + sweep);
    const width = end - start;
    // ũ_BB and its inverse U_BB, float64 [width, width].
    const ubb = invertUpper(u, cols, start, width);
    // The block's columns as the sweep reaches them: W_B + (U_BBᵀ·(Ũ_PBᵀ·R_P))ᵀ, transposed.
    const current = new Float64Array(width * rows);
    for (let k = 0; k < width; k++) {
      const w = original(start + k);
      for (let i = 0; i < rows; i++) current[k * rows + i] = w[i];
    }
    if (start > 0) {
      const upb = new Float32Array(start * width);
      for (let p = 0; p < start; p++) upb.set(u.subarray(p * cols + start, p * cols + end), p * width);
      const t = await products.matmul(upb, r.subarray(0, start * rows), width, start, rows, true);
      const ubbT = new Float32Array(width * width);
      for (let i = 0; i < width; i++) for (let j = i; j < width; j++) ubbT[j * width + i] = ubb[i * width + j];
      const update = await products.matmul(ubbT, t, width, width, rows);
      for (let i = 0; i < current.length; i++) current[i] += update[i];
    }
    // Inside the block, columns go INNER at a time: each column's error is spread over the rest of
    // its sub-block in JS, over the rest of the block by one product when the sub-block ends.
    for (let sub = 0; sub < width; sub += INNER) {
      const subEnd = Math.min(width, sub + INNER);
      const errors = new Float32Array((subEnd - sub) * rows);
      for (let k = sub; k < subEnd; k++) {
        const position = start + k;
        const column = order[position];
        if (!actOrder && column % groupSize === 0) groupParametersCurrent(current, rows, k, Math.min(groupSize, cols - column), options, blocks, column / groupSize);
        const group = Math.floor(column / groupSize);
        const d = ubb[k * width + k];
        const w = original(position);
        const row = k * rows;
        const err = errors.subarray((k - sub) * rows, (k - sub + 1) * rows);
        for (let i = 0; i < rows; i++) {
          const b = i * blocks.blocksPerRow + group;
          const scale = blocks.scales[b];
          const zero = blocks.zeroPoints[b];
          const value = current[row + i];
          const code = encodeValue(value, scale, zero, qmax);
          blocks.codes[i * padded + column] = code;
          const q = (code - zero) * scale;
          const e = (value - q) / d;
          err[i] = e;
          loss += (e * e) / 2;
          r[position * rows + i] = w[i] - q;
        }
        for (let j = k + 1; j < subEnd; j++) {
          const f = ubb[k * width + j];
          if (f === 0) continue;
          const target = j * rows;
          for (let i = 0; i < rows; i++) current[target + i] -= err[i] * f;
        }
      }
      if (subEnd < width) {
        // current[subEnd:, :] -= U_BB[sub:subEnd, subEnd:]ᵀ · errors
        const rest = width - subEnd;
        const factors = new Float32Array((subEnd - sub) * rest);
        for (let k = sub; k < subEnd; k++) for (let j = 0; j < rest; j++) factors[(k - sub) * rest + j] = ubb[k * width + subEnd + j];
        const update = await products.matmul(factors, errors, rest, subEnd - sub, rows, true);
        const offset = subEnd * rows;
        for (let i = 0; i < update.length; i++) current[offset + i] -= update[i];
      }
    }
  }
  // Padding past K encodes 0, as round-to-nearest of the zero-padded block would.
  for (let i = 0; i < rows; i++) {
    for (let column = cols; column < padded; column++) {
      const b = i * blocks.blocksPerRow + Math.floor(column / groupSize);
      blocks.codes[i * padded + column] = encodeValue(0, blocks.scales[b], blocks.zeroPoints[b], qmax);
    }
  }
  // Q = W - R, back in the weight's column order.
  const weights = new Float32Array(cols * rows);
  for (let k = 0; k < cols; k++) {
    const w = original(k);
    const target = order[k] * rows;
    for (let i = 0; i < rows; i++) weights[target + i] = w[i] - r[k * rows + i];
  }
  return { blocks, weightsT: weights, loss };
}

/**
 * Ũ (float32, [n, n], upper) with H_d = ŨŨᵀ, H_d the damped Hessian in sweep order (as
 * sparsegpt.ts `dampedHessian`: unused features get 1 on the diagonal, then damping x the mean
 * diagonal is added). The Cholesky factor of H_d with both axes reversed is L' with
 * J·H_d·J = L'L'ᵀ, and Ũ = J·L'·J: reversing the flat array reverses both axes.
 */
async function reversedFactor(hessian: Float64Array | Float32Array, n: number, order: Uint32Array, damping: number, products: MatrixProducts): Promise<Float32Array> {
  let mean = 0;
  for (let k = 0; k < n; k++) mean += hessian[k * n + k];
  mean /= Math.max(1, n);
  const add = damping * (mean > 0 ? mean : 1);
  // Row i of J·H_d·J is row order[n - 1 - i] of H_d, reversed; the factor reads the lower triangle only.
  const a = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const source = order[n - 1 - i] * n;
    for (let j = 0; j <= i; j++) {
      const v = hessian[source + order[n - 1 - j]];
      a[i * n + j] = i === j ? (v === 0 ? 1 : v) + add : v;
    }
  }
  const factor = await choleskyBlocked(a, n, products);
  return factor.reverse();
}

/** U_BB = Ũ_BB⁻¹ for the diagonal block at `start` of upper-triangular Ũ ([n, n]): float64 [w, w]. */
function invertUpper(u: Float32Array, n: number, start: number, w: number): Float64Array {
  const inv = new Float64Array(w * w);
  for (let j = w - 1; j >= 0; j--) {
    const diag = u[(start + j) * n + start + j];
    inv[j * w + j] = 1 / diag;
    for (let i = j - 1; i >= 0; i--) {
      let s = 0;
      for (let k = i + 1; k <= j; k++) s += u[(start + i) * n + start + k] * inv[k * w + j];
      inv[i * w + j] = -s / u[(start + i) * n + start + i];
    }
  }
  return inv;
}

/** Group `g`'s parameters for every row from rows [k, k + size) of the transposed block `current`. */
function groupParametersCurrent(current: Float64Array, rows: number, k: number, size: number, o: GptqOptions, into: QuantizedBlocks, g: number): void {
  const values = new Float32Array(rows * o.blockSize);
  for (let j = 0; j < size; j++) for (let i = 0; i < rows; i++) values[i * o.blockSize + j] = current[(k + j) * rows + i];
  store(values, rows, o, into, g);
}

/** Group `g`'s parameters from the original weights (act-order's static groups): columns [first, first + blockSize). */
function groupParameters(weightsT: Float32Array, rows: number, cols: number, first: number, o: GptqOptions, into: QuantizedBlocks, g: number): void {
  const values = new Float32Array(rows * o.blockSize);
  for (let j = 0; j < o.blockSize && first + j < cols; j++) for (let i = 0; i < rows; i++) values[i * o.blockSize + j] = weightsT[(first + j) * rows + i];
  store(values, rows, o, into, g);
}

function store(values: Float32Array, rows: number, o: GptqOptions, into: QuantizedBlocks, g: number): void {
  const q = quantizeBlocks(values, rows, o.blockSize, { bits: o.bits, blockSize: o.blockSize, symmetric: o.symmetric, scaleType: o.scaleType });
  for (let i = 0; i < rows; i++) {
    into.scales[i * into.blocksPerRow + g] = q.scales[i];
    into.zeroPoints[i * into.blocksPerRow + g] = q.zeroPoints[i];
  }
}
