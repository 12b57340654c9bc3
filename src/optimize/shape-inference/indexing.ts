// Rules for ops that select elements: Slice, Gather and its relatives, scatters, TopK, OneHot, and
// the data-dependent ones (NonZero, Compress, Unique, NonMaxSuppression), whose result sizes get a
// fresh symbol because only the data decides them.
import { DataType } from '../../ir/dtype.js';
import { type Dim, dimProduct, minDim, normalizeAxis, sub } from './dims.js';
import { remapValues } from './known-values.js';
import { type RuleContext, type RuleOutput, sameAs, tensor } from './context.js';

/** Ends at or beyond this mean "to the end" (exporters write INT64_MAX or INT32_MAX). */
const TO_THE_END = 2 ** 31 - 1;

/** Elements one Slice axis keeps, with ONNX's clamping; see the Slice spec. */
function sliceLength(dim: Dim, start: Dim, end: Dim, step: number): { length: Dim; first?: number } {
  if (typeof dim === 'number' && typeof start === 'number' && typeof end === 'number') {
    let s = start < 0 ? start + dim : start;
    let e = end < 0 ? end + dim : end;
    if (step > 0) {
      s = Math.min(Math.max(s, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
    } else {
      s = Math.min(Math.max(s, 0), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
    }
    return { length: Math.max(0, Math.ceil((e - s) / step)), first: s };
  }
  if (step !== 1 || dim === null) return { length: null };
  // Symbolic sizes: assume the dim is at least as long as the slice bounds (true of real exports).
  if (typeof start !== 'number') return { length: null };
  if (end === dim) return { length: start < 0 ? -start : sub(dim, start) };
  if (typeof end !== 'number') return { length: start < 0 ? null : sub(minDim(dim, end), start) };
  if (end >= TO_THE_END) return { length: start < 0 ? -start : sub(dim, start) };
  if (end < 0) return { length: start < 0 ? Math.max(end - start, 0) : sub(sub(dim, -end), start) };
  return { length: start < 0 ? null : sub(minDim(dim, end), start) };
}

export function slice(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const rank = input.length;
  let starts: Dim[] | undefined;
  let ends: Dim[] | undefined;
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = ctx.attrInts('starts');
    ends = ctx.attrInts('ends');
    axes = ctx.attrInts('axes');
  } else {
    starts = ctx.value(1);
    ends = ctx.value(2);
    axes = ctx.has(3) ? ctx.requireNumbers(3, 'axes') : undefined;
    steps = ctx.has(4) ? ctx.requireNumbers(4, 'steps') : undefined;
  }
  const axisList = (axes ?? input.map((_, i) => i)).map((a) => normalizeAxis(a, rank) ?? ctx.fail(`axis ${a} is out of range for rank ${rank}`));
  if (starts === undefined || ends === undefined) {
    // Unknown bounds: the sliced axes lose their size, the others keep it.
    return [tensor(ctx.elemType(0), input.map((d, i) => (axes === undefined || axisList.includes(i) ? null : d)))];
  }
  const shape = [...input];
  // Per axis: the first input index taken and the step, for carrying known values.
  const firsts = input.map(() => 0);
  const strides = input.map(() => 1);
  let exact = true;
  axisList.forEach((axis, k) => {
    const step = steps?.[k] ?? 1;
    if (step === 0) ctx.fail('a step of 0');
    const result = sliceLength(input[axis], starts[k], ends[k], step);
    shape[axis] = result.length;
    if (result.first === undefined) exact = false;
    firsts[axis] = result.first ?? 0;
    strides[axis] = step;
  });
  const out = tensor(ctx.elemType(0), shape);
  const values = ctx.value(0);
  if (values !== undefined && exact) {
    out.value = remapValues(input, values, shape, (index) => index.map((i, d) => firsts[d] + i * strides[d]));
  }
  return [out];
}

export function gather(ctx: RuleContext): RuleOutput[] {
  const data = ctx.shape(0);
  const indices = ctx.shape(1);
  const axis = normalizeAxis(ctx.attrInt('axis', 0), data.length) ?? ctx.fail(`axis is out of range for rank ${data.length}`);
  const out = tensor(ctx.elemType(0), [...data.slice(0, axis), ...indices, ...data.slice(axis + 1)]);
  // Shape -> Gather: pick known entries of a 1-D value.
  const values = ctx.value(0);
  const picks = ctx.numbers(1);
  if (data.length === 1 && values !== undefined && picks !== undefined) {
    out.value = picks.map((i) => values[i < 0 ? i + values.length : i]);
  }
  return [out];
}

/** GatherElements: the output has the indices' shape. */
export function gatherElements(ctx: RuleContext): RuleOutput[] {
  return [tensor(ctx.elemType(0), [...ctx.shape(1)])];
}

/** GatherND: indices[:-1] then the data dims after batch_dims + indices[-1]. */
export function gatherND(ctx: RuleContext): RuleOutput[] {
  const data = ctx.shape(0);
  const indices = ctx.shape(1);
  const batchDims = ctx.attrInt('batch_dims', 0);
  const depth = indices[indices.length - 1];
  if (typeof depth !== 'number') ctx.fail('the last dim of indices is not static');
  return [tensor(ctx.elemType(0), [...indices.slice(0, -1), ...data.slice(batchDims + depth)])];
}

/** Scatter, ScatterElements, ScatterND: the data's shape. */
export function scatter(ctx: RuleContext): RuleOutput[] {
  return [sameAs(ctx)];
}

export function topK(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const axis = normalizeAxis(ctx.attrInt('axis', -1), input.length) ?? ctx.fail(`axis is out of range for rank ${input.length}`);
  const k: Dim = ctx.opset < 10 ? ctx.attrInt('k', 0) : (ctx.value(1)?.[0] ?? null);
  const shape = input.map((d, i) => (i === axis ? k : d));
  return [tensor(ctx.elemType(0), shape), tensor(DataType.INT64, [...shape])];
}

/** OneHot: `depth` is inserted at `axis` of the indices' shape; the type is `values`'. */
export function oneHot(ctx: RuleContext): RuleOutput[] {
  const indices = ctx.shape(0);
  const axis = normalizeAxis(ctx.attrInt('axis', -1), indices.length + 1) ?? ctx.fail('axis is out of range');
  const depth = ctx.value(1)?.[0];
  const size = typeof depth === 'number' ? Math.trunc(depth) : null;
  const shape = [...indices.slice(0, axis), size, ...indices.slice(axis)];
  return [tensor(ctx.elemType(2), shape)];
}

/** NonZero: [rank, count]; the count depends on the data. */
export function nonZero(ctx: RuleContext): RuleOutput[] {
  return [tensor(DataType.INT64, [ctx.rank(0), ctx.fresh('NonZero')])];
}

export function compress(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const axisAttr = ctx.node.attrInt('axis');
  if (axisAttr === undefined) return [tensor(ctx.elemType(0), [ctx.fresh('Compress')])];
  const axis = normalizeAxis(axisAttr, input.length) ?? ctx.fail('axis is out of range');
  return [tensor(ctx.elemType(0), input.map((d, i) => (i === axis ? ctx.fresh('Compress') : d)))];
}

/** Unique: Y, indices and counts have a data-dependent length; inverse_indices follow the input. */
export function unique(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const count = ctx.fresh('Unique');
  const axisAttr = ctx.node.attrInt('axis');
  const axis = axisAttr === undefined ? undefined : (normalizeAxis(axisAttr, input.length) ?? ctx.fail('axis is out of range'));
  const y = axis === undefined ? [count] : input.map((d, i) => (i === axis ? count : d));
  const inverse = axis === undefined ? dimProduct(input) : input[axis];
  return [tensor(ctx.elemType(0), y), tensor(DataType.INT64, [count]), tensor(DataType.INT64, [inverse]), tensor(DataType.INT64, [count])];
}

export function nonMaxSuppression(ctx: RuleContext): RuleOutput[] {
  return [tensor(DataType.INT64, [ctx.fresh('NonMaxSuppression'), 3])];
}

/** GridSample: [N, C] of X, then the grid's output spatial dims. */
export function gridSample(ctx: RuleContext): RuleOutput[] {
  const x = ctx.shape(0);
  const grid = ctx.shape(1);
  return [tensor(ctx.elemType(0), [x[0], x[1], ...grid.slice(1, -1)])];
}

export function roiAlign(ctx: RuleContext): RuleOutput[] {
  const x = ctx.shape(0);
  const rois = ctx.shape(1);
  return [tensor(ctx.elemType(0), [rois[0], x[1], ctx.attrInt('output_height', 1), ctx.attrInt('output_width', 1)])];
}
