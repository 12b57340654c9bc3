// Rules for normalizations and softmax-like ops. The main output always has the input's shape;
// the extra outputs (BatchNormalization's running statistics, LayerNormalization's Mean and
// InvStdDev) have the shapes their specs give.
import { DataType } from '../../ir/dtype.js';
import { normalizeAxis } from './dims.js';
import { type RuleContext, type RuleOutput, sameAs, tensor } from './context.js';

/** BatchNormalization: Y like X; any statistics outputs are per-channel, like `scale`. */
export function batchNormalization(ctx: RuleContext): RuleOutput[] {
  const y = sameAs(ctx);
  const channel = ctx.input(1)?.shape;
  const outs: RuleOutput[] = [y];
  for (let k = 1; k < ctx.node.outputs.length; k++) {
    // Running mean/var take the type of the mean input; saved statistics follow it too.
    const statType = ctx.input(3)?.elemType ?? y.elemType;
    outs.push(channel === undefined ? undefined : tensor(statType, [...channel]));
  }
  return outs;
}

/** LayerNormalization: Y like X; Mean and InvStdDev keep the dims before `axis` and set the rest to 1. */
export function layerNormalization(ctx: RuleContext): RuleOutput[] {
  const y = sameAs(ctx);
  const outs: RuleOutput[] = [y];
  if (ctx.node.outputs.length > 1) {
    const shape = ctx.shape(0);
    const axis = normalizeAxis(ctx.attrInt('axis', -1), shape.length);
    if (axis === undefined) ctx.fail(`axis is out of range for rank ${shape.length}`);
    const statShape = shape.map((d, i) => (i < axis ? d : 1));
    const stashType = ctx.attrInt('stash_type', DataType.FLOAT);
    for (let k = 1; k < ctx.node.outputs.length; k++) outs.push(tensor(stashType, [...statShape]));
  }
  return outs;
}

/**
 * Softmax, LogSoftmax, Hardmax: the shape is unchanged at every opset (before 13 `axis` only
 * changes how the input is coerced to 2-D for the computation, not the output shape).
 */
export function softmax(ctx: RuleContext): RuleOutput[] {
  const out = sameAs(ctx);
  if (out.shape !== undefined && normalizeAxis(ctx.attrInt('axis', ctx.opset >= 13 ? -1 : 1), Math.max(out.shape.length, 1)) === undefined) {
    ctx.fail(`axis is out of range for rank ${out.shape.length}`);
  }
  return [out];
}

/** InstanceNormalization, LRN, MeanVarianceNormalization, GroupNormalization: shape unchanged. */
export function normalizeInPlace(ctx: RuleContext): RuleOutput[] {
  return [sameAs(ctx)];
}
