// Rules for matrix products: MatMul (numpy matmul: 1-D operands promoted and the promoted dim
// dropped again, batch dims broadcast), its integer and quantized forms, Gemm, and Einsum.
import { DataType } from '../../ir/dtype.js';
import { type Dim, broadcastDim, broadcastShapes } from './dims.js';
import { type RuleContext, type RuleOutput, tensor } from './context.js';

function matmulShape(ctx: RuleContext, a: Dim[], b: Dim[]): Dim[] {
  if (a.length === 0 || b.length === 0) ctx.fail('MatMul operands must not be scalars');
  const left = a.length === 1 ? [1, a[0]] : a;
  const right = b.length === 1 ? [b[0], 1] : b;
  const k = broadcastDim(left[left.length - 1], right[right.length - 2]);
  if (k === 'mismatch') ctx.fail(`inner dims ${left[left.length - 1]} and ${right[right.length - 2]} differ`);
  const batch = broadcastShapes([left.slice(0, -2), right.slice(0, -2)]);
  if (typeof batch === 'string') ctx.fail(batch);
  const out = [...batch];
  if (a.length > 1) out.push(left[left.length - 2]);
  if (b.length > 1) out.push(right[right.length - 1]);
  return out;
}

/** MatMul, MatMulInteger (int32 result), QLinearMatMul (y_zero_point's type). */
export function matmul(ctx: RuleContext): RuleOutput[] {
  const op = ctx.node.opType;
  const bIndex = op === 'QLinearMatMul' ? 3 : 1;
  const shape = matmulShape(ctx, ctx.shape(0), ctx.shape(bIndex));
  const elemType = op === 'MatMulInteger' ? DataType.INT32 : op === 'QLinearMatMul' ? ctx.elemType(7) : ctx.elemType(0);
  return [tensor(elemType, shape)];
}

/** Gemm: op(A) [M,K] times op(B) [K,N]; C only broadcasts into the result. */
export function gemm(ctx: RuleContext): RuleOutput[] {
  const a = ctx.shape(0);
  const b = ctx.shape(1);
  if (a.length !== 2 || b.length !== 2) ctx.fail(`Gemm needs 2-D A and B, got ranks ${a.length} and ${b.length}`);
  const m = ctx.attrInt('transA', 0) === 1 ? a[1] : a[0];
  const n = ctx.attrInt('transB', 0) === 1 ? b[0] : b[1];
  return [tensor(ctx.elemType(0), [m, n])];
}

/** Einsum: each letter takes its dim from the operands; `...` broadcasts across them. */
export function einsum(ctx: RuleContext): RuleOutput[] {
  const equation = ctx.node.attrString('equation', '').replace(/\s+/g, '');
  const [lhs, explicit] = equation.split('->');
  const terms = lhs.split(',');
  if (terms.length !== ctx.node.inputs.length) ctx.fail(`equation '${equation}' names ${terms.length} operands for ${ctx.node.inputs.length} inputs`);
  const letters = new Map<string, Dim>();
  const counts = new Map<string, number>();
  const ellipses: Dim[][] = [];
  terms.forEach((term, i) => {
    const shape = ctx.shape(i);
    const [before, after] = term.includes('...') ? term.split('...') : [term, undefined];
    const named = before.length + (after?.length ?? 0);
    if (after === undefined ? named !== shape.length : named > shape.length) ctx.fail(`term '${term}' does not fit rank ${shape.length}`);
    const dimsOf = [...before].map((c, k) => [c, shape[k]] as const);
    if (after !== undefined) {
      ellipses.push(shape.slice(before.length, shape.length - after.length));
      for (let k = 0; k < after.length; k++) dimsOf.push([after[k], shape[shape.length - after.length + k]]);
    }
    for (const [c, d] of dimsOf) {
      counts.set(c, (counts.get(c) ?? 0) + 1);
      const seen = letters.get(c);
      const merged = seen === undefined ? d : broadcastDim(seen, d);
      if (merged === 'mismatch') ctx.fail(`letter '${c}' has sizes ${seen} and ${d}`);
      letters.set(c, merged);
    }
  });
  const broadcast = broadcastShapes(ellipses);
  if (typeof broadcast === 'string') ctx.fail(broadcast);
  // Without '->', the output is the ellipsis dims then the letters used once, alphabetically.
  const output = explicit ?? `${ellipses.length > 0 ? '...' : ''}${[...counts].filter(([, n]) => n === 1).map(([c]) => c).sort().join('')}`;
  const shape: Dim[] = [];
  const [outBefore, outAfter] = output.includes('...') ? output.split('...') : [output, undefined];
  for (const c of outBefore) shape.push(letters.get(c) ?? ctx.fail(`output letter '${c}' is not in any operand`));
  if (outAfter !== undefined) {
    shape.push(...broadcast);
    for (const c of outAfter) shape.push(letters.get(c) ?? ctx.fail(`output letter '${c}' is not in any operand`));
  }
  return [tensor(ctx.elemType(0), shape)];
}
