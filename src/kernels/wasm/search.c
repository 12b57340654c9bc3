// The per-block scale search of quantize-search.ts in WebAssembly SIMD (f32x4): the same
// candidates, least-squares refits and Lloyd steps, with the per-value sums in float32 lanes
// (the JS loops sum in float64), so a near tie between candidates can go the other way
// (test/quant-fast.test.ts bounds the difference). Built by scripts/build-wasm.sh.
#include <wasm_simd128.h>

typedef struct { double scale, min, error; } fit_t;

static float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3);
}

// x + 1.5 * 2^23 - 1.5 * 2^23 rounds half to even for |x| < 2^22.
static v128_t round_even(v128_t x) {
  v128_t magic = wasm_f32x4_splat(12582912.0f);
  return wasm_f32x4_sub(wasm_f32x4_add(x, magic), magic);
}

static v128_t clamp(v128_t x, float lo, float hi) {
  return wasm_f32x4_pmin(wasm_f32x4_pmax(x, wasm_f32x4_splat(lo)), wasm_f32x4_splat(hi));
}

/** Weighted squared error of the block rounded with value = scale * code + min. */
static double fit_error(const float* x, const float* w, int n, double scale, double min, float qmax) {
  v128_t inv = wasm_f32x4_splat((float)(1.0 / scale)), vs = wasm_f32x4_splat((float)scale), vm = wasm_f32x4_splat((float)min);
  v128_t total = wasm_f32x4_splat(0.0f);
  for (int i = 0; i < n; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    v128_t l = round_even(clamp(wasm_f32x4_mul(wasm_f32x4_sub(v, vm), inv), 0.0f, qmax));
    v128_t d = wasm_f32x4_sub(wasm_f32x4_sub(v, wasm_f32x4_mul(vs, l)), vm);
    total = wasm_f32x4_add(total, wasm_f32x4_mul(wasm_v128_load(w + i), wasm_f32x4_mul(d, d)));
  }
  return hsum(total);
}

static double round_half_up(double x) { return __builtin_floor(x + 0.5); }
static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/** quantize-search.ts considerFit: the least-squares (scale, min) for the codes' sums, kept if better. */
static int consider(fit_t* best, double sw, double sx, double sxx, double sl, double sll, double slx, double qmax, int integerZero) {
  double det = sw * sll - sl * sl;
  if (det <= 0) return 0;
  double scale = (sw * slx - sl * sx) / det;
  double min = (sll * sx - sl * slx) / det;
  if (min > 0) {
    min = 0;
    scale = slx / sll;
  }
  if (!(scale > 0)) return 0;
  int improved = 0;
  double exact = -min / scale;
  double first = integerZero ? (__builtin_floor(exact) > 0 ? __builtin_floor(exact) : 0) : 0;
  double last = integerZero ? (__builtin_ceil(exact) < qmax ? __builtin_ceil(exact) : qmax) : 0;
  for (double zero = first; zero <= last; zero++) {
    if (integerZero) {
      double sdd = sll - 2 * zero * sl + zero * zero * sw;
      double sdx = slx - zero * sx;
      if (sdd <= 0 || sdx <= 0) continue;
      scale = sdx / sdd;
      min = -zero * scale;
    }
    double error = sxx + scale * scale * sll + min * min * sw - 2 * scale * slx - 2 * min * sx + 2 * scale * min * sl;
    if (error < best->error) {
      best->error = error;
      best->scale = scale;
      best->min = min;
      improved = 1;
    }
  }
  return improved;
}

static void search_asymmetric(const float* x, const float* w, int n, float qmax, int integerZero, int steps, double* outScale, double* outZero) {
  v128_t vmin = wasm_v128_load(x), vmax = vmin;
  v128_t vsw = wasm_f32x4_splat(0.0f), vsx = vsw, vsxx = vsw;
  for (int i = 0; i < n; i += 4) {
    v128_t v = wasm_v128_load(x + i), wi = wasm_v128_load(w + i);
    vmin = wasm_f32x4_pmin(vmin, v);
    vmax = wasm_f32x4_pmax(vmax, v);
    vsw = wasm_f32x4_add(vsw, wi);
    vsx = wasm_f32x4_add(vsx, wasm_f32x4_mul(wi, v));
    vsxx = wasm_f32x4_add(vsxx, wasm_f32x4_mul(wi, wasm_f32x4_mul(v, v)));
  }
  float mins[4], maxs[4];
  wasm_v128_store(mins, vmin);
  wasm_v128_store(maxs, vmax);
  double lo = mins[0], hi = maxs[0];
  for (int j = 1; j < 4; j++) {
    if (mins[j] < lo) lo = mins[j];
    if (maxs[j] > hi) hi = maxs[j];
  }
  if (lo > 0) lo = 0;
  if (hi < 0) hi = 0;
  if (hi == lo) {
    *outScale = 0;
    *outZero = 0;
    return;
  }
  double sw = hsum(vsw), sx = hsum(vsx), sxx = hsum(vsxx);
  fit_t best;
  best.scale = (hi - lo) / qmax;
  best.min = integerZero ? -clampd(round_half_up(-lo / best.scale), 0, qmax) * best.scale : lo;
  best.error = fit_error(x, w, n, best.scale, best.min, qmax);
  int candidates = 2 * (steps + 1);
  for (int step = 0; step < candidates + 4; step++) {
    int k = step % (steps + 1);
    int fromHi = step >= steps + 1 && step < candidates;
    double iscale = step < candidates ? (qmax - 1 + (2.0 * k) / steps) / (hi - lo) : 1 / best.scale;
    double offset = step < candidates ? (fromHi ? hi - qmax / iscale : lo) : best.min;
    v128_t vi = wasm_f32x4_splat((float)iscale), vo = wasm_f32x4_splat((float)offset);
    v128_t sl = wasm_f32x4_splat(0.0f), sll = sl, slx = sl;
    for (int i = 0; i < n; i += 4) {
      v128_t v = wasm_v128_load(x + i), wi = wasm_v128_load(w + i);
      v128_t l = round_even(clamp(wasm_f32x4_mul(vi, wasm_f32x4_sub(v, vo)), 0.0f, qmax));
      v128_t wl = wasm_f32x4_mul(wi, l);
      sl = wasm_f32x4_add(sl, wl);
      sll = wasm_f32x4_add(sll, wasm_f32x4_mul(wl, l));
      slx = wasm_f32x4_add(slx, wasm_f32x4_mul(wl, v));
    }
    int improved = consider(&best, sw, sx, sxx, hsum(sl), hsum(sll), hsum(slx), qmax, integerZero);
    if (step >= candidates && !improved) break;
  }
  *outScale = best.scale;
  *outZero = -best.min / best.scale;
}

static void search_symmetric(const float* x, const float* w, int n, float mid, int steps, double* outScale, double* outZero) {
  v128_t vmax = wasm_f32x4_splat(0.0f);
  for (int i = 0; i < n; i += 4) vmax = wasm_f32x4_pmax(vmax, wasm_f32x4_abs(wasm_v128_load(x + i)));
  float maxs[4];
  wasm_v128_store(maxs, vmax);
  float magnitude = maxs[0];
  for (int j = 1; j < 4; j++) if (maxs[j] > magnitude) magnitude = maxs[j];
  *outZero = mid;
  if (magnitude == 0) {
    *outScale = 0;
    return;
  }
  // The first value of largest magnitude, with its sign (as the JS loops pick it).
  double extreme = 0;
  for (int i = 0; i < n; i++) {
    if (x[i] == magnitude || x[i] == -magnitude) {
      extreme = x[i];
      break;
    }
  }
  double bestScale = extreme / -mid, bestGain = -1;
  int half = steps / 2;
  for (int k = -half; k <= steps + half + 3; k++) {
    int lloyd = k > steps + half;
    double iscale = lloyd ? 1 / bestScale : k <= half ? -(mid + 0.1 * k) / extreme : (mid - 1 + 0.1 * (k - steps)) / extreme;
    v128_t vi = wasm_f32x4_splat((float)iscale);
    v128_t sxl = wasm_f32x4_splat(0.0f), sll = sxl;
    for (int i = 0; i < n; i += 4) {
      v128_t v = wasm_v128_load(x + i), wi = wasm_v128_load(w + i);
      v128_t l = round_even(clamp(wasm_f32x4_mul(vi, v), -mid, mid - 1));
      v128_t wl = wasm_f32x4_mul(wi, l);
      sxl = wasm_f32x4_add(sxl, wasm_f32x4_mul(wl, v));
      sll = wasm_f32x4_add(sll, wasm_f32x4_mul(wl, l));
    }
    double a = hsum(sxl), b = hsum(sll);
    if (b > 0 && (a * a) / b > bestGain) {
      bestGain = (a * a) / b;
      bestScale = a / b;
    } else if (lloyd) break;
  }
  *outScale = bestScale;
}

// Fits `blocks` blocks of `size` values (a multiple of 4): block b's column weights start at
// weights + (b % blocksPerRow) * size. mode 0: symmetric; 1: asymmetric, integer zero points;
// 2: asymmetric, float zero points. Scales and zero points (value = (code - zero) * scale) out.
void search_blocks(const float* x, int blocks, int size, int bits, int mode, int steps, const float* weights, int blocksPerRow, double* scales, double* zeros) {
  float qmax = (float)((1 << bits) - 1), mid = (float)(1 << (bits - 1));
  for (int b = 0; b < blocks; b++) {
    const float* block = x + (long)b * size;
    const float* w = weights + (long)(b % blocksPerRow) * size;
    if (mode == 0) search_symmetric(block, w, size, mid, steps, scales + b, zeros + b);
    else search_asymmetric(block, w, size, qmax, mode == 1, steps, scales + b, zeros + b);
  }
}
