// The one registry of shape rules: ai.onnx op type -> rule. Ops not listed here are reported as
// not inferable rather than guessed. Each rule handles every opset from 7 on where the op's
// inputs or attributes changed (see the rule's file).
import { type RuleContext, type RuleOutput, type ShapeRule, sameAs, tensor } from './context.js';
import { ifRule, loop, scan } from './control-flow.js';
import { conv, convTranspose, globalPool, maxUnpool, pool } from './conv-pool.js';
import {
  broadcastArithmetic,
  broadcastPlain,
  compare,
  dropout,
  firstInputShape,
  identity,
  modRule,
  notRule,
  unary,
  unaryBool,
  unaryWithValue,
  where,
} from './elementwise.js';
import {
  compress,
  gather,
  gatherElements,
  gatherND,
  gridSample,
  nonMaxSuppression,
  nonZero,
  oneHot,
  roiAlign,
  scatter,
  slice,
  topK,
  unique,
} from './indexing.js';
import { einsum, gemm, matmul } from './matmul.js';
import { batchNormalization, layerNormalization, normalizeInPlace, softmax } from './normalization.js';
import { dequantizeLinear, dynamicQuantizeLinear, quantizeLinear } from './quantize.js';
import { recurrent } from './recurrent.js';
import { argMinMax, loss, reduce } from './reduce.js';
import { depthToSpace, expand, flatten, reshape, spaceToDepth, squeeze, tile, transpose, unsqueeze } from './reshape.js';
import { resize } from './resize.js';
import { cast, castLike, concat, constant, constantOfShape, eyeLike, pad, range, shapeOf, size, split } from './shape-values.js';

/** Ops whose output takes its type from a `dtype` attribute, else from input 0 (the *Like ops). */
function dtypeAttribute(ctx: RuleContext): RuleOutput[] {
  const out = sameAs(ctx);
  return [tensor(ctx.node.attrInt('dtype') ?? out.elemType, out.shape)];
}

/** Det: the last two (square) dims go. */
function det(ctx: RuleContext): RuleOutput[] {
  const shape = ctx.shape(0);
  return [tensor(ctx.elemType(0), shape.slice(0, -2))];
}

const UNARY_OPS = [
  'Relu', 'Sigmoid', 'Tanh', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Round', 'Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan',
  'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh', 'Erf', 'Elu', 'Selu', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Softplus',
  'Softsign', 'ThresholdedRelu', 'Shrink', 'Celu', 'Gelu', 'Mish', 'Sign', 'CumSum', 'Trilu', 'ReverseSequence',
  'LpNormalization', 'BitwiseNot',
] as const;

const REDUCE_OPS = [
  'ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum',
  'ReduceLogSumExp', 'ReduceSumSquare',
] as const;

export const SHAPE_RULES: Readonly<Record<string, ShapeRule>> = {
  ...Object.fromEntries(UNARY_OPS.map((op) => [op, unary])),
  ...Object.fromEntries(REDUCE_OPS.map((op) => [op, reduce])),
  Abs: unaryWithValue(Math.abs),
  Neg: unaryWithValue((x) => -x),
  Floor: unaryWithValue(Math.floor),
  Ceil: unaryWithValue(Math.ceil),
  IsNaN: unaryBool,
  IsInf: unaryBool,
  Not: notRule,
  Identity: identity,
  Dropout: dropout,

  Add: broadcastArithmetic,
  Sub: broadcastArithmetic,
  Mul: broadcastArithmetic,
  Div: broadcastArithmetic,
  Sum: broadcastArithmetic,
  Max: broadcastArithmetic,
  Min: broadcastArithmetic,
  Mean: broadcastArithmetic,
  Mod: modRule,
  Pow: broadcastPlain,
  BitShift: broadcastPlain,
  BitwiseAnd: broadcastPlain,
  BitwiseOr: broadcastPlain,
  BitwiseXor: broadcastPlain,
  PRelu: firstInputShape,
  Clip: firstInputShape,
  Equal: compare,
  Less: compare,
  Greater: compare,
  LessOrEqual: compare,
  GreaterOrEqual: compare,
  And: compare,
  Or: compare,
  Xor: compare,
  Where: where,

  Conv: conv,
  ConvInteger: conv,
  QLinearConv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool,
  AveragePool: pool,
  LpPool: pool,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  GlobalLpPool: globalPool,
  MaxUnpool: maxUnpool,

  BatchNormalization: batchNormalization,
  InstanceNormalization: normalizeInPlace,
  LayerNormalization: layerNormalization,
  GroupNormalization: normalizeInPlace,
  LRN: normalizeInPlace,
  MeanVarianceNormalization: normalizeInPlace,
  Softmax: softmax,
  LogSoftmax: softmax,
  Hardmax: softmax,

  MatMul: matmul,
  MatMulInteger: matmul,
  QLinearMatMul: matmul,
  Gemm: gemm,
  Einsum: einsum,

  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Expand: expand,
  Tile: tile,
  DepthToSpace: depthToSpace,
  SpaceToDepth: spaceToDepth,

  Shape: shapeOf,
  Size: size,
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Range: range,
  Cast: cast,
  CastLike: castLike,
  Concat: concat,
  Split: split,
  Pad: pad,
  EyeLike: eyeLike,
  Det: det,
  Bernoulli: dtypeAttribute,
  RandomUniformLike: dtypeAttribute,
  RandomNormalLike: dtypeAttribute,

  Slice: slice,
  Gather: gather,
  GatherElements: gatherElements,
  GatherND: gatherND,
  Scatter: scatter,
  ScatterElements: scatter,
  ScatterND: scatter,
  TopK: topK,
  OneHot: oneHot,
  NonZero: nonZero,
  Compress: compress,
  Unique: unique,
  NonMaxSuppression: nonMaxSuppression,
  GridSample: gridSample,
  RoiAlign: roiAlign,

  ReduceSum: reduce,
  ArgMax: argMinMax,
  ArgMin: argMinMax,
  NegativeLogLikelihoodLoss: loss,
  SoftmaxCrossEntropyLoss: loss,

  Resize: resize,
  Upsample: resize,
  LSTM: recurrent,
  GRU: recurrent,
  RNN: recurrent,
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
  DynamicQuantizeLinear: dynamicQuantizeLinear,

  If: ifRule,
  Loop: loop,
  Scan: scan,
};
