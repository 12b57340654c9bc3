// Folding `y = scale[c] * P(x) + shift[c]` into the producer P when P is linear in its weights:
// Conv, ConvTranspose, Gemm, or MatMul with a constant 2-D weight. BatchNormalization in inference
// mode and Mul/Add/Sub/Div by per-channel constants are all this shape, so fold-batchnorm and
// fold-affine-into-conv share it. Output channel c scales the weights that produce it and the
// bias becomes bias * scale + shift. The weight layouts (Conv and ConvTranspose operator specs):
//   Conv           W [M, C/group, k...]  output channel = index along dim 0
//   ConvTranspose  W [C, M/group, k...]  output channel = group * (M/group) + index along dim 1
//   Gemm           B [K, N] (transB=0) or [N, K] (transB=1); MatMul B [K, N]
import { attr } from '../../ir/attribute.js';
import { constantValue } from '../../ir/constants.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import type { Tensor } from '../../ir/tensor.js';
import { isOp } from './graph-queries.js';
import { knownShape } from './static-info.js';
import { floatTensor, floatValues, isFoldableFloat } from './tensor-math.js';
import { writeNodeConstant } from './write-constant.js';

/** Where the output channels of a linear producer sit. */
export interface ChannelLayout {
  /** Number of output channels. */
  channels: number;
  /** Rank of the producer's output, when known. */
  rank: number | undefined;
  /** The axis holding the channels: 1 for Conv and Gemm, the last one for MatMul. */
  axis: number | undefined;
  weight: Tensor;
}

export const LINEAR_PRODUCERS = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'];

/** The channel layout of `node`'s output, or why its weights cannot absorb a per-channel affine. */
export function channelLayout(graph: Graph, node: Node): ChannelLayout | string {
  const { label, opType } = node;
  if (!isOp(node, ...LINEAR_PRODUCERS)) return `'${label}' is a ${opType}, not one of ${LINEAR_PRODUCERS.join('/')}`;
  const weightName = node.inputs[1] ?? '';
  const weight = weightName === '' ? undefined : constantValue(graph, weightName);
  if (weight === undefined) return `the weight '${weightName}' of '${node.label}' is not a constant`;
  if (!isFoldableFloat(weight.dataType)) return `the weight '${weight.name}' of '${node.label}' is not float32/float16/float64`;
  const dims = weight.dims;
  switch (node.opType) {
    case 'Conv':
      if (dims.length < 3) return `the weight of '${node.label}' has rank ${dims.length}`;
      return { channels: dims[0], rank: dims.length, axis: 1, weight };
    case 'ConvTranspose':
      if (dims.length < 3) return `the weight of '${node.label}' has rank ${dims.length}`;
      return { channels: dims[1] * node.attrInt('group', 1), rank: dims.length, axis: 1, weight };
    case 'Gemm':
      if (dims.length !== 2) return `the weight of '${node.label}' has rank ${dims.length}`;
      return { channels: node.attrInt('transB', 0) !== 0 ? dims[0] : dims[1], rank: 2, axis: 1, weight };
    default: {
      if (dims.length !== 2) return `the MatMul weight '${weight.name}' has rank ${dims.length}, not 2`;
      const rank = knownShape(graph, node.inputs[0])?.length;
      return { channels: dims[1], rank: rank === undefined ? undefined : Math.max(rank, 1), axis: rank === undefined ? undefined : Math.max(rank, 1) - 1, weight };
    }
  }
}

/**
 * Rewrites the weights (and bias) of `node` so that it computes `scale * out + shift` per output
 * channel. Returns undefined when done, or why nothing was changed.
 */
export function foldChannelAffine(model: Model, graph: Graph, node: Node, scale: Float64Array, shift: Float64Array): string | undefined {
  const layout = channelLayout(graph, node);
  if (typeof layout === 'string') return layout;
  const { weight, channels } = layout;
  if (scale.length !== channels || shift.length !== channels) return `'${node.label}' has ${channels} output channels, the factors ${scale.length}`;
  const hasShift = shift.some((v) => v !== 0);
  const biasName = node.opType === 'MatMul' ? '' : (node.inputs[2] ?? '');
  const bias = biasName === '' ? undefined : constantValue(graph, biasName);
  if (biasName !== '' && bias === undefined) return `the bias '${biasName}' of '${node.label}' is not a constant`;
  if (bias !== undefined && bias.dataType !== weight.dataType) return `the bias '${bias.name}' of '${node.label}' differs in type from its weight`;
  if (node.opType === 'MatMul' && hasShift) {
    // A MatMul has no bias; it becomes a Gemm, which needs 2-D operands and broadcasting C (opset 7+).
    if (layout.rank !== 2) return `'${node.label}' would need a bias, and its input is not known to be 2-D (needed to turn it into a Gemm)`;
    if ((model.opset('') ?? 0) < 7) return `'${node.label}' would need a bias; Gemm broadcasts it only from opset 7`;
  }

  const newWeight = floatTensor('', weight.dataType, weight.dims, scaleWeights(node, weight, scale));
  const newBias = foldedBias(node, bias, scale, shift, weight.dataType, channels);

  writeNodeConstant(model, graph, node, 1, newWeight, `${node.name || node.opType}_weight_folded`);
  if (newBias === undefined) return undefined;
  if (node.opType === 'MatMul') {
    node.opType = 'Gemm';
    node.attributes = [];
  }
  if (node.opType === 'Gemm') {
    if (bias === undefined || node.attrFloat('beta', 1) === 0) node.setAttribute(attr.float('beta', 1));
  }
  writeNodeConstant(model, graph, node, 2, newBias, `${node.name || node.opType}_bias_folded`);
  return undefined;
}

/** Weights with every element multiplied by its output channel's factor. */
function scaleWeights(node: Node, weight: Tensor, scale: Float64Array): Float64Array {
  const values = floatValues(weight);
  const dims = weight.dims;
  const channelOf = channelIndexer(node, dims);
  for (let i = 0; i < values.length; i++) values[i] *= scale[channelOf(i)];
  return values;
}

/** Maps a flat weight index to its output channel. */
function channelIndexer(node: Node, dims: readonly number[]): (i: number) => number {
  switch (node.opType) {
    case 'Conv': {
      const perChannel = dims.slice(1).reduce((a, b) => a * b, 1);
      return (i) => Math.floor(i / perChannel);
    }
    case 'ConvTranspose': {
      const group = node.attrInt('group', 1);
      const kernel = dims.slice(2).reduce((a, b) => a * b, 1);
      const outPerGroup = dims[1];
      const inPerGroup = dims[0] / group;
      return (i) => {
        const c = Math.floor(i / (outPerGroup * kernel));
        const j = Math.floor(i / kernel) % outPerGroup;
        return Math.floor(c / inPerGroup) * outPerGroup + j;
      };
    }
    case 'Gemm':
      if (node.attrInt('transB', 0) !== 0) return (i) => Math.floor(i / dims[1]);
      return (i) => i % dims[1];
    default:
      return (i) => i % dims[1];
  }
}

/**
 * The new bias, or undefined when none is needed (no bias before and no shift). Gemm computes
 * alpha*A*B + beta*C, so C absorbs shift/beta and keeps any broadcast shape it had along rows.
 */
function foldedBias(node: Node, bias: Tensor | undefined, scale: Float64Array, shift: Float64Array, dataType: number, channels: number): Tensor | undefined {
  const hasShift = shift.some((v) => v !== 0);
  if (bias === undefined && !hasShift) return undefined;
  if (node.opType !== 'Gemm' && node.opType !== 'MatMul') {
    const b = bias === undefined ? new Float64Array(channels) : floatValues(bias);
    const out = Float64Array.from({ length: channels }, (_, c) => (b.length === 1 ? b[0] : b[c]) * scale[c] + shift[c]);
    return floatTensor('', dataType, [channels], out);
  }
  const beta = node.opType === 'Gemm' ? node.attrFloat('beta', 1) : 1;
  if (bias === undefined || beta === 0) return floatTensor('', dataType, [channels], shift);
  const c = floatValues(bias);
  const dims = bias.dims;
  const rows = dims.length === 2 ? dims[0] : 1;
  const columns = dims.length === 0 ? 1 : dims[dims.length - 1];
  const out = new Float64Array(rows * channels);
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < channels; n++) out[r * channels + n] = c[r * columns + (columns === 1 ? 0 : n)] * scale[n] + shift[n] / beta;
  }
  return floatTensor('', dataType, dims.length === 2 ? [rows, channels] : [channels], out);
}
