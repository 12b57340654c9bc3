// Gradients of QuantizeLinear and DequantizeLinear for quantization-aware training: a pair
// y = DQ(Q(x)) ("fake quantization") differentiates as the clipped straight-through estimator.
//
// Each rule is local, and the pair composes through the integer value between them:
// - DequantizeLinear, y = (q - zp) * s, is linear: it gives its integer input q the real-valued
//   gradient dy * s, and s the gradient sum(dy * (q - zp)).
// - QuantizeLinear, q = clip(round(x / s) + zp, qmin, qmax), treats round as the identity inside
//   the representable range and saturation as constant outside it:
//   dx = dq / s where qmin <= x / s + zp <= qmax, else 0; ds = -dq * x / s^2 there, else 0.
// Together: dx = dy * mask (clipped STE) and ds = sum(dy * ((q - zp) - mask * x / s)), the
// learned-step-size (LSQ) scale gradient, without LSQ's gradient scaling (an optimizer choice).
// The integer q carries a float gradient; autodiff must treat QuantizeLinear's output as a value
// that gradients flow through (STRAIGHT_THROUGH_OPS) although its type is an integer.
import { attr } from '../../ir/attribute.js';
import { dataTypeInfo, dataTypeName, type DataType } from '../../ir/dtype.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** Ops whose integer outputs carry a (straight-through) float gradient back to their inputs. */
export const STRAIGHT_THROUGH_OPS: ReadonlySet<string> = new Set(['QuantizeLinear']);

/** How a scale (and zero point) lines up with the data: per tensor or per axis. */
interface ScaleLayout {
  /** A per-axis vector reshaped to broadcast against the data; per-tensor values unchanged. */
  broadcast(v: string): string;
  /** A gradient shaped like the data, summed down to the scale's shape. */
  sumToScale(grad: string): string;
}

function scaleLayout(ctx: GradientContext, data: string, scale: string): ScaleLayout {
  if (ctx.int('block_size', 0) > 0) ctx.fail('blocked quantization (block_size) has no gradient rule');
  const rank = ctx.rank(data);
  const scaleShape = ctx.shape(scale);
  const everyAxis = Array.from({ length: rank }, (_, i) => i);
  const perTensor = scaleShape.length === 0 || (scaleShape.length === 1 && scaleShape[0] === 1);
  if (perTensor) {
    return {
      broadcast: (v) => v,
      sumToScale: (grad) => ctx.reshapeLike(rank === 0 ? grad : ctx.reduce('ReduceSum', grad, everyAxis, false), scale),
    };
  }
  if (scaleShape.length !== 1) ctx.fail(`a scale of rank ${scaleShape.length} (blocked quantization) has no gradient rule`);
  const given = ctx.int('axis', 1);
  const axis = given < 0 ? given + rank : given;
  if (axis < 0 || axis >= rank) ctx.fail(`axis ${given} is out of range for rank ${rank}`);
  // (C) -> (C, 1, ..., 1) with one unit dim per axis after `axis`.
  const trailing = Array.from({ length: rank - 1 - axis }, (_, i) => i + 1);
  return {
    broadcast: (v) => (trailing.length === 0 ? v : ctx.op('Unsqueeze', [v, ctx.int64s(trailing)])),
    sumToScale: (grad) => ctx.reduce('ReduceSum', grad, everyAxis.filter((a) => a !== axis), false),
  };
}

/** Cast to the type of `like` (CastLike only exists from opset 15). */
function castLike(ctx: GradientContext, v: string, like: string): string {
  return ctx.op('Cast', [v], [attr.int('to', ctx.elemType(like))]);
}

/** The zero point as a float like `like`, broadcast; undefined when absent (zero). */
function zeroPointAsFloat(ctx: GradientContext, layout: ScaleLayout, like: string): string | undefined {
  const zeroPoint = ctx.input(2);
  return zeroPoint === '' ? undefined : layout.broadcast(castLike(ctx, zeroPoint, like));
}

/** [qmin, qmax] of an integer quantized type. */
function integerRange(ctx: GradientContext, type: DataType): [number, number] {
  const info = dataTypeInfo(type);
  if (info.isFloat) ctx.fail(`quantization to ${dataTypeName(type)} has no straight-through gradient rule (integer types only)`);
  return info.isSigned ? [-(2 ** (info.bits - 1)), 2 ** (info.bits - 1) - 1] : [0, 2 ** info.bits - 1];
}

export const quantizeGradients: Record<string, GradientRule> = {
  QuantizeLinear: (ctx) => {
    const dq = ctx.dy(0);
    if (dq === undefined) return [undefined, undefined, undefined];
    const [x, scale] = [ctx.input(0), ctx.input(1)];
    const [qmin, qmax] = integerRange(ctx, ctx.elemType(ctx.output()));
    const layout = scaleLayout(ctx, x, scale);
    const s = layout.broadcast(scale);
    const zeroPoint = zeroPointAsFloat(ctx, layout, x);
    const scaled = ctx.op('Div', [x, s]);
    const unrounded = zeroPoint === undefined ? scaled : ctx.op('Add', [scaled, zeroPoint]);
    const inside = ctx.op('And', [ctx.op('GreaterOrEqual', [unrounded, ctx.scalar(qmin, x)]), ctx.op('LessOrEqual', [unrounded, ctx.scalar(qmax, x)])]);
    const zero = ctx.scalar(0, x);
    const dqOverS = ctx.op('Div', [dq, s]);
    const dx = ctx.wants(0) ? ctx.op('Where', [inside, dqOverS, zero]) : undefined;
    // d(x / s) / ds = -x / s^2, so ds = -(dq / s) * (x / s) where the value was not saturated.
    const ds = ctx.wants(1) ? layout.sumToScale(ctx.op('Where', [inside, ctx.op('Neg', [ctx.op('Mul', [dqOverS, scaled])]), zero])) : undefined;
    // The zero point is an integer: no gradient.
    return [dx, ds, undefined];
  },

  DequantizeLinear: (ctx) => {
    const [q, scale] = [ctx.input(0), ctx.input(1)];
    if (ctx.elemType(scale) !== ctx.elemType(ctx.output())) ctx.fail('an output_dtype other than the scale type has no gradient rule');
    const dy = ctx.dyOrZeros();
    const layout = scaleLayout(ctx, q, scale);
    // The integer input's gradient is a float: meaningful only where q comes from QuantizeLinear.
    const dq = ctx.wants(0) ? ctx.op('Mul', [dy, layout.broadcast(scale)]) : undefined;
    let ds: string | undefined;
    if (ctx.wants(1)) {
      const zeroPoint = zeroPointAsFloat(ctx, layout, scale);
      const qFloat = castLike(ctx, q, scale);
      const shifted = zeroPoint === undefined ? qFloat : ctx.op('Sub', [qFloat, zeroPoint]);
      ds = layout.sumToScale(ctx.op('Mul', [dy, shifted]));
    }
    return [dq, ds, undefined];
  },
};
