// Rules for ops that rearrange a tensor without computing on it: Reshape, Flatten, Transpose,
// Squeeze, Unsqueeze, Expand, Tile, DepthToSpace, SpaceToDepth. Known values pass through the
// ops that keep element order (Reshape, Flatten, Squeeze, Unsqueeze), so a shape vector built by
// Unsqueeze + Concat is still known when it reaches a Reshape.
import { type Dim, broadcastShapes, dimProduct, floorDiv, mul, normalizeAxis } from './dims.js';
import { remapValues } from './known-values.js';
import { type RuleContext, type RuleOutput, tensor } from './context.js';

/** Keeps input 0's known values on an output of the same element order. */
function withValue(ctx: RuleContext, elemType: number, shape: Dim[]): RuleOutput {
  return tensor(elemType, shape, ctx.value(0));
}

/**
 * The dim that Reshape's -1 stands for: the input's element count over the other target dims.
 * Equal dims on both sides cancel first, so [N, 3, H, W] -> [N, -1] gives `3*H*W` symbolically.
 */
function inferredDim(input: Dim[], others: Dim[]): Dim {
  const remaining = [...input];
  const divisors: Dim[] = [];
  for (const d of others) {
    const at = d === null ? -1 : remaining.indexOf(d);
    if (at >= 0) remaining.splice(at, 1);
    else divisors.push(d);
  }
  if (divisors.some((d) => typeof d !== 'number')) return null;
  const divisor = (divisors as number[]).reduce((a, b) => a * b, 1);
  const numeric = remaining.filter((d): d is number => typeof d === 'number').reduce((a, b) => a * b, 1);
  const symbolic = remaining.filter((d) => typeof d !== 'number');
  if (numeric % divisor === 0) return mul(dimProduct(symbolic), numeric / divisor);
  return floorDiv(dimProduct(remaining), divisor);
}

export function reshape(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const target = ctx.opset < 5 ? ctx.attrInts('shape') : ctx.value(1);
  if (target === undefined) {
    const length = ctx.input(1)?.shape?.[0];
    if (typeof length === 'number') return [tensor(ctx.elemType(0), new Array<Dim>(length).fill(null))];
    ctx.fail('target shape is not known before run time');
  }
  const allowZero = ctx.attrInt('allowzero', 0) === 1;
  const shape: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? (input[i] ?? ctx.fail(`0 at index ${i} has no input dim to copy`)) : d));
  const free = shape.indexOf(-1);
  if (free >= 0) shape[free] = inferredDim(input, shape.filter((_, i) => i !== free));
  return [withValue(ctx, ctx.elemType(0), shape)];
}

export function flatten(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const axis = ctx.attrInt('axis', 1);
  const at = axis < 0 ? axis + input.length : axis;
  if (at < 0 || at > input.length) ctx.fail(`axis ${axis} is out of range for rank ${input.length}`);
  return [withValue(ctx, ctx.elemType(0), [dimProduct(input.slice(0, at)), dimProduct(input.slice(at))])];
}

export function transpose(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const perm = ctx.attrInts('perm') ?? input.map((_, i) => input.length - 1 - i);
  if (perm.length !== input.length) ctx.fail(`perm has ${perm.length} entries for rank ${input.length}`);
  const shape = perm.map((p) => input[p]);
  const out = tensor(ctx.elemType(0), shape);
  const values = ctx.value(0);
  if (values !== undefined) {
    out.value = remapValues(input, values, shape, (index) => {
      const from = new Array<number>(index.length);
      perm.forEach((p, i) => {
        from[p] = index[i];
      });
      return from;
    });
  }
  return [out];
}

/** Axes from the attribute (before opset 13) or from input 1 (13 and later). */
function axesOf(ctx: RuleContext, newAxesOpset: number): number[] | undefined {
  if (ctx.opset < newAxesOpset) return ctx.attrInts('axes');
  return ctx.has(1) ? ctx.requireNumbers(1, 'axes') : undefined;
}

export function squeeze(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const axes = axesOf(ctx, 13);
  let keep: boolean[];
  if (axes === undefined || axes.length === 0) {
    // Without axes every size-1 dim goes, so each dim must be known.
    if (input.some((d) => typeof d !== 'number')) ctx.fail('Squeeze without axes on a shape with unknown dims');
    keep = input.map((d) => d !== 1);
  } else {
    const drop = new Set(axes.map((a) => normalizeAxis(a, input.length) ?? ctx.fail(`axis ${a} is out of range for rank ${input.length}`)));
    keep = input.map((_, i) => !drop.has(i));
  }
  return [withValue(ctx, ctx.elemType(0), input.filter((_, i) => keep[i]))];
}

export function unsqueeze(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const axes = axesOf(ctx, 13) ?? ctx.fail('axes are missing');
  const rank = input.length + axes.length;
  const inserted = new Set(axes.map((a) => normalizeAxis(a, rank) ?? ctx.fail(`axis ${a} is out of range for rank ${rank}`)));
  const shape: Dim[] = [];
  let next = 0;
  for (let i = 0; i < rank; i++) shape.push(inserted.has(i) ? 1 : input[next++]);
  return [withValue(ctx, ctx.elemType(0), shape)];
}

export function expand(ctx: RuleContext): RuleOutput[] {
  const target = ctx.value(1);
  if (target === undefined) ctx.fail('target shape is not known before run time');
  const shape = broadcastShapes([ctx.shape(0), target]);
  if (typeof shape === 'string') ctx.fail(shape);
  return [tensor(ctx.elemType(0), shape)];
}

export function tile(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const repeats = ctx.value(1);
  if (repeats === undefined) return [tensor(ctx.elemType(0), input.map(() => null))];
  if (repeats.length !== input.length) ctx.fail(`repeats has ${repeats.length} entries for rank ${input.length}`);
  return [tensor(ctx.elemType(0), input.map((d, i) => mul(d, repeats[i])))];
}

export function depthToSpace(ctx: RuleContext): RuleOutput[] {
  const [n, c, h, w] = ctx.shape(0);
  const block = ctx.attrInt('blocksize', 0);
  if (ctx.rank(0) !== 4 || block <= 0) ctx.fail('DepthToSpace needs a 4-D input and a blocksize');
  return [tensor(ctx.elemType(0), [n, floorDiv(c, block * block), mul(h, block), mul(w, block)])];
}

export function spaceToDepth(ctx: RuleContext): RuleOutput[] {
  const [n, c, h, w] = ctx.shape(0);
  const block = ctx.attrInt('blocksize', 0);
  if (ctx.rank(0) !== 4 || block <= 0) ctx.fail('SpaceToDepth needs a 4-D input and a blocksize');
  return [tensor(ctx.elemType(0), [n, mul(c, block * block), floorDiv(h, block), floorDiv(w, block)])];
}
