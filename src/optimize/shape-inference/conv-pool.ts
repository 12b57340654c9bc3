// Rules for convolutions and pooling: spatial sizes from kernel, strides, dilations, pads,
// auto_pad and ceil_mode (ONNX Conv / MaxPool docs). On symbolic sizes the same formula is written
// out as an expression (see dims.ts), e.g. `floor((H-1)/2)+1` for a 3x3 stride-2 pad-1 conv.
import { DataType } from '../../ir/dtype.js';
import { type Dim, add, ceilDiv, floorDiv, mul, sub } from './dims.js';
import { type RuleContext, type RuleOutput, tensor } from './context.js';

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Begin pads then end pads, as in the `pads` attribute. */
  pads: number[];
  autoPad: string;
}

function readWindow(ctx: RuleContext, spatial: number, kernel: number[]): Window {
  const ones = new Array<number>(spatial).fill(1);
  const window: Window = {
    kernel,
    strides: ctx.attrInts('strides') ?? ones,
    dilations: ctx.attrInts('dilations') ?? ones,
    pads: ctx.attrInts('pads') ?? new Array<number>(2 * spatial).fill(0),
    autoPad: ctx.node.attrString('auto_pad', 'NOTSET'),
  };
  if (window.kernel.length !== spatial || window.strides.length !== spatial || window.dilations.length !== spatial || window.pads.length !== 2 * spatial) {
    ctx.fail(`kernel_shape/strides/dilations/pads do not fit ${spatial} spatial dims`);
  }
  return window;
}

/** Output size of one spatial axis of a convolution or pooling window. */
function windowOutput(input: Dim, axis: number, w: Window, ceilMode: boolean): Dim {
  const stride = w.strides[axis];
  const extent = (w.kernel[axis] - 1) * w.dilations[axis] + 1;
  if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') return ceilDiv(input, stride);
  const padded = w.autoPad === 'VALID' ? input : add(input, w.pads[axis] + w.pads[axis + w.kernel.length]);
  const span = sub(padded, extent);
  if (!ceilMode) return add(floorDiv(span, stride), 1);
  let out = add(ceilDiv(span, stride), 1);
  // A last window that would start in the end padding is dropped (ONNX pooling with ceil_mode).
  if (typeof out === 'number' && typeof input === 'number' && (out - 1) * stride >= input + w.pads[axis]) out -= 1;
  else if (typeof out !== 'number') out = null;
  return out;
}

/** Conv, ConvInteger, QLinearConv: [N, M, spatial...] with M = W's first dim. */
export function conv(ctx: RuleContext): RuleOutput[] {
  const op = ctx.node.opType;
  const weightIndex = op === 'QLinearConv' ? 3 : 1;
  const x = ctx.shape(0);
  const weight = ctx.shape(weightIndex);
  const spatial = x.length - 2;
  if (spatial < 1 || weight.length !== x.length) ctx.fail(`input rank ${x.length} and weight rank ${weight.length} do not fit a convolution`);
  const kernel = ctx.attrInts('kernel_shape') ?? weight.slice(2).map((d) => (typeof d === 'number' ? d : ctx.fail('kernel size is not static')));
  const w = readWindow(ctx, spatial, kernel);
  const out = x.slice(2).map((d, axis) => windowOutput(d, axis, w, false));
  const elemType = op === 'ConvInteger' ? DataType.INT32 : op === 'QLinearConv' ? ctx.elemType(7) : ctx.elemType(0);
  return [tensor(elemType, [x[0], weight[0], ...out])];
}

/** ConvTranspose: output_shape when given, else stride*(in-1) + output_padding + extent - pads. */
export function convTranspose(ctx: RuleContext): RuleOutput[] {
  const x = ctx.shape(0);
  const weight = ctx.shape(1);
  const spatial = x.length - 2;
  if (spatial < 1 || weight.length !== x.length) ctx.fail(`input rank ${x.length} and weight rank ${weight.length} do not fit ConvTranspose`);
  const group = ctx.attrInt('group', 1);
  const channels = mul(weight[1], group);
  const kernel = ctx.attrInts('kernel_shape') ?? weight.slice(2).map((d) => (typeof d === 'number' ? d : ctx.fail('kernel size is not static')));
  const w = readWindow(ctx, spatial, kernel);
  const outputShape = ctx.attrInts('output_shape');
  if (outputShape !== undefined) {
    // output_shape may list the spatial dims only, or (older exporters) the whole shape.
    const spatialOut = outputShape.length === spatial ? outputShape : outputShape.slice(2);
    return [tensor(ctx.elemType(0), [x[0], channels, ...spatialOut])];
  }
  const outputPadding = ctx.attrInts('output_padding') ?? new Array<number>(spatial).fill(0);
  const out = x.slice(2).map((d, axis) => {
    if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') return mul(d, w.strides[axis]);
    const extent = (w.kernel[axis] - 1) * w.dilations[axis] + 1;
    const pads = w.autoPad === 'VALID' ? 0 : w.pads[axis] + w.pads[axis + spatial];
    return add(mul(sub(d, 1), w.strides[axis]), outputPadding[axis] + extent - pads);
  });
  return [tensor(ctx.elemType(0), [x[0], channels, ...out])];
}

/** MaxPool, AveragePool, LpPool: [N, C, spatial...]; MaxPool's optional Indices are int64. */
export function pool(ctx: RuleContext): RuleOutput[] {
  const x = ctx.shape(0);
  const spatial = x.length - 2;
  if (spatial < 1) ctx.fail(`input rank ${x.length} is too small for pooling`);
  const kernel = ctx.attrInts('kernel_shape');
  if (kernel === undefined) ctx.fail('kernel_shape is missing');
  const w = readWindow(ctx, spatial, kernel);
  const ceilMode = ctx.attrInt('ceil_mode', 0) === 1;
  const shape = [x[0], x[1], ...x.slice(2).map((d, axis) => windowOutput(d, axis, w, ceilMode))];
  const out = tensor(ctx.elemType(0), shape);
  return ctx.node.outputs.length > 1 ? [out, tensor(DataType.INT64, [...shape])] : [out];
}

/** GlobalAveragePool, GlobalMaxPool, GlobalLpPool: every spatial dim becomes 1. */
export function globalPool(ctx: RuleContext): RuleOutput[] {
  const x = ctx.shape(0);
  return [tensor(ctx.elemType(0), [x[0], x[1], ...x.slice(2).map(() => 1)])];
}

/** MaxUnpool: output_shape input when given, else stride*(in-1) + kernel - pads. */
export function maxUnpool(ctx: RuleContext): RuleOutput[] {
  const x = ctx.shape(0);
  if (ctx.has(2)) {
    const target = ctx.value(2);
    if (target === undefined) ctx.fail('output_shape is not known before run time');
    return [tensor(ctx.elemType(0), [...target])];
  }
  const spatial = x.length - 2;
  const kernel = ctx.attrInts('kernel_shape') ?? ctx.fail('kernel_shape is missing');
  const w = readWindow(ctx, spatial, kernel);
  const out = x.slice(2).map((d, axis) => add(mul(sub(d, 1), w.strides[axis]), kernel[axis] - w.pads[axis] - w.pads[axis + spatial]));
  return [tensor(ctx.elemType(0), [x[0], x[1], ...out])];
}
