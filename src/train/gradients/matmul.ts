// Gradients of MatMul (numpy semantics: batched, broadcast, 1-D operands promoted) and Gemm.
import { attr } from '../../ir/attribute.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** Swaps the last two axes of a value of rank >= 2. */
function transposeLast(ctx: GradientContext, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return ctx.op('Transpose', [x], [attr.ints('perm', perm)]);
}

/** Adds a unit axis to a 1-D operand so every product below is a plain (batched) matrix product. */
function unsqueeze(ctx: GradientContext, x: string, axis: number): string {
  return ctx.op('Unsqueeze', [x, ctx.int64s([axis])]);
}

export const matmulGradients: Record<string, GradientRule> = {
  // y = a @ b: da = dy @ b^T, db = a^T @ dy, each summed over broadcast batch axes.
  MatMul: (ctx) => {
    const [a, b] = [ctx.input(0), ctx.input(1)];
    const rankA = ctx.rank(a);
    const rankB = ctx.rank(b);
    let dy = ctx.dyOrZeros();
    // Promote 1-D operands: a (K) -> (1, K), b (K) -> (K, 1); dy gains the matching unit axis.
    let a2 = a;
    let b2 = b;
    if (rankA === 1) {
      a2 = unsqueeze(ctx, a, 0);
      dy = unsqueeze(ctx, dy, rankB === 1 ? 0 : -2);
    }
    if (rankB === 1) {
      b2 = unsqueeze(ctx, b, 1);
      dy = unsqueeze(ctx, dy, -1);
    }
    const ra = Math.max(rankA, 2);
    const rb = Math.max(rankB, 2);
    const ry = Math.max(ra, rb);
    const fold = (grad: string, operandRank: number, operand: string, original: number) => {
      // Sum over the batch axes the operand was broadcast along, then drop the promoted axis.
      let g = grad;
      const lead = ry - operandRank;
      if (lead > 0) g = ctx.reduce('ReduceSum', g, Array.from({ length: lead }, (_, i) => i), false);
      const shape = ctx.shape(operand);
      const batch = shape.slice(0, Math.max(0, original - 2));
      const keep = batch.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
      if (keep.length > 0) g = ctx.reduce('ReduceSum', g, keep, true);
      return original === 1 ? ctx.reshapeLike(g, operand) : g;
    };
    const da = ctx.wants(0) ? fold(ctx.op('MatMul', [dy, transposeLast(ctx, b2, rb)]), ra, a, rankA) : undefined;
    const db = ctx.wants(1) ? fold(ctx.op('MatMul', [transposeLast(ctx, a2, ra), dy]), rb, b, rankB) : undefined;
    return [da, db];
  },

  // y = alpha * A' @ B' + beta * C, with A' = transA ? A^T : A and B' likewise.
  Gemm: (ctx) => {
    const dy = ctx.dyOrZeros();
    const alpha = ctx.float('alpha', 1);
    const beta = ctx.float('beta', 1);
    const transA = ctx.int('transA', 0) === 1;
    const transB = ctx.int('transB', 0) === 1;
    const [a, b] = [ctx.input(0), ctx.input(1)];
    const gemm = (x: string, y: string, tx: boolean, ty: boolean) =>
      ctx.op('Gemm', [x, y], [attr.float('alpha', alpha), attr.int('transA', tx ? 1 : 0), attr.int('transB', ty ? 1 : 0)]);
    // dA' = dy B'^T, dB' = A'^T dy; transposing back where the forward transposed.
    const da = !ctx.wants(0) ? undefined : transA ? gemm(b, dy, transB, true) : gemm(dy, b, false, !transB);
    const db = !ctx.wants(1) ? undefined : transB ? gemm(dy, a, true, transA) : gemm(a, dy, !transA, false);
    let dc: string | undefined;
    if (ctx.wants(2)) {
      const scaled = beta === 1 ? dy : ctx.op('Mul', [dy, ctx.scalar(beta, ctx.output())]);
      dc = ctx.unbroadcast(scaled, ctx.output(), ctx.input(2));
    }
    return [da, db, dc];
  },
};
