// Gradient of Resize in nearest mode with whole-number scales (the upsampling of FPN/DB necks such
// as PP-OCR det's): each input element is copied to an s_h x s_w block of the output, so its
// gradient is the sum of dY over that block. Summed as AveragePool over non-overlapping s x s
// windows times the block size, which also works when the spatial dims are symbolic. Other modes
// (linear, cubic), fractional scales and mappings that are not whole blocks (align_corners,
// half_pixel with nearest_mode floor, ...) fail with the reason.
import { attr } from '../../ir/attribute.js';
import type { GradientContext, GradientRule } from '../gradient-context.js';

/** The output-to-input coordinate of Resize (ONNX spec), for the modes that can map whole blocks. */
function sourceCoordinate(mode: string, o: number, scale: number): number | undefined {
  switch (mode) {
    case 'asymmetric':
      return o / scale;
    case 'half_pixel':
    case 'pytorch_half_pixel':
      return (o + 0.5) / scale - 0.5;
    default:
      return undefined;
  }
}

function nearestIndex(mode: string, x: number): number | undefined {
  switch (mode) {
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    case 'round_prefer_floor':
      return x - Math.floor(x) === 0.5 ? Math.floor(x) : Math.round(x);
    case 'round_prefer_ceil':
      return Math.round(x);
    default:
      return undefined;
  }
}

/**
 * Whether output positions s·k .. s·k + s - 1 all read input k. Every supported mapping moves by
 * exactly 1 input per s outputs, so checking block k = 1 (no clamping at either border) covers all.
 */
function copiesBlocks(coordinateMode: string, nearestMode: string, scale: number): boolean {
  for (let j = 0; j < scale; j++) {
    const x = sourceCoordinate(coordinateMode, scale + j, scale);
    if (x === undefined || nearestIndex(nearestMode, x) !== 1) return false;
  }
  return true;
}

/** The scales of a Resize (opset 13+, as the backward graph needs): the `scales` input, or `sizes` over static input dims. */
function resizeScales(ctx: GradientContext, rank: number): number[] {
  const x = ctx.input(0);
  const scales = ctx.input(2) === '' ? undefined : ctx.constantOf(ctx.input(2));
  if (scales !== undefined && scales.dims.reduce((a, b) => a * b, 1) > 0) return Array.from(scales.data() as Float32Array, Number);
  const sizes = ctx.input(3) === '' ? undefined : ctx.constantOf(ctx.input(3));
  if (sizes === undefined) ctx.fail('the scales (or sizes) must be constants for the gradient');
  const inDims = ctx.shape(x);
  if (inDims.length !== rank || inDims.some((d) => typeof d !== 'number')) ctx.fail(`sizes need the static dims of '${x}' to give the scales`);
  return Array.from(sizes.data() as BigInt64Array, (s, i) => Number(s) / (inDims[i] as number));
}

export const resizeGradients: Record<string, GradientRule> = {
  Resize: (ctx) => {
    const x = ctx.input(0);
    const rank = ctx.rank(x);
    const mode = ctx.node.attrString('mode') ?? 'nearest';
    if (mode !== 'nearest') ctx.fail(`mode '${mode}' has no gradient rule (nearest only)`);
    if (ctx.node.attrInts('axes') !== undefined) ctx.fail("the 'axes' attribute is not supported");
    const scales = resizeScales(ctx, rank);
    if (scales.length !== rank) ctx.fail(`${scales.length} scales for a rank-${rank} input`);
    if (scales.some((s) => !Number.isInteger(s) || s < 1)) ctx.fail(`scales ${scales.join(', ')} are not all whole numbers >= 1 (the gradient is a block sum only then)`);
    const coordinateMode = ctx.node.attrString('coordinate_transformation_mode') ?? 'half_pixel';
    const nearestMode = ctx.node.attrString('nearest_mode') ?? 'round_prefer_floor';
    for (const s of scales) {
      if (s > 1 && !copiesBlocks(coordinateMode, nearestMode, s)) ctx.fail(`coordinate_transformation_mode '${coordinateMode}' with nearest_mode '${nearestMode}' does not copy whole ${s}-blocks`);
    }
    if (scales.every((s) => s === 1)) return [ctx.dyOrZeros()];
    if (rank < 3 || scales[0] !== 1 || scales[1] !== 1) ctx.fail(`scales ${scales.join(', ')}: only the spatial axes (2 and after) may be scaled`);
    const kernel = scales.slice(2);
    const block = kernel.reduce((a, b) => a * b, 1);
    const mean = ctx.op('AveragePool', [ctx.dyOrZeros()], [attr.ints('kernel_shape', kernel), attr.ints('strides', kernel)]);
    return [ctx.op('Mul', [mean, ctx.scalar(block, x)])];
  },
};
