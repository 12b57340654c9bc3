// Rules for the onnxruntime contrib ops (domain com.microsoft) that shrink's own passes write:
// MatMulNBits, DynamicQuantizeMatMul and DequantizeLinear (weight-only and dynamic int8; the
// contrib DequantizeLinear stands in below opset 10), MultiHeadAttention and
// SkipLayerNormalization (fusions), QAttention and MatMulIntegerToFloat (dynamic int8 with attention). Later passes (fp16, training) infer through them.
import { type RuleContext, type RuleOutput, sameAs, tensor } from './context.js';

/** A [..., K] @ B -> [..., N], N from the `N` attribute; the result has A's type. */
function matMulNBits(ctx: RuleContext): RuleOutput[] {
  const a = ctx.shape(0);
  if (a.length === 0) ctx.fail('MatMulNBits input A must not be a scalar');
  const n = ctx.attrInt('N', -1);
  if (n < 0) ctx.fail('MatMulNBits has no N attribute');
  return [tensor(ctx.elemType(0), [...a.slice(0, -1), n])];
}

/** float A [..., K] times constant B [K, N] -> float [..., N]. */
function dynamicQuantizeMatMul(ctx: RuleContext): RuleOutput[] {
  const a = ctx.shape(0);
  const b = ctx.shape(1);
  if (a.length === 0 || b.length !== 2) ctx.fail(`DynamicQuantizeMatMul needs A of rank >= 1 and a 2-D B, got ranks ${a.length} and ${b.length}`);
  return [tensor(ctx.elemType(0), [...a.slice(0, -1), b[1]])];
}

/** Integer A [..., K] times constant integer B [K, N] -> [..., N] of a_scale's type (dynamic int8 attention). */
function matMulIntegerToFloat(ctx: RuleContext): RuleOutput[] {
  const a = ctx.shape(0);
  const b = ctx.shape(1);
  if (a.length === 0 || b.length !== 2) ctx.fail(`MatMulIntegerToFloat needs A of rank >= 1 and a 2-D B, got ranks ${a.length} and ${b.length}`);
  return [tensor(ctx.elemType(2), [...a.slice(0, -1), b[1]])];
}

/** The output has the query's shape [batch, sequence, hidden] (value's hidden when packed). */
function multiHeadAttention(ctx: RuleContext): RuleOutput[] {
  const query = ctx.shape(0);
  if (query.length !== 3) ctx.fail(`MultiHeadAttention: only unpacked [batch, sequence, hidden] queries are inferred, got rank ${query.length}`);
  const value = ctx.node.inputs[2] ? ctx.shape(2) : undefined;
  const hidden = value !== undefined && value.length === 3 ? value[2] : query[2];
  return [tensor(ctx.elemType(0), [query[0], query[1], hidden])];
}

/** Quantized input [batch, sequence, K] and packed QKV weight [K, 3 * hidden] -> float [batch, sequence, hidden] (the bias's type). */
function qAttention(ctx: RuleContext): RuleOutput[] {
  const input = ctx.shape(0);
  const weight = ctx.shape(1);
  if (input.length !== 3 || weight.length !== 2) ctx.fail(`QAttention needs a [batch, sequence, K] input and a 2-D weight, got ranks ${input.length} and ${weight.length}`);
  const packed = weight[1];
  const hidden = typeof packed === 'number' ? packed / 3 : null;
  return [tensor(ctx.elemType(2), [input[0], input[1], hidden])];
}

/** com.microsoft's DequantizeLinear (written for models below opset 10): x's shape, the scale's type. */
function dequantizeLinear(ctx: RuleContext): RuleOutput[] {
  return [tensor(ctx.elemType(1), ctx.shape(0))];
}

/** Output 0 (and the optional input+skip sum, output 3) have the input's shape; mean/inv-std are not inferred. */
function skipLayerNormalization(ctx: RuleContext): RuleOutput[] {
  const out = sameAs(ctx, 0);
  return ctx.node.outputs.map((name, k) => (name !== '' && (k === 0 || k === 3) ? out : undefined));
}

export const CONTRIB_SHAPE_RULES: Readonly<Record<string, (ctx: RuleContext) => RuleOutput[]>> = {
  MatMulNBits: matMulNBits,
  DynamicQuantizeMatMul: dynamicQuantizeMatMul,
  MatMulIntegerToFloat: matMulIntegerToFloat,
  DequantizeLinear: dequantizeLinear,
  MultiHeadAttention: multiHeadAttention,
  QAttention: qAttention,
  SkipLayerNormalization: skipLayerNormalization,
  // Elementwise: the input's type and shape.
  Gelu: (ctx) => [sameAs(ctx, 0)],
};
