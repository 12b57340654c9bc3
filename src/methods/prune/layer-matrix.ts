// A pruned layer's weight seen as the matrix the one-shot pruners work on, W [rows, cols] with one
// row per output and one column per input feature, and how its input activation becomes rows of
// those features:
//   MatMul B [K, N]            W = Bᵀ; features: the input's last axis
//   Gemm B [K, N] / [N, K]     W = Bᵀ / B (transB); features: the input's last axis (transA: not handled)
//   Conv W [M, C, k...], group 1
//                              W [M, k... x C]: column p·C + c holds W[m, c, p] (p a kernel
//                              position), so N:M runs are consecutive input channels at one kernel
//                              position, as the N:M pass cuts them; features: im2col of the input
// Anything else (grouped Conv, ConvTranspose, a weight read by several layers, a layer inside an
// If/Loop body whose inputs calibration cannot see) is left alone with the reason.
import type { ConvGeometry } from '../../eval/im2col.js';
import type { Node } from '../../ir/node.js';
import type { PruneTarget } from './layers.js';

export interface LayerMatrix {
  target: PruneTarget;
  node: Node;
  rows: number;
  cols: number;
  /** The activation whose rows of features the layer multiplies W with (its input 0). */
  input: string;
  /** Undefined: features along the input's last axis; else the convolution that unfolds it. */
  conv: ConvGeometry | undefined;
  /** Input channels per kernel position (conv), or cols: N:M runs must not cross a kernel position. */
  run: number;
  /** The weight as W [rows, cols] in float64. */
  read(): Float64Array;
  /** W [rows, cols] back in the weight's own layout. */
  write(matrix: Float64Array): Float32Array | Float64Array;
}

function newLike(values: Float32Array | Float64Array, length: number): Float32Array | Float64Array {
  return values instanceof Float64Array ? new Float64Array(length) : new Float32Array(length);
}

/** The matrix view of `target`, or why the one-shot methods leave it alone. */
export function layerMatrix(target: PruneTarget, main: PruneTarget['scope']): LayerMatrix | { reason: string } {
  if (target.readers.length !== 1) return { reason: `weight '${target.name}' is read by ${target.readers.length} layers (one-shot pruning fits one layer's inputs)` };
  const [reader] = target.readers;
  const node = reader.node;
  if (reader.graph !== main) return { reason: 'inside a subgraph: calibration cannot see its inputs' };
  const input = node.inputs[0];
  if (!input) return { reason: 'has no input activation' };
  const dims = target.weight.dims;
  const values = () => target.weight.data() as Float32Array | Float64Array;
  if (node.opType === 'MatMul' || node.opType === 'Gemm') {
    if (node.opType === 'Gemm' && node.attrInt('transA', 0) !== 0) return { reason: 'Gemm with transA: its features are not on the last axis' };
    if (dims.length !== 2) return { reason: `weight '${target.name}' [${dims}] is not a matrix` };
    const transposed = node.opType === 'Gemm' && node.attrInt('transB', 0) !== 0;
    const [rows, cols] = transposed ? [dims[0], dims[1]] : [dims[1], dims[0]];
    return {
      target, node, rows, cols, input, conv: undefined, run: cols,
      read: () => {
        const v = values();
        if (transposed) return Float64Array.from(v);
        const m = new Float64Array(rows * cols);
        for (let k = 0; k < cols; k++) for (let n = 0; n < rows; n++) m[n * cols + k] = v[k * rows + n];
        return m;
      },
      write: (m) => {
        const out = newLike(values(), m.length);
        if (transposed) out.set(m);
        else for (let k = 0; k < cols; k++) for (let n = 0; n < rows; n++) out[k * rows + n] = m[n * cols + k];
        return out;
      },
    };
  }
  if (node.opType === 'Conv') {
    const group = node.attrInt('group', 1);
    if (group !== 1) return { reason: `grouped Conv (group ${group})` };
    const [outputs, channels, ...kernel] = dims;
    if (kernel.length === 0) return { reason: `weight '${target.name}' [${dims}] has no kernel axes` };
    const positions = kernel.reduce((a, b) => a * b, 1);
    const rank = kernel.length;
    const autoPad = node.attrString('auto_pad', 'NOTSET');
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID' && autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER') return { reason: `auto_pad '${autoPad}'` };
    const conv: ConvGeometry = {
      kernel,
      strides: node.attrInts('strides') ?? new Array<number>(rank).fill(1),
      dilations: node.attrInts('dilations') ?? new Array<number>(rank).fill(1),
      pads: node.attrInts('pads') ?? new Array<number>(2 * rank).fill(0),
      autoPad,
    };
    const cols = positions * channels;
    return {
      target, node, rows: outputs, cols, input, conv, run: channels,
      read: () => {
        const v = values();
        const m = new Float64Array(outputs * cols);
        for (let o = 0; o < outputs; o++) for (let c = 0; c < channels; c++) for (let p = 0; p < positions; p++) m[o * cols + p * channels + c] = v[(o * channels + c) * positions + p];
        return m;
      },
      write: (m) => {
        const out = newLike(values(), m.length);
        for (let o = 0; o < outputs; o++) for (let c = 0; c < channels; c++) for (let p = 0; p < positions; p++) out[(o * channels + c) * positions + p] = m[o * cols + p * channels + c];
        return out;
      },
    };
  }
  return { reason: `${node.opType} is not handled by the one-shot methods` };
}
