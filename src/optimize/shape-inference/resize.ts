// Rules for Resize and Upsample. Output sizes come from `sizes` when given, else from floor(in *
// scale) computed in float32 as onnxruntime does (so a scale like 0.6 rounds the same way). Input
// positions changed across opsets: Upsample took scales as an attribute (7) then an input (9);
// Resize took (X, scales) at 10, (X, roi, scales, sizes) from 11, and an `axes` attribute at 18.
import { type Dim, mul } from './dims.js';
import { type RuleContext, type RuleOutput, tensor } from './context.js';

function scaled(d: Dim, scale: number): Dim {
  if (typeof d === 'number') return Math.trunc(Math.fround(Math.fround(scale) * Math.fround(d)));
  return Number.isInteger(scale) ? mul(d, scale) : null;
}

export function resize(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const rank = input.length;
  const op = ctx.node.opType;
  let scales: number[] | undefined;
  let sizes: Dim[] | undefined;
  if (op === 'Upsample') {
    scales = ctx.opset < 9 ? ctx.node.attrFloats('scales') : ctx.numbers(1);
  } else if (ctx.opset < 11) {
    scales = ctx.numbers(1);
  } else {
    // One of scales and sizes is given; an empty scales tensor stands for an absent one.
    const scalesGiven = ctx.has(2) && ctx.input(2)?.shape?.[0] !== 0;
    if (scalesGiven) scales = ctx.numbers(2);
    else if (ctx.has(3)) sizes = ctx.value(3);
    else ctx.fail('neither scales nor sizes is given');
  }
  // Values known only at run time: the rank stays, the sizes do not.
  if (scales === undefined && sizes === undefined) return [tensor(ctx.elemType(0), input.map(() => null))];
  const axes = (ctx.attrInts('axes') ?? input.map((_, i) => i)).map((a) => (a < 0 ? a + rank : a));
  const shape = [...input];
  const policy = ctx.node.attrString('keep_aspect_ratio_policy', 'stretch');
  if (sizes !== undefined) {
    if (sizes.length !== axes.length) ctx.fail(`sizes has ${sizes.length} entries for ${axes.length} axes`);
    if (policy !== 'stretch') {
      // not_larger / not_smaller: one scale for all axes, then round half up (Resize-18 spec).
      const ratios = axes.map((a, k) => {
        const [size, d] = [sizes?.[k], input[a]];
        return typeof size === 'number' && typeof d === 'number' ? size / d : ctx.fail('keep_aspect_ratio_policy on symbolic sizes');
      });
      const scale = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
      axes.forEach((a) => {
        shape[a] = Math.floor(scale * (input[a] as number) + 0.5);
      });
    } else {
      axes.forEach((a, k) => {
        shape[a] = (sizes as Dim[])[k];
      });
    }
  } else if (scales !== undefined) {
    if (scales.length !== axes.length) ctx.fail(`scales has ${scales.length} entries for ${axes.length} axes`);
    axes.forEach((a, k) => {
      shape[a] = scaled(input[a], (scales as number[])[k]);
    });
  }
  return [tensor(ctx.elemType(0), shape)];
}
