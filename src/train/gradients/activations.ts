// Gradients of activations and other elementwise selections: Relu and its relatives, smooth
// activations (Sigmoid, Tanh, Erf, Gelu, Softplus, ...), Softmax/LogSoftmax, Clip, Where, Cast and
// Dropout. Piecewise ops pick the branch by comparing the forward input (ties go to whichever
// branch the forward op takes at the kink); smooth ones reuse the forward output where it is cheaper.
import { attr } from '../../ir/attribute.js';
import { dataTypeInfo } from '../../ir/dtype.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** dy * factor, for the single input of a unary op. */
function times(ctx: GradientContext, factor: string): string {
  return ctx.op('Mul', [ctx.dyOrZeros(), factor]);
}

/** Where `x > threshold` the gradient is `above`, elsewhere `below` (both shaped like dy or scalars). */
function split(ctx: GradientContext, threshold: number, above: string, below: string): string {
  const x = ctx.input(0);
  return ctx.op('Where', [ctx.op('Greater', [x, ctx.scalar(threshold, x)]), above, below]);
}

/** Gelu's derivative for approximate = 'none': Phi(x) + x phi(x), with the standard normal cdf and pdf. */
function geluExact(ctx: GradientContext, x: string): string {
  const cdf = ctx.op('Mul', [ctx.op('Add', [ctx.op('Erf', [ctx.op('Mul', [x, ctx.scalar(Math.SQRT1_2, x)])]), ctx.scalar(1, x)]), ctx.scalar(0.5, x)]);
  const pdf = ctx.op('Mul', [ctx.op('Exp', [ctx.op('Mul', [ctx.op('Mul', [x, x]), ctx.scalar(-0.5, x)])]), ctx.scalar(1 / Math.sqrt(2 * Math.PI), x)]);
  return ctx.op('Add', [cdf, ctx.op('Mul', [x, pdf])]);
}

/**
 * Gelu's derivative for approximate = 'tanh', y = x/2 (1 + tanh(u)) with u = c (x + k x^3):
 * dy/dx = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3k x^2), t = tanh(u).
 */
function geluTanh(ctx: GradientContext, x: string): string {
  const c = Math.sqrt(2 / Math.PI);
  const k = 0.044715;
  const square = ctx.op('Mul', [x, x]);
  const u = ctx.op('Mul', [ctx.op('Add', [x, ctx.op('Mul', [ctx.op('Mul', [square, x]), ctx.scalar(k, x)])]), ctx.scalar(c, x)]);
  const t = ctx.op('Tanh', [u]);
  const half = ctx.scalar(0.5, x);
  const one = ctx.scalar(1, x);
  const du = ctx.op('Mul', [ctx.op('Add', [ctx.op('Mul', [square, ctx.scalar(3 * k, x)]), one]), ctx.scalar(c, x)]);
  const sech2 = ctx.op('Sub', [one, ctx.op('Mul', [t, t])]);
  const outer = ctx.op('Mul', [ctx.op('Add', [one, t]), half]);
  return ctx.op('Add', [outer, ctx.op('Mul', [ctx.op('Mul', [ctx.op('Mul', [x, half]), sech2]), du])]);
}

/**
 * The axes Softmax/LogSoftmax normalise over: the `axis` alone from opset 13; before 13 the input
 * is coerced to 2-D at `axis` (default 1), so every axis from `axis` to the last.
 */
function softmaxAxes(ctx: GradientContext): number[] {
  const rank = ctx.rank(ctx.input(0));
  const opset13 = ctx.opset >= 13;
  let axis = ctx.int('axis', opset13 ? -1 : 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) ctx.fail(`axis ${ctx.int('axis', 0)} is out of range for rank ${rank}`);
  return opset13 ? [axis] : Array.from({ length: rank - axis }, (_, i) => axis + i);
}

/** Clip's bounds: optional inputs from opset 11, float attributes before (absent: unbounded). */
function clipBounds(ctx: GradientContext): [string | undefined, string | undefined] {
  if (ctx.opset >= 11) return [ctx.input(1) || undefined, ctx.input(2) || undefined];
  const x = ctx.input(0);
  const bound = (name: string) => {
    const value = ctx.node.attrFloat(name);
    return value === undefined ? undefined : ctx.scalar(value, x);
  };
  return [bound('min'), bound('max')];
}

/** Whether input i is a constant that is false (absent inputs count as false). */
function constantFalse(ctx: GradientContext, i: number): boolean {
  const name = ctx.input(i);
  if (name === '') return true;
  const value = ctx.constantOf(name);
  return value !== undefined && Number((value.data() as ArrayLike<number | bigint>)[0]) === 0;
}

/** The Dropout node's mask output; added to the forward node when the model did not ask for it. */
function dropoutMask(ctx: GradientContext): string {
  const existing = ctx.output(1);
  if (existing !== '') return existing;
  // The backward pass needs the very mask the forward pass drew, so the forward node must expose it.
  const mask = ctx.builder.fresh(`${ctx.output(0)}_mask`);
  ctx.node.outputs[1] = mask;
  ctx.builder.graph.changed();
  return mask;
}

export const activationGradients: Record<string, GradientRule> = {
  Relu: (ctx) => [split(ctx, 0, ctx.dyOrZeros(), ctx.scalar(0, ctx.input(0)))],

  LeakyRelu: (ctx) => {
    const dy = ctx.dyOrZeros();
    return [split(ctx, 0, dy, ctx.op('Mul', [dy, ctx.scalar(ctx.float('alpha', 0.01), ctx.input(0))]))];
  },

  // PRelu: the slope broadcasts into x; its gradient is dy * x where x <= 0, summed to its shape.
  PRelu: (ctx) => {
    const [x, slope] = [ctx.input(0), ctx.input(1)];
    const dy = ctx.dyOrZeros();
    const zero = ctx.scalar(0, x);
    const positive = ctx.op('Greater', [x, zero]);
    const dx = ctx.wants(0) ? ctx.op('Where', [positive, dy, ctx.op('Mul', [dy, slope])]) : undefined;
    const dslope = ctx.wants(1) ? ctx.unbroadcast(ctx.op('Where', [positive, zero, ctx.op('Mul', [dy, x])]), ctx.output(), slope) : undefined;
    return [dx, dslope];
  },

  // y = alpha (e^x - 1) for x <= 0, so dy/dx = y + alpha there.
  Elu: (ctx) => {
    const dy = ctx.dyOrZeros();
    const y = ctx.output();
    return [split(ctx, 0, dy, ctx.op('Mul', [dy, ctx.op('Add', [y, ctx.scalar(ctx.float('alpha', 1), y)])]))];
  },

  // y = gamma x for x > 0, gamma alpha (e^x - 1) otherwise: dy/dx = y + gamma alpha there.
  Selu: (ctx) => {
    const dy = ctx.dyOrZeros();
    const y = ctx.output();
    // The spec's defaults (float32 values, written here in their shortest float64 form).
    const alpha = ctx.float('alpha', 1.6732631921768188);
    const gamma = ctx.float('gamma', 1.0507010221481323);
    return [split(ctx, 0, ctx.op('Mul', [dy, ctx.scalar(gamma, y)]), ctx.op('Mul', [dy, ctx.op('Add', [y, ctx.scalar(gamma * alpha, y)])]))];
  },

  // y = alpha (e^(x/alpha) - 1) for x <= 0: dy/dx = e^(x/alpha) = y / alpha + 1 there.
  Celu: (ctx) => {
    const dy = ctx.dyOrZeros();
    const y = ctx.output();
    const slope = ctx.op('Add', [ctx.op('Div', [y, ctx.scalar(ctx.float('alpha', 1), y)]), ctx.scalar(1, y)]);
    return [split(ctx, 0, dy, ctx.op('Mul', [dy, slope]))];
  },

  Sigmoid: (ctx) => {
    const y = ctx.output();
    return [times(ctx, ctx.op('Mul', [y, ctx.op('Sub', [ctx.scalar(1, y), y])]))];
  },

  Tanh: (ctx) => {
    const y = ctx.output();
    return [times(ctx, ctx.op('Sub', [ctx.scalar(1, y), ctx.op('Mul', [y, y])]))];
  },

  // d log(1 + e^x) = sigmoid(x)
  Softplus: (ctx) => [times(ctx, ctx.op('Sigmoid', [ctx.input(0)]))],

  // d x / (1 + |x|) = 1 / (1 + |x|)^2
  Softsign: (ctx) => {
    const x = ctx.input(0);
    const denominator = ctx.op('Add', [ctx.op('Abs', [x]), ctx.scalar(1, x)]);
    return [ctx.op('Div', [ctx.dyOrZeros(), ctx.op('Mul', [denominator, denominator])])];
  },

  // d erf(x) = 2/sqrt(pi) e^(-x^2)
  Erf: (ctx) => {
    const x = ctx.input(0);
    const gauss = ctx.op('Exp', [ctx.op('Neg', [ctx.op('Mul', [x, x])])]);
    return [times(ctx, ctx.op('Mul', [gauss, ctx.scalar(2 / Math.sqrt(Math.PI), x)]))];
  },

  // ai.onnx Gelu (opset 20).
  Gelu: (ctx) => {
    const approximate = ctx.node.attrString('approximate', 'none');
    if (approximate !== 'none' && approximate !== 'tanh') ctx.fail(`approximate '${approximate}' is not 'none' or 'tanh'`);
    const x = ctx.input(0);
    return [times(ctx, approximate === 'tanh' ? geluTanh(ctx, x) : geluExact(ctx, x))];
  },

  // y = max(0, min(1, alpha x + beta)): slope alpha where 0 < y < 1.
  HardSigmoid: (ctx) => {
    const y = ctx.output();
    const zero = ctx.scalar(0, y);
    const inside = ctx.op('And', [ctx.op('Greater', [y, zero]), ctx.op('Less', [y, ctx.scalar(1, y)])]);
    return [ctx.op('Where', [inside, ctx.op('Mul', [ctx.dyOrZeros(), ctx.scalar(ctx.float('alpha', 0.2), y)]), zero])];
  },

  // y = x max(0, min(1, x/6 + 1/2)): 0 below -3, 1 above 3, x/3 + 1/2 between.
  HardSwish: (ctx) => {
    const x = ctx.input(0);
    const middle = ctx.op('Add', [ctx.op('Mul', [x, ctx.scalar(1 / 3, x)]), ctx.scalar(0.5, x)]);
    const upper = ctx.op('Where', [ctx.op('Greater', [x, ctx.scalar(3, x)]), ctx.scalar(1, x), middle]);
    return [times(ctx, ctx.op('Where', [ctx.op('Less', [x, ctx.scalar(-3, x)]), ctx.scalar(0, x), upper]))];
  },

  // Clip computes min(max(x, min), max), as numpy.clip does: the upper bound applies last. Each
  // bound gets dy where it was the value taken (scalar bounds: summed over every element).
  Clip: (ctx) => {
    const x = ctx.input(0);
    const [min, max] = clipBounds(ctx);
    const zero = ctx.scalar(0, x);
    const dy = ctx.dyOrZeros();
    const raised = min === undefined ? x : ctx.op('Max', [x, min]);
    let dRaised = dy;
    let dMax: string | undefined;
    if (max !== undefined) {
      const above = ctx.op('Greater', [raised, max]);
      dRaised = ctx.op('Where', [above, zero, dy]);
      if (ctx.wants(2)) dMax = ctx.unbroadcast(ctx.op('Where', [above, dy, zero]), ctx.output(), max);
    }
    let dx = dRaised;
    let dMin: string | undefined;
    if (min !== undefined) {
      const below = ctx.op('Less', [x, min]);
      dx = ctx.op('Where', [below, zero, dRaised]);
      if (ctx.wants(1)) dMin = ctx.unbroadcast(ctx.op('Where', [below, dRaised, zero]), ctx.output(), min);
    }
    return [ctx.wants(0) ? dx : undefined, dMin, dMax];
  },

  // dx = y (dy - sum(dy y)) over the normalised axes.
  Softmax: (ctx) => {
    const y = ctx.output();
    const dy = ctx.dyOrZeros();
    const dot = ctx.reduce('ReduceSum', ctx.op('Mul', [dy, y]), softmaxAxes(ctx), true);
    return [ctx.op('Mul', [y, ctx.op('Sub', [dy, dot])])];
  },

  // dx = dy - softmax(x) sum(dy), and softmax(x) = exp(y).
  LogSoftmax: (ctx) => {
    const dy = ctx.dyOrZeros();
    const total = ctx.reduce('ReduceSum', dy, softmaxAxes(ctx), true);
    return [ctx.op('Sub', [dy, ctx.op('Mul', [ctx.op('Exp', [ctx.output()]), total])])];
  },

  // The condition is boolean and gets no gradient; X and Y each get dy where they were chosen.
  Where: (ctx) => {
    const [condition, x, y] = [ctx.input(0), ctx.input(1), ctx.input(2)];
    const dy = ctx.dyOrZeros();
    const zero = ctx.scalar(0, ctx.output());
    const dx = ctx.wants(1) ? ctx.unbroadcast(ctx.op('Where', [condition, dy, zero]), ctx.output(), x) : undefined;
    const dY = ctx.wants(2) ? ctx.unbroadcast(ctx.op('Where', [condition, zero, dy]), ctx.output(), y) : undefined;
    return [undefined, dx, dY];
  },

  // The gradient goes back in the input's type. A cast to an integer type cuts the gradient: its
  // output is never active, so this rule only sees float-to-float casts.
  Cast: (ctx) => {
    const from = ctx.elemType(ctx.input(0));
    if (!dataTypeInfo(ctx.elemType(ctx.output())).isFloat) return [undefined];
    const dy = ctx.dyOrZeros();
    // An integer source is differentiated only under the straight-through estimator (a
    // QuantizeLinear output): its gradient stays in the float type.
    if (!dataTypeInfo(from).isFloat) return [dy];
    return [from === ctx.elemType(ctx.output()) ? dy : ctx.op('Cast', [dy], [attr.int('to', from)])];
  },

  // CastLike: like Cast; the value that only lends its type has a zero gradient.
  CastLike: (ctx) => {
    const from = ctx.elemType(ctx.input(0));
    const dy = ctx.dyOrZeros();
    const dx = !ctx.wants(0) ? undefined : from === ctx.elemType(ctx.output()) ? dy : ctx.op('Cast', [dy], [attr.int('to', from)]);
    return [dx, ctx.wants(1) ? ctx.zerosLike(ctx.input(1)) : undefined];
  },

  // Inference (no training_mode, or a constant false; any Dropout before opset 12): identity.
  // Training: y = x mask / (1 - ratio), so dx = dy mask / (1 - ratio). With a run-time
  // training_mode the scale is chosen in the graph (the mask is all true in inference).
  Dropout: (ctx) => {
    const dy = ctx.dyOrZeros();
    if (ctx.opset < 12 || constantFalse(ctx, 2)) return [dy];
    const x = ctx.input(0);
    const type = ctx.elemType(x);
    const one = ctx.scalar(1, x);
    const ratio = ctx.input(1) === '' ? ctx.scalar(0.5, x) : ctx.elemType(ctx.input(1)) === type ? ctx.input(1) : ctx.op('Cast', [ctx.input(1)], [attr.int('to', type)]);
    let scale = ctx.op('Div', [one, ctx.op('Sub', [one, ratio])]);
    if (ctx.constantOf(ctx.input(2)) === undefined) scale = ctx.op('Where', [ctx.input(2), scale, one]);
    const kept = ctx.op('Cast', [dropoutMask(ctx)], [attr.int('to', type)]);
    return [ctx.op('Mul', [ctx.op('Mul', [dy, kept]), scale])];
  },
};
