// Fake quantization of one weight, as graph nodes that recompute the scales from the current
// weight on every run, so training sees exactly the values the PTQ pass would write for it
// (kernels/quantize-blocks.ts, round to nearest):
//   rows      the weight moved so that each group sharing a scale is one row [G, L]: Transpose
//             (group axis last for blocks, first for channels), Pad (MatMulNBits zero-pads a last
//             partial block along K; zeros change neither extreme), Reshape
//   symmetric s = e / -2^(bits-1), e the value of largest magnitude in the row (sign kept), so e
//             is exactly code -2^(bits-1); codes run to 2^(bits-1) - 1
//   asymmetric lo = min(row, 0), hi = max(row, 0), s = (hi - lo) / (2^bits - 1),
//             zero point z = clamp(round(-lo / s)) as an unsigned code
//   values    DequantizeLinear(QuantizeLinear(W, s, z)) per row (axis 0), then the moves undone.
// QuantizeLinear saturates to int8/uint8 only, so for 2 and 4 bits values that would round past
// the top code are first replaced (Where) by the top code's value. A row of zeros gets scale 1 in
// the graph (PTQ stores 0): both give zeros.
//
// Gradients (train/gradients/quantize.ts): the weight gets the clipped straight-through
// estimate, and the scale gets the LSQ gradient, which flows on into the weight's extreme
// value through the max: the exact gradient of this function with rounding taken as the
// identity (on Fashion-MNIST int2 it recovered more accuracy than cutting the scale's gradient).
// The zero point, an integer, gets none. The row maxima use GlobalMaxPool over [G, 1, L]
// (ReduceMax over each row), because GlobalMaxPool already has a gradient rule and ReduceMax not.
import { DataType } from '../ir/dtype.js';
import { attr } from '../ir/attribute.js';
import { Tensor } from '../ir/tensor.js';
import type { Emitter } from './emitter.js';
import type { FakeQuantTarget } from './qat-plan.js';

/** The weight as rows [groups, length], and how to put values of that layout back in its shape. */
interface Rows {
  value: string;
  groups: number;
  length: number;
  restore(rows: string): string;
}

/** Emits the fake quantization of `target.weight`; returns the value to read instead of it. */
export function emitFakeQuant(e: Emitter, target: FakeQuantTarget): string {
  const rows = toRows(e, target);
  const { groups, length } = rows;
  const type = DataType.FLOAT;
  const scalar = (v: number) => e.scalarOf(v, type);
  // Row maxima and minima, [G, 1].
  const stacked = e.op('Reshape', [rows.value, e.int64s([groups, 1, length])]);
  const rowMax = (v: string) => e.op('Reshape', [e.op('GlobalMaxPool', [v]), e.int64s([groups, 1])]);
  const max = rowMax(stacked);
  const min = e.op('Neg', [rowMax(e.op('Neg', [stacked]))]);

  let scale: string;
  let lo: string | undefined;
  let top: number;
  if (target.symmetric) {
    const mid = 2 ** (target.bits - 1);
    // The minimum wins only when its magnitude is strictly larger (a tie keeps the maximum).
    const extreme = e.op('Where', [e.op('Less', [max, e.op('Neg', [min])]), min, max]);
    scale = e.op('Div', [extreme, scalar(-mid)]);
    top = mid - 1;
  } else {
    const qmax = 2 ** target.bits - 1;
    lo = e.op('Where', [e.op('Less', [min, scalar(0)]), min, scalar(0)]);
    const hi = e.op('Where', [e.op('Greater', [max, scalar(0)]), max, scalar(0)]);
    scale = e.op('Div', [e.op('Sub', [hi, lo]), scalar(qmax)]);
    top = qmax;
  }
  const safe = e.op('Where', [e.op('Equal', [scale, scalar(0)]), scalar(1), scale]);
  // The zero point is a code: a uint8 value, read back as a float where the clip below needs it.
  // Autodiff does not differentiate through integer values, so no gradient reaches Round.
  const zeroCode = lo === undefined ? undefined : e.op('Cast', [e.op('Clip', [e.op('Round', [e.op('Div', [e.op('Neg', [lo]), safe])]), scalar(0), scalar(top)])], [attr.int('to', DataType.UINT8)]);
  const zeroValue = zeroCode === undefined ? undefined : e.op('Cast', [zeroCode], [attr.int('to', type)]);

  let x = rows.value;
  if (target.bits < 8) {
    // Codes past the top of the narrow range saturate to it, as PTQ's clamp does.
    const scaled = e.op('Div', [x, safe]);
    const codes = zeroValue === undefined ? scaled : e.op('Add', [scaled, zeroValue]);
    const topValue = e.op('Mul', [safe, zeroValue === undefined ? scalar(top) : e.op('Sub', [scalar(top), zeroValue])]);
    x = e.op('Where', [e.op('Greater', [codes, scalar(top)]), topValue, x]);
  }

  const perRow = (v: string) => e.op('Reshape', [v, e.int64s([groups])]);
  const scales = perRow(safe);
  const zeroPoint =
    zeroCode === undefined
      ? // `fresh` reserves the name, so the initializer goes straight into the graph.
        e.builder.graph.addInitializer(Tensor.fromArray(e.builder.fresh(`${target.weight}/qat_zero_point`), DataType.INT8, [groups], new Int8Array(groups))).name
      : perRow(zeroCode);
  const axis = [attr.int('axis', 0)];
  const codes = e.op('QuantizeLinear', [x, scales, zeroPoint], axis);
  return rows.restore(e.op('DequantizeLinear', [codes, scales, zeroPoint], axis));
}

/** Moves, pads and reshapes the weight into one row per group. */
function toRows(e: Emitter, target: FakeQuantTarget): Rows {
  const { dims, grouping } = target;
  const rank = dims.length;
  const count = dims.reduce((a, b) => a * b, 1);
  const w = target.weight;
  if (grouping.kind === 'tensor') {
    return { value: e.op('Reshape', [w, e.int64s([1, count])]), groups: 1, length: count, restore: (v) => e.op('Reshape', [v, e.int64s(dims)]) };
  }
  const axis = grouping.axis;
  const others = dims.map((_, i) => i).filter((i) => i !== axis);
  // Blocks run along the group axis, so it goes last; a channel's values follow it, so it goes first.
  const perm = grouping.kind === 'blocks' ? [...others, axis] : [axis, ...others];
  const moved = perm.map((d) => dims[d]);
  const identity = perm.every((d, i) => d === i);
  const inverse = perm.map((_, i) => perm.indexOf(i));
  let x = identity ? w : e.op('Transpose', [w], [attr.ints('perm', perm)]);
  const unmove = (v: string) => (identity ? v : e.op('Transpose', [v], [attr.ints('perm', inverse)]));
  if (grouping.kind === 'channel') {
    const channels = dims[axis];
    return {
      value: e.op('Reshape', [x, e.int64s([channels, count / channels])]),
      groups: channels,
      length: count / channels,
      restore: (v) => unmove(e.op('Reshape', [v, e.int64s(moved)])),
    };
  }
  const size = dims[axis];
  const block = grouping.blockSize;
  const padded = Math.ceil(size / block) * block;
  if (padded !== size) {
    const pads = new Array<number>(2 * rank).fill(0);
    pads[2 * rank - 1] = padded - size;
    x = e.op('Pad', [x, e.int64s(pads)]);
  }
  const paddedDims = [...moved.slice(0, -1), padded];
  const groups = (count / size) * (padded / block);
  return {
    value: e.op('Reshape', [x, e.int64s([groups, block])]),
    groups,
    length: block,
    restore: (v) => {
      let y = e.op('Reshape', [v, e.int64s(paddedDims)]);
      if (padded !== size) y = e.op('Slice', [y, e.int64s([0]), e.int64s([size]), e.int64s([rank - 1])]);
      return unmove(y);
    },
  };
}
