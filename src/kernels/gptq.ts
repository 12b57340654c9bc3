// GPTQ (Frantar et al. 2023): block quantization of a layer y = W·x that keeps its outputs on
// calibration inputs. W is [rows, cols] (rows: outputs, cols: input features K, the axis
// MatMulNBits cuts into blocks of `blockSize`), H = Σ xxᵀ over the calibration inputs. Columns are
// quantized one at a time in the obs.ts sweep, and the rounding error of each is spread over the
// columns not yet quantized, so later columns absorb earlier errors. A block's scale and zero point
// are chosen, exactly as round-to-nearest chooses them (quantize-blocks.ts), from the block's
// weights as updated when the sweep reaches its first column. With `actOrder`, columns are swept
// in order of decreasing H diagonal (the most-used features first) and, since onnxruntime's blocks
// are contiguous, each block's parameters are fixed before the sweep from the original weights
// ("static groups"). The result is the codes, scales and zero points MatMulNBits stores, and the
// weights they decode to. gptq-ref.ts is the same algorithm without the Cholesky factor or blocks.
import { inverseUpperCholesky } from './linalg.js';
import { obsSweep } from './obs.js';
import type { QuantBits, ScaleType } from './quant-formats.js';
import { type QuantizedBlocks, quantizeBlocks, roundHalfEven } from './quantize-blocks.js';
import { dampedHessian } from './sparsegpt.js';

export interface GptqOptions {
  bits: QuantBits;
  /** Weights per block along the columns (MatMulNBits' block_size). */
  blockSize: number;
  symmetric: boolean;
  scaleType?: ScaleType;
  /** Share of the mean diagonal of H added to it (default 0.01). */
  damping?: number;
  /** Columns per sweep block (default 128). */
  sweepBlock?: number;
  /** Quantize the most-used features first (default false). */
  actOrder?: boolean;
}

export interface GptqResult {
  /** [rows, ceil(cols / blockSize) * blockSize]: codes past `cols` encode 0 (MatMulNBits ignores them). */
  blocks: QuantizedBlocks;
  /** The weights the codes decode to, [rows, cols]. */
  weights: Float64Array;
  /** OBS estimate of the output error added. */
  loss: number;
}

/** Scale and zero point of every row's block `g`, from `w`'s current values (what round-to-nearest would pick). */
export function blockParameters(w: Float64Array, rows: number, cols: number, g: number, o: GptqOptions, into: QuantizedBlocks): void {
  const first = g * o.blockSize;
  const values = new Float32Array(rows * o.blockSize);
  for (let r = 0; r < rows; r++) for (let j = 0; j < o.blockSize && first + j < cols; j++) values[r * o.blockSize + j] = w[r * cols + first + j];
  const q = quantizeBlocks(values, rows, o.blockSize, { bits: o.bits, blockSize: o.blockSize, symmetric: o.symmetric, scaleType: o.scaleType });
  for (let r = 0; r < rows; r++) {
    into.scales[r * into.blocksPerRow + g] = q.scales[r];
    into.zeroPoints[r * into.blocksPerRow + g] = q.zeroPoints[r];
  }
}

/** The code of `value` in a block with `scale` and `zero`, as quantize-blocks.ts encodes it. */
export function encodeValue(value: number, scale: number, zero: number, qmax: number): number {
  const q = scale === 0 ? roundHalfEven(zero) : roundHalfEven(value * (1 / scale) + zero);
  return q < 0 ? 0 : q > qmax ? qmax : q;
}

/** Empty blocks for a [rows, cols] weight: codes, scales and zero points to fill. */
export function emptyBlocks(rows: number, cols: number, o: GptqOptions): QuantizedBlocks {
  const blocksPerRow = Math.ceil(cols / o.blockSize);
  const padded = blocksPerRow * o.blockSize;
  return {
    rows,
    cols: padded,
    bits: o.bits,
    blockSize: o.blockSize,
    blocksPerRow,
    symmetric: o.symmetric,
    scaleType: o.scaleType ?? 'float32',
    zeroPointType: 'integer',
    codes: new Uint8Array(rows * padded),
    scales: new Float32Array(rows * blocksPerRow),
    zeroPoints: new Float32Array(rows * blocksPerRow),
  };
}

/** Columns by decreasing H diagonal (stable), or the identity. */
export function sweepOrder(hessian: Float64Array, cols: number, actOrder: boolean): Uint32Array {
  const order = new Uint32Array(cols).map((_, i) => i);
  return actOrder ? order.sort((a, b) => hessian[b * cols + b] - hessian[a * cols + a] || a - b) : order;
}

/** Quantizes `weights` ([rows, cols], not changed) given the calibration Hessian ([cols, cols]). */
export function gptq(weights: Float64Array, rows: number, cols: number, hessian: Float64Array, options: GptqOptions): GptqResult {
  const blocks = emptyBlocks(rows, cols, options);
  const padded = blocks.cols;
  const qmax = 2 ** options.bits - 1;
  const order = sweepOrder(hessian, cols, options.actOrder ?? false);
  // The sweep runs over permuted columns: W[:, order] and H[order][order].
  const w = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) w[r * cols + j] = weights[r * cols + order[j]];
  const h = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] = hessian[order[i] * cols + order[j]];
  const u = inverseUpperCholesky(dampedHessian(h, cols, options.damping ?? 0.01), cols);
  if (options.actOrder) for (let g = 0; g < blocks.blocksPerRow; g++) blockParameters(weights, rows, cols, g, options, blocks);
  const loss = obsSweep(w, u, rows, cols, options.sweepBlock ?? 128, {
    // Natural order (w's columns are the weight's): a block's parameters come from its weights as
    // the sweep reaches its first column.
    beforeColumn: (k) => {
      if (!options.actOrder && k % options.blockSize === 0) blockParameters(w, rows, cols, k / options.blockSize, options, blocks);
    },
    value: (r, k, value) => {
      const column = order[k];
      const b = r * blocks.blocksPerRow + Math.floor(column / options.blockSize);
      const scale = blocks.scales[b];
      const zero = blocks.zeroPoints[b];
      const code = encodeValue(value, scale, zero, qmax);
      blocks.codes[r * padded + column] = code;
      return (code - zero) * scale;
    },
  });
  // Padding past K encodes 0, as round-to-nearest of the zero-padded block would.
  for (let r = 0; r < rows; r++) {
    for (let column = cols; column < padded; column++) {
      const b = r * blocks.blocksPerRow + Math.floor(column / options.blockSize);
      blocks.codes[r * padded + column] = encodeValue(0, blocks.scales[b], blocks.zeroPoints[b], qmax);
    }
  }
  const result = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) result[r * cols + order[j]] = w[r * cols + j];
  return { blocks, weights: result, loss };
}
