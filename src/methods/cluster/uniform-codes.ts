// Uniform codes with a step per group (entropy-constrained scalar quantization): instead of k-means
// centroids, every value of a group (a channel, N channels, or the tensor) rounds to the nearest
// multiple of the group's step, step = `step` * the group's RMS (so every group of a layer gets the
// same signal-to-noise ratio), with as many levels as the values' range needs (at most 256).
// Why: a pack entropy-codes the codes, and a uniform quantizer's codes cost about
// log2(sigma / step) + 2.05 bits each for Gaussian-like weights, while k-means codes are near
// equiprobable (4 bits cost ~3.55) and need a float codebook per group; here a group costs one
// scale. The grid c_j = j * step has an exact zero; all groups of a tensor share one code range
// [lo, hi], so DequantizeLinear stores one zero point (-lo) for all of them and a code means the
// same multiple of its step in every channel: one symbol distribution per tensor, which is what a
// pack's single table per stream codes well. Returned as a Codebook of stride 256 whose groups are
// uniform grids, which `uniformGrid` folds into DequantizeLinear.
import { addSqnrTerms, sqnrFromSums } from '../../kernels/sqnr.js';
import { type Codebook, decodeCodebook, roundToHalf } from './codebook.js';

/** Slots per group: codes are uint8. */
export const UNIFORM_STRIDE = 256;
/** Largest multiple of the step a value rounds to from the step's own choice (either sign). */
const MAX_MULTIPLE = 127;
/** Smallest normal float16. */
const HALF_NORMAL = 2 ** -14;

/** The smallest float16 value >= x (x in float16's normal range). */
function roundUpToHalf(x: number): number {
  const one = Float32Array.of(x);
  roundToHalf(one);
  if (one[0] >= x) return one[0];
  const ulp = 2 ** (Math.floor(Math.log2(x)) - 10);
  one[0] = one[0] + ulp;
  roundToHalf(one);
  return one[0];
}

export interface UniformCodeOptions {
  /** Step relative to each group's RMS (e.g. 0.3). */
  step: number;
  /** Axis of the output channels; undefined: one step for the tensor. */
  axis?: number;
  /** Output channels per step along `axis` (1: per channel). */
  channelsPerGroup?: number;
  /** The steps to use, one per group (as a previous call returned them), instead of `step` * RMS. */
  steps?: Float32Array;
  /** Round the steps to float16 values (a pack codes their low mantissa bits almost for free). */
  half?: boolean;
}

export interface UniformCodes extends Codebook {
  /** The step of each group. */
  steps: Float32Array;
  /** Multiple of the step that code 0 stands for (the same in every group). */
  lowest: number;
}

/** Group of each index along the axis, and the values per index along it. */
function layout(dims: readonly number[], axis: number | undefined, perGroup: number): { groupOfChannel: Int32Array | undefined; groups: number; inner: number; channels: number } {
  if (axis === undefined) return { groupOfChannel: undefined, groups: 1, inner: 1, channels: 1 };
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const groupOfChannel = Int32Array.from({ length: channels }, (_, c) => Math.floor(c / perGroup));
  return { groupOfChannel, groups: Math.ceil(channels / perGroup), inner, channels };
}

/** Rounds `values` (a weight of `dims`) to multiples of a step per group. */
export function buildUniformCodes(values: Float32Array, dims: readonly number[], options: UniformCodeOptions): UniformCodes {
  if (!(options.step > 0) && options.steps === undefined) throw new Error(`step must be > 0, got ${options.step}`);
  const { groupOfChannel, groups, inner, channels } = layout(dims, options.axis, options.channelsPerGroup ?? 1);
  const groupAt = (i: number) => (groupOfChannel === undefined ? 0 : groupOfChannel[Math.floor(i / inner) % channels]);
  let steps = options.steps;
  if (steps === undefined) {
    const squares = new Float64Array(groups);
    const counts = new Float64Array(groups);
    const largest = new Float64Array(groups);
    for (let i = 0; i < values.length; i++) {
      const g = groupAt(i);
      squares[g] += values[i] * values[i];
      counts[g]++;
      largest[g] = Math.max(largest[g], Math.abs(values[i]));
    }
    // A group of zeros gets step 1: every code is 0 either way. A group with outliers far past its
    // RMS gets a coarser step, so that its values fit codes -127..127 and nothing is clipped.
    steps = Float32Array.from(squares, (s, g) => (s > 0 ? Math.max(options.step * Math.sqrt(s / counts[g]), largest[g] / (MAX_MULTIPLE - 0.5)) : 1));
    if (options.half === true) {
      // Steps below float16's normal range stay float32 (subnormals would lose their precision, or round to 0).
      const exact = steps.slice();
      roundToHalf(steps);
      for (let g = 0; g < groups; g++) {
        if (exact[g] < HALF_NORMAL) steps[g] = exact[g];
        // Rounding down may push the largest value past the top multiple: the next float16 up then.
        else if (largest[g] / steps[g] > MAX_MULTIPLE + 0.5) steps[g] = roundUpToHalf(exact[g]);
      }
    }
  }
  if (steps.length !== groups) throw new Error(`${steps.length} steps given for ${groups} groups`);
  // Multiples of the step, then one code range for all groups (clipped to 256 levels around zero).
  const multiples = new Int32Array(values.length);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < values.length; i++) {
    const j = Math.round(values[i] / steps[groupAt(i)]);
    multiples[i] = j;
    if (j < lo) lo = j;
    if (j > hi) hi = j;
  }
  if (hi - lo + 1 > UNIFORM_STRIDE) {
    // Too fine a step for uint8 codes: keep the 256 levels that lie nearest zero on each side.
    const half = UNIFORM_STRIDE / 2;
    lo = Math.max(lo, -half);
    hi = Math.min(hi, lo + UNIFORM_STRIDE - 1);
  }
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) codes[i] = Math.min(hi, Math.max(lo, multiples[i])) - lo;
  const levels = hi - lo + 1;
  const codebook = new Float32Array(groups * UNIFORM_STRIDE);
  for (let g = 0; g < groups; g++) {
    for (let k = 0; k < UNIFORM_STRIDE; k++) codebook[g * UNIFORM_STRIDE + k] = (Math.min(k, levels - 1) + lo) * steps[g];
  }
  const used = new Int32Array(groups).fill(levels);
  const zeroSlot = new Int32Array(groups).fill(-lo);
  const decoded = decodeCodebook(codes, codebook, UNIFORM_STRIDE, dims, options.axis, groupOfChannel);
  const sums = { signal: 0, noise: 0 };
  addSqnrTerms(sums, values, decoded);
  return { codes, codebook, groups, stride: UNIFORM_STRIDE, used, groupOfChannel, zeroSlot, sqnrDb: sqnrFromSums(sums), steps, lowest: lo };
}
