// HQQ refinement in WebAssembly SIMD (f32x4), the fast path of quantize-blocks.ts's BlockWork:
// the same updates, with |x|^a computed approximately (below), so the chosen iteration can differ
// from the JS loops' where two iterations' errors are within ~1e-5 (test/quant-fast.test.ts bounds
// the difference). A module of its own, so each stays under the 4 KB browsers compile
// synchronously on the main thread. Built by scripts/build-wasm.sh.
#include <stdint.h>
#include <wasm_simd128.h>

// Math.min(qmax, Math.max(0, x)) of JS: -0 becomes +0.
static double clamp_code(double x, double qmax) { return x > 0 ? (x > qmax ? qmax : x) : 0.0; }

// |x|^a as exp2(a * log2|x|): log2 from the exponent bits and a polynomial in the mantissa,
// exp2 from the integer part's bits and a Taylor polynomial; relative error ~2e-5, which only
// matters where two iterations' errors are that close. Zero stays zero (0^a = 0 for a > 0; the
// shrinkage treats |x| = 0 apart).
static v128_t log2_approx(v128_t x) {
  v128_t bits = x;
  v128_t e = wasm_f32x4_convert_i32x4(wasm_i32x4_sub(wasm_u32x4_shr(bits, 23), wasm_i32x4_splat(127)));
  v128_t t = wasm_f32x4_sub(wasm_v128_or(wasm_v128_and(bits, wasm_i32x4_splat(0x7fffff)), wasm_i32x4_splat(0x3f800000)), wasm_f32x4_splat(1.0f));
  // log2(1 + t) on [0, 1): least-squares degree-6 polynomial, max error 4.4e-6 (no division).
  v128_t p = wasm_f32x4_add(wasm_f32x4_splat(0.12191413944240218f), wasm_f32x4_mul(t, wasm_f32x4_splat(-0.026066301477647668f)));
  p = wasm_f32x4_add(wasm_f32x4_splat(-0.27736505014434903f), wasm_f32x4_mul(t, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.45689417400049803f), wasm_f32x4_mul(t, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(-0.717898381269463f), wasm_f32x4_mul(t, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.4425170337700006f), wasm_f32x4_mul(t, p));
  return wasm_f32x4_add(e, wasm_f32x4_mul(t, p));
}

static v128_t exp2_approx(v128_t x) {
  x = wasm_f32x4_pmax(wasm_f32x4_pmin(x, wasm_f32x4_splat(126.0f)), wasm_f32x4_splat(-126.0f));
  // x + 1.5 * 2^23 rounds x to the nearest integer k and holds k in its low mantissa bits:
  // 2^x = 2^k * e^(f ln 2) with f = x - k in [-0.5, 0.5] (no floor, no float-to-int conversion).
  v128_t magic = wasm_f32x4_splat(12582912.0f);
  v128_t shifted = wasm_f32x4_add(x, magic);
  v128_t k = wasm_f32x4_sub(shifted, magic);
  v128_t f = wasm_f32x4_mul(wasm_f32x4_sub(x, k), wasm_f32x4_splat(0.6931471805599453f));
  // e^f for |f| <= ln 2 / 2: Taylor to f^6 (error below 3e-7).
  v128_t p = wasm_f32x4_add(wasm_f32x4_splat(1.0f / 120.0f), wasm_f32x4_mul(f, wasm_f32x4_splat(1.0f / 720.0f)));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.0f / 24.0f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.0f / 6.0f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.5f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.0f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.0f), wasm_f32x4_mul(f, p));
  v128_t integer = wasm_i32x4_sub(shifted, wasm_i32x4_splat(0x4b400000));
  v128_t scale = wasm_i32x4_shl(wasm_i32x4_add(integer, wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, scale);
}

static double log2_scalar(double x) { return wasm_f32x4_extract_lane(log2_approx(wasm_f32x4_splat((float)x)), 0); }
static double exp2_scalar(double x) { return wasm_f32x4_extract_lane(exp2_approx(wasm_f32x4_splat((float)x)), 0); }

/** |x|^a for a vector, 0 where x is 0 (or below 1e-30). */
static v128_t pow_abs(v128_t x, float a) {
  v128_t m = wasm_f32x4_abs(x);
  v128_t live = wasm_f32x4_gt(m, wasm_f32x4_splat(1e-30f));
  m = wasm_f32x4_pmax(m, wasm_f32x4_splat(1e-30f));
  v128_t r = exp2_approx(wasm_f32x4_mul(log2_approx(m), wasm_f32x4_splat(a)));
  return wasm_v128_and(r, live);
}

static float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3);
}

static v128_t codes_of(v128_t w, v128_t inv, v128_t zero, v128_t qmax) {
  v128_t x = wasm_f32x4_add(wasm_f32x4_mul(w, inv), zero);
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, wasm_f32x4_splat(0.0f)), qmax);
  v128_t magic = wasm_f32x4_splat(12582912.0f);
  return wasm_f32x4_sub(wasm_f32x4_add(x, magic), magic);
}

/**
 * One pass over a block at (scale, zero): the lp error sum |w - (q - zero) * scale|^p, and the
 * sums of the update HQQ makes from these parameters with shrinkage weight `beta` (zero point:
 * mean of q - w / scale + e; scale: least squares of w - e * scale on q - zero). With
 * r = w / scale - (q - zero), |w - (q - zero) scale|^p = |scale|^p |r| |r|^(p-1), so one power
 * per value serves both the error and the shrinkage.
 */
static double hqq_pass(const float* w, int n, double scale, double zero, float qmax, float p, double beta, int update, double* a, double* b) {
  v128_t inv = wasm_f32x4_splat((float)(1.0 / scale)), vz = wasm_f32x4_splat((float)zero);
  v128_t vs = wasm_f32x4_splat((float)scale), vq = wasm_f32x4_splat(qmax), invBeta = wasm_f32x4_splat((float)(1.0 / beta));
  v128_t total = wasm_f32x4_splat(0.0f), sumA = total, sumB = total;
  for (int i = 0; i < n; i += 4) {
    v128_t x = wasm_v128_load(w + i);
    v128_t q = codes_of(x, inv, vz, vq);
    v128_t wi = wasm_f32x4_mul(x, inv);
    v128_t r = wasm_f32x4_sub(wi, wasm_f32x4_sub(q, vz));
    v128_t m = wasm_f32x4_abs(r);
    v128_t pr = pow_abs(r, p - 1.0f);
    total = wasm_f32x4_add(total, wasm_f32x4_mul(m, pr));
    // Shrinkage: sign(r) * max(0, |r| - |r|^(p - 1) / beta), 0 where r is 0.
    v128_t shrunk = wasm_f32x4_sub(m, wasm_f32x4_mul(pr, invBeta));
    shrunk = wasm_v128_and(shrunk, wasm_f32x4_gt(shrunk, wasm_f32x4_splat(0.0f)));
    shrunk = wasm_v128_and(shrunk, wasm_f32x4_gt(m, wasm_f32x4_splat(1e-30f)));
    v128_t e = wasm_v128_or(shrunk, wasm_v128_and(r, wasm_i32x4_splat((int)0x80000000)));
    if (update == 0) sumA = wasm_f32x4_add(sumA, wasm_f32x4_add(wasm_f32x4_sub(q, wi), e));
    else {
      v128_t d = wasm_f32x4_sub(q, vz);
      sumA = wasm_f32x4_add(sumA, wasm_f32x4_mul(wasm_f32x4_sub(x, wasm_f32x4_mul(e, vs)), d));
      sumB = wasm_f32x4_add(sumB, wasm_f32x4_mul(d, d));
    }
  }
  *a = hsum(sumA);
  *b = hsum(sumB);
  double magnitude = scale < 0 ? -scale : scale;
  return hsum(total) * exp2_scalar(p * log2_scalar(magnitude));
}

/**
 * Updates of the zero point (update 0) or the scale (update 1) until one does not lower the lp
 * error, at most `iterations`; the best parameters go to *scale, *zero. Each pass measures the
 * parameters the previous one produced and computes the next update, so the sequence of
 * parameters and errors is the JS loops' (quantize-blocks.ts BlockWork.iterate).
 */
static void hqq_iterate(const float* w, int n, double* scale, double* zero, float qmax, int update, int iterations, float p, double beta, double kappa) {
  double s = *scale, z = *zero;
  double a, b;
  double bestError = hqq_pass(w, n, s, z, qmax, p, beta, update, &a, &b);
  double bestS = s, bestZ = z;
  for (int it = 0; it < iterations; it++) {
    if (update == 0) z = a / n;
    else if (b > 0 && a != 0) s = a / b;
    beta *= kappa;
    double error = hqq_pass(w, n, s, z, qmax, p, beta, update, &a, &b);
    if (!(error < bestError)) break;
    bestError = error;
    bestS = s;
    bestZ = z;
  }
  *scale = bestS;
  *zero = bestZ;
}

// HQQ refinement of `blocks` blocks of `size` (a multiple of 4, at most 256): scales and zeros hold
// the starting parameters and receive the refined ones. mode 0: scale only (symmetric); 1: zero
// point only (float zero points); 2: zero point, rounded to a code, then scale.
void hqq_blocks(const float* w, int blocks, int size, int bits, int mode, int iterations, double p, double beta, double kappa, double* scales, double* zeros) {
  const float qmax = (float)((1 << bits) - 1);
  for (int b = 0; b < blocks; b++) {
    if (scales[b] == 0) continue;
    const float* x = w + (long)b * size;
    double s = scales[b], z = zeros[b];
    if (mode != 0) hqq_iterate(x, size, &s, &z, qmax, 0, iterations, (float)p, beta, kappa);
    if (mode == 2) z = clamp_code(__builtin_nearbyint(z), qmax);
    if (mode != 1) hqq_iterate(x, size, &s, &z, qmax, 1, iterations, (float)p, beta, kappa);
    scales[b] = s;
    zeros[b] = z;
  }
}
