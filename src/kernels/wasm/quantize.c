// Round-to-nearest block quantization in WebAssembly SIMD (f32x4), the fast path of
// quantize-blocks.ts. Built by scripts/build-wasm.sh into quantize-wasm.ts (base64), which
// quantize-blocks-wasm.ts instantiates; the JS loops in quantize-blocks.ts compute the same
// codes, scales and zero points bit for bit (test/quant-fast.test.ts), so either path can run.
//
// Arithmetic, shared with the JS path: block parameters in float64 (as JS numbers), the scale
// stored as float32 (or float16 through float32), then every code is
// nearest_even(float32(float32(w * inv) + zero)) clamped to [0, qmax], inv = float32(1 / scale).
#include <stdint.h>
#include <wasm_simd128.h>

#define MODE_SYMMETRIC 0
#define MODE_INTEGER_ZERO 1
#define MODE_FLOAT_ZERO 2

typedef union { float f; uint32_t u; } bits32;

// float32 -> float16 -> float32, round half to even (float16.ts halfFromFloatBits and back).
static float through_half(float value) {
  bits32 x = {value};
  uint32_t sign = (x.u >> 16) & 0x8000u;
  uint32_t abs = x.u & 0x7fffffffu;
  uint32_t half;
  if (abs >= 0x7f800000u) half = sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u);
  else if (abs >= 0x477ff000u) half = sign | 0x7c00u;
  else if (abs >= 0x38800000u) {
    uint32_t mantissa = abs & 0x7fffffu;
    half = (((abs >> 23) - 112u) << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    half |= sign;
  } else if (abs <= 0x33000000u) half = sign;
  else {
    uint32_t exponent = abs >> 23;
    uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exponent;
    half = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half & 1u))) half++;
    half |= sign;
  }
  // Back to float32 (exact).
  uint32_t s = (half & 0x8000u) << 16;
  uint32_t e = (half >> 10) & 0x1fu;
  uint32_t m = half & 0x3ffu;
  bits32 out;
  if (e == 0x1fu) out.u = s | 0x7f800000u | (m << 13);
  else if (e != 0) out.u = s | ((e + 112u) << 23) | (m << 13);
  else if (m == 0) out.u = s;
  else {
    uint32_t k = 113;
    while ((m & 0x400u) == 0) { m <<= 1; k--; }
    out.u = s | ((k - 1u) << 23) | ((m & 0x3ffu) << 13);
  }
  return out.f;
}

static float store_scale(double value, int half) {
  float f = (float)value;
  return half ? through_half(f) : f;
}

// Math.min(qmax, Math.max(0, x)) of JS: -0 becomes +0.
static double clamp_code(double x, double qmax) { return x > 0 ? (x > qmax ? qmax : x) : 0.0; }

// Codes of one block: 16 at a time, stored one per byte or packed LSB-first.
static void encode(const float* w, int n, float inv, float zero, float qmax, uint8_t* out, int bits, int packed) {
  v128_t vinv = wasm_f32x4_splat(inv), vzero = wasm_f32x4_splat(zero);
  v128_t vlo = wasm_f32x4_splat(0.0f), vhi = wasm_f32x4_splat(qmax);
  // Clamped to [0, qmax], x + 1.5 * 2^23 rounds half to even and leaves the code in the low
  // mantissa bits (cheaper than nearest + trunc_sat; NaN fails both comparisons and stays NaN,
  // whose low bits become 0 like trunc_sat's).
  v128_t magic = wasm_f32x4_splat(12582912.0f), low = wasm_i32x4_splat(0xff);
  for (int i = 0; i < n; i += 16) {
    v128_t q[4];
    for (int j = 0; j < 4; j++) {
      v128_t x = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(w + i + 4 * j), vinv), vzero);
      x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, vlo), vhi);
      q[j] = wasm_v128_and(wasm_f32x4_add(x, magic), low);
    }
    v128_t c = wasm_u8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(q[0], q[1]), wasm_i16x8_narrow_i32x4(q[2], q[3]));
    if (!packed || bits == 8) {
      wasm_v128_store(out + i, c);
    } else if (bits == 4) {
      // Byte pairs (a, b) as u16 lanes a | b << 8 -> a | b << 4 in the low byte.
      v128_t p = wasm_v128_and(wasm_v128_or(c, wasm_u16x8_shr(c, 4)), wasm_i16x8_splat(0xff));
      v128_t bytes = wasm_u8x16_narrow_i16x8(p, p);
      wasm_v128_store64_lane(out + i / 2, bytes, 0);
    } else {
      // Byte quads as u32 lanes -> a | b << 2 | c << 4 | d << 6.
      v128_t p = wasm_v128_or(wasm_v128_or(c, wasm_u32x4_shr(c, 6)), wasm_v128_or(wasm_u32x4_shr(c, 12), wasm_u32x4_shr(c, 18)));
      p = wasm_v128_and(p, wasm_i32x4_splat(0xff));
      v128_t h = wasm_i16x8_narrow_i32x4(p, p);
      v128_t bytes = wasm_u8x16_narrow_i16x8(h, h);
      wasm_v128_store32_lane(out + i / 4, bytes, 0);
    }
  }
}

// Quantizes `blocks` consecutive blocks of `size` values (size a multiple of 16). Codes go to
// `codes` (one byte each, or packed when `packed`), parameters to `scales` and `zeros`.
void rtn_blocks(const float* w, int blocks, int size, int bits, int mode, int half, uint8_t* codes, int packed, float* scales, float* zeros) {
  const double qmax = (double)((1 << bits) - 1);
  const double mid = (double)(1 << (bits - 1));
  const int codeBytes = packed ? size * bits / 8 : size;
  for (int b = 0; b < blocks; b++) {
    const float* x = w + (long)b * size;
    v128_t vmin = wasm_v128_load(x), vmax = vmin;
    for (int i = 4; i < size; i += 4) {
      v128_t v = wasm_v128_load(x + i);
      vmin = wasm_f32x4_pmin(vmin, v);
      vmax = wasm_f32x4_pmax(vmax, v);
    }
    float mins[4], maxs[4];
    wasm_v128_store(mins, vmin);
    wasm_v128_store(maxs, vmax);
    float lo = mins[0], hi = maxs[0];
    for (int j = 1; j < 4; j++) {
      if (mins[j] < lo) lo = mins[j];
      if (maxs[j] > hi) hi = maxs[j];
    }
    double scale, zero;
    float storedScale, storedZero;
    if (mode == MODE_SYMMETRIC) {
      // The first value of largest magnitude maps to code 0, as in quantize-blocks.ts.
      double extreme;
      if (hi > -lo) extreme = hi;
      else if (-lo > hi) extreme = lo;
      else {
        extreme = 0;
        for (int i = 0; i < size; i++) if (x[i] == hi || x[i] == lo) { extreme = x[i]; break; }
      }
      scale = extreme / -mid;
      storedScale = store_scale(scale, half);
      storedZero = (float)mid;
    } else {
      double l = lo, h = hi;
      if (mode == MODE_INTEGER_ZERO) {
        if (l > 0) l = 0;
        if (h < 0) h = 0;
      }
      scale = (h - l) / qmax;
      zero = scale == 0 ? 0 : -l / scale;
      storedScale = store_scale(scale, half);
      storedZero = mode == MODE_FLOAT_ZERO ? store_scale(zero, half) : (float)clamp_code(__builtin_nearbyint(zero), qmax);
    }
    scales[b] = storedScale;
    zeros[b] = storedZero;
    uint8_t* out = codes + (long)b * codeBytes;
    if (storedScale == 0) {
      int code = (int)clamp_code(__builtin_nearbyint((double)storedZero), qmax);
      uint8_t byte = bits == 8 || !packed ? (uint8_t)code : bits == 4 ? (uint8_t)(code | code << 4) : (uint8_t)(code | code << 2 | code << 4 | code << 6);
      for (int i = 0; i < codeBytes; i++) out[i] = byte;
      continue;
    }
    float inv = (float)(1.0 / (double)storedScale);
    encode(x, size, inv, storedZero, (float)qmax, out, bits, packed);
  }
}

// Packs codes (one per byte; the low `bits` bits of each are kept) LSB-first: count a multiple of 16.
void pack_codes(const uint8_t* codes, long count, int bits, uint8_t* out) {
  v128_t mask = wasm_i8x16_splat((1 << bits) - 1);
  for (long i = 0; i < count; i += 16) {
    v128_t c = wasm_v128_and(wasm_v128_load(codes + i), mask);
    if (bits == 8) wasm_v128_store(out + i, c);
    else if (bits == 4) {
      v128_t p = wasm_v128_and(wasm_v128_or(c, wasm_u16x8_shr(c, 4)), wasm_i16x8_splat(0xff));
      wasm_v128_store64_lane(out + i / 2, wasm_u8x16_narrow_i16x8(p, p), 0);
    } else {
      v128_t p = wasm_v128_or(wasm_v128_or(c, wasm_u32x4_shr(c, 6)), wasm_v128_or(wasm_u32x4_shr(c, 12), wasm_u32x4_shr(c, 18)));
      p = wasm_v128_and(p, wasm_i32x4_splat(0xff));
      v128_t h = wasm_i16x8_narrow_i32x4(p, p);
      wasm_v128_store32_lane(out + i / 4, wasm_u8x16_narrow_i16x8(h, h), 0);
    }
  }
}

