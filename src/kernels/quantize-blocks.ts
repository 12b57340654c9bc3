// Per-block linear quantization of a float32 matrix along its rows: row r is cut into blocks of
// `blockSize` consecutive values, and each block gets a scale (and a zero point) so that
// value ~ (code - zeroPoint) * scale with unsigned codes 0 .. 2^bits-1. This is the layout every
// ORT weight-only op reads (MatMulNBits quantizes B's columns along K, so callers pass B
// transposed). Symmetric blocks use the midpoint 2^(bits-1) as their zero point, which is also
// MatMulNBits' and GatherBlockQuantized's default when no zero points are given.
//
// Rounding: round-to-nearest (ties to even), or HQQ-style refinement without data: alternate a
// proximal (lp shrinkage, p < 1) estimate of the sparse error with a closed-form update of the
// zero point (asymmetric) or the scale (symmetric, or after rounding the zero point to an
// integer), keeping the best parameters by lp error. quantize-blocks-ref.ts is the slow reference.
import { type QuantBits, type ScaleType, roundToScaleType } from './quant-formats.js';
import { type HqqMode, type RtnMode, wasmHqq, wasmQuantizer } from './quantize-blocks-wasm.js';
// A cycle (quantize-search.ts imports checkBlockShape from here): only functions cross it, called after both load.
import { searchBlocks } from './quantize-search.js';

/**
 * rtn: round to nearest; hqq: HQQ refinement; search: the per-block scale search of
 * quantize-search.ts; kquant: the search with two-level scales where the writer has that layout
 * (MatMulNBits, 2 and 4 bits: matmul-nbits-kquant.ts), the plain search elsewhere.
 */
export type Rounding = 'rtn' | 'hqq' | 'search' | 'kquant';
/** Integer zero points pack next to the codes; float zero points (HQQ's own form) use the scale type. */
export type ZeroPointType = 'integer' | 'float';

export interface HqqOptions {
  /** At most this many updates: refinement stops at the first one that does not lower the error. */
  iterations: number;
  /** Exponent of the lp error minimized (< 1 favours fitting most values and sacrificing outliers). */
  p: number;
  /** Initial shrinkage weight and its growth per iteration (half-quadratic splitting). */
  beta: number;
  kappa: number;
}

export const DEFAULT_HQQ: Readonly<HqqOptions> = { iterations: 20, p: 0.7, beta: 10, kappa: 1.01 };

export interface BlockQuantOptions {
  bits: QuantBits;
  /** Values per block; must divide the row length. */
  blockSize: number;
  symmetric: boolean;
  scaleType?: ScaleType;
  rounding?: Rounding;
  zeroPointType?: ZeroPointType;
  hqq?: Partial<HqqOptions>;
}

export interface QuantizedBlocks {
  rows: number;
  cols: number;
  bits: QuantBits;
  blockSize: number;
  blocksPerRow: number;
  symmetric: boolean;
  scaleType: ScaleType;
  zeroPointType: ZeroPointType;
  /** Unsigned codes, one per value, row-major [rows, cols]. */
  codes: Uint8Array;
  /** [rows * blocksPerRow], already rounded to `scaleType`. May be negative (symmetric blocks). */
  scales: Float32Array;
  /** [rows * blocksPerRow]: integers in the code range, or floats rounded to `scaleType`. */
  zeroPoints: Float32Array;
}

/** Rounds half to even, as onnxruntime's QuantizeLinear does. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round sends ties up; move odd results of exact ties back down.
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** Checks the shape and options shared by every block quantizer. */
export function checkBlockShape(length: number, rows: number, cols: number, blockSize: number): void {
  if (length !== rows * cols) throw new Error(`quantize: ${length} values given for a [${rows}, ${cols}] matrix`);
  if (!Number.isInteger(blockSize) || blockSize <= 0 || cols % blockSize !== 0) {
    throw new Error(`quantize: block size ${blockSize} does not divide the row length ${cols}`);
  }
}

/** Quantizes `data` ([rows, cols], row-major) block by block along each row. */
export function quantizeBlocks(data: Float32Array, rows: number, cols: number, options: BlockQuantOptions): QuantizedBlocks {
  const { bits, blockSize, symmetric } = options;
  checkBlockShape(data.length, rows, cols, blockSize);
  const scaleType = options.scaleType ?? 'float32';
  const rounding = options.rounding ?? 'rtn';
  const zeroPointType: ZeroPointType = symmetric ? 'integer' : (options.zeroPointType ?? 'integer');
  const hqq = { ...DEFAULT_HQQ, ...options.hqq };
  const blocksPerRow = cols / blockSize;
  const count = rows * blocksPerRow;
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(count);
  const zeroPoints = new Float32Array(count);
  const qmax = 2 ** bits - 1;
  const mid = 2 ** (bits - 1);
  if (rounding === 'search' || rounding === 'kquant') return searchBlocks(data, rows, cols, options);
  if (rounding === 'rtn') {
    const mode: RtnMode = symmetric ? 'symmetric' : zeroPointType === 'float' ? 'float-zero' : 'integer-zero';
    rtnBlocks(data, 0, count, blockSize, bits, mode, scaleType === 'float16', codes, 0, false, scales, zeroPoints);
    return { rows, cols, bits, blockSize, blocksPerRow, symmetric, scaleType, zeroPointType, codes, scales, zeroPoints };
  }
  // HQQ: starting parameters per block (round to nearest's), refined (WebAssembly SIMD where it
  // can, else the JS loops), then stored and encoded.
  const scale0 = new Float64Array(count);
  const zero0 = new Float64Array(count);
  for (let b = 0; b < count; b++) {
    const start = b * blockSize;
    if (symmetric) {
      // The value of largest magnitude maps exactly to code 0 (-mid): all 2^bits levels are used.
      let extreme = 0;
      let magnitude = 0;
      for (let i = start; i < start + blockSize; i++) {
        const v = data[i];
        const m = v < 0 ? -v : v;
        if (m > magnitude) {
          magnitude = m;
          extreme = v;
        }
      }
      scale0[b] = extreme / -mid;
      zero0[b] = mid;
    } else {
      let lo = data[start];
      let hi = data[start];
      for (let i = start + 1; i < start + blockSize; i++) {
        const v = data[i];
        if (v < lo) lo = v;
        else if (v > hi) hi = v;
      }
      // Integer zero points must be a code, so the range must hold 0; float ones need not.
      if (zeroPointType === 'integer') {
        lo = Math.min(lo, 0);
        hi = Math.max(hi, 0);
      }
      scale0[b] = (hi - lo) / qmax;
      zero0[b] = scale0[b] === 0 ? 0 : -lo / scale0[b];
    }
  }
  const mode: HqqMode = symmetric ? 'scale' : zeroPointType === 'float' ? 'zero' : 'zero-then-scale';
  const wasm = hqqBackend === 'auto' && blockSize % 4 === 0 && blockSize <= 256 ? wasmHqq() : undefined;
  if (wasm) wasm.refine(data, 0, count, blockSize, bits, mode, hqq, scale0, zero0);
  else {
    const work = new BlockWork(blockSize);
    for (let b = 0; b < count; b++) {
      if (scale0[b] === 0) continue;
      const block = data.subarray(b * blockSize, (b + 1) * blockSize);
      [scale0[b], zero0[b]] = work.refine(block, scale0[b], zero0[b], qmax, mode, hqq);
    }
  }
  for (let b = 0; b < count; b++) {
    const scale = roundToScaleType(scale0[b], scaleType);
    const zero = zeroPointType === 'float' ? roundToScaleType(zero0[b], scaleType) : Math.min(qmax, Math.max(0, roundHalfEven(zero0[b])));
    scales[b] = scale;
    zeroPoints[b] = zero;
    encodeBlock(data, b * blockSize, blockSize, scale, zero, qmax, codes);
  }
  return { rows, cols, bits, blockSize, blocksPerRow, symmetric, scaleType, zeroPointType, codes, scales, zeroPoints };
}

let rtnBackend: 'auto' | 'js' = 'auto';
let hqqBackend: 'auto' | 'js' = 'auto';

/** Which round-to-nearest loops run: WebAssembly SIMD where available ('auto'), or the JS ones. */
export function setRtnBackend(backend: 'auto' | 'js'): void {
  rtnBackend = backend;
}

/**
 * Which HQQ loops run: WebAssembly SIMD where available ('auto': powers approximated, see
 * wasm/hqq.c), or the JS ones, which the reference checks.
 */
export function setHqqBackend(backend: 'auto' | 'js'): void {
  hqqBackend = backend;
}

/**
 * Round to nearest of `blockCount` blocks of `data` from block `firstBlock`: parameters into
 * `scales`/`zeroPoints` at the block's index, codes into `codes` from `codesAt` (one per byte, or
 * packed LSB-first when `packed`, which needs blockSize * bits to fill whole bytes). Runs the
 * WebAssembly SIMD loops where they can (block size a multiple of 16), else rtnBlocksJs; both
 * give the same bits.
 */
export function rtnBlocks(
  data: Float32Array,
  firstBlock: number,
  blockCount: number,
  blockSize: number,
  bits: QuantBits,
  mode: RtnMode,
  halfScales: boolean,
  codes: Uint8Array,
  codesAt: number,
  packed: boolean,
  scales: Float32Array,
  zeroPoints: Float32Array,
): void {
  const wasm = rtnBackend === 'auto' && blockSize % 16 === 0 ? wasmQuantizer() : undefined;
  const run = wasm ? wasm.rtn : rtnBlocksJs;
  run(data, firstBlock, blockCount, blockSize, bits, mode, halfScales, codes, codesAt, packed, scales, zeroPoints);
}

/**
 * The JS loops of rtnBlocks, and the arithmetic both paths share: block parameters in float64,
 * the scale stored as float32 (float16 through float32), codes
 * nearest_even(f32(f32(w * inv) + zero)) clamped to [0, qmax] with inv = f32(1 / scale).
 */
export function rtnBlocksJs(
  data: Float32Array,
  firstBlock: number,
  blockCount: number,
  blockSize: number,
  bits: QuantBits,
  mode: RtnMode,
  halfScales: boolean,
  codes: Uint8Array,
  codesAt: number,
  packed: boolean,
  scales: Float32Array,
  zeroPoints: Float32Array,
): void {
  const fr = Math.fround;
  const qmax = 2 ** bits - 1;
  const mid = 2 ** (bits - 1);
  const codeBytes = packed ? (blockSize * bits) / 8 : blockSize;
  // Packed output goes through one block of scratch codes (allocated once per call).
  const out = packed && bits !== 8 ? new Uint8Array(blockSize) : codes;
  for (let n = 0; n < blockCount; n++) {
    const b = firstBlock + n;
    const start = b * blockSize;
    const end = start + blockSize;
    let lo = data[start];
    let hi = lo;
    for (let i = start + 1; i < end; i++) {
      const v = data[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    let scale: number;
    let zero: number;
    if (mode === 'symmetric') {
      // The first value of largest magnitude maps exactly to code 0 (-mid): all 2^bits levels are used.
      let extreme = hi > -lo ? hi : lo;
      if (hi === -lo) {
        extreme = 0;
        for (let i = start; i < end; i++) {
          if (data[i] === hi || data[i] === lo) {
            extreme = data[i];
            break;
          }
        }
      }
      scale = storeScale(extreme / -mid, halfScales);
      zero = mid;
    } else {
      // Integer zero points must be a code, so the range must hold 0; float ones need not.
      if (mode === 'integer-zero') {
        if (lo > 0) lo = 0;
        if (hi < 0) hi = 0;
      }
      const s = (hi - lo) / qmax;
      const z = s === 0 ? 0 : -lo / s;
      scale = storeScale(s, halfScales);
      zero = mode === 'float-zero' ? storeScale(z, halfScales) : Math.min(qmax, Math.max(0, roundHalfEven(z)));
    }
    scales[b] = scale;
    zeroPoints[b] = zero;
    const at = out === codes ? codesAt + n * codeBytes : 0;
    if (scale === 0) {
      out.fill(Math.min(qmax, Math.max(0, roundHalfEven(zero))), at, at + blockSize);
    } else {
      const inv = fr(1 / scale);
      for (let i = 0; i < blockSize; i++) {
        let x = fr(fr(data[start + i] * inv) + zero);
        x = x < 0 ? 0 : x > qmax ? qmax : x;
        // Adding and removing 1.5 * 2^52 rounds half to even (x is in [0, 255]).
        out[at + i] = x + 6755399441055744 - 6755399441055744;
      }
    }
    if (out !== codes) packBlock(out, bits, codes, codesAt + n * codeBytes);
  }
}

function storeScale(value: number, half: boolean): number {
  const f = Math.fround(value);
  return half ? roundToScaleType(f, 'float16') : f;
}

/** One block of codes packed LSB-first (2 or 4 bits). */
function packBlock(block: Uint8Array, bits: QuantBits, out: Uint8Array, at: number): void {
  if (bits === 4) {
    for (let i = 0, o = at; i < block.length; i += 2, o++) out[o] = block[i] | (block[i + 1] << 4);
  } else {
    for (let i = 0, o = at; i < block.length; i += 4, o++) out[o] = block[i] | (block[i + 1] << 2) | (block[i + 2] << 4) | (block[i + 3] << 6);
  }
}

/** Codes of one block for a given scale and zero point. */
function encodeBlock(data: Float32Array, start: number, n: number, scale: number, zero: number, qmax: number, codes: Uint8Array): void {
  if (scale === 0) {
    codes.fill(Math.min(qmax, Math.max(0, roundHalfEven(zero))), start, start + n);
    return;
  }
  const inverse = 1 / scale;
  for (let i = start; i < start + n; i++) {
    // Clamped first (the bounds are integers, so clamping commutes with rounding), then rounded
    // half to even by adding and removing 1.5 * 2^52.
    let x = data[i] * inverse + zero;
    x = x < 0 ? 0 : x > qmax ? qmax : x;
    codes[i] = x + 6755399441055744 - 6755399441055744;
  }
}

/** Scratch buffers for HQQ refinement, reused across blocks. */
class BlockWork {
  private readonly q: Float64Array;
  private readonly e: Float64Array;

  constructor(size: number) {
    this.q = new Float64Array(size);
    this.e = new Float64Array(size);
  }

  /**
   * HQQ refinement of one block, all in code units (errors of a step or less), so the shrinkage
   * thresholds mean the same thing whatever the weights' magnitude. 'zero' updates a float zero
   * point; 'scale' updates the scale around a fixed zero point; 'zero-then-scale' finds the float
   * zero point, rounds it to a code and then refines the scale.
   */
  refine(w: Float32Array, scale0: number, zero0: number, qmax: number, mode: HqqMode, o: HqqOptions): [number, number] {
    let scale = scale0;
    let zero = zero0;
    if (mode !== 'scale') [scale, zero] = this.iterate(w, scale, zero, qmax, 'zero', o);
    if (mode === 'zero') return [scale, zero];
    if (mode === 'zero-then-scale') zero = Math.min(qmax, Math.max(0, roundHalfEven(zero)));
    return this.iterate(w, scale, zero, qmax, 'scale', o);
  }

  private iterate(w: Float32Array, scale0: number, zero0: number, qmax: number, update: 'zero' | 'scale', o: HqqOptions): [number, number] {
    const { q, e } = this;
    const n = w.length;
    let scale = scale0;
    let zero = zero0;
    let best: [number, number] = [scale, zero];
    let bestError = lpError(w, scale, zero, qmax, o.p);
    let beta = o.beta;
    for (let it = 0; it < o.iterations; it++) {
      const inverse = 1 / scale;
      for (let i = 0; i < n; i++) {
        const c = roundHalfEven(w[i] * inverse + zero);
        q[i] = c < 0 ? 0 : c > qmax ? qmax : c;
        e[i] = shrinkLp(w[i] * inverse - (q[i] - zero), beta, o.p);
      }
      if (update === 'zero') {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += q[i] - w[i] * inverse + e[i];
        zero = sum / n;
      } else {
        // Least squares for the scale given the codes, against the values minus the sparse error.
        let num = 0;
        let den = 0;
        for (let i = 0; i < n; i++) {
          const d = q[i] - zero;
          num += (w[i] - e[i] * scale) * d;
          den += d * d;
        }
        if (den > 0 && num !== 0) scale = num / den;
      }
      beta *= o.kappa;
      const error = lpError(w, scale, zero, qmax, o.p);
      // Stop at the first update that does not lower the error, as HQQ does (3x faster, within
      // 0.1 dB of running all iterations on Gaussian blocks).
      if (!(error < bestError)) break;
      bestError = error;
      best = [scale, zero];
    }
    return best;
  }
}

/** The proximal operator of |x|^p (p < 1) approximated as in HQQ: soft threshold |x|^(p-1)/beta. */
export function shrinkLp(x: number, beta: number, p: number): number {
  const magnitude = Math.abs(x);
  if (magnitude === 0) return 0;
  const shrunk = magnitude - magnitude ** (p - 1) / beta;
  return shrunk > 0 ? Math.sign(x) * shrunk : 0;
}

/** Sum of |w - dequant(quant(w))|^p over a block for the given parameters. */
export function lpError(w: ArrayLike<number>, scale: number, zero: number, qmax: number, p: number): number {
  let total = 0;
  const inverse = scale === 0 ? 0 : 1 / scale;
  for (let i = 0; i < w.length; i++) {
    const c = roundHalfEven(w[i] * inverse + zero);
    const q = c < 0 ? 0 : c > qmax ? qmax : c;
    total += Math.abs(w[i] - (q - zero) * scale) ** p;
  }
  return total;
}

/** value = (code - zeroPoint) * scale for every value, [rows, cols]. */
export function dequantizeBlocks(q: QuantizedBlocks): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  for (let b = 0; b < q.scales.length; b++) {
    const scale = q.scales[b];
    const zero = q.zeroPoints[b];
    const start = b * q.blockSize;
    for (let i = start; i < start + q.blockSize; i++) out[i] = (q.codes[i] - zero) * scale;
  }
  return out;
}

/**
 * Ternary weights ("1.58-bit") in the 2-bit format: per block, values beyond 0.7 * mean|w| become
 * +-1 and the rest 0; the scale is the mean magnitude of the values kept (the least-squares
 * scale for those signs). Codes are 2 + t, zero point 2: MatMulNBits' default for 2 bits.
 */
export function ternarizeBlocks(data: Float32Array, rows: number, cols: number, blockSize: number, scaleType: ScaleType = 'float32', thresholdRatio = 0.7): QuantizedBlocks {
  return signBlocks(data, rows, cols, blockSize, scaleType, thresholdRatio);
}

/** Binary weights in the 2-bit format: sign (codes 1 or 3 around zero point 2), scale = mean|w|. */
export function binarizeBlocks(data: Float32Array, rows: number, cols: number, blockSize: number, scaleType: ScaleType = 'float32'): QuantizedBlocks {
  return signBlocks(data, rows, cols, blockSize, scaleType, undefined);
}

function signBlocks(data: Float32Array, rows: number, cols: number, blockSize: number, scaleType: ScaleType, thresholdRatio: number | undefined): QuantizedBlocks {
  checkBlockShape(data.length, rows, cols, blockSize);
  const blocksPerRow = cols / blockSize;
  const count = rows * blocksPerRow;
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(count);
  const zeroPoints = new Float32Array(count).fill(2);
  for (let b = 0; b < count; b++) {
    const start = b * blockSize;
    let meanAbs = 0;
    for (let i = start; i < start + blockSize; i++) meanAbs += Math.abs(data[i]);
    meanAbs /= blockSize;
    // Binary keeps every value (threshold -1 means "none below"); ternary drops small ones.
    const threshold = thresholdRatio === undefined ? -1 : thresholdRatio * meanAbs;
    let kept = 0;
    let keptAbs = 0;
    for (let i = start; i < start + blockSize; i++) {
      const v = data[i];
      const t = Math.abs(v) > threshold ? (v < 0 ? -1 : 1) : 0;
      codes[i] = 2 + t;
      if (t !== 0) {
        kept++;
        keptAbs += Math.abs(v);
      }
    }
    scales[b] = roundToScaleType(kept === 0 ? 0 : keptAbs / kept, scaleType);
  }
  return { rows, cols, bits: 2, blockSize, blocksPerRow, symmetric: true, scaleType, zeroPointType: 'integer', codes, scales, zeroPoints };
}

/** Signal-to-quantization-noise ratio in dB (src/kernels/sqnr.ts), re-exported for the quantizers. */
export { sqnrDb } from './sqnr.js';
