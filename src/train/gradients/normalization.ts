// Gradients of BatchNormalization (inference form with running statistics, and the training form
// that normalizes with batch statistics), LayerNormalization and InstanceNormalization.
//
// The forms that normalize with statistics of their own input share one derivation: with
// xhat = (x - mean) * inv and inv = 1 / sqrt(var + epsilon) (biased variance over the reduced
// axes), dx = inv * (g - mean(g) - xhat * mean(g * xhat)) where g = dL/dxhat.
// The statistics are recomputed in the backward graph in x's type: BatchNormalization-14 does not
// output them, and LayerNormalization's Mean/InvStdDev are optional and may be stashed in float32.
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import { Tensor } from '../../ir/tensor.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

interface Standardized {
  centered: string;
  /** 1 / sqrt(var + epsilon), with the reduced axes kept as size-1 dims. */
  inv: string;
  xhat: string;
}

/** x standardized over `axes` with its own mean and biased variance. */
function standardize(ctx: GradientContext, x: string, axes: readonly number[], epsilon: number): Standardized {
  const centered = ctx.op('Sub', [x, ctx.reduce('ReduceMean', x, axes, true)]);
  const variance = ctx.reduce('ReduceMean', ctx.op('Mul', [centered, centered]), axes, true);
  const inv = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(epsilon, x)])])]);
  return { centered, inv, xhat: ctx.op('Mul', [centered, inv]) };
}

/** dL/dx from g = dL/dxhat, through xhat and the mean and variance it was standardized with. */
function standardizedGradient(ctx: GradientContext, g: string, s: Standardized, axes: readonly number[]): string {
  const meanG = ctx.reduce('ReduceMean', g, axes, true);
  const meanGX = ctx.reduce('ReduceMean', ctx.op('Mul', [g, s.xhat]), axes, true);
  const inner = ctx.op('Sub', [ctx.op('Sub', [g, meanG]), ctx.op('Mul', [s.xhat, meanGX])]);
  return ctx.op('Mul', [s.inv, inner]);
}

/** How many elements of x each statistic reduces over, as a scalar of x's type (`statistic` keeps the reduced axes as 1s). */
function elementsPerStatistic(ctx: GradientContext, x: string, axes: readonly number[], statistic: string): string {
  const shape = ctx.shape(x);
  const sizes = axes.map((a) => shape[a]);
  if (sizes.every((d): d is number => typeof d === 'number')) return ctx.scalar(sizes.reduce((p, d) => p * d, 1), x);
  return castLike(ctx, ctx.op('Div', [ctx.op('Size', [x]), ctx.op('Size', [statistic])]), x);
}

/** Cast to the type of `like` (CastLike only exists from opset 15). */
function castLike(ctx: GradientContext, v: string, like: string): string {
  return ctx.op('Cast', [v], [attr.int('to', ctx.elemType(like))]);
}

/** Every axis but the channel axis 1 (BatchNormalization's statistics and parameter sums). */
function allButChannel(rank: number): number[] {
  return [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
}

/** A per-channel vector (C) shaped (C, 1, ..., 1) to broadcast against x (N, C, D1, ...). */
function perChannel(ctx: GradientContext, v: string, rank: number): string {
  if (rank <= 2) return v;
  return ctx.op('Unsqueeze', [v, ctx.int64s(Array.from({ length: rank - 2 }, (_, i) => i + 1))]);
}

function channelRank(ctx: GradientContext): number {
  const rank = ctx.rank(ctx.input(0));
  if (rank < 2) ctx.fail(`X must have rank 2 or more (N, C, ...), not ${rank}`);
  return rank;
}

/** BatchNormalization normalizes with batch statistics: training_mode=1 (opset 14+). */
function isTrainingForm(ctx: GradientContext): boolean {
  if (ctx.opset >= 14) return ctx.int('training_mode', 0) === 1;
  // BatchNormalization-9 signals training by its optional outputs (mean, var, saved statistics).
  if (ctx.node.outputs.slice(1).some((o) => o !== '')) ctx.fail('the training form of BatchNormalization before opset 14 (extra outputs) is not supported; use training_mode at opset 14 or newer');
  return false;
}

// y = scale * (x - mean) * inv + B with inv = 1 / sqrt(var + epsilon) from the running inputs.
function batchNormInference(ctx: GradientContext): (string | undefined)[] {
  const [x, scale, , mean, variance] = ctx.node.inputs;
  const rank = channelRank(ctx);
  const axes = allButChannel(rank);
  const dy = ctx.dyOrZeros();
  const inv = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(ctx.float('epsilon', 1e-5), x)])])]);
  const scaleInv = ctx.op('Mul', [scale, inv]);
  const sumDy = ctx.wants(2) || ctx.wants(3) ? ctx.reduce('ReduceSum', dy, axes, false) : undefined;
  // sum(dy * (x - mean)) per channel, shared by the scale and variance gradients.
  const sumDyCentered =
    ctx.wants(1) || ctx.wants(4) ? ctx.reduce('ReduceSum', ctx.op('Mul', [dy, ctx.op('Sub', [x, perChannel(ctx, mean, rank)])]), axes, false) : undefined;
  const dx = ctx.wants(0) ? ctx.op('Mul', [dy, perChannel(ctx, scaleInv, rank)]) : undefined;
  const dScale = sumDyCentered !== undefined && ctx.wants(1) ? ctx.op('Mul', [sumDyCentered, inv]) : undefined;
  const dMean = sumDy !== undefined && ctx.wants(3) ? ctx.op('Neg', [ctx.op('Mul', [sumDy, scaleInv])]) : undefined;
  // d inv / d var = -inv^3 / 2
  const dVar =
    sumDyCentered !== undefined && ctx.wants(4)
      ? ctx.op('Mul', [sumDyCentered, ctx.op('Mul', [scaleInv, ctx.op('Mul', [ctx.op('Mul', [inv, inv]), ctx.scalar(-0.5, x)])])])
      : undefined;
  return [dx, dScale, ctx.wants(2) ? sumDy : undefined, dMean, dVar];
}

/**
 * v * m + n per channel in one pass over v: BatchNormalization in inference form with mean 0,
 * variance 1 and epsilon 0 is exactly that (m and n per-channel values of any kept-dims shape). As a
 * Mul and a three-term Sum it was the slowest node of the batch-norm backward.
 */
function channelAffine(ctx: GradientContext, v: string, m: string, n: string, like: string): string {
  const flat = ctx.int64s([-1]);
  const scale = ctx.op('Reshape', [m, flat]);
  const channels = ctx.op('Shape', [scale]);
  const filled = (value: number) => {
    const type = ctx.elemType(like);
    // float32 or float64 (the caller checks).
    const data = type === DataType.DOUBLE ? Float64Array.of(value) : Float32Array.of(value);
    return ctx.op('ConstantOfShape', [channels], [attr.tensor('value', Tensor.fromArray('fill', type, [1], data))]);
  };
  return ctx.op('BatchNormalization', [v, scale, ctx.op('Reshape', [n, flat]), filled(0), filled(1)], [attr.float('epsilon', 0)]);
}

// y = scale * xhat + B with the batch's own statistics; running_mean = momentum * input_mean +
// (1 - momentum) * batch_mean, running_var likewise with the biased batch variance (as ORT does).
//
// Written per channel so that the backward pass touches x-sized tensors as few times as possible
// (it is a large share of a CNN's training step): with c = x - mean, M elements per channel,
// sum_dy = sum(dy) and sum_dyc = sum(dy * c),
//   dB = sum_dy, dscale = inv * sum_dyc,
//   dx = scale inv (dy - sum_dy / M - c inv^2 sum_dyc / M) = a dy + b c + k
// with per-channel a = scale inv, b = -a inv^2 sum_dyc / M, k = -a sum_dy / M: five x-sized
// results in all (c, dy c, a dy, b c, their sum), where the textbook form needs ten.
function batchNormTraining(ctx: GradientContext): (string | undefined)[] {
  const [x, scale] = [ctx.input(0), ctx.input(1)];
  const rank = channelRank(ctx);
  const axes = allButChannel(rank);
  const momentum = ctx.float('momentum', 0.9);
  const dy = ctx.dyOrZeros();
  // With momentum 0 the running outputs are the batch mean and biased variance themselves (the
  // training graph sets BatchNormalization up so): read, where recomputing costs two passes over x.
  const saved = momentum === 0 && ctx.output(1) !== '' && ctx.output(2) !== '';
  const mean = saved ? perChannel(ctx, ctx.output(1), rank) : ctx.reduce('ReduceMean', x, axes, true);
  const centered = ctx.op('Sub', [x, mean]);
  const count = elementsPerStatistic(ctx, x, axes, mean);
  // Per-channel values keep the reduced axes as 1s, so they broadcast against x.
  const variance = saved ? perChannel(ctx, ctx.output(2), rank) : ctx.op('Div', [ctx.reduce('ReduceSumSquare', centered, axes, true), count]);
  const inv = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(ctx.float('epsilon', 1e-5), x)])])]);
  const sumDy = ctx.reduce('ReduceSum', dy, axes, true);
  const sumDyCentered = ctx.reduce('ReduceSum', ctx.op('Mul', [dy, centered]), axes, true);
  const [dRunningMean, dRunningVar] = [ctx.dy(1), ctx.dy(2)];
  let dx: string | undefined;
  if (ctx.wants(0)) {
    const a = ctx.op('Mul', [perChannel(ctx, scale, rank), inv]);
    const perCount = (v: string) => ctx.op('Div', [v, count]);
    const b = ctx.op('Neg', [ctx.op('Mul', [ctx.op('Mul', [a, ctx.op('Mul', [inv, inv])]), perCount(sumDyCentered)])]);
    const k = ctx.op('Neg', [ctx.op('Mul', [a, perCount(sumDy)])]);
    const floating = ctx.elemType(x) === DataType.FLOAT || ctx.elemType(x) === DataType.DOUBLE;
    dx = floating ? ctx.op('Add', [ctx.op('Mul', [dy, a]), channelAffine(ctx, centered, b, k, x)]) : ctx.op('Sum', [ctx.op('Mul', [dy, a]), ctx.op('Mul', [centered, b]), k]);
    // The running outputs reach x through the batch mean (d/dx = 1/M) and variance (2 (x - mean) / M).
    if (dRunningMean !== undefined || dRunningVar !== undefined) {
      const share = ctx.op('Div', [ctx.scalar(1 - momentum, x), count]);
      if (dRunningMean !== undefined) dx = ctx.op('Add', [dx, ctx.op('Mul', [perChannel(ctx, dRunningMean, rank), share])]);
      if (dRunningVar !== undefined) {
        const perElement = ctx.op('Mul', [perChannel(ctx, dRunningVar, rank), ctx.op('Mul', [share, ctx.scalar(2, x)])]);
        dx = ctx.op('Add', [dx, ctx.op('Mul', [perElement, centered])]);
      }
    }
  }
  const flat = ctx.int64s([-1]);
  const dScale = ctx.wants(1) ? ctx.op('Reshape', [ctx.op('Mul', [sumDyCentered, inv]), flat]) : undefined;
  const dB = ctx.wants(2) ? ctx.op('Reshape', [sumDy, flat]) : undefined;
  // The running inputs only feed the running outputs.
  const running = (i: number, grad: string | undefined) => {
    if (!ctx.wants(i)) return undefined;
    return grad === undefined ? ctx.zerosLike(ctx.input(i)) : ctx.op('Mul', [grad, ctx.scalar(momentum, x)]);
  };
  return [dx, dScale, dB, running(3, dRunningMean), running(4, dRunningVar)];
}

export const normalizationGradients: Record<string, GradientRule> = {
  BatchNormalization: (ctx) => (isTrainingForm(ctx) ? batchNormTraining(ctx) : batchNormInference(ctx)),

  // y = xhat * Scale + B over axes [axis, rank); Scale and B broadcast against X's trailing dims.
  LayerNormalization: (ctx) => {
    const [x, scale, bias] = [ctx.input(0), ctx.input(1), ctx.input(2)];
    const rank = ctx.rank(x);
    const axis = ctx.int('axis', -1);
    const first = axis < 0 ? axis + rank : axis;
    if (first < 0 || first >= rank) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
    const axes = Array.from({ length: rank - first }, (_, i) => first + i);
    const dy = ctx.dyOrZeros();
    const s = standardize(ctx, x, axes, ctx.float('epsilon', 1e-5));
    let dx: string | undefined;
    if (ctx.wants(0)) {
      dx = standardizedGradient(ctx, ctx.op('Mul', [dy, scale]), s, axes);
      // Mean and InvStdDev (stash_type, float32 by default) as outputs in their own right.
      const [dMean, dInvStdDev] = [ctx.dy(1), ctx.dy(2)];
      if (dMean !== undefined || dInvStdDev !== undefined) {
        const count = elementsPerStatistic(ctx, x, axes, s.inv);
        if (dMean !== undefined) dx = ctx.op('Add', [dx, ctx.op('Div', [castLike(ctx, dMean, x), count])]);
        if (dInvStdDev !== undefined) {
          // d inv / dx = -inv^3 (x - mean) / M = -inv^2 xhat / M
          const factor = ctx.op('Div', [ctx.op('Mul', [castLike(ctx, dInvStdDev, x), ctx.op('Mul', [s.inv, s.inv])]), count]);
          dx = ctx.op('Sub', [dx, ctx.op('Mul', [factor, s.xhat])]);
        }
      }
    }
    const dScale = ctx.wants(1) ? ctx.unbroadcast(ctx.op('Mul', [dy, s.xhat]), ctx.output(), scale) : undefined;
    const dB = ctx.wants(2) ? ctx.unbroadcast(dy, ctx.output(), bias) : undefined;
    return [dx, dScale, dB];
  },

  // y = scale[c] * xhat + B[c], statistics per (n, c) over the spatial axes.
  InstanceNormalization: (ctx) => {
    const [x, scale] = [ctx.input(0), ctx.input(1)];
    const rank = channelRank(ctx);
    const spatial = Array.from({ length: rank - 2 }, (_, i) => i + 2);
    if (spatial.length === 0) ctx.fail('X must have at least one spatial axis (N, C, D1, ...)');
    const dy = ctx.dyOrZeros();
    const s = standardize(ctx, x, spatial, ctx.float('epsilon', 1e-5));
    const dx = ctx.wants(0) ? standardizedGradient(ctx, ctx.op('Mul', [dy, perChannel(ctx, scale, rank)]), s, spatial) : undefined;
    const dScale = ctx.wants(1) ? ctx.reduce('ReduceSum', ctx.op('Mul', [dy, s.xhat]), allButChannel(rank), false) : undefined;
    const dB = ctx.wants(2) ? ctx.reduce('ReduceSum', dy, allButChannel(rank), false) : undefined;
    return [dx, dScale, dB];
  },
};
