// Rules for ops that make or join tensors whose values shape inference tracks: Shape and Size
// (their values are the input's dims, symbolic or not), Constant, ConstantOfShape, Range, Cast,
// Concat, Split, Pad, EyeLike.
import { constantNodeValue } from '../../ir/constants.js';
import { DataType, dataTypeInfo } from '../../ir/dtype.js';
import { type Dim, add, ceilDiv, dimProduct, floorDiv, normalizeAxis, sub } from './dims.js';
import { MAX_KNOWN_ELEMENTS, type RuleContext, type RuleOutput, constantInferred, tensor } from './context.js';

export function shapeOf(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const rank = input.length;
  // start/end (opset 15) are clamped to [0, rank], negatives counting from the end.
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  const start = clamp(ctx.attrInt('start', 0));
  const end = clamp(ctx.node.attrInt('end') ?? rank);
  const dims = input.slice(start, Math.max(start, end));
  return [tensor(DataType.INT64, [dims.length], dims)];
}

export function size(ctx: RuleContext): RuleOutput[] {
  return [tensor(DataType.INT64, [], [dimProduct(ctx.shape(0))])];
}

export function constant(ctx: RuleContext): RuleOutput[] {
  return [constantInferred(constantNodeValue(ctx.node))];
}

/** Casts a known value: to integers truncates, to bool tests for non-zero; symbols stay. */
function castValue(value: Dim[] | undefined, to: number): Dim[] | undefined {
  if (value === undefined) return undefined;
  if (to === DataType.BOOL) return value.every((v) => typeof v === 'number') ? value.map((v) => (v !== 0 ? 1 : 0)) : undefined;
  if (to === DataType.STRING || to === DataType.FLOAT16 || to === DataType.BFLOAT16) return undefined;
  if (dataTypeInfo(to).isFloat) return value;
  return value.map((v) => (typeof v === 'number' ? Math.trunc(v) : v));
}

export function cast(ctx: RuleContext): RuleOutput[] {
  const input = ctx.type(0);
  const to = ctx.attrInt('to', 0);
  return [tensor(to, input.shape === undefined ? undefined : [...input.shape], castValue(input.value, to))];
}

export function castLike(ctx: RuleContext): RuleOutput[] {
  const input = ctx.type(0);
  const to = ctx.elemType(1);
  return [tensor(to, input.shape === undefined ? undefined : [...input.shape], castValue(input.value, to))];
}

/** ConstantOfShape: the shape is input 0's value (entries may be symbolic); the type is `value`'s. */
export function constantOfShape(ctx: RuleContext): RuleOutput[] {
  const shape = ctx.value(0);
  const fill = ctx.node.attrTensor('value');
  const elemType = fill?.dataType ?? DataType.FLOAT;
  if (shape === undefined) {
    const length = ctx.input(0)?.shape?.[0];
    if (typeof length === 'number') return [tensor(elemType, new Array<Dim>(length).fill(null))];
    ctx.fail('shape input is not known before run time');
  }
  const out = tensor(elemType, [...shape]);
  const count = dimProduct(shape);
  const fillValue = fill === undefined ? [0] : constantInferred(fill).value;
  if (typeof count === 'number' && count <= MAX_KNOWN_ELEMENTS && fillValue !== undefined) out.value = new Array<Dim>(count).fill(fillValue[0]);
  return [out];
}

/** Range: max(ceil((limit - start) / delta), 0) elements; a fresh symbol when not computable. */
export function range(ctx: RuleContext): RuleOutput[] {
  const elemType = ctx.elemType(0);
  const [start, limit, delta] = [0, 1, 2].map((i) => ctx.value(i)?.[0]);
  if (typeof start === 'number' && typeof limit === 'number' && typeof delta === 'number') {
    const count = Math.max(Math.ceil((limit - start) / delta), 0);
    const value = count <= MAX_KNOWN_ELEMENTS ? Array.from({ length: count }, (_, i) => start + i * delta) : undefined;
    return [tensor(elemType, [count], value)];
  }
  if (typeof start === 'number' && typeof delta === 'number' && delta > 0 && limit !== undefined && limit !== null) {
    return [tensor(elemType, [ceilDiv(sub(limit, start), delta)])];
  }
  return [tensor(elemType, [ctx.fresh('Range')])];
}

/** Concat: dims along `axis` add up; the others agree (a number wins over a symbol). */
export function concat(ctx: RuleContext): RuleOutput[] {
  const indexes = ctx.node.inputs.map((_, i) => i).filter((i) => ctx.has(i));
  const shapes = indexes.map((i) => ctx.shape(i));
  const rank = shapes[0].length;
  if (shapes.some((s) => s.length !== rank)) ctx.fail(`inputs have different ranks ${shapes.map((s) => s.length).join(', ')}`);
  const axis = normalizeAxis(ctx.attrInt('axis', 0), rank) ?? ctx.fail(`axis is out of range for rank ${rank}`);
  const shape: Dim[] = [];
  for (let d = 0; d < rank; d++) {
    if (d === axis) {
      shape.push(shapes.reduce<Dim>((sum, s) => add(sum, s[d]), 0));
      continue;
    }
    const sizes = shapes.map((s) => s[d]);
    const number = sizes.find((x) => typeof x === 'number');
    shape.push(number ?? (sizes.every((x) => x !== null && x === sizes[0]) ? sizes[0] : null));
  }
  const out = tensor(ctx.elemType(indexes[0]), shape);
  const values = indexes.map((i) => ctx.value(i));
  if (rank === 1 && values.every((v) => v !== undefined)) out.value = values.flat() as Dim[];
  return [out];
}

/** Split: sizes from `split` (attribute before 13, input after), else equal parts (num_outputs at 18). */
export function split(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const axis = normalizeAxis(ctx.attrInt('axis', 0), input.length) ?? ctx.fail(`axis is out of range for rank ${input.length}`);
  const parts = ctx.node.outputs.length;
  let sizes: Dim[] | undefined = ctx.opset < 13 ? ctx.attrInts('split') : ctx.has(1) ? ctx.value(1) : undefined;
  if (sizes === undefined && ctx.has(1)) {
    // Sizes given but known only at run time: the split axis loses its size.
    return ctx.node.outputs.map(() => tensor(ctx.elemType(0), input.map((x, i) => (i === axis ? null : x))));
  }
  if (sizes === undefined || sizes.length === 0) {
    const whole = input[axis];
    if (ctx.opset >= 18 && ctx.node.attrInt('num_outputs') !== undefined && typeof whole === 'number') {
      // num_outputs: every part holds ceil(d/n) except a smaller last one.
      const chunk = Math.ceil(whole / parts);
      sizes = Array.from({ length: parts }, (_, k) => Math.max(Math.min(chunk, whole - k * chunk), 0));
    } else {
      sizes = new Array<Dim>(parts).fill(floorDiv(whole, parts));
    }
  }
  if (sizes.length !== parts) ctx.fail(`split lists ${sizes.length} sizes for ${parts} outputs`);
  const values = ctx.value(0);
  let offset = 0;
  return sizes.map((d) => {
    const shape = input.map((x, i) => (i === axis ? d : x));
    const out = tensor(ctx.elemType(0), shape);
    if (input.length === 1 && values !== undefined && typeof d === 'number') out.value = values.slice(offset, offset + d);
    if (typeof d === 'number') offset += d;
    return out;
  });
}

/** Pad: each dim grows by its begin and end pads (attribute before 11, input after; axes at 18). */
export function pad(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const rank = input.length;
  const pads = ctx.opset < 11 ? (ctx.attrInts('pads') ?? ctx.attrInts('paddings')) : ctx.value(1);
  if (pads === undefined) return [tensor(ctx.elemType(0), input.map(() => null))];
  const axes = ctx.has(3) ? ctx.requireNumbers(3, 'axes').map((a) => normalizeAxis(a, rank) ?? ctx.fail(`axis ${a} is out of range`)) : input.map((_, i) => i);
  if (pads.length !== 2 * axes.length) ctx.fail(`pads has ${pads.length} entries for ${axes.length} axes`);
  const shape = [...input];
  axes.forEach((axis, k) => {
    shape[axis] = add(add(input[axis], pads[k]), pads[k + axes.length]);
  });
  return [tensor(ctx.elemType(0), shape)];
}

export function eyeLike(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  return [tensor(ctx.node.attrInt('dtype') ?? ctx.elemType(0), [...input])];
}
