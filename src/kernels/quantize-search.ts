// Scale search at the same bits (ggml's k-quant idea, make_qx_quants / make_qkx2_quants): per
// block, try candidate scales around the round-to-nearest one, round the block with each, refit
// scale (and min) to the chosen codes by least squares, and keep the pair of least squared error,
// optionally weighted per column (an importance such as mean x^2 of the layer's inputs, as
// ggml's imatrix). The result is a QuantizedBlocks in the layout every weight-only op reads, so
// --rounding search works wherever round to nearest does. quantize-search-ref.ts is the slow
// reference; two-level (k-quant) scales are in quantize-kquant.ts.
import { type QuantBits, type ScaleType, roundToScaleType } from './quant-formats.js';
import { type QuantizedBlocks, type ZeroPointType, checkBlockShape } from './quantize-blocks.js';
import { type SearchMode, wasmSearch } from './quantize-blocks-wasm.js';

/** Adding and removing 1.5 * 2^52 rounds a float64 half to even (|x| < 2^51). */
const ROUND = 6755399441055744;

let ones = new Float32Array(0);

/** Unit weights (one shared array, grown as needed): the hot loops read weights without a branch. */
function onesOf(n: number): Float32Array {
  if (ones.length < n) ones = new Float32Array(n).fill(1);
  return ones;
}

export interface SearchOptions {
  bits: QuantBits;
  blockSize: number;
  symmetric: boolean;
  scaleType?: ScaleType;
  zeroPointType?: ZeroPointType;
  /** Per-column weights of the squared error ([cols]); uniform when absent. */
  importance?: Float32Array;
  /** Candidate scales tried per block (ggml: 20 for k-quants). Default 20. */
  steps?: number;
}

/** What the search found for one block: value = (code - zero) * scale (zero may be fractional). */
export interface BlockFit {
  scale: number;
  zero: number;
}

/**
 * Least-squares asymmetric fit of one block (value ~ scale * code + min), searching candidate
 * inverse scales (qmax + delta) / (hi - lo) for delta in [-1, 1]. `integerZero` forces
 * zero = -min / scale to a code in [0, qmax] before the scale is refit. Returns scale and zero.
 */
export function searchAsymmetric(x: Float32Array, start: number, n: number, w: Float32Array | undefined, wStart: number, qmax: number, integerZero: boolean, steps: number): BlockFit {
  const ww = w ?? onesOf(n);
  const wo = w === undefined ? 0 : wStart;
  let lo = x[start];
  let hi = lo;
  for (let i = start + 1; i < start + n; i++) {
    const v = x[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  // A min above zero cannot be written as an integer zero point (nor helps a Gaussian block).
  if (lo > 0) lo = 0;
  if (hi < 0) hi = 0;
  if (hi === lo) return { scale: 0, zero: 0 };
  let sw = 0;
  let sx = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    const wi = ww[wo + i];
    const v = x[start + i];
    sw += wi;
    sx += wi * v;
    sxx += wi * v * v;
  }
  // Round to nearest as the first candidate.
  const best = fitScratch;
  best.scale = (hi - lo) / qmax;
  best.min = integerZero ? -Math.min(qmax, Math.max(0, Math.round(-lo / best.scale))) * best.scale : lo;
  best.error = fitError(x, start, n, w, wStart, best.scale, best.min, qmax);
  // Candidates anchored at lo, then a few Lloyd steps from the best (round with it, refit).
  // Candidates anchored at hi (codes counted down from qmax) clip the low end instead.
  const candidates = 2 * (steps + 1);
  for (let step = 0; step < candidates + 4; step++) {
    const k = step % (steps + 1);
    const fromHi = step >= steps + 1 && step < candidates;
    const iscale = step < candidates ? (qmax - 1 + (2 * k) / steps) / (hi - lo) : 1 / best.scale;
    const offset = step < candidates ? (fromHi ? hi - qmax / iscale : lo) : best.min;
    let sl = 0;
    let sll = 0;
    let slx = 0;
    for (let i = 0; i < n; i++) {
      const v = x[start + i];
      let t = iscale * (v - offset);
      t = t < 0 ? 0 : t > qmax ? qmax : t;
      const l = t + ROUND - ROUND;
      const wi = ww[wo + i];
      sl += wi * l;
      sll += wi * l * l;
      slx += wi * l * v;
    }
    const improved = considerFit(best, sw, sx, sxx, sl, sll, slx, qmax, integerZero);
    if (step >= candidates && !improved) break;
  }
  return { scale: best.scale, zero: -best.min / best.scale };
}

const fitScratch = { scale: 0, min: 0, error: 0 };

/**
 * Least-squares (scale, min) for codes with the sums given (min <= 0; with integer zero points
 * the zero codes either side of -min / scale, scale refit for each); `best` takes the fit when its
 * error with those codes is lower (re-rounding can only lower it further). True when it did.
 */
function considerFit(best: typeof fitScratch, sw: number, sx: number, sxx: number, sl: number, sll: number, slx: number, qmax: number, integerZero: boolean): boolean {
  const det = sw * sll - sl * sl;
  if (det <= 0) return false;
  let scale = (sw * slx - sl * sx) / det;
  let min = (sll * sx - sl * slx) / det;
  if (min > 0) {
    min = 0;
    scale = slx / sll;
  }
  if (!(scale > 0)) return false;
  let improved = false;
  const exact = -min / scale;
  const first = integerZero ? Math.max(0, Math.floor(exact)) : 0;
  const last = integerZero ? Math.min(qmax, Math.ceil(exact)) : 0;
  for (let zero = first; zero <= last; zero++) {
    if (integerZero) {
      // The scale refit for codes l - zero.
      const sdd = sll - 2 * zero * sl + zero * zero * sw;
      const sdx = slx - zero * sx;
      if (sdd <= 0 || sdx <= 0) continue;
      scale = sdx / sdd;
      min = -zero * scale;
    }
    const error = sxx + scale * scale * sll + min * min * sw - 2 * scale * slx - 2 * min * sx + 2 * scale * min * sl;
    if (error < best.error) {
      best.error = error;
      best.scale = scale;
      best.min = min;
      improved = true;
    }
  }
  return improved;
}

/** Weighted squared error of a block rounded to nearest with value = scale * code + min. */
function fitError(x: Float32Array, start: number, n: number, w: Float32Array | undefined, wStart: number, scale: number, min: number, qmax: number): number {
  let error = 0;
  const inv = 1 / scale;
  for (let i = 0; i < n; i++) {
    const v = x[start + i];
    let t = (v - min) * inv;
    t = t < 0 ? 0 : t > qmax ? qmax : t;
    const d = v - scale * (t + ROUND - ROUND) - min;
    error += (w === undefined ? 1 : w[wStart + i]) * d * d;
  }
  return error;
}

/**
 * Symmetric fit (value ~ scale * (code - mid)): candidate inverse scales -(mid + 0.1 k) / extreme
 * and (mid - 1 + 0.1 k) / extreme for k in [-steps/2, steps/2], each refit as scale = sum(w x l) / sum(w l^2); the candidate with
 * the largest sum(w x l)^2 / sum(w l^2) has the least error.
 */
export function searchSymmetric(x: Float32Array, start: number, n: number, w: Float32Array | undefined, wStart: number, mid: number, steps: number): BlockFit {
  const ww = w ?? onesOf(n);
  const wo = w === undefined ? 0 : wStart;
  let extreme = 0;
  for (let i = start; i < start + n; i++) if (Math.abs(x[i]) > Math.abs(extreme)) extreme = x[i];
  if (extreme === 0) return { scale: 0, zero: mid };
  let bestScale = extreme / -mid;
  let bestGain = -1;
  const half = Math.floor(steps / 2);
  // Both signs: the extreme on the side with the extra code (-mid), or on the other (mid - 1),
  // which matters at 2 bits (codes -2..1).
  for (let k = -half; k <= steps + half; k++) {
    const iscale = k <= half ? -(mid + 0.1 * k) / extreme : (mid - 1 + 0.1 * (k - steps)) / extreme;
    symmetricSums(x, start, n, ww, wo, iscale, mid);
    const [sxl, sll] = SUMS;
    if (sll > 0 && (sxl * sxl) / sll > bestGain) {
      bestGain = (sxl * sxl) / sll;
      bestScale = sxl / sll;
    }
  }
  // A few Lloyd steps from the best: round with the refit scale, refit again.
  for (let it = 0; it < 3; it++) {
    symmetricSums(x, start, n, ww, wo, 1 / bestScale, mid);
    const [sxl, sll] = SUMS;
    if (!(sll > 0 && (sxl * sxl) / sll > bestGain)) break;
    bestGain = (sxl * sxl) / sll;
    bestScale = sxl / sll;
  }
  return { scale: bestScale, zero: mid };
}

/** sum(w x l) and sum(w l^2) of `symmetricSums`, in one reused array (the search runs it per candidate scale). */
const SUMS = new Float64Array(2);

/** The sums of a symmetric refit: codes l = round(clamp(iscale * x, -mid, mid - 1)). */
function symmetricSums(x: Float32Array, start: number, n: number, ww: Float32Array, wo: number, iscale: number, mid: number): void {
  let sxl = 0;
  let sll = 0;
  for (let i = 0; i < n; i++) {
    const v = x[start + i];
    let t = iscale * v;
    t = t < -mid ? -mid : t > mid - 1 ? mid - 1 : t;
    const l = t + ROUND - ROUND;
    const wi = ww[wo + i];
    sxl += wi * v * l;
    sll += wi * l * l;
  }
  SUMS[0] = sxl;
  SUMS[1] = sll;
}

let searchBackend: 'auto' | 'js' = 'auto';

/** Which search loops run: WebAssembly SIMD where available ('auto'), or the JS ones. */
export function setSearchBackend(backend: 'auto' | 'js'): void {
  searchBackend = backend;
}

/**
 * The search's fit of every block of `data` ([rows, cols], blocks of `blockSize` along rows):
 * scale and zero point (value = (code - zero) * scale, zero fractional) per block, unrounded.
 * WebAssembly SIMD where it can (block size a multiple of 4), else the JS loops.
 */
export function fitBlocks(data: Float32Array, cols: number, blockSize: number, bits: QuantBits, mode: SearchMode, steps: number, importance: Float32Array | undefined): { scales: Float64Array; zeros: Float64Array } {
  const count = data.length / blockSize;
  const scales = new Float64Array(count);
  const zeros = new Float64Array(count);
  const wasm = searchBackend === 'auto' && blockSize % 4 === 0 ? wasmSearch() : undefined;
  if (wasm) {
    wasm.fit(data, cols, blockSize, bits, mode, steps, importance, scales, zeros);
    return { scales, zeros };
  }
  const blocksPerRow = cols / blockSize;
  const qmax = 2 ** bits - 1;
  const mid = 2 ** (bits - 1);
  for (let b = 0; b < count; b++) {
    const start = b * blockSize;
    const wStart = (b % blocksPerRow) * blockSize;
    const fit =
      mode === 'symmetric'
        ? searchSymmetric(data, start, blockSize, importance, wStart, mid, steps)
        : searchAsymmetric(data, start, blockSize, importance, wStart, qmax, mode === 'integer-zero', steps);
    scales[b] = fit.scale;
    zeros[b] = fit.zero;
  }
  return { scales, zeros };
}

/** Quantizes `data` ([rows, cols]) block by block with the scale search. */
export function searchBlocks(data: Float32Array, rows: number, cols: number, options: SearchOptions): QuantizedBlocks {
  const { bits, blockSize, symmetric } = options;
  checkBlockShape(data.length, rows, cols, blockSize);
  const scaleType = options.scaleType ?? 'float32';
  const zeroPointType: ZeroPointType = symmetric ? 'integer' : (options.zeroPointType ?? 'integer');
  const steps = options.steps ?? 20;
  const w = options.importance;
  if (w !== undefined && w.length !== cols) throw new Error(`quantize: ${w.length} importance weights given for rows of ${cols}`);
  const blocksPerRow = cols / blockSize;
  const count = rows * blocksPerRow;
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(count);
  const zeroPoints = new Float32Array(count);
  const qmax = 2 ** bits - 1;
  const fits = fitBlocks(data, cols, blockSize, bits, symmetric ? 'symmetric' : zeroPointType === 'integer' ? 'integer-zero' : 'float-zero', steps, w);
  for (let b = 0; b < count; b++) {
    scales[b] = roundToScaleType(fits.scales[b], scaleType);
    zeroPoints[b] = zeroPointType === 'float' ? roundToScaleType(fits.zeros[b], scaleType) : Math.min(qmax, Math.max(0, Math.round(fits.zeros[b])));
  }
  encodeWithParameters(data, blockSize, qmax, scales, zeroPoints, codes);
  return { rows, cols, bits, blockSize, blocksPerRow, symmetric, scaleType, zeroPointType, codes, scales, zeroPoints };
}

/** Codes for given (stored) scales and zero points, with round to nearest's arithmetic. */
export function encodeWithParameters(data: Float32Array, blockSize: number, qmax: number, scales: Float32Array, zeroPoints: Float32Array, codes: Uint8Array): void {
  const fr = Math.fround;
  for (let b = 0; b < scales.length; b++) {
    const start = b * blockSize;
    const scale = scales[b];
    const zero = zeroPoints[b];
    if (scale === 0) {
      codes.fill(Math.min(qmax, Math.max(0, Math.round(zero))), start, start + blockSize);
      continue;
    }
    const inv = fr(1 / scale);
    for (let i = start; i < start + blockSize; i++) {
      let x = fr(fr(data[i] * inv) + zero);
      x = x < 0 ? 0 : x > qmax ? qmax : x;
      codes[i] = x + 6755399441055744 - 6755399441055744;
    }
  }
}
