// One weight to codes and codebooks: the values of each group (the whole tensor, one output
// channel, or N neighbouring output channels) are clustered by 1-D k-means into at most 2^bits
// centroids; each value's code is the index of its nearest centroid. The codebook of every group
// takes exactly 2^bits slots (stride K = 2^bits), ascending, unused slots repeating the last
// centroid, so code c of group g decodes to codebook[g * K + c].
// Pruned weights: when `keepZeros`, exact zeros stay out of the clustering, the group keeps a
// centroid at exactly 0 for them (one of its K slots), and nonzero values are assigned among the
// other centroids only: the zero pattern of the weight comes back unchanged (Deep Compression's
// prune -> cluster order).
// Pure numeric code over typed arrays: the pass (cluster.ts) turns the result into graph nodes.
import { assignNearest, type KMeansInit, kmeans1d } from '../../kernels/kmeans.js';
import { float16ToFloat32, float32ToFloat16 } from '../../kernels/float16.js';
import { addSqnrTerms, sqnrFromSums } from '../../kernels/sqnr.js';

export interface CodebookOptions {
  bits: number;
  /** Axis of the output channels; undefined clusters the tensor as one group. */
  axis?: number;
  /** Output channels per group along `axis` (1: per channel). Ignored without `axis`. */
  channelsPerGroup?: number;
  init?: KMeansInit;
  seed?: number;
  /** Importance of each element (same length as the values); default equal. */
  importance?: Float64Array;
  /** Keep exact zeros exact (a zero centroid of their own). */
  keepZeros?: boolean;
  /**
   * Round the centroids to float16 values (still stored as float32): their low 13 mantissa bits
   * are zero, which a pack codes almost for free, at a relative error of 2^-11 per centroid.
   */
  half?: boolean;
  /**
   * Round the centroids to this many mantissa bits (1-23; still float32): each further bit
   * dropped saves about one bit per centroid in a pack (its float planes entropy-code the zero
   * bits away) at twice the relative error, 2^-(bits+1) per centroid.
   */
  mantissaBits?: number;
}

export interface Codebook {
  /** One code per element, in the weight's layout, each < 2^bits. */
  codes: Uint8Array;
  /** groups * 2^bits centroids, group after group, ascending within each. */
  codebook: Float32Array;
  groups: number;
  /** Slots per group: 2^bits. */
  stride: number;
  /** Centroids actually used by each group (the rest of its slots repeat the last). */
  used: Int32Array;
  /** Group of each index along the axis (undefined without one). */
  groupOfChannel: Int32Array | undefined;
  /** Slot of the exact-zero centroid per group, or -1 where the group keeps none. */
  zeroSlot: Int32Array;
  /** SQNR of the decoded weight against the original, in dB. */
  sqnrDb: number;
}

/** Element indices of each group (per-tensor: one group of all). */
function groupsOf(dims: readonly number[], axis: number | undefined, perGroup: number): { members: Int32Array[]; groupOfChannel: Int32Array | undefined } {
  const count = dims.reduce((a, b) => a * b, 1);
  if (axis === undefined) {
    const all = new Int32Array(count);
    for (let i = 0; i < count; i++) all[i] = i;
    return { members: [all], groupOfChannel: undefined };
  }
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const groups = Math.ceil(channels / perGroup);
  const groupOfChannel = Int32Array.from({ length: channels }, (_, c) => Math.floor(c / perGroup));
  const sizes = new Int32Array(groups);
  for (let c = 0; c < channels; c++) sizes[groupOfChannel[c]] += count / channels;
  const members = Array.from(sizes, (n) => new Int32Array(n));
  const filled = new Int32Array(groups);
  for (let i = 0; i < count; i++) {
    const g = groupOfChannel[Math.floor(i / inner) % channels];
    members[g][filled[g]++] = i;
  }
  return { members, groupOfChannel };
}

/** Rounds float32 values in place to the nearest float16 values (clamped to float16's range; monotonic, so ascending order holds). */
export function roundToHalf(values: Float32Array): void {
  values.set(float16ToFloat32(float32ToFloat16(values, { clamp: true }).bits));
}

export const MAX_MANTISSA_BITS = 23;

/**
 * Rounds float32 values in place to `bits` mantissa bits (to nearest, ties to even; monotonic, so
 * ascending order holds). A value that would round past float32's largest stays as it was.
 */
export function roundMantissa(values: Float32Array, bits: number): void {
  if (!(Number.isInteger(bits) && bits >= 1 && bits <= MAX_MANTISSA_BITS)) throw new Error(`mantissa bits must be a whole number from 1 to ${MAX_MANTISSA_BITS}, got ${bits}`);
  if (bits === MAX_MANTISSA_BITS) return;
  const raw = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const drop = MAX_MANTISSA_BITS - bits;
  const mask = (1 << drop) - 1;
  const half = 1 << (drop - 1);
  for (let i = 0; i < raw.length; i++) {
    const word = raw[i];
    if ((word & 0x7f800000) === 0x7f800000) continue; // infinities and NaNs
    const rest = word & mask;
    // Rounding up carries into the exponent when the mantissa is all ones: still the right value.
    const up = rest > half || (rest === half && ((word >>> drop) & 1) === 1);
    const rounded = ((word & ~mask) >>> 0) + (up ? half * 2 : 0);
    if ((rounded & 0x7f800000) !== 0x7f800000) raw[i] = rounded;
  }
}

/** Centroids rounded as the options ask: to `mantissaBits`, then to float16 values when `half`. */
export function roundCentroids(values: Float32Array, options: { half?: boolean; mantissaBits?: number }): void {
  if (options.mantissaBits !== undefined) roundMantissa(values, options.mantissaBits);
  if (options.half === true) roundToHalf(values);
}

/** Clusters `values` (a weight of `dims`) into codes and codebooks. */
export function buildCodebook(values: Float32Array, dims: readonly number[], options: CodebookOptions): Codebook {
  const K = 2 ** options.bits;
  const { members, groupOfChannel } = groupsOf(dims, options.axis, options.channelsPerGroup ?? 1);
  const groups = members.length;
  const codes = new Uint8Array(values.length);
  const codebook = new Float32Array(groups * K);
  const used = new Int32Array(groups);
  const zeroSlot = new Int32Array(groups).fill(-1);
  members.forEach((indices, g) => {
    let zeros = 0;
    if (options.keepZeros === true) for (let j = 0; j < indices.length; j++) if (values[indices[j]] === 0) zeros++;
    const reserve = zeros > 0 && zeros < indices.length;
    // The values clustered: every one, or the nonzero ones when a zero centroid is kept.
    const chosen = reserve ? indices.filter((i) => values[i] !== 0) : indices;
    const groupValues = new Float32Array(chosen.length);
    for (let j = 0; j < chosen.length; j++) groupValues[j] = values[chosen[j]];
    let weights: Float64Array | undefined;
    if (options.importance !== undefined) {
      weights = new Float64Array(chosen.length);
      for (let j = 0; j < chosen.length; j++) weights[j] = options.importance[chosen[j]];
    }
    const fit = kmeans1d(groupValues, { k: reserve ? K - 1 : K, init: options.init, seed: (options.seed ?? 0) + g, weights });
    // Stored in float32: assign against the stored values so each code is the nearest one decoded.
    const free = Float32Array.from(fit.centroids);
    roundCentroids(free, options);
    let slots: Float32Array = free;
    let at = -1;
    if (reserve) {
      at = free.findIndex((c) => c > 0);
      if (at < 0) at = free.length;
      slots = Float32Array.from([...free.subarray(0, at), 0, ...free.subarray(at)]);
      zeroSlot[g] = at;
    }
    used[g] = slots.length;
    codebook.set(slots, g * K);
    codebook.fill(slots[slots.length - 1], g * K + slots.length, (g + 1) * K);
    const nearest = assignNearest(groupValues, free, new Int32Array(groupValues.length));
    for (let j = 0; j < chosen.length; j++) codes[chosen[j]] = reserve && nearest[j] >= at ? nearest[j] + 1 : nearest[j];
    if (reserve) for (let j = 0; j < indices.length; j++) if (values[indices[j]] === 0) codes[indices[j]] = at;
  });
  return { codes, codebook, groups, stride: K, used, groupOfChannel, zeroSlot, sqnrDb: codesSqnr(values, codes, codebook, K, dims, options.axis, groupOfChannel) };
}

/** SQNR in dB of the weight the codes decode to against `values`. */
function codesSqnr(values: Float32Array, codes: Uint8Array, codebook: Float32Array, stride: number, dims: readonly number[], axis: number | undefined, groupOfChannel: Int32Array | undefined): number {
  const sums = { signal: 0, noise: 0 };
  addSqnrTerms(sums, values, decodeCodebook(codes, codebook, stride, dims, axis, groupOfChannel));
  return sqnrFromSums(sums);
}

/** The weight the codes stand for: codebook[group * stride + code] for every element. */
export function decodeCodebook(codes: Uint8Array, codebook: Float32Array, stride: number, dims: readonly number[], axis: number | undefined, groupOfChannel: Int32Array | undefined): Float32Array {
  const out = new Float32Array(codes.length);
  if (axis === undefined || groupOfChannel === undefined) {
    for (let i = 0; i < codes.length; i++) out[i] = codebook[codes[i]];
    return out;
  }
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  for (let i = 0; i < codes.length; i++) out[i] = codebook[groupOfChannel[Math.floor(i / inner) % channels] * stride + codes[i]];
  return out;
}

/**
 * When every group's used centroids lie on a grid c_j = (j + shift - zeroPoint) * scale (within
 * 1e-4 of a step) with a whole zero point, the codes can be read by DequantizeLinear: returns per
 * group the scale, the uint8 zero point and the shift added to the codes; undefined otherwise.
 */
export function uniformGrid(book: Codebook): { scales: Float32Array; zeroPoints: Uint8Array; shifts: Int32Array } | undefined {
  const scales = new Float32Array(book.groups);
  const zeroPoints = new Uint8Array(book.groups);
  const shifts = new Int32Array(book.groups);
  for (let g = 0; g < book.groups; g++) {
    const c = book.codebook.subarray(g * book.stride, g * book.stride + book.used[g]);
    const m = c.length;
    const first = c[0];
    const step = m === 1 ? Math.abs(first) || 1 : (c[m - 1] - first) / (m - 1);
    if (!(step > 0)) return undefined;
    for (let j = 0; j < m; j++) if (Math.abs(c[j] - (first + j * step)) > 1e-4 * step) return undefined;
    // c_j = (j + shift - zp) * step: first / step must be whole.
    const ratio = first / step;
    const whole = Math.round(ratio);
    if (Math.abs(ratio - whole) > 1e-4) return undefined;
    // zp - shift = -whole; choose the smallest shift >= 0 that puts zp in 0..255.
    const shift = Math.max(0, whole);
    const zp = shift - whole;
    if (zp > 255 || shift + m - 1 > 255) return undefined;
    scales[g] = step;
    zeroPoints[g] = zp;
    shifts[g] = shift;
  }
  return { scales, zeroPoints, shifts };
}

/** The centroids group `g` uses (ascending; its exact-zero slot left out when `withoutZero`). */
export function groupCentroids(book: Codebook, g: number, withoutZero: boolean): Float32Array {
  const slots = book.codebook.subarray(g * book.stride, g * book.stride + book.used[g]);
  const zero = book.zeroSlot[g];
  return withoutZero && zero >= 0 && slots.length > 1 ? Float32Array.from([...slots.subarray(0, zero), ...slots.subarray(zero + 1)]) : Float32Array.from(slots);
}

/**
 * `book` with the codes of `assigned` (values that are each one of their group's centroids, chosen
 * by another rule than the nearest, e.g. obs-codes.ts) and its SQNR against `original`.
 */
export function withAssignedValues(book: Codebook, assigned: Float32Array, original: Float32Array, dims: readonly number[], axis: number | undefined): Codebook {
  const codes = new Uint8Array(assigned.length);
  const inner = axis === undefined ? assigned.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channels = axis === undefined ? 1 : dims[axis];
  // The values are centroids exactly: look their slots up (the first slot of a repeated value).
  const slotOf = Array.from({ length: book.groups }, (_, g) => {
    const map = new Map<number, number>();
    for (let j = book.used[g] - 1; j >= 0; j--) map.set(book.codebook[g * book.stride + j], j);
    return map;
  });
  for (let i = 0; i < assigned.length; i++) {
    const g = axis === undefined || book.groupOfChannel === undefined ? 0 : book.groupOfChannel[Math.floor(i / inner) % channels];
    const slot = slotOf[g].get(assigned[i]);
    if (slot === undefined) throw new Error(`codebook: value ${assigned[i]} at ${i} is not a centroid of group ${g}`);
    codes[i] = slot;
  }
  return { ...book, codes, sqnrDb: codesSqnr(original, codes, book.codebook, book.stride, dims, axis, book.groupOfChannel) };
}
