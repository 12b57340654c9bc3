// Rules for elementwise ops: unary ops keep their input's type; binary and variadic ops broadcast
// (ONNX multidirectional broadcasting); comparisons and logic give bool. Small known values are
// computed through Add/Sub/Mul/Div/Where/Equal..., because exporters build Reshape targets that way
// (Shape -> Gather -> Mul -> Concat -> Reshape).
import { DataType, dataTypeInfo } from '../../ir/dtype.js';
import { type Dim, add, broadcastShapes, floorDiv, isStaticShape, mul, sub } from './dims.js';
import { type InferredValue, MAX_KNOWN_ELEMENTS, type RuleContext, type RuleOutput, sameAs, tensor } from './context.js';

/** Combines known element values; undefined when the result is not known. */
type ValueFn = (xs: Dim[], elemType: number) => Dim | undefined;

/** Unary ops whose output has the input's type and shape. */
export function unary(ctx: RuleContext): RuleOutput[] {
  return [sameAs(ctx)];
}

/** Unary ops with a bool result (IsNaN, IsInf). */
export function unaryBool(ctx: RuleContext): RuleOutput[] {
  const shape = ctx.type(0).shape;
  return [tensor(DataType.BOOL, shape === undefined ? undefined : [...shape])];
}

/** Neg/Abs also carry known values (used on shape arithmetic). */
export function unaryWithValue(fn: (x: number) => number): (ctx: RuleContext) => RuleOutput[] {
  return (ctx) => {
    const out = sameAs(ctx);
    const values = ctx.numbers(0);
    if (values !== undefined) out.value = values.map(fn);
    return [out];
  };
}

/** The broadcast output of inputs `indexes`, with an elementwise value when all are known. */
function broadcastOutput(ctx: RuleContext, indexes: number[], elemType: number, valueFn?: ValueFn): InferredValue {
  const types = indexes.map((i) => ctx.type(i));
  if (types.some((t) => t.shape === undefined)) return tensor(elemType, undefined);
  const shapes = types.map((t) => t.shape as Dim[]);
  const shape = broadcastShapes(shapes);
  if (typeof shape === 'string') ctx.fail(shape);
  const out = tensor(elemType, shape);
  if (valueFn !== undefined && isStaticShape(shape) && types.every((t) => t.value !== undefined)) {
    const value = broadcastValues(shapes as number[][], types.map((t) => t.value as Dim[]), shape, (xs) => valueFn(xs, types[0].elemType));
    if (value !== undefined) out.value = value;
  }
  return out;
}

/** Applies `fn` to each broadcast tuple of elements; undefined if any result is unknown. */
function broadcastValues(shapes: number[][], values: Dim[][], outShape: number[], fn: (xs: Dim[]) => Dim | undefined): Dim[] | undefined {
  const count = outShape.reduce((a, b) => a * b, 1);
  if (count > MAX_KNOWN_ELEMENTS || shapes.some((s, k) => s.reduce((a, b) => a * b, 1) !== values[k].length)) return undefined;
  const out: Dim[] = [];
  const index = new Array<number>(outShape.length).fill(0);
  for (let flat = 0; flat < count; flat++) {
    const xs = shapes.map((shape, k) => {
      let offset = 0;
      for (let d = 0; d < shape.length; d++) {
        const i = index[outShape.length - shape.length + d];
        offset = offset * shape[d] + (shape[d] === 1 ? 0 : i);
      }
      return values[k][offset];
    });
    const result = fn(xs);
    if (result === undefined) return undefined;
    out.push(result);
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++index[d] < outShape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

const isInteger = (elemType: number) => !dataTypeInfo(elemType).isFloat;

const ARITHMETIC: Record<string, ValueFn> = {
  Add: ([a, b]) => add(a, b) ?? undefined,
  Sub: ([a, b]) => sub(a, b) ?? undefined,
  Mul: ([a, b]) => mul(a, b) ?? undefined,
  Div: ([a, b], type) => {
    if (typeof a === 'number' && typeof b === 'number') return isInteger(type) ? Math.trunc(a / b) : a / b;
    return isInteger(type) ? (floorDiv(a, b) ?? undefined) : undefined;
  },
  Mod: ([a, b]) => (typeof a === 'number' && typeof b === 'number' && b !== 0 ? a - Math.floor(a / b) * b : undefined),
  Max: (xs) => (xs.every((x) => typeof x === 'number') ? Math.max(...(xs as number[])) : undefined),
  Min: (xs) => (xs.every((x) => typeof x === 'number') ? Math.min(...(xs as number[])) : undefined),
  Sum: (xs) => xs.reduce<Dim>((a, b) => add(a, b), 0) ?? undefined,
};

/** Binary (or variadic) arithmetic: broadcast shape, the first input's type. */
export function broadcastArithmetic(ctx: RuleContext): RuleOutput[] {
  const indexes = ctx.node.inputs.map((_, i) => i).filter((i) => ctx.has(i));
  return [broadcastOutput(ctx, indexes, ctx.elemType(0), ARITHMETIC[ctx.node.opType])];
}

/** Mod: the fmod attribute does not change the shape; known integers are reduced the Python way. */
export function modRule(ctx: RuleContext): RuleOutput[] {
  const fmod = ctx.attrInt('fmod', 0) === 1;
  return [broadcastOutput(ctx, [0, 1], ctx.elemType(0), fmod ? undefined : ARITHMETIC.Mod)];
}

const COMPARE: Record<string, (a: number, b: number) => boolean> = {
  Equal: (a, b) => a === b,
  Less: (a, b) => a < b,
  Greater: (a, b) => a > b,
  LessOrEqual: (a, b) => a <= b,
  GreaterOrEqual: (a, b) => a >= b,
  And: (a, b) => a !== 0 && b !== 0,
  Or: (a, b) => a !== 0 || b !== 0,
  Xor: (a, b) => (a !== 0) !== (b !== 0),
};

/** Comparisons and logic: broadcast shape, bool output. */
export function compare(ctx: RuleContext): RuleOutput[] {
  const fn = COMPARE[ctx.node.opType];
  const valueFn: ValueFn = ([a, b]) => {
    if (typeof a === 'number' && typeof b === 'number') return fn(a, b) ? 1 : 0;
    // Two occurrences of one symbol are equal whatever its value.
    if (ctx.node.opType === 'Equal' && a !== null && a === b) return 1;
    return undefined;
  };
  return [broadcastOutput(ctx, [0, 1], DataType.BOOL, valueFn)];
}

export function notRule(ctx: RuleContext): RuleOutput[] {
  const out = sameAs(ctx);
  const values = ctx.numbers(0);
  if (values !== undefined) out.value = values.map((v) => (v === 0 ? 1 : 0));
  return [out];
}

/** Where(condition, X, Y): all three broadcast; the type is X's. */
export function where(ctx: RuleContext): RuleOutput[] {
  return [broadcastOutput(ctx, [0, 1, 2], ctx.elemType(1), ([c, x, y]) => (typeof c === 'number' ? (c !== 0 ? x : y) : undefined))];
}

/** Ops whose output keeps input 0's shape though further inputs broadcast into it (PRelu, Clip). */
export function firstInputShape(ctx: RuleContext): RuleOutput[] {
  const out = sameAs(ctx);
  if (ctx.node.opType === 'Clip') {
    const values = ctx.numbers(0);
    const low = ctx.has(1) ? ctx.numbers(1)?.[0] : ctx.node.attrFloat('min', -Infinity);
    const high = ctx.has(2) ? ctx.numbers(2)?.[0] : ctx.node.attrFloat('max', Infinity);
    if (values !== undefined && low !== undefined && high !== undefined) out.value = values.map((v) => Math.min(Math.max(v, low), high));
  }
  return [out];
}

/** BitShift, Pow: broadcast shape, input 0's type, no tracked values. */
export function broadcastPlain(ctx: RuleContext): RuleOutput[] {
  return [broadcastOutput(ctx, [0, 1], ctx.elemType(0))];
}

/** Dropout: data unchanged; the optional mask is bool (opset >= 10) with the same shape. */
export function dropout(ctx: RuleContext): RuleOutput[] {
  const data = sameAs(ctx);
  const maskType = ctx.opset >= 10 ? DataType.BOOL : data.elemType;
  return [data, tensor(maskType, data.shape === undefined ? undefined : [...data.shape])];
}

/** Identity passes its input through, known values included. */
export function identity(ctx: RuleContext): RuleOutput[] {
  const input = ctx.type(0);
  return [{ ...input, shape: input.shape === undefined ? undefined : [...input.shape] }];
}
