// The one table of ops that carry a weight: where the weight (and bias) enters, and which of its
// axes hold the output channels, the reduction (K) and the groups. Quantization (per-channel
// scales, blocks along K), pruning (rows and columns), low-rank and GPTQ/AWQ all read it here.
// Layouts, from the ONNX operator specs:
//   Conv           W [M, C/group, k...]          output channels axis 0; reduction axis 1 (and the
//                                                kernel axes); depthwise when each group sees one
//                                                input channel (W [M, 1, k...], group > 1)
//   ConvTranspose  W [C, M/group, k...]          output channel g * (M/group) + j for index j along
//                                                axis 1 in group g; reduction axis 0
//   MatMul         B [K, N]                      output axis 1, reduction axis 0 (a 2-D constant B;
//                                                batched or 1-D B has no channel layout here)
//   Gemm           B [K, N], or [N, K] (transB)  output axis 1 (0), reduction axis 0 (1)
//   Gather         data [V, D] gathered on axis 0  rows looked up, not summed: output features
//                                                axis 1, no reduction
//   LSTM, GRU, RNN W [dirs, G*H, I], R [dirs, G*H, H] (G gates: 4, 3, 1)  gate rows axis 1,
//                                                reduction axis 2, directions stacked on axis 0
import { constantValue, isStandardDomain } from '../ir/constants.js';
import { dataTypeInfo } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Node } from '../ir/node.js';
import type { Tensor } from '../ir/tensor.js';

export type LayerFamily = 'conv' | 'linear' | 'embedding' | 'recurrent';

/** Where a weight of given dims, read by a given node, keeps its channels. */
export interface WeightAxes {
  /** Axis indexed by output channel: one scale per index in per-channel quantization, the rows pruning removes. */
  output: number;
  /** Axis summed over in the product with the input (K): quantization blocks, GPTQ's columns. Undefined for lookups. */
  reduction: number | undefined;
  /** Convolution groups (1 for everything else). */
  groups: number;
  /** Axes that stack separate matrices (the directions of LSTM, GRU, RNN). */
  stacked: number[];
  /** Output features of the layer: Conv M, ConvTranspose M (all groups), MatMul/Gemm N, Gather D, recurrent H. */
  outputChannels: number;
  /** Input features it reads: Conv and ConvTranspose C (all groups), MatMul/Gemm K, recurrent I; undefined for Gather. */
  inputChannels: number | undefined;
}

/** The weighted-layer entry of one op type. */
export interface WeightedOp {
  readonly family: LayerFamily;
  /** Input position of the weight. */
  readonly weight: number;
  /** Input position of the bias (Conv and ConvTranspose B, Gemm C, recurrent B), when the op has one. */
  readonly bias?: number;
  /** Input position of the recurrence weight R (LSTM, GRU, RNN), laid out like W. */
  readonly recurrence?: number;
  /** The weight's axes for `node`, or undefined when `dims` does not have the op's layout. */
  axes(node: Node, dims: readonly number[]): WeightAxes | undefined;
  /**
   * Channel axis of the activation read (input 0) and of the one produced (output 0); negative
   * counts from the end. Undefined input for Gather, whose input holds indices.
   */
  activationAxes(node: Node): { input: number | undefined; output: number };
}

function convAxes(node: Node, dims: readonly number[]): WeightAxes | undefined {
  if (dims.length < 3) return undefined;
  const groups = node.attrInt('group', 1) as number;
  return { output: 0, reduction: 1, groups, stacked: [], outputChannels: dims[0], inputChannels: dims[1] * groups };
}

function convTransposeAxes(node: Node, dims: readonly number[]): WeightAxes | undefined {
  if (dims.length < 3) return undefined;
  const groups = node.attrInt('group', 1) as number;
  return { output: 1, reduction: 0, groups, stacked: [], outputChannels: dims[1] * groups, inputChannels: dims[0] };
}

function matrixAxes(transposed: boolean, dims: readonly number[]): WeightAxes | undefined {
  if (dims.length !== 2) return undefined;
  const [output, reduction] = transposed ? [0, 1] : [1, 0];
  return { output, reduction, groups: 1, stacked: [], outputChannels: dims[output], inputChannels: dims[reduction] };
}

function recurrent(gates: number): WeightedOp {
  return {
    family: 'recurrent',
    weight: 1,
    recurrence: 2,
    bias: 3,
    axes: (node, dims) => {
      if (dims.length !== 3 || dims[1] % gates !== 0) return undefined;
      return { output: 1, reduction: 2, groups: 1, stacked: [0], outputChannels: dims[1] / gates, inputChannels: dims[2] };
    },
    // X [seq, batch, I] (layout 1: [batch, seq, I]); Y [seq, dirs, batch, H] ([batch, seq, dirs, H]).
    activationAxes: () => ({ input: -1, output: -1 }),
  };
}

const conv = { input: 1, output: 1 };

export const WEIGHTED_OPS: Readonly<Record<string, WeightedOp>> = {
  Conv: { family: 'conv', weight: 1, bias: 2, axes: convAxes, activationAxes: () => conv },
  ConvTranspose: { family: 'conv', weight: 1, bias: 2, axes: convTransposeAxes, activationAxes: () => conv },
  MatMul: { family: 'linear', weight: 1, axes: (_, dims) => matrixAxes(false, dims), activationAxes: () => ({ input: -1, output: -1 }) },
  Gemm: {
    family: 'linear',
    weight: 1,
    bias: 2,
    axes: (node, dims) => matrixAxes(node.attrInt('transB', 0) !== 0, dims),
    activationAxes: (node) => ({ input: node.attrInt('transA', 0) !== 0 ? 0 : 1, output: 1 }),
  },
  Gather: {
    family: 'embedding',
    weight: 0,
    axes: (node, dims) => {
      const axis = node.attrInt('axis', 0);
      if (dims.length !== 2 || (axis !== 0 && axis !== -2)) return undefined;
      return { output: 1, reduction: undefined, groups: 1, stacked: [], outputChannels: dims[1], inputChannels: undefined };
    },
    activationAxes: () => ({ input: undefined, output: -1 }),
  },
  LSTM: recurrent(4),
  GRU: recurrent(3),
  RNN: recurrent(1),
};

/** The table entry of `node` (ai.onnx ops only), or undefined when its op carries no weight. */
export function weightedOp(node: Node): WeightedOp | undefined {
  if (!isStandardDomain(node.domain) || !Object.hasOwn(WEIGHTED_OPS, node.opType)) return undefined;
  return WEIGHTED_OPS[node.opType];
}

/** Name of the value `node` reads as its weight, or undefined (no weighted op, or input absent). */
export function layerWeightName(node: Node): string | undefined {
  const op = weightedOp(node);
  const name = op === undefined ? undefined : node.inputs[op.weight];
  return name === undefined || name === '' ? undefined : name;
}

/** The weight of `node` when it is a constant (initializer or Constant node, any enclosing scope). */
export function layerWeight(graph: Graph, node: Node): Tensor | undefined {
  const name = layerWeightName(node);
  return name === undefined ? undefined : constantValue(graph, name);
}

/** True when `node` is a weighted layer whose weight is a constant of a float type. */
export function isWeightedLayer(graph: Graph, node: Node): boolean {
  const weight = layerWeight(graph, node);
  return weight !== undefined && dataTypeInfo(weight.dataType).isFloat;
}

/** The weight's axes for `node` (see the table), or undefined when `dims` do not fit the op. */
export function weightAxes(node: Node, dims: readonly number[]): WeightAxes | undefined {
  return weightedOp(node)?.axes(node, dims);
}

/** Axis of the weight indexed by output channel. */
export function outputChannelAxis(node: Node, dims: readonly number[]): number | undefined {
  return weightAxes(node, dims)?.output;
}

/** Axis of the weight summed over in the product (K). */
export function reductionAxis(node: Node, dims: readonly number[]): number | undefined {
  return weightAxes(node, dims)?.reduction;
}

/** K and N of a MatMul or Gemm weight, and whether it is stored [N, K] (Gemm's transB); undefined unless 2-D. */
export function matrixWeightShape(node: Node, dims: readonly number[]): { K: number; N: number; transposed: boolean } | undefined {
  const op = weightedOp(node);
  const axes = op?.family === 'linear' ? op.axes(node, dims) : undefined;
  if (axes === undefined || axes.inputChannels === undefined) return undefined;
  return { K: axes.inputChannels, N: axes.outputChannels, transposed: axes.output === 0 };
}

/** A grouped Conv in which every group sees one input channel (MobileNet's depthwise convolutions). */
export function isDepthwise(node: Node, dims: readonly number[]): boolean {
  const axes = node.opType === 'Conv' ? weightAxes(node, dims) : undefined;
  return axes !== undefined && axes.groups > 1 && dims[1] === 1;
}

/** A weighted layer with a constant float weight. */
export interface WeightedLayer {
  node: Node;
  op: WeightedOp;
  weightName: string;
  weight: Tensor;
  /** Undefined when the weight does not have the op's layout (a batched MatMul B, a Gather on axis 1). */
  axes: WeightAxes | undefined;
}

/** The weighted layers with a constant float weight among `nodes` (default: `graph`'s own, in list order). */
export function weightedLayers(graph: Graph, nodes: readonly Node[] = graph.nodes): WeightedLayer[] {
  const layers: WeightedLayer[] = [];
  for (const node of nodes) {
    const op = weightedOp(node);
    const weightName = layerWeightName(node);
    if (op === undefined || weightName === undefined) continue;
    const weight = constantValue(graph, weightName);
    if (weight === undefined || !dataTypeInfo(weight.dataType).isFloat) continue;
    layers.push({ node, op, weightName, weight, axes: op.axes(node, weight.dims) });
  }
  return layers;
}
