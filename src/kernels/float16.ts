// IEEE half precision (float16) and bfloat16 conversions over typed arrays and single numbers.
// Half values are Uint16 bit patterns, as ONNX stores them. Conversions from float32 round to
// nearest, ties to even, on the bits themselves (no Math.log2), so they are exact and fast enough
// for whole weight tensors; the scalar `numberToFloat16` rounds a float64 directly (rounding
// through float32 first would round twice). This file is the one float16 implementation in the
// project: eval/numeric.ts re-exports its scalar functions.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const f64 = new Float64Array(1);
const u32of64 = new Uint32Array(f64.buffer);

/** Largest finite float16, 65504. */
export const FLOAT16_MAX = 65504;
/** Smallest positive normal float16, 2^-14. */
export const FLOAT16_MIN_NORMAL = 2 ** -14;
/** Largest finite bfloat16 (0x7f7f), about 3.39e38. */
export const BFLOAT16_MAX = 3.3895313892515355e38;

const HALF_POSITIVE_INFINITY = 0x7c00;
const HALF_MAX_BITS = 0x7bff;
const HALF_QUIET_NAN = 0x7e00;
/** float32 bits of 65520: the midpoint between 65504 and 2^16, which rounds (to even) up to infinity. */
const F32_HALF_OVERFLOW = 0x477ff000;
/** float32 bits of 2^-14. */
const F32_HALF_MIN_NORMAL = 0x38800000;
/** float32 bits of 2^-25: at or below it, a value rounds to zero (the tie goes to the even 0). */
const F32_HALF_ZERO_LIMIT = 0x33000000;

export interface NarrowOptions {
  /** Finite values beyond the target range become the largest finite value instead of infinity. */
  clamp?: boolean;
}

/** What a narrowing conversion lost, for reports. */
export interface NarrowStats {
  /** Finite inputs beyond the target's range (clamped, or turned into infinities). */
  overflow: number;
  /** Nonzero finite inputs that became zero. */
  underflow: number;
}

/** float32 bit pattern -> float16 bit pattern, round half to even; overflow gives infinity. */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? HALF_QUIET_NAN : HALF_POSITIVE_INFINITY);
  if (abs >= F32_HALF_OVERFLOW) return sign | HALF_POSITIVE_INFINITY;
  if (abs >= F32_HALF_MIN_NORMAL) {
    // Rebias the exponent (127 -> 15) and keep the top 10 mantissa bits; a carry out of the
    // mantissa correctly bumps the exponent.
    const mantissa = abs & 0x7fffff;
    let half = (((abs >>> 23) - 112) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    return sign | half;
  }
  if (abs <= F32_HALF_ZERO_LIMIT) return sign;
  // Subnormal result: a multiple of 2^-24. The float32 value is m * 2^(e-150) with the implicit bit.
  const exponent = abs >>> 23;
  const m = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent;
  let half = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
  return sign | half;
}

/** float16 bit pattern -> float32 bit pattern (exact). */
function floatBitsFromHalf(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: normalize, since every half subnormal is a normal float32.
  let e = 113;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

/** float32 bit pattern -> bfloat16 bit pattern, round half to even; NaN stays a quiet NaN. */
function bfloatFromFloatBits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Converts float32 values to float16 bit patterns. `out` may be given (same length). Returns the
 * converted array and how many values overflowed or underflowed.
 */
export function float32ToFloat16(
  input: Float32Array,
  options: NarrowOptions = {},
  out = new Uint16Array(input.length),
): { bits: Uint16Array; stats: NarrowStats } {
  const bits = new Uint32Array(input.buffer, input.byteOffset, input.length);
  const stats: NarrowStats = { overflow: 0, underflow: 0 };
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    const abs = x & 0x7fffffff;
    if (abs >= F32_HALF_OVERFLOW && abs < 0x7f800000) {
      stats.overflow++;
      out[i] = ((x >>> 16) & 0x8000) | (options.clamp === true ? HALF_MAX_BITS : HALF_POSITIVE_INFINITY);
      continue;
    }
    if (abs !== 0 && abs <= F32_HALF_ZERO_LIMIT) stats.underflow++;
    out[i] = halfFromFloatBits(x);
  }
  return { bits: out, stats };
}

/** Converts float16 bit patterns to float32 values (exact). */
export function float16ToFloat32(input: Uint16Array, out = new Float32Array(input.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < input.length; i++) bits[i] = floatBitsFromHalf(input[i]);
  return out;
}

/** Converts float32 values to bfloat16 bit patterns (round half to even). */
export function float32ToBfloat16(
  input: Float32Array,
  options: NarrowOptions = {},
  out = new Uint16Array(input.length),
): { bits: Uint16Array; stats: NarrowStats } {
  const bits = new Uint32Array(input.buffer, input.byteOffset, input.length);
  const stats: NarrowStats = { overflow: 0, underflow: 0 };
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    let b = bfloatFromFloatBits(x);
    const abs = x & 0x7fffffff;
    // Only values within half an ulp of float32's maximum round up to infinity.
    if ((b & 0x7fff) === 0x7f80 && abs < 0x7f800000) {
      stats.overflow++;
      if (options.clamp === true) b = (b & 0x8000) | 0x7f7f;
    }
    if (abs !== 0 && (b & 0x7fff) === 0) stats.underflow++;
    out[i] = b;
  }
  return { bits: out, stats };
}

/** Converts bfloat16 bit patterns to float32 values (exact: bfloat16 is float32's top half). */
export function bfloat16ToFloat32(input: Uint16Array, out = new Float32Array(input.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < input.length; i++) bits[i] = input[i] << 16;
  return out;
}

/** The value of a float16 bit pattern. */
export function float16ToNumber(bits: number): number {
  u32[0] = floatBitsFromHalf(bits & 0xffff);
  return f32[0];
}

/** The value of a bfloat16 bit pattern. */
export function bfloat16ToNumber(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/** The float16 bit pattern nearest to a float64 (round half to even; overflow gives infinity). */
export function numberToFloat16(value: number): number {
  if (Number.isNaN(value)) return HALF_QUIET_NAN;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  if (magnitude >= 65520) return sign | HALF_POSITIVE_INFINITY;
  if (magnitude < FLOAT16_MIN_NORMAL) {
    // Scaling by a power of two is exact, so this rounds the float64 once.
    return sign | roundHalfEven(magnitude * 2 ** 24);
  }
  // The binary exponent straight from the float64's bits (exact, unlike Math.log2).
  f64[0] = magnitude;
  const exponent = ((u32of64[1] >>> 20) & 0x7ff) - 1023;
  const mantissa = roundHalfEven((magnitude / 2 ** exponent - 1) * 1024);
  // A mantissa that rounds up to 1024 carries into the exponent, which the addition does.
  return sign | (((exponent + 15) << 10) + mantissa);
}

/** The bfloat16 bit pattern nearest to a number (through float32, as bfloat16 is float32's top half). */
export function numberToBfloat16(value: number): number {
  f32[0] = value;
  return bfloatFromFloatBits(u32[0]);
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
