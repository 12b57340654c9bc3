// The second stage of the two-level (k-quant) search of quantize-kquant.ts in WebAssembly SIMD:
// per block, the scale and min codes near the rounded ones, each measured with the float32 values
// the graph computes (scale = d * sc, zero = dmin * mc / scale). Errors are summed in float32
// lanes (the JS loops sum in float64), so a near tie can go the other way (test/quant-fast.test.ts
// bounds the difference). Built by scripts/build-wasm.sh.
#include <stdint.h>
#include <wasm_simd128.h>

static float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3);
}

/** Weighted squared error of a block encoded with (scale, zero) as the kernels round. */
static double block_error(const float* x, const float* w, int n, float scale, float zero, float qmax) {
  v128_t inv = wasm_f32x4_splat((float)(1.0 / (double)scale)), vz = wasm_f32x4_splat(zero), vs = wasm_f32x4_splat(scale);
  v128_t lo = wasm_f32x4_splat(0.0f), hi = wasm_f32x4_splat(qmax), magic = wasm_f32x4_splat(12582912.0f);
  v128_t total = wasm_f32x4_splat(0.0f);
  for (int i = 0; i < n; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    v128_t q = wasm_f32x4_add(wasm_f32x4_mul(v, inv), vz);
    q = wasm_f32x4_pmin(wasm_f32x4_pmax(q, lo), hi);
    q = wasm_f32x4_sub(wasm_f32x4_add(q, magic), magic);
    v128_t e = wasm_f32x4_sub(v, wasm_f32x4_mul(wasm_f32x4_sub(q, vz), vs));
    total = wasm_f32x4_add(total, wasm_f32x4_mul(wasm_v128_load(w + i), wasm_f32x4_mul(e, e)));
  }
  return hsum(total);
}

// For `blocks` blocks of `size` (a multiple of 4; block b's column weights at weights +
// (b % blocksPerRow) * size): the scale code sc in [1, scaleMax] within 2 of fitScale / d and the
// min code mc in [0, minMax] either side of fitMin / dmin with the least error, into sc and mc.
void kquant_pick(const float* x, int blocks, int size, int bits, const float* weights, int blocksPerRow, const double* fitScale, const double* fitMin,
                 const float* d, const float* dmin, int scaleMax, int minMax, uint8_t* sc, uint8_t* mc) {
  const float qmax = (float)((1 << bits) - 1);
  for (int b = 0; b < blocks; b++) {
    const float* block = x + (long)b * size;
    const float* w = weights + (long)(b % blocksPerRow) * size;
    double minExact = dmin[b] > 0 ? fitMin[b] / dmin[b] : 0;
    double scaleExact = fitScale[b] / d[b];
    double best = __builtin_inf();
    int bestSc = 1, bestMc = 0;
    int m0 = (int)__builtin_floor(minExact), m1 = (int)__builtin_ceil(minExact);
    if (m0 < 0) m0 = 0;
    if (m1 > minMax) m1 = minMax;
    int center = (int)__builtin_floor(scaleExact + 0.5);
    int s0 = center - 2 < 1 ? 1 : center - 2, s1 = center + 2 > scaleMax ? scaleMax : center + 2;
    for (int m = m0; m <= m1; m++) {
      float min = (float)((double)dmin[b] * m);
      for (int s = s0; s <= s1; s++) {
        float scale = (float)((double)d[b] * s);
        double error = block_error(block, w, size, scale, (float)((double)min / scale), qmax);
        if (error < best) {
          best = error;
          bestSc = s;
          bestMc = m;
        }
      }
    }
    sc[b] = (uint8_t)bestSc;
    mc[b] = (uint8_t)bestMc;
  }
}
