// How channels flow through each op, one rule per op type (shape ops in channel-rules-shape.ts).
// A rule reads its inputs' channel tags and either passes them on (Relu, BatchNormalization,
// pooling), ties them (a residual Add, the two sides of a dot product), consumes them into a
// weight (a Conv's input channels become columns of W), creates new ones (a Conv's output
// channels), or blocks them with the reason (a LayerNormalization over the channel axis, a
// graph output, an op it does not know). Layouts follow the ONNX operator specs:
//   Conv            X [N, C, ...], W [M, C/group, k...], B [M]  -> Y [N, M, ...]
//   ConvTranspose   X [N, C, ...], W [C, M/group, k...], B [M]  -> Y [N, M, ...]
//   Gemm            A [M, K] (transA: [K, M]), B [K, N] (transB: [N, K]), C broadcast to [M, N]
//   MatMul          A [..., M, K] x B [..., K, N] -> [..., M, N] (numpy broadcasting of the batch)
//   BatchNorm       X [N, C, ...], scale/B/mean/var [C]
import { DataType } from '../ir/dtype.js';
import { type ChannelTag, repeatAtoms } from './channel-atoms.js';
import { blockInputs, type ChannelRule, type ChannelRuleContext, inputRank, mapTags, mergeTags, normaliseAxis } from './channel-rule-context.js';
import { SHAPE_RULES } from './channel-rules-shape.js';

/** Output 0 carries input 0's tags unchanged; channels read at other inputs are blocked. */
const passThrough: ChannelRule = (ctx) => {
  ctx.node.inputs.forEach((_, i) => {
    if (i > 0) for (const tag of ctx.tags(i)) ctx.block(tag.atoms, `input ${i} of ${ctx.node.opType} is not elementwise`);
  });
  ctx.output(0, [...ctx.tags(0)]);
};

/**
 * Elementwise ops with numpy broadcasting over inputs `inputs` (default all): tags landing on one
 * output axis are tied; a constant with that axis in full is sliced along; a value computed at run
 * time without channels there cannot follow the pruning, so the channels are blocked.
 */
function elementwise(inputs?: readonly number[]): ChannelRule {
  return (ctx) => {
    const outRank = ctx.outputDims(0)?.length;
    const used = inputs ?? ctx.node.inputs.map((_, i) => i).filter((i) => ctx.node.inputs[i] !== '');
    if (outRank === undefined) {
      blockInputs(ctx, `the rank of ${ctx.node.opType}'s output is unknown`);
      return;
    }
    const offset = (i: number) => outRank - (inputRank(ctx, i) ?? outRank);
    const merged = mergeTags(
      ctx,
      used.flatMap((i) => ctx.tags(i).map((t) => ({ axis: t.axis + offset(i), atoms: t.atoms }))),
    );
    for (const tag of merged) {
      for (const i of used) {
        if (ctx.tags(i).some((t) => t.axis + offset(i) === tag.axis)) continue;
        const dims = ctx.inputDims(i);
        const axis = tag.axis - offset(i);
        if (dims === undefined) ctx.block(tag.atoms, `input ${i} of ${ctx.node.opType} has an unknown shape`);
        else if (axis < 0 || dims[axis] === 1) continue;
        else if (ctx.constant(i) !== undefined && dims[axis] === tag.atoms.length) ctx.member(i, axis, tag.atoms, 'param');
        else ctx.block(tag.atoms, `input ${i} of ${ctx.node.opType} has these positions but no channels that can follow`);
      }
    }
    ctx.output(0, merged);
  };
}

/** Axis 1 carries the channels; batch tags pass; others are mixed spatially and blocked. */
function channelAndBatch(ctx: ChannelRuleContext, what: string): { channel: ChannelTag | undefined; batch: ChannelTag[] } {
  let channel: ChannelTag | undefined;
  const batch: ChannelTag[] = [];
  for (const tag of ctx.tags(0)) {
    if (tag.axis === 1) channel = tag;
    else if (tag.axis === 0) batch.push(tag);
    else ctx.block(tag.atoms, `${what} mixes axis ${tag.axis} spatially`);
  }
  return { channel, batch };
}

const conv: ChannelRule = (ctx) => {
  const weight = ctx.constant(1);
  if (weight === undefined || weight.dims.length < 3) {
    blockInputs(ctx, 'Conv weight is computed at run time');
    return;
  }
  const [M, perGroup] = weight.dims;
  const groups = ctx.node.attrInt('group', 1);
  const { channel, batch } = channelAndBatch(ctx, 'Conv');
  let out: Int32Array;
  if (groups === 1) {
    if (channel !== undefined) ctx.member(1, 1, channel.atoms, 'weight-in');
    out = ctx.fresh(M, 'output channels');
  } else if (perGroup === 1) {
    // Depthwise (a channel multiplier allowed): output channel m reads input channel m / (M / group),
    // so input and output channels go together and `group` becomes the number of channels kept.
    const input = channel?.atoms ?? ctx.fresh(groups, 'input channels of a depthwise Conv');
    if (channel === undefined) ctx.block(input, 'depthwise Conv reads channels that carry no prunable group');
    out = repeatAtoms(input, M / groups);
    ctx.edit(input, 'group', (kept) => ctx.node.setAttribute({ name: 'group', kind: 'int', value: BigInt(countKept(input, kept)) }));
  } else {
    // Grouped: every group keeps the same number of input and output channels, so position j of
    // each group is tied to position j of the others and they go together.
    if (channel !== undefined) {
      tieBlocks(ctx, channel.atoms, groups);
      ctx.member(1, 1, channel.atoms.subarray(0, perGroup), 'weight-in');
    }
    out = ctx.fresh(M, 'output channels');
    tieBlocks(ctx, out, groups);
  }
  ctx.member(1, 0, out, 'weight');
  if (ctx.node.inputs[2]) ctx.member(2, 0, out, 'bias');
  ctx.output(0, [...batch, { axis: 1, atoms: out }]);
};

const convTranspose: ChannelRule = (ctx) => {
  const weight = ctx.constant(1);
  if (weight === undefined || weight.dims.length < 3) {
    blockInputs(ctx, 'ConvTranspose weight is computed at run time');
    return;
  }
  const [C, perGroup] = weight.dims;
  const groups = ctx.node.attrInt('group', 1);
  const { channel, batch } = channelAndBatch(ctx, 'ConvTranspose');
  let out: Int32Array;
  if (groups === 1) {
    if (channel !== undefined) ctx.member(1, 0, channel.atoms, 'weight-in');
    out = ctx.fresh(perGroup, 'output channels');
    ctx.member(1, 1, out, 'weight');
  } else if (groups === C) {
    // Depthwise transposed: input channel c feeds outputs c * (M / group) ... (c + 1) * (M / group) - 1.
    const input = channel?.atoms ?? ctx.fresh(C, 'input channels of a depthwise ConvTranspose');
    if (channel === undefined) ctx.block(input, 'depthwise ConvTranspose reads channels that carry no prunable group');
    ctx.member(1, 0, input, 'weight');
    out = repeatAtoms(input, perGroup);
    ctx.edit(input, 'group', (kept) => ctx.node.setAttribute({ name: 'group', kind: 'int', value: BigInt(countKept(input, kept)) }));
  } else {
    if (channel !== undefined) ctx.block(channel.atoms, `ConvTranspose with ${groups} groups is not pruned`);
    out = ctx.fresh(perGroup * groups, 'output channels');
    ctx.block(out, `ConvTranspose with ${groups} groups is not pruned`);
  }
  if (ctx.node.inputs[2]) ctx.member(2, 0, out, 'bias');
  ctx.output(0, [...batch, { axis: 1, atoms: out }]);
};

/** Ties position j of each of `groups` equal blocks of `atoms` to position j of the first. */
function tieBlocks(ctx: ChannelRuleContext, atoms: Int32Array, groups: number): void {
  const size = atoms.length / groups;
  for (let g = 1; g < groups; g++) ctx.unify(atoms.subarray(0, size), atoms.subarray(g * size, (g + 1) * size));
}

function countKept(atoms: Int32Array, kept: (atom: number) => boolean): number {
  let n = 0;
  for (const a of atoms) if (kept(a)) n++;
  return n;
}

const gemm: ChannelRule = (ctx) => {
  const weight = ctx.constant(1);
  const transA = ctx.node.attrInt('transA', 0) !== 0;
  const transB = ctx.node.attrInt('transB', 0) !== 0;
  if (weight === undefined || weight.dims.length !== 2) {
    blockInputs(ctx, 'Gemm weight B is computed at run time');
    return;
  }
  const [kA, mA] = transA ? [0, 1] : [1, 0];
  const [kB, nB] = transB ? [1, 0] : [0, 1];
  const outTags: ChannelTag[] = [];
  for (const tag of ctx.tags(0)) {
    if (tag.axis === kA) ctx.member(1, kB, tag.atoms, 'weight-in');
    else if (tag.axis === mA) outTags.push({ axis: 0, atoms: tag.atoms });
  }
  const out = ctx.fresh(weight.dims[nB], 'output features');
  ctx.member(1, nB, out, 'weight');
  biasMember(ctx, 2, out);
  blockOtherInputs(ctx, [0, 1]);
  ctx.output(0, [...outTags, { axis: 1, atoms: out }]);
};

/** Input `i` (a bias broadcast to [..., N]) sliced along its last axis when it holds all N features. */
function biasMember(ctx: ChannelRuleContext, i: number, out: Int32Array): void {
  if (!ctx.node.inputs[i]) return;
  const bias = ctx.constant(i);
  const last = bias === undefined ? undefined : bias.dims[bias.dims.length - 1];
  if (bias === undefined) ctx.block(out, `bias of ${ctx.node.opType} is computed at run time`);
  else if (bias.dims.length > 0 && last === out.length) ctx.member(i, bias.dims.length - 1, out, 'bias');
  else if (last !== undefined && last !== 1) ctx.block(out, `bias of ${ctx.node.opType} has dims [${bias.dims}]`);
}

function blockOtherInputs(ctx: ChannelRuleContext, handled: readonly number[]): void {
  ctx.node.inputs.forEach((_, i) => {
    if (!handled.includes(i)) for (const tag of ctx.tags(i)) ctx.block(tag.atoms, `input ${i} of ${ctx.node.opType} is not followed`);
  });
}

const matMul: ChannelRule = (ctx) => {
  const rankA = inputRank(ctx, 0);
  const rankB = inputRank(ctx, 1);
  const rank = ctx.outputDims(0)?.length;
  const weight = ctx.constant(1);
  if (rankA === undefined || rankB === undefined || rank === undefined || rankA < 2) {
    blockInputs(ctx, 'MatMul operands of unknown or vector rank');
    return;
  }
  const out: ChannelTag[] = [];
  // A's axes: batch axes and M move to the output; K (the last) meets B's K.
  let kA: ChannelTag | undefined;
  for (const tag of ctx.tags(0)) {
    if (tag.axis === rankA - 1) kA = tag;
    else out.push({ axis: tag.axis + rank - rankA, atoms: tag.atoms });
  }
  if (weight !== undefined && weight.dims.length === 2) {
    // x W: a linear layer. Its output features are new channels.
    if (kA !== undefined) ctx.member(1, 0, kA.atoms, 'weight-in');
    const features = ctx.fresh(weight.dims[1], 'output features');
    ctx.member(1, 1, features, 'weight');
    ctx.output(0, mergeTags(ctx, [...out, { axis: rank - 1, atoms: features }]));
    return;
  }
  if (rankB < 2) {
    blockInputs(ctx, 'MatMul with a vector operand');
    return;
  }
  // Two values computed at run time (attention's Q Kᵀ, A V): the reduced axis ties both sides.
  let kB: ChannelTag | undefined;
  for (const tag of ctx.tags(1)) {
    if (tag.axis === rankB - 2) kB = tag;
    else out.push({ axis: tag.axis + rank - rankB, atoms: tag.atoms });
  }
  if (kA !== undefined && kB !== undefined) ctx.unify(kA.atoms, kB.atoms);
  else if (kA !== undefined) ctx.block(kA.atoms, 'MatMul reduces it against a value whose matching axis carries no channels');
  else if (kB !== undefined) ctx.block(kB.atoms, 'MatMul reduces it against a value whose matching axis carries no channels');
  ctx.output(0, mergeTags(ctx, out));
};

/** BatchNormalization and InstanceNormalization: per-channel parameters at inputs 1.. along axis 0. */
function channelNorm(parameters: readonly [number, 'norm-scale' | 'norm-shift' | 'norm-stat'][]): ChannelRule {
  return (ctx) => {
    for (const tag of ctx.tags(0)) if (tag.axis === 1) for (const [i, role] of parameters) if (ctx.node.inputs[i]) ctx.member(i, 0, tag.atoms, role);
    blockOtherInputs(ctx, [0]);
    ctx.output(0, [...ctx.tags(0)]);
  };
}

/** An op that normalises over some axes: channels on them would change the statistics, so they are blocked. */
function normalisesOver(axesOf: (ctx: ChannelRuleContext, rank: number) => number[] | undefined, parameters: readonly number[] = []): ChannelRule {
  return (ctx) => {
    const rank = inputRank(ctx, 0);
    const axes = rank === undefined ? undefined : axesOf(ctx, rank);
    const tags = mapTags(ctx, 0, (axis) => (axes === undefined || axes.includes(axis) ? undefined : axis), `${ctx.node.opType} normalizes over this axis (pruning would change its statistics)`);
    blockOtherInputs(ctx, [0, ...parameters]);
    ctx.output(0, tags);
  };
}

const layerNorm = normalisesOver((ctx, rank) => {
  const axis = normaliseAxis(ctx.node.attrInt('axis', -1), rank);
  return Array.from({ length: rank - axis }, (_, i) => axis + i);
}, [1, 2]);

/** Softmax-like ops: opset < 13 flattens from `axis` on; 13+ normalises the one axis. */
const softmaxLike = normalisesOver((ctx, rank) => {
  const axis = normaliseAxis(ctx.node.attrInt('axis', ctx.opset < 13 ? 1 : -1), rank);
  return ctx.opset < 13 ? Array.from({ length: rank - axis }, (_, i) => axis + i) : [axis];
});

/** Reductions whose result is unchanged by zeros in the reduced channels (sums) pass; others block. */
const SUM_LIKE = new Set(['ReduceSum', 'ReduceSumSquare', 'ReduceL1', 'ReduceL2']);

const reduce: ChannelRule = (ctx) => {
  const rank = inputRank(ctx, 0);
  const keep = ctx.node.attrInt('keepdims', 1) !== 0;
  const listed = ctx.node.attrInts('axes') ?? (ctx.node.inputs[1] ? ctx.ints(1) : []);
  if (rank === undefined || listed === undefined) {
    blockInputs(ctx, `${ctx.node.opType} axes are unknown`);
    return;
  }
  const all = listed.length === 0 && ctx.node.attrInt('noop_with_empty_axes', 0) === 0;
  const axes = all ? Array.from({ length: rank }, (_, i) => i) : listed.map((a) => normaliseAxis(a, rank));
  const out: ChannelTag[] = [];
  for (const tag of ctx.tags(0)) {
    if (!axes.includes(tag.axis)) out.push({ axis: keep ? tag.axis : tag.axis - axes.filter((a) => a < tag.axis).length, atoms: tag.atoms });
    else if (!SUM_LIKE.has(ctx.node.opType)) ctx.block(tag.atoms, `${ctx.node.opType} reduces over the channels (removing some would change the result)`);
  }
  ctx.output(0, out);
};

const argReduce: ChannelRule = (ctx) => {
  const rank = inputRank(ctx, 0) ?? 0;
  const axis = normaliseAxis(ctx.node.attrInt('axis', 0), rank);
  const keep = ctx.node.attrInt('keepdims', 1) !== 0;
  ctx.output(0, mapTags(ctx, 0, (a) => (a === axis ? undefined : keep || a < axis ? a : a - 1), `${ctx.node.opType} picks an index along the channels`));
};

/** Pooling keeps axes 0 and 1; spatial tags are blocked. MaxPool's indices output encodes channel offsets. */
const pool: ChannelRule = (ctx) => {
  const { channel, batch } = channelAndBatch(ctx, ctx.node.opType);
  const tags = channel === undefined ? batch : [...batch, channel];
  if (ctx.node.outputs[1]) for (const tag of tags) ctx.block(tag.atoms, 'MaxPool indices encode channel positions');
  ctx.output(0, tags);
};

/** Values that only describe a tensor (its shape, its size): the channels need not follow. */
const describes: ChannelRule = () => {};

/** Ops that neither mix positions nor change shape. */
const UNARY = [
  'Abs', 'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'Cast', 'CastLike', 'Ceil', 'Celu', 'Clip', 'Cos', 'Cosh', 'Dropout', 'Elu', 'Erf', 'Exp',
  'Floor', 'Gelu', 'HardSigmoid', 'HardSwish', 'Identity', 'IsInf', 'IsNaN', 'LeakyRelu', 'Log', 'Mish', 'Neg', 'Not', 'Reciprocal', 'Relu', 'Round',
  'Selu', 'Shrink', 'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Softplus', 'Softsign', 'Sqrt', 'Swish', 'Tan', 'Tanh', 'ThresholdedRelu',
] as const;

const ELEMENTWISE = ['Add', 'And', 'BitShift', 'Div', 'Equal', 'Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'Max', 'Mean', 'Min', 'Mod', 'Mul', 'Or', 'Pow', 'PRelu', 'Sub', 'Sum', 'Where', 'Xor'] as const;

const REDUCE = ['ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSum', 'ReduceSumSquare'] as const;

/** Every op the analysis understands; anything else blocks the channels it reads. */
export const CHANNEL_RULES: Readonly<Record<string, ChannelRule>> = {
  ...Object.fromEntries(UNARY.map((op) => [op, passThrough])),
  ...Object.fromEntries(ELEMENTWISE.map((op) => [op, elementwise()])),
  ...Object.fromEntries(REDUCE.map((op) => [op, reduce])),
  Conv: conv,
  ConvTranspose: convTranspose,
  Gemm: gemm,
  MatMul: matMul,
  BatchNormalization: channelNorm([
    [1, 'norm-scale'],
    [2, 'norm-shift'],
    [3, 'norm-stat'],
    [4, 'norm-stat'],
  ]),
  InstanceNormalization: channelNorm([
    [1, 'norm-scale'],
    [2, 'norm-shift'],
  ]),
  LayerNormalization: layerNorm,
  GroupNormalization: normalisesOver(() => [1], [1, 2]),
  MeanVarianceNormalization: normalisesOver((ctx, rank) => (ctx.node.attrInts('axes') ?? [0, 2, 3]).map((a) => normaliseAxis(a, rank))),
  LRN: normalisesOver(() => [1]),
  Softmax: softmaxLike,
  LogSoftmax: softmaxLike,
  Hardmax: softmaxLike,
  ArgMax: argReduce,
  ArgMin: argReduce,
  MaxPool: pool,
  AveragePool: pool,
  LpPool: pool,
  GlobalAveragePool: pool,
  GlobalMaxPool: pool,
  GlobalLpPool: pool,
  Shape: describes,
  Size: describes,
  ...SHAPE_RULES,
};

/** Float types whose weights pruning rewrites (others: the tensor is sliced all the same, as raw elements). */
export const FLOAT_WEIGHTS: ReadonlySet<DataType> = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);
