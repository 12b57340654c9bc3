// Gradients of pooling. MaxPool routes each output's gradient to the input element it picked
// (MaxPool's Indices output: MaxUnpool where windows are disjoint, scatter-added where overlapping
// windows accumulate). AveragePool is
// linear: dY is divided by each window's divisor and spread back over the window by a
// ConvTranspose with a kernel of ones. The global pools broadcast dY over the spatial axes.
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import { Tensor } from '../../ir/tensor.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';
import { extent, readWindow, staticDim, transposePads, type Window, windowAttributes } from './conv.js';

function poolKernel(ctx: GradientContext): number[] {
  return ctx.ints('kernel_shape') ?? ctx.fail('kernel_shape is missing');
}

/**
 * Flat indices (into the whole input, row-major, as onnxruntime and the spec give them) of the
 * element each output picked. The forward node's own Indices are reused when it has them in
 * row-major order; a forward node without them is given them (onnxruntime finds them in the same
 * pass as the maxima, where a second MaxPool would read the input again); with storage_order 1 a
 * second MaxPool computes them.
 */
function argmaxIndices(ctx: GradientContext): string {
  const rowMajor = ctx.int('storage_order', 0) === 0;
  if (ctx.output(1) !== '' && rowMajor) return ctx.output(1);
  if (ctx.output(1) === '' && rowMajor) {
    const indices = ctx.builder.fresh(`${ctx.output(0)}/indices`);
    ctx.node.outputs = [ctx.output(0), indices];
    ctx.builder.graph.changed();
    return indices;
  }
  const attributes = ctx.node.attributes.filter((a) => a.name !== 'storage_order');
  return ctx.opN('MaxPool', [ctx.input(0)], 2, attributes)[1];
}

/** Whether no two windows share an input element, so a plain scatter never meets a duplicate. */
function disjointWindows(w: Window): boolean {
  return w.kernel.every((_, a) => w.strides[a] >= extent(w, a));
}

/**
 * The divisor of each AveragePool output along one axis, as onnxruntime computes it: the taps
 * inside the input (count_include_pad 0) or inside the padded input (1); a last ceil_mode window
 * that runs past the end padding counts only the taps within it.
 */
function divisors(w: Window, axis: number, inputSize: number, outputSize: number, includePad: boolean): number[] {
  const spatial = w.kernel.length;
  const low = includePad ? -w.pads[axis] : 0;
  const high = includePad ? inputSize + w.pads[axis + spatial] : inputSize;
  return Array.from({ length: outputSize }, (_, o) => {
    let count = 0;
    for (let t = 0; t < w.kernel[axis]; t++) {
      const at = o * w.strides[axis] - w.pads[axis] + t * w.dilations[axis];
      if (at >= low && at < high) count++;
    }
    return count;
  });
}

/** A constant tensor of the forward values' float type. */
function floatConstant(ctx: GradientContext, type: DataType, dims: number[], values: number[]): string {
  if (type !== DataType.FLOAT && type !== DataType.DOUBLE) ctx.fail('pooling gradients are computed in float32 or float64 only');
  const data = type === DataType.FLOAT ? Float32Array.from(values) : Float64Array.from(values);
  return ctx.op('Constant', [], [attr.tensor('value', Tensor.fromArray('pool_constant', type, dims, data))]);
}

export const poolGradients: Record<string, GradientRule> = {
  MaxPool: (ctx) => {
    const x = ctx.input(0);
    const kernel = poolKernel(ctx);
    const disjoint = disjointWindows(readWindow(ctx, kernel, ctx.shape(x).slice(2)));
    // Disjoint windows pick each input element at most once: MaxUnpool places dY at the indices
    // (one pass, where a scatter into zeros needs the zeros first; onnxruntime has it for float32).
    if (disjoint && ctx.elemType(x) === DataType.FLOAT) return [ctx.op('MaxUnpool', [ctx.dyOrZeros(), argmaxIndices(ctx), ctx.shapeOf(x)], [attr.ints('kernel_shape', kernel), ...(ctx.ints('strides') === undefined ? [] : [attr.ints('strides', ctx.ints('strides') as number[])])])];
    if (ctx.opset < 16 && !disjoint) ctx.fail(`overlapping windows (stride < kernel extent) need ScatterElements with reduction 'add', which needs opset 16 (the graph has ${ctx.opset})`);
    const flat = ctx.int64s([-1]);
    const indices = ctx.op('Reshape', [argmaxIndices(ctx), flat]);
    const updates = ctx.op('Reshape', [ctx.dyOrZeros(), flat]);
    const zeros = ctx.op('Reshape', [ctx.zerosLike(x), flat]);
    // ScatterElements adds duplicates only from opset 16; disjoint windows have none.
    const reduction = disjoint ? [] : [attr.string('reduction', 'add')];
    const scattered = ctx.op('ScatterElements', [zeros, indices, updates], [attr.int('axis', 0), ...reduction]);
    return [ctx.reshapeLike(scattered, x)];
  },

  AveragePool: (ctx) => {
    const x = ctx.input(0);
    const xShape = ctx.shape(x);
    if (xShape.length < 3) ctx.fail('AveragePool needs at least one spatial axis');
    const why = 'for the divisor of each AveragePool window';
    const inputs = xShape.slice(2).map((d, a) => staticDim(ctx, d, `spatial dim ${a} of '${x}'`, why));
    const outputs = ctx.shape(ctx.output()).slice(2).map((d, a) => staticDim(ctx, d, `output spatial dim ${a}`, why));
    const window = readWindow(ctx, poolKernel(ctx), inputs);
    const includePad = ctx.int('count_include_pad', 0) === 1;
    const type = ctx.elemType(x);

    // One over the divisor per output position: the product of the per-axis counts.
    const perAxis = outputs.map((o, a) => divisors(window, a, inputs[a], o, includePad));
    let scales = [1];
    for (const counts of perAxis) scales = scales.flatMap((s) => counts.map((c) => (c === 0 ? 0 : s / c)));
    const uniform = scales.every((s) => s === scales[0]);
    const scale = uniform ? ctx.scalar(scales[0], x) : floatConstant(ctx, type, outputs, scales);
    const scaled = ctx.op('Mul', [ctx.dyOrZeros(), scale]);

    // Batch and channels fold into one batch axis so a single-channel kernel of ones serves all.
    const folded = ctx.op('Reshape', [scaled, ctx.int64s([-1, 1, ...outputs])]);
    const ones = floatConstant(ctx, type, [1, 1, ...window.kernel], new Array<number>(window.kernel.reduce((p, k) => p * k, 1)).fill(1));
    const { pads, outputPadding } = transposePads(ctx, window, outputs, inputs);
    const spread = ctx.op('ConvTranspose', [folded, ones], [...windowAttributes(window, pads), attr.ints('output_padding', outputPadding)]);
    return [ctx.reshapeLike(spread, x)];
  },

  // Every spatial element gets dy / (number of spatial elements).
  GlobalAveragePool: (ctx) => {
    const x = ctx.input(0);
    const spatial = ctx.shape(x).slice(2);
    const expanded = ctx.op('Expand', [ctx.dyOrZeros(), ctx.shapeOf(x)]);
    if (spatial.every((d): d is number => typeof d === 'number')) return [ctx.op('Div', [expanded, ctx.scalar(spatial.reduce((p, d) => p * d, 1), x)])];
    const count = ctx.op('Div', [ctx.op('Size', [x]), ctx.op('Size', [ctx.output()])]);
    return [ctx.op('Div', [expanded, ctx.op('Cast', [count], [attr.int('to', ctx.elemType(x))])])];
  },

  // The gradient goes to the maximum; where several elements tie for it, each gets it in full.
  GlobalMaxPool: (ctx) => {
    const x = ctx.input(0);
    const picked = ctx.op('Equal', [x, ctx.output()]);
    return [ctx.op('Where', [picked, ctx.dyOrZeros(), ctx.scalar(0, x)])];
  },
};
