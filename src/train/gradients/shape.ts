// Gradients of ops that move elements without computing on them: reshapes, Transpose, Concat and
// Split, Slice, Gather, Expand, Pad, Tile, DepthToSpace and SpaceToDepth. Each routes dy back to where the elements came from;
// where one input element feeds several outputs (Gather with repeated indices, Expand, Tile) the
// contributions are summed. Integer inputs (shapes, axes, indices) get no gradient.
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** Large enough for Slice to clamp to the end of any axis. */
const TO_THE_END = Number.MAX_SAFE_INTEGER;

function normalizeAxis(ctx: GradientContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** The value's shape as numbers when every dim is known before run time. */
function staticShape(ctx: GradientContext, value: string): number[] | undefined {
  const shape = ctx.shape(value);
  return shape.every((d): d is number => typeof d === 'number') ? shape : undefined;
}

/** Dim `axis` of `value` as a 1-element int64 tensor: a constant when known, else cut from Shape. */
function dimOf(ctx: GradientContext, value: string, axis: number): string {
  const d = ctx.shape(value)[axis];
  if (typeof d === 'number') return ctx.int64s([d]);
  return ctx.op('Slice', [ctx.shapeOf(value), ctx.int64s([axis]), ctx.int64s([axis + 1])]);
}

/** The same-shaped rule for every op that only relabels the dims of input 0. */
const reshapeBack: GradientRule = (ctx) => [ctx.reshapeLike(ctx.dyOrZeros(), ctx.input(0))];

/**
 * An int64 tensor shaped like `x` whose elements are their own row-major positions. Passing it
 * through the forward op's index arithmetic (Slice, Gather) tells where each output came from.
 */
function flatPositions(ctx: GradientContext, x: string): string {
  const range = ctx.op('Range', [ctx.int64(0), ctx.op('Size', [x]), ctx.int64(1)]);
  return ctx.reshapeLike(range, x);
}

/** Writes (or, with `accumulate`, adds) dy at flat `positions` of zeros shaped like `x`. */
function scatterFlat(ctx: GradientContext, x: string, positions: string, dy: string, accumulate: boolean): string {
  const zeros = ctx.op('Reshape', [ctx.zerosLike(x), ctx.int64s([-1])]);
  const indices = ctx.op('Unsqueeze', [positions, ctx.int64s([-1])]);
  const scattered = ctx.op('ScatterND', [zeros, indices, dy], accumulate ? [attr.string('reduction', 'add')] : []);
  return ctx.reshapeLike(scattered, x);
}

/** Concat: each input's part of dy, by Split on known sizes or Slice at run-time offsets. */
const concat: GradientRule = (ctx) => {
  const inputs = ctx.node.inputs;
  const axis = normalizeAxis(ctx, ctx.int('axis', 0), ctx.rank(ctx.output()));
  const dy = ctx.dyOrZeros();
  if (inputs.length === 1) return [dy];
  const sizes = inputs.map((v) => ctx.shape(v)[axis]);
  if (sizes.every((d): d is number => typeof d === 'number')) {
    const parts = ctx.opN('Split', [dy, ctx.int64s(sizes)], inputs.length, [attr.int('axis', axis)]);
    return parts.map((p, i) => (ctx.wants(i) ? p : undefined));
  }
  // Some size is symbolic: offsets are summed in the graph (as constants while they are known).
  let offset: number | string = 0;
  const grads: (string | undefined)[] = [];
  inputs.forEach((v, i) => {
    const size = sizes[i];
    const start: string = typeof offset === 'number' ? ctx.int64s([offset]) : offset;
    let end: number | string;
    if (typeof offset === 'number' && typeof size === 'number') end = offset + size;
    else end = ctx.op('Add', [start, dimOf(ctx, v, axis)]);
    const endName = typeof end === 'number' ? ctx.int64s([end]) : end;
    grads.push(ctx.wants(i) ? ctx.op('Slice', [dy, start, endName, ctx.int64s([axis])]) : undefined);
    offset = end;
  });
  return grads;
};

/** Split: the outputs' gradients side by side; an output that does not reach the loss gives zeros. */
const split: GradientRule = (ctx) => {
  const axis = normalizeAxis(ctx, ctx.int('axis', 0), ctx.rank(ctx.input(0)));
  const parts = ctx.node.outputs.map((_, i) => ctx.dyOrZeros(i));
  return [parts.length === 1 ? parts[0] : ctx.op('Concat', parts, [attr.int('axis', axis)])];
};

/** Transpose: dy through the inverse permutation (the default perm reverses the axes). */
const transpose: GradientRule = (ctx) => {
  const rank = ctx.rank(ctx.input(0));
  const perm = ctx.ints('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inverse = new Array<number>(rank);
  for (const [i, p] of perm.entries()) inverse[p] = i;
  return [ctx.op('Transpose', [ctx.dyOrZeros()], [attr.ints('perm', inverse)])];
};

/**
 * Slice: with unit steps and known dims, dy is padded back with zeros (Pad with the clamped
 * bounds). Otherwise (other steps, run-time bounds or dims) the same Slice applied to a tensor of
 * positions says where each element of dy goes, and ScatterND writes it there; slices never
 * repeat an element, so no accumulation is needed.
 */
const slice: GradientRule = (ctx) => {
  const x = ctx.input(0);
  const dy = ctx.dyOrZeros();
  const pads = unitStepPads(ctx);
  if (pads !== undefined) return [ctx.op('Pad', [dy, ctx.int64s(pads)])];
  const positions = ctx.op('Slice', [flatPositions(ctx, x), ...ctx.node.inputs.slice(1)]);
  return [scatterFlat(ctx, x, positions, dy, false)];
};

/** Pad amounts (begins then ends) that undo a unit-step Slice, or undefined when not decidable now. */
function unitStepPads(ctx: GradientContext): number[] | undefined {
  const shape = staticShape(ctx, ctx.input(0));
  if (shape === undefined) return undefined;
  const rank = shape.length;
  const starts = ctx.knownInts(1);
  const ends = ctx.knownInts(2);
  const axes = ctx.input(3) === '' ? Array.from({ length: starts?.length ?? 0 }, (_, i) => i) : ctx.knownInts(3);
  const steps = ctx.input(4) === '' ? undefined : ctx.knownInts(4);
  if (starts === undefined || ends === undefined || axes === undefined) return undefined;
  if (ctx.input(4) !== '' && (steps === undefined || steps.some((s) => s !== 1))) return undefined;
  const pads = new Array<number>(2 * rank).fill(0);
  axes.forEach((axis, k) => {
    const a = normalizeAxis(ctx, axis, rank);
    const d = shape[a];
    // The ONNX Slice rule for positive steps: negative bounds count from the end, then clamp to [0, d].
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    const begin = clamp(starts[k]);
    const end = Math.max(clamp(ends[k]), begin);
    pads[a] = begin;
    pads[rank + a] = d - end;
  });
  return pads;
}

/**
 * Gather: dy is added into zeros at the gathered rows, so repeated indices accumulate. From opset
 * 16 ScatterND adds (directly for axis 0, via flat positions for other axes); before, a one-hot
 * matrix of the indices times dy sums the rows.
 */
const gather: GradientRule = (ctx) => {
  const data = ctx.input(0);
  const indices = ctx.input(1);
  const axis = normalizeAxis(ctx, ctx.int('axis', 0), ctx.rank(data));
  const dy = ctx.dyOrZeros();
  if (ctx.opset >= 16 && axis === 0) {
    // ScatterND's indices must be in range: count negative ones from the end, as Gather does.
    const rows = typeof ctx.shape(data)[0] === 'number' ? ctx.int64(ctx.shape(data)[0] as number) : ctx.op('Gather', [ctx.shapeOf(data), ctx.int64(0)]);
    const idx = int64Indices(ctx, indices);
    const inRange = ctx.op('Where', [ctx.op('Less', [idx, ctx.int64(0)]), ctx.op('Add', [idx, rows]), idx]);
    const at = ctx.op('Unsqueeze', [inRange, ctx.int64s([-1])]);
    return [ctx.op('ScatterND', [ctx.zerosLike(data), at, dy], [attr.string('reduction', 'add')]), undefined];
  }
  if (ctx.opset >= 16) {
    const positions = ctx.op('Gather', [flatPositions(ctx, data), indices], [attr.int('axis', axis)]);
    return [scatterFlat(ctx, data, positions, dy, true), undefined];
  }
  return [oneHotGather(ctx, data, indices, axis, dy), undefined];
};

function int64Indices(ctx: GradientContext, indices: string): string {
  return ctx.elemType(indices) === DataType.INT64 ? indices : ctx.op('Cast', [indices], [attr.int('to', DataType.INT64)]);
}

/**
 * Gather's gradient without ScatterND's reduction (opset < 16): with the gathered axis moved to
 * the front, dx_t[v, :] = sum over m of onehot(indices)[m, v] * dy_t[m, :], one Gemm.
 */
function oneHotGather(ctx: GradientContext, data: string, indices: string, axis: number, dy: string): string {
  const rank = ctx.rank(data);
  const indexRank = ctx.rank(indices);
  // dy's dims are data[:axis] + indices + data[axis+1:]; bring the index dims to the front.
  const dyPerm = [
    ...Array.from({ length: indexRank }, (_, i) => axis + i),
    ...Array.from({ length: axis }, (_, i) => i),
    ...Array.from({ length: rank - 1 - axis }, (_, i) => axis + indexRank + i),
  ];
  const moved = dyPerm.every((p, i) => p === i) ? dy : ctx.op('Transpose', [dy], [attr.ints('perm', dyPerm)]);
  const rowsOfDy = ctx.op('Flatten', [moved], [attr.int('axis', indexRank)]);
  // OneHot counts negative indices from the end of the axis, as Gather does.
  const flatIndices = ctx.op('Reshape', [int64Indices(ctx, indices), ctx.int64s([-1])]);
  const oneHot = ctx.op('OneHot', [flatIndices, dimOf(ctx, data, axis), ctx.int64s([0, 1])], [attr.int('axis', -1)]);
  const summed = ctx.op('Gemm', [ctx.op('Cast', [oneHot], [attr.int('to', ctx.elemType(data))]), rowsOfDy], [attr.int('transA', 1)]);
  // Back to data's layout: the gathered axis first, then the others in order.
  const dataPerm = [axis, ...Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis)];
  const known = staticShape(ctx, data);
  const movedShape = known !== undefined ? ctx.int64s(dataPerm.map((i) => known[i])) : ctx.op('Gather', [ctx.shapeOf(data), ctx.int64s(dataPerm)]);
  const grad = ctx.op('Reshape', [summed, movedShape]);
  if (axis === 0) return grad;
  const inverse = new Array<number>(rank);
  for (const [i, p] of dataPerm.entries()) inverse[p] = i;
  return ctx.op('Transpose', [grad], [attr.ints('perm', inverse)]);
}

/**
 * Pad (constant mode): dx is dy with the padding cut off; where a pad is negative (cropping) the
 * cut elements get zeros back. The constant's gradient is the sum of dy over the padding.
 */
const pad: GradientRule = (ctx) => {
  const mode = ctx.node.attrString('mode', 'constant');
  if (mode !== 'constant') ctx.fail(`the gradient of Pad in '${mode}' mode is not supported (only 'constant')`);
  const x = ctx.input(0);
  const rank = ctx.rank(x);
  const given = ctx.constantInts(1) ?? ctx.fail('Pad without pads');
  const axes = (optionalConstantInts(ctx, 3) ?? Array.from({ length: rank }, (_, i) => i)).map((a) => normalizeAxis(ctx, a, rank));
  if (given.length !== 2 * axes.length) ctx.fail(`pads has ${given.length} values for ${axes.length} axes`);
  const begins = new Array<number>(rank).fill(0);
  const ends = new Array<number>(rank).fill(0);
  axes.forEach((a, k) => {
    begins[a] = given[k];
    ends[a] = given[axes.length + k];
  });
  const dy = ctx.dyOrZeros();
  const starts = begins.map((p) => Math.max(p, 0));
  const stops = ends.map((p) => (p > 0 ? -p : TO_THE_END));
  const all = Array.from({ length: rank }, (_, i) => i);
  const inner = ctx.op('Slice', [dy, ctx.int64s(starts), ctx.int64s(stops), ctx.int64s(all)]);
  let dx: string | undefined;
  if (ctx.wants(0)) {
    const cropped = [...begins, ...ends].map((p) => Math.max(-p, 0));
    dx = cropped.some((p) => p > 0) ? ctx.op('Pad', [inner, ctx.int64s(cropped)]) : inner;
  }
  let dc: string | undefined;
  if (ctx.wants(2)) {
    const total = ctx.reduce('ReduceSum', dy, all, false);
    const kept = ctx.reduce('ReduceSum', inner, all, false);
    dc = ctx.reshapeLike(ctx.op('Sub', [total, kept]), ctx.input(2));
  }
  return [dx, undefined, dc, undefined];
};

/** An optional constant input: undefined when absent, a failure when computed at run time. */
function optionalConstantInts(ctx: GradientContext, i: number): number[] | undefined {
  return ctx.input(i) === '' ? undefined : ctx.constantInts(i);
}

/**
 * Tile: dy viewed as (r0, d0, r1, d1, ...) and summed over the repeat axes. The interleaved shape
 * is built in the graph, so repeats and dims may be known only at run time.
 */
const tile: GradientRule = (ctx) => {
  const x = ctx.input(0);
  const rank = ctx.rank(x);
  const column = (v: string) => ctx.op('Unsqueeze', [v, ctx.int64s([1])]);
  const repeats = ctx.input(1);
  const pairs = ctx.op('Concat', [column(repeats), column(ctx.shapeOf(x))], [attr.int('axis', 1)]);
  const interleaved = ctx.op('Reshape', [ctx.dyOrZeros(), ctx.op('Reshape', [pairs, ctx.int64s([-1])])]);
  const repeatAxes = Array.from({ length: rank }, (_, i) => 2 * i);
  return [ctx.reduce('ReduceSum', interleaved, repeatAxes, false), undefined];
};

/**
 * DepthToSpace only moves elements, so its gradient is the inverse move. SpaceToDepth is the exact
 * inverse of mode DCR; for CRD its channels come out in DCR order ((i*b + j)*C + c for sub-pixel
 * (i, j) of channel c), and a Gather puts them back in CRD order (c*b*b + i*b + j).
 */
const depthToSpace: GradientRule = (ctx) => {
  const block = ctx.int('blocksize', 0);
  const back = ctx.op('SpaceToDepth', [ctx.dyOrZeros()], [attr.int('blocksize', block)]);
  if ((ctx.node.attrString('mode') ?? 'DCR') !== 'CRD') return [back];
  const dim = ctx.shape(ctx.input(0))[1];
  const channels = typeof dim === 'number' ? dim : ctx.fail('CRD mode needs a channel count known before run time');
  const perBlock = block * block;
  const out = channels / perBlock;
  const order = Array.from({ length: channels }, (_, k) => (k % perBlock) * out + Math.floor(k / perBlock));
  return [ctx.op('Gather', [back, ctx.int64s(order)], [attr.int('axis', 1)])];
};

/** SpaceToDepth: the inverse move, DepthToSpace in DCR mode (whose inverse SpaceToDepth is). */
const spaceToDepth: GradientRule = (ctx) => [ctx.op('DepthToSpace', [ctx.dyOrZeros()], [attr.int('blocksize', ctx.int('blocksize', 0)), attr.string('mode', 'DCR')])];

export const shapeGradients: Record<string, GradientRule> = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  // Expand broadcasts like the elementwise ops: sum back over the broadcast axes.
  Expand: (ctx) => [ctx.unbroadcast(ctx.dyOrZeros(), ctx.output(), ctx.input(0)), undefined],
  Pad: pad,
  Tile: tile,
  DepthToSpace: depthToSpace,
  SpaceToDepth: spaceToDepth,
};
