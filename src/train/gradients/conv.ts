// Gradients of Conv and ConvTranspose. Each op is the other's adjoint (transpose) for fixed
// weights, so Conv's input gradient is a ConvTranspose of dY with the same weights (with stride 1,
// a Conv with the kernel flipped, which onnxruntime parallelizes better) and ConvTranspose's is a Conv. Both weight gradients are one more Conv that correlates the padded
// input with the output gradient: the batch axis becomes the summed "channel" axis, and strides
// and dilations exchange roles (the output step walks the input by `strides`, the kernel tap by
// `dilations`). The window helpers here are shared with the pooling rules (pool.ts).
import { attr, type Attribute } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Dim } from '../../ir/value-info.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** A sliding window with auto_pad already resolved to explicit pads. */
export interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Begin pads, then end pads (the layout of the `pads` attribute). */
  pads: number[];
}

/** Spatial extent of the dilated kernel along one axis. */
export function extent(w: Window, axis: number): number {
  return (w.kernel[axis] - 1) * w.dilations[axis] + 1;
}

/** A dim that must be known before run time, or a clear failure saying why it is needed. */
export function staticDim(ctx: GradientContext, dim: Dim, what: string, why: string): number {
  if (typeof dim === 'number') return dim;
  return ctx.fail(`${what} is not static (${dim ?? 'unknown'}) and is needed ${why}`);
}

/** The window attributes as written (pads before auto_pad is applied), and auto_pad. */
function rawWindow(ctx: GradientContext, kernel: number[]): { window: Window; autoPad: string } {
  const spatial = kernel.length;
  const strides = ctx.ints('strides') ?? new Array<number>(spatial).fill(1);
  const dilations = ctx.ints('dilations') ?? new Array<number>(spatial).fill(1);
  const pads = ctx.ints('pads') ?? new Array<number>(2 * spatial).fill(0);
  if (strides.length !== spatial || dilations.length !== spatial || pads.length !== 2 * spatial) {
    ctx.fail(`strides/dilations/pads do not fit ${spatial} spatial dims`);
  }
  const autoPad = ctx.node.attrString('auto_pad', 'NOTSET');
  if (!['NOTSET', 'VALID', 'SAME_UPPER', 'SAME_LOWER'].includes(autoPad)) ctx.fail(`auto_pad '${autoPad}' is not a known value`);
  const window = { kernel, strides, dilations, pads: autoPad === 'VALID' ? new Array<number>(2 * spatial).fill(0) : pads };
  return { window, autoPad };
}

/** Splits a total padding: the smaller half first for SAME_UPPER, last otherwise (ONNX, onnxruntime). */
function splitPad(pads: number[], axis: number, total: number, autoPad: string): void {
  const spatial = pads.length / 2;
  const small = Math.floor(total / 2);
  pads[axis] = autoPad === 'SAME_UPPER' ? small : total - small;
  pads[axis + spatial] = total - pads[axis];
}

/**
 * The window of Conv or a pooling op over input spatial dims `input`. auto_pad SAME_* pads so
 * the output has ceil(D / stride) positions; with stride 1 the amount does not depend on D.
 */
export function readWindow(ctx: GradientContext, kernel: number[], input: Dim[]): Window {
  const { window: w, autoPad } = rawWindow(ctx, kernel);
  if (autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER') return w;
  const pads = new Array<number>(2 * kernel.length).fill(0);
  for (let a = 0; a < kernel.length; a++) {
    let total = extent(w, a) - 1;
    if (w.strides[a] !== 1) {
      const d = staticDim(ctx, input[a], `spatial dim ${a} of '${ctx.input(0)}'`, `to resolve auto_pad ${autoPad} with stride ${w.strides[a]}`);
      total = (Math.ceil(d / w.strides[a]) - 1) * w.strides[a] + extent(w, a) - d;
    }
    if (total < 0) ctx.fail(`auto_pad ${autoPad} would need negative padding on spatial axis ${a}`);
    splitPad(pads, a, total, autoPad);
  }
  return { ...w, pads };
}

/** The kernel's spatial size: the kernel_shape attribute, else the weight's static dims. */
function kernelShape(ctx: GradientContext, weight: string, spatial: number): number[] {
  const given = ctx.ints('kernel_shape');
  if (given !== undefined) return given;
  return ctx.shape(weight).slice(2, 2 + spatial).map((d, a) => staticDim(ctx, d, `kernel dim ${a} of '${weight}'`, 'for the gradient'));
}

/**
 * Pads and output_padding for a ConvTranspose that maps a windowed op's output (spatial dims
 * `outputs`) back onto its input (spatial dims `inputs`), with the same window. The transpose's
 * full length is (O-1)*s + extent; it crops the begin pad and must end exactly at D, so the end is
 * cropped by an end pad when too long and extended by output_padding (zeros) when too short.
 */
export function transposePads(ctx: GradientContext, w: Window, outputs: Dim[], inputs: Dim[]): { pads: number[]; outputPadding: number[] } {
  const spatial = w.kernel.length;
  const pads = [...w.pads];
  const outputPadding = new Array<number>(spatial).fill(0);
  for (let a = 0; a < spatial; a++) {
    // With stride 1 the op has D + pads - extent + 1 outputs, so the excess is exactly the end pad.
    if (w.strides[a] === 1) continue;
    const why = `to size the input gradient (stride ${w.strides[a]})`;
    const o = staticDim(ctx, outputs[a], `output spatial dim ${a} of '${ctx.node.label}'`, why);
    const d = staticDim(ctx, inputs[a], `spatial dim ${a} of '${ctx.input(0)}'`, why);
    const excess = (o - 1) * w.strides[a] + extent(w, a) - w.pads[a] - d;
    pads[a + spatial] = Math.max(excess, 0);
    outputPadding[a] = Math.max(-excess, 0);
  }
  return { pads, outputPadding };
}

export function windowAttributes(w: Window, pads: number[] = w.pads): Attribute[] {
  return [attr.ints('kernel_shape', w.kernel), attr.ints('strides', w.strides), attr.ints('dilations', w.dilations), attr.ints('pads', pads)];
}

/** [...lead, spatial dims of `like`]: a constant when they are static, else read at run time. */
function withSpatialDims(ctx: GradientContext, lead: number[], like: string): string {
  const shape = ctx.shape(like);
  const spatial = shape.slice(2);
  if (spatial.every((d): d is number => typeof d === 'number')) return ctx.int64s([...lead, ...spatial]);
  const runtime = ctx.op('Slice', [ctx.shapeOf(like), ctx.int64s([2]), ctx.int64s([shape.length])]);
  return ctx.op('Concat', [ctx.int64s(lead), runtime], [attr.int('axis', 0)]);
}

interface Correlation {
  /** The windowed op's input, (N, Cin, S...), and a forward value of the same shape. */
  input: string;
  inputLike: string;
  /** The gradient of the windowed op's output, (N, Cout, G...), and a forward value of its shape. */
  grad: string;
  gradLike: string;
  window: Window;
  group: number;
}

/**
 * dW[co, ci, k] = sum over n, o of grad[n, co, o] * padded input[n, g(co)*Cin/group + ci, o*s + k*d]:
 * a Conv whose batch is the input's channels-per-group and whose weights are the gradient with
 * batch and channel axes swapped. For groups, the input's channels are regrouped to
 * (Cin/group, group*N) so one grouped Conv pairs each output channel with its own group's inputs
 * (depthwise included). The result is cropped to the kernel where the windows do not reach the end.
 */
export function weightGradient(ctx: GradientContext, c: Correlation): string {
  const unfolded = unfoldedWeightGradient(ctx, c);
  if (unfolded !== undefined) return unfolded;
  const { window: w, group } = c;
  const spatial = w.kernel.length;
  const swap = [1, 0, ...Array.from({ length: spatial }, (_, i) => i + 2)];
  let lhs: string;
  if (group === 1) lhs = ctx.op('Transpose', [c.input], [attr.ints('perm', swap)]);
  else {
    // (N, Cin, S...) -> (N, group, Cin/group, S...) -> (Cin/group, group, N, S...) -> (Cin/group, group*N, S...)
    const split = ctx.op('Reshape', [c.input, withSpatialDims(ctx, [0, group, -1], c.inputLike)]);
    const moved = ctx.op('Transpose', [split], [attr.ints('perm', [2, 1, 0, ...swap.slice(2).map((a) => a + 1)])]);
    lhs = ctx.op('Reshape', [moved, withSpatialDims(ctx, [0, -1], c.inputLike)]);
  }
  const rhs = ctx.op('Transpose', [c.grad], [attr.ints('perm', swap)]);
  const correlated = ctx.op('Conv', [lhs, rhs], [attr.ints('strides', w.dilations), attr.ints('dilations', w.strides), attr.ints('pads', w.pads), attr.int('group', group)]);
  const dw = ctx.op('Transpose', [correlated], [attr.ints('perm', swap)]);
  // The correlation has floor((S + pads - ((G-1)*s + 1)) / d) + 1 >= K taps per axis.
  const inputSpatial = ctx.shape(c.inputLike).slice(2);
  const gradSpatial = ctx.shape(c.gradLike).slice(2);
  const exact = w.kernel.every((k, a) => {
    const s = inputSpatial[a];
    const g = gradSpatial[a];
    if (typeof s !== 'number' || typeof g !== 'number') return false;
    return Math.floor((s + w.pads[a] + w.pads[a + spatial] - ((g - 1) * w.strides[a] + 1)) / w.dilations[a]) + 1 === k;
  });
  if (exact) return dw;
  const axes = Array.from({ length: spatial }, (_, i) => i + 2);
  return ctx.op('Slice', [dw, ctx.int64s(axes.map(() => 0)), ctx.int64s(w.kernel), ctx.int64s(axes)]);
}

/** Largest unfolded input per sample (channels x kernel taps x output positions) for unfoldedWeightGradient. */
const UNFOLD_LIMIT = 2 ** 20;

/**
 * Input channels from which unfoldedWeightGradient runs one matrix product per kernel tap: each is
 * then (Cout x N*P) . (N*P x Cin), wide enough for onnxruntime's GEMM; with fewer channels (the
 * first layer, Cin = 1) the products would be matrix-vector ones, and one product over all taps
 * (after stacking the taps) was 7x faster.
 */
const PER_TAP_MIN_CHANNELS = 16;

/**
 * The weight gradient as matrix products over the whole batch, for group 1 in float32:
 * dW[a, b, k] = sum over n, p of grad[n, a, p] * padded input[n, b, p*s + k*d]. The input goes
 * channels-first, (Cin, N, S...), and is padded once; each tap k is then a strided Slice, (Cin, N*P)
 * rows, and dW[:, :, k] = grad^T (Cout, N*P) . slice^T, one GEMM with the batch and positions as
 * its long inner dimension (K = N*P). onnxruntime runs the correlating Conv above as one small
 * matrix product per channel with a kernel as large as the whole output, several times slower, and
 * an im2col by a one-hot Conv followed by one product per sample and a sum over the batch cost
 * ~1.8x this form on the Fashion-MNIST CNN's second conv (10.9 vs 6.2 ms per step in onnxruntime's
 * profile, 1 thread) and parallelized worse. Undefined
 * where it does not apply (groups, float64, dynamic dims, unfolded inputs over UNFOLD_LIMIT).
 */
function unfoldedWeightGradient(ctx: GradientContext, c: Correlation): string | undefined {
  const { window: w } = c;
  if (c.group !== 1 || ctx.elemType(c.inputLike) !== DataType.FLOAT) return undefined;
  const [inputShape, gradShape] = [ctx.shape(c.inputLike), ctx.shape(c.gradLike)];
  const known = (dims: Dim[]): dims is number[] => dims.every((d) => typeof d === 'number');
  const [inputRest, gradRest] = [inputShape.slice(1), gradShape.slice(1)];
  if (!known(inputRest) || !known(gradRest)) return undefined;
  const channels = inputRest[0];
  const [gradChannels, outputs] = [gradRest[0], gradRest.slice(1)];
  const positions = outputs.reduce((p, d) => p * d, 1);
  const taps = w.kernel.reduce((p, k) => p * k, 1);
  if (channels * taps * positions > UNFOLD_LIMIT) return undefined;
  const spatial = w.kernel.length;
  const axes = Array.from({ length: spatial }, (_, i) => i + 2);
  const swap = [1, 0, ...axes];
  let planes = ctx.op('Transpose', [c.input], [attr.ints('perm', swap)]);
  if (w.pads.some((p) => p !== 0)) planes = ctx.op('Pad', [planes, ctx.int64s([0, 0, ...w.pads.slice(0, spatial), 0, 0, ...w.pads.slice(spatial)])]);
  const gradRows = ctx.op('Reshape', [ctx.op('Transpose', [c.grad], [attr.ints('perm', swap)]), ctx.int64s([gradChannels, -1])]);
  // Taps in the weight's row-major order; each tap's window positions as one strided slice.
  const tapSlices: string[] = [];
  for (let t = 0; t < taps; t++) {
    const at = new Array<number>(spatial);
    for (let a = spatial - 1, rest = t; a >= 0; a--) {
      at[a] = rest % w.kernel[a];
      rest = Math.floor(rest / w.kernel[a]);
    }
    const begin = at.map((k, a) => k * w.dilations[a]);
    const end = begin.map((b, a) => b + (outputs[a] - 1) * w.strides[a] + 1);
    tapSlices.push(ctx.op('Slice', [planes, ctx.int64s(begin), ctx.int64s(end), ctx.int64s(axes), ctx.int64s(w.strides)]));
  }
  const weightShape = ctx.int64s([gradChannels, channels, ...w.kernel]);
  if (channels >= PER_TAP_MIN_CHANNELS) {
    const perTap = tapSlices.map((slice) => {
      const product = ctx.op('Gemm', [gradRows, ctx.op('Reshape', [slice, ctx.int64s([channels, -1])])], [attr.int('transB', 1)]);
      return ctx.op('Reshape', [product, ctx.int64s([gradChannels, channels, 1])]);
    });
    return ctx.op('Reshape', [perTap.length === 1 ? perTap[0] : ctx.op('Concat', perTap, [attr.int('axis', 2)]), weightShape]);
  }
  const stacked = tapSlices.map((slice) => ctx.op('Reshape', [slice, ctx.int64s([channels, 1, -1])]));
  const cols = ctx.op('Reshape', [stacked.length === 1 ? stacked[0] : ctx.op('Concat', stacked, [attr.int('axis', 1)]), ctx.int64s([channels * taps, -1])]);
  return ctx.op('Reshape', [ctx.op('Gemm', [gradRows, cols], [attr.int('transB', 1)]), weightShape]);
}

/**
 * Conv's input gradient for stride 1 as a Conv of dY with the kernel flipped and its channel axes
 * swapped (per group), padded by extent - 1 - pad: the same sum as the ConvTranspose, run by
 * onnxruntime's Conv, which splits the batch over its threads in one parallel section where its
 * ConvTranspose runs a GEMM and a col2im per image. Undefined for strides above 1 or pads beyond
 * the kernel's extent - 1.
 */
function flippedInputGradient(ctx: GradientContext, dy: string, w: string, window: Window, group: number): string | undefined {
  const spatial = window.kernel.length;
  if (window.strides.some((s) => s !== 1)) return undefined;
  const pads = window.pads.map((p, i) => extent(window, i % spatial) - 1 - p);
  if (pads.some((p) => p < 0)) return undefined;
  const axes = Array.from({ length: spatial }, (_, i) => i + 2);
  let swapped: string;
  if (group === 1) swapped = ctx.op('Transpose', [w], [attr.ints('perm', [1, 0, ...axes])]);
  else {
    // (M, C/g, k...) -> (g, M/g, C/g, k...) -> (g, C/g, M/g, k...) -> (C, M/g, k...)
    const split = ctx.op('Reshape', [w, ctx.op('Concat', [ctx.int64s([group, -1]), ctx.op('Slice', [ctx.shapeOf(w), ctx.int64s([1]), ctx.int64s([2 + spatial])])], [attr.int('axis', 0)])]);
    const moved = ctx.op('Transpose', [split], [attr.ints('perm', [0, 2, 1, ...axes.map((a) => a + 1)])]);
    swapped = ctx.op('Reshape', [moved, ctx.op('Concat', [ctx.int64s([-1]), ctx.op('Slice', [ctx.shapeOf(moved), ctx.int64s([2]), ctx.int64s([3 + spatial])])], [attr.int('axis', 0)])]);
  }
  const flipped = ctx.op('Slice', [swapped, ctx.int64s(axes.map(() => -1)), ctx.int64s(axes.map(() => Number.MIN_SAFE_INTEGER)), ctx.int64s(axes), ctx.int64s(axes.map(() => -1))]);
  return ctx.op('Conv', [dy, flipped], [attr.ints('kernel_shape', window.kernel), attr.ints('dilations', window.dilations), attr.ints('pads', pads), attr.int('group', group)]);
}

/** db = dY summed over the batch and spatial axes. */
function biasGradient(ctx: GradientContext, dy: string, rank: number): string {
  return ctx.reduce('ReduceSum', dy, [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)], false);
}

function groupOf(ctx: GradientContext): number {
  const group = ctx.int('group', 1);
  if (group < 1) ctx.fail(`group ${group} must be positive`);
  return group;
}

/**
 * ConvTranspose's window. With output_shape (or auto_pad SAME_*, whose output is D * stride) the
 * pads are derived from the total the full output must lose to reach that size.
 */
function transposeWindow(ctx: GradientContext, kernel: number[], input: Dim[]): Window {
  const spatial = kernel.length;
  const { window: w, autoPad } = rawWindow(ctx, kernel);
  const outputPadding = ctx.ints('output_padding') ?? new Array<number>(spatial).fill(0);
  // output_shape may list the spatial dims only, or (older exporters) the whole shape.
  const outputShape = ctx.ints('output_shape')?.slice(-spatial);
  if (outputShape === undefined && autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER') return w;
  const pads = new Array<number>(2 * spatial).fill(0);
  for (let a = 0; a < spatial; a++) {
    // total = s*(D-1) + output_padding + extent - out; with out = D*s the D terms cancel.
    let total = outputPadding[a] + extent(w, a) - w.strides[a];
    if (outputShape !== undefined) {
      const d = staticDim(ctx, input[a], `spatial dim ${a} of '${ctx.input(0)}'`, 'to derive pads from output_shape');
      total = w.strides[a] * (d - 1) + outputPadding[a] + extent(w, a) - outputShape[a];
    }
    if (total < 0) ctx.fail(`the output is larger than the transposed convolution covers on spatial axis ${a} (negative padding)`);
    splitPad(pads, a, total, autoPad);
  }
  return { ...w, pads };
}

/** What both convolution rules start from: operands, shapes, group, the window and dY. */
function convSetup(ctx: GradientContext, windowOf: (ctx: GradientContext, kernel: number[], spatialDims: Dim[]) => Window) {
  const [x, w] = [ctx.input(0), ctx.input(1)];
  const xShape = ctx.shape(x);
  const spatial = xShape.length - 2;
  if (spatial < 1) ctx.fail(`input rank ${xShape.length} is too small for a convolution`);
  const window = windowOf(ctx, kernelShape(ctx, w, spatial), xShape.slice(2));
  return { x, w, xShape, group: groupOf(ctx), window, dy: ctx.dyOrZeros(), y: ctx.output() };
}

export const convGradients: Record<string, GradientRule> = {
  // Y = conv(X, W) + B. dX = ConvTranspose(dY, W); dW = correlation of X with dY; dB = sum of dY.
  Conv: (ctx) => {
    const { x, w, xShape, group, window, dy, y } = convSetup(ctx, readWindow);
    let dx: string | undefined;
    if (ctx.wants(0)) {
      dx = flippedInputGradient(ctx, dy, w, window, group);
      if (dx === undefined) {
        const { pads, outputPadding } = transposePads(ctx, window, ctx.shape(y).slice(2), xShape.slice(2));
        dx = ctx.op('ConvTranspose', [dy, w], [...windowAttributes(window, pads), attr.ints('output_padding', outputPadding), attr.int('group', group)]);
      }
    }
    const dw = ctx.wants(1) ? weightGradient(ctx, { input: x, inputLike: x, grad: dy, gradLike: y, window, group }) : undefined;
    const db = ctx.wants(2) ? biasGradient(ctx, dy, xShape.length) : undefined;
    return [dx, dw, db];
  },

  // Y = convT(X, W) + B. dX = Conv(dY, W) with the same window; dW correlates dY (the wider side)
  // with X, the roles of Conv's weight gradient swapped; dB = sum of dY.
  ConvTranspose: (ctx) => {
    const { x, w, xShape, group, window, dy, y } = convSetup(ctx, transposeWindow);
    // The Conv over dY has D + floor(output_padding / stride) positions; onnxruntime refuses
    // output_padding >= stride in the forward op, so the extra positions are not handled here.
    if ((ctx.ints('output_padding') ?? []).some((p, a) => p >= window.strides[a])) ctx.fail('output_padding must be smaller than the stride');
    const dx = ctx.wants(0) ? ctx.op('Conv', [dy, w], [...windowAttributes(window), attr.int('group', group)]) : undefined;
    const dw = ctx.wants(1) ? weightGradient(ctx, { input: dy, inputLike: y, grad: x, gradLike: x, window, group }) : undefined;
    const db = ctx.wants(2) ? biasGradient(ctx, dy, xShape.length) : undefined;
    return [dx, dw, db];
  },
};
