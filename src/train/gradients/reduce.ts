// Gradients of ReduceSum and ReduceMean: dy is given back its reduced axes (as size-1 dims) and
// expanded over the input's shape; the mean also divides by the number of elements reduced.
import { attr } from '../../ir/attribute.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** The reduced axes, normalised to 0..rank-1; every axis when none are given (unless noop). */
function reducedAxes(ctx: GradientContext, axesAsInput: boolean): number[] | 'none' {
  const rank = ctx.rank(ctx.input(0));
  const axes = axesAsInput ? ctx.constantInts(1) : ctx.ints('axes');
  if (axes === undefined || axes.length === 0) {
    if (axesAsInput && ctx.int('noop_with_empty_axes', 0) === 1) return 'none';
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => (a < 0 ? a + rank : a));
}

function reduceGradient(mean: boolean): GradientRule {
  return (ctx) => {
    const x = ctx.input(0);
    const axesAsInput = ctx.node.opType === 'ReduceSum' ? ctx.opset >= 13 : ctx.opset >= 18;
    const axes = reducedAxes(ctx, axesAsInput);
    let dy = ctx.dyOrZeros();
    if (axes === 'none') return [dy];
    if (ctx.int('keepdims', 1) === 0) dy = ctx.op('Unsqueeze', [dy, ctx.int64s([...axes].sort((a, b) => a - b))]);
    let dx = ctx.op('Expand', [dy, ctx.shapeOf(x)]);
    if (mean) {
      const shape = ctx.shape(x);
      const sizes = axes.map((a) => shape[a]);
      if (sizes.every((d): d is number => typeof d === 'number')) {
        dx = ctx.op('Div', [dx, ctx.scalar(sizes.reduce((p, d) => p * d, 1), x)]);
      } else {
        // Symbolic dims: the count is size(x) / size(y), computed at run time.
        const count = ctx.op('Div', [ctx.op('Size', [x]), ctx.op('Size', [ctx.output()])]);
        dx = ctx.op('Div', [dx, ctx.op('Cast', [count], [attr.int('to', ctx.elemType(x))])]);
      }
    }
    return [dx];
  };
}

export const reduceGradients: Record<string, GradientRule> = {
  ReduceSum: reduceGradient(false),
  ReduceMean: reduceGradient(true),
};
