// Rules for reductions (ReduceX, ArgMax/ArgMin) and the training losses built on them. Reduce
// ops read `axes` from an attribute until the opset that moved it to an input: 13 for ReduceSum,
// 18 for the others.
import { DataType } from '../../ir/dtype.js';
import { type Dim, add, dimProduct, normalizeAxis } from './dims.js';
import { type RuleContext, type RuleOutput, tensor } from './context.js';

function reducedShape(ctx: RuleContext, input: Dim[], axes: number[] | undefined, keepDims: boolean): Dim[] {
  const rank = input.length;
  const reduced = new Set(
    (axes ?? input.map((_, i) => i)).map((a) => normalizeAxis(a, rank) ?? ctx.fail(`axis ${a} is out of range for rank ${rank}`)),
  );
  const shape: Dim[] = [];
  input.forEach((d, i) => {
    if (!reduced.has(i)) shape.push(d);
    else if (keepDims) shape.push(1);
  });
  return shape;
}

export function reduce(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const inputAxesOpset = ctx.node.opType === 'ReduceSum' ? 13 : 18;
  let axes: number[] | undefined;
  if (ctx.opset < inputAxesOpset) axes = ctx.attrInts('axes');
  else if (ctx.has(1)) {
    axes = ctx.numbers(1);
    if (axes === undefined) {
      // Axes known only at run time: the rank is known when keepdims keeps it.
      if (ctx.attrInt('keepdims', 1) === 1) return [tensor(ctx.elemType(0), input.map(() => null))];
      ctx.fail('axes are not known before run time');
    }
  }
  const keepDims = ctx.attrInt('keepdims', 1) === 1;
  if (axes !== undefined && axes.length === 0) axes = undefined;
  if (axes === undefined && ctx.opset >= inputAxesOpset && ctx.attrInt('noop_with_empty_axes', 0) === 1) {
    return [tensor(ctx.elemType(0), [...input], ctx.value(0))];
  }
  const out = tensor(ctx.elemType(0), reducedShape(ctx, input, axes, keepDims));
  const values = ctx.value(0);
  if (input.length === 1 && values !== undefined) {
    // Reductions of shape vectors (element counts) are shape arithmetic worth tracking.
    if (ctx.node.opType === 'ReduceProd') out.value = [dimProduct(values)];
    else if (ctx.node.opType === 'ReduceSum') out.value = [values.reduce<Dim>((a, b) => add(a, b), 0)];
  }
  return [out];
}

export function argMinMax(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const axis = ctx.attrInt('axis', 0);
  return [tensor(DataType.INT64, reducedShape(ctx, input, [axis], ctx.attrInt('keepdims', 1) === 1))];
}

/**
 * NegativeLogLikelihoodLoss(input [N,C,d...], target [N,d...]) and SoftmaxCrossEntropyLoss
 * (scores, labels): a scalar unless reduction is 'none', then the target's shape.
 * SoftmaxCrossEntropyLoss's optional second output is the log-probabilities, shaped like scores.
 */
export function loss(ctx: RuleContext): RuleOutput[] {
  const reduction = ctx.node.attrString('reduction', 'mean');
  const shape = reduction === 'none' ? [...ctx.shape(1)] : [];
  const outs: RuleOutput[] = [tensor(ctx.elemType(0), shape)];
  if (ctx.node.outputs.length > 1) outs.push(tensor(ctx.elemType(0), [...ctx.shape(0)]));
  return outs;
}
