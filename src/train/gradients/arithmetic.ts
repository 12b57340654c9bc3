// Gradients of elementwise arithmetic with numpy broadcasting: each operand's gradient is summed
// back to the operand's own shape.
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** dy times `factor`, summed to input i's shape. */
function scaled(ctx: GradientContext, i: number, factor?: string): string | undefined {
  if (!ctx.wants(i)) return undefined;
  const dy = ctx.dyOrZeros();
  return ctx.unbroadcast(factor === undefined ? dy : ctx.op('Mul', [dy, factor]), ctx.output(), ctx.input(i));
}

export const arithmeticGradients: Record<string, GradientRule> = {
  Identity: (ctx) => [ctx.dyOrZeros()],

  Add: (ctx) => [scaled(ctx, 0), scaled(ctx, 1)],

  Sub: (ctx) => [scaled(ctx, 0), ctx.wants(1) ? ctx.unbroadcast(ctx.op('Neg', [ctx.dyOrZeros()]), ctx.output(), ctx.input(1)) : undefined],

  // d(a*b) = b da + a db
  Mul: (ctx) => [scaled(ctx, 0, ctx.wants(0) ? ctx.input(1) : undefined), scaled(ctx, 1, ctx.wants(1) ? ctx.input(0) : undefined)],

  // d(a/b) = da / b - (a/b) / b db
  Div: (ctx) => {
    const dy = ctx.dyOrZeros();
    const da = ctx.wants(0) ? ctx.unbroadcast(ctx.op('Div', [dy, ctx.input(1)]), ctx.output(), ctx.input(0)) : undefined;
    const db = ctx.wants(1) ? ctx.unbroadcast(ctx.op('Neg', [ctx.op('Div', [ctx.op('Mul', [dy, ctx.output()]), ctx.input(1)])]), ctx.output(), ctx.input(1)) : undefined;
    return [da, db];
  },

  Neg: (ctx) => [ctx.op('Neg', [ctx.dyOrZeros()])],

  // Every operand of Sum gets dy, summed to its shape.
  Sum: (ctx) => ctx.node.inputs.map((_, i) => scaled(ctx, i)),

  // d sqrt(x) = dy / (2 sqrt(x))
  Sqrt: (ctx) => [ctx.op('Div', [ctx.dyOrZeros(), ctx.op('Mul', [ctx.output(), ctx.scalar(2, ctx.output())])])],

  Exp: (ctx) => [ctx.op('Mul', [ctx.dyOrZeros(), ctx.output()])],

  Log: (ctx) => [ctx.op('Div', [ctx.dyOrZeros(), ctx.input(0)])],

  // d(1/x) = -dy / x^2 = -dy * y^2
  Reciprocal: (ctx) => [ctx.op('Neg', [ctx.op('Mul', [ctx.dyOrZeros(), ctx.op('Mul', [ctx.output(), ctx.output()])])])],

  Abs: (ctx) => [ctx.op('Mul', [ctx.dyOrZeros(), ctx.op('Sign', [ctx.input(0)])])],

  // d(a^b) = b a^(b-1) da + a^b ln(a) db (the exponent's gradient needs a > 0)
  Pow: (ctx) => {
    const dy = ctx.dyOrZeros();
    const [a, b] = [ctx.input(0), ctx.input(1)];
    let da: string | undefined;
    if (ctx.wants(0)) {
      const exponent = ctx.elemType(b) === ctx.elemType(a) ? b : ctx.op('Cast', [b], [{ name: 'to', kind: 'int', value: BigInt(ctx.elemType(a)) }]);
      const power = ctx.op('Pow', [a, ctx.op('Sub', [exponent, ctx.scalar(1, a)])]);
      da = ctx.unbroadcast(ctx.op('Mul', [dy, ctx.op('Mul', [exponent, power])]), ctx.output(), a);
    }
    const db = ctx.wants(1) ? ctx.unbroadcast(ctx.op('Mul', [dy, ctx.op('Mul', [ctx.output(), ctx.op('Log', [a])])]), ctx.output(), b) : undefined;
    return [da, db];
  },
};
