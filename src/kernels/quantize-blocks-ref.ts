// The slow, obvious versions of quantize-blocks.ts, written straight from the formulas with plain
// arrays and no reuse, for tests to check the fast kernels against (ggml's *_ref pattern).
// Keep these boring: a clever reference checks nothing.
import type { QuantBits, ScaleType } from './quant-formats.js';
import { type BlockQuantOptions, DEFAULT_HQQ, type HqqOptions, type QuantizedBlocks } from './quantize-blocks.js';

function roundEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest < 0.5) return floor;
  if (rest > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/** float16 rounding by search over the representable neighbours, the slowest way that is right. */
function toFloat16(value: number): number {
  if (value === 0) return value;
  const magnitude = Math.abs(value);
  if (magnitude >= 65520) return Math.sign(value) * Number.POSITIVE_INFINITY;
  // The spacing of halves around `magnitude`: 2^(e-10) for normals, 2^-24 for subnormals.
  const exponent = Math.max(Math.floor(Math.log2(magnitude)), -14);
  let step = 2 ** (exponent - 10);
  if (magnitude / 2 ** exponent >= 2) step *= 2;
  if (exponent > -14 && magnitude / 2 ** exponent < 1) step /= 2;
  // A multiple of the spacing is exactly representable (a carry to the next binade included).
  return Math.sign(value) * roundEven(magnitude / step) * step;
}

function storeScale(value: number, scaleType: ScaleType): number {
  // Scales are computed in float64 and stored as float32 first, like the fast kernel does.
  return scaleType === 'float16' ? toFloat16(Math.fround(value)) : Math.fround(value);
}

function codeOf(w: number, scale: number, zero: number, qmax: number): number {
  if (scale === 0) return clamp(roundEven(zero), 0, qmax);
  return clamp(roundEven(w / scale + zero), 0, qmax);
}

function lp(block: number[], scale: number, zero: number, qmax: number, p: number): number {
  return block.reduce((sum, w) => sum + Math.abs(w - (codeOf(w, scale, zero, qmax) - zero) * scale) ** p, 0);
}

function shrink(x: number, beta: number, p: number): number {
  if (x === 0) return 0;
  return Math.sign(x) * Math.max(0, Math.abs(x) - Math.abs(x) ** (p - 1) / beta);
}

/** One run of HQQ updates (zero point or scale), returning the best parameters seen. */
function hqqRef(block: number[], scale: number, zero: number, qmax: number, update: 'zero' | 'scale', o: HqqOptions): [number, number] {
  let best: [number, number] = [scale, zero];
  let bestError = lp(block, scale, zero, qmax, o.p);
  let beta = o.beta;
  for (let it = 0; it < o.iterations; it++) {
    const q = block.map((w) => codeOf(w, scale, zero, qmax));
    const e = block.map((w, i) => shrink(w / scale - (q[i] - zero), beta, o.p));
    if (update === 'zero') {
      zero = block.reduce((sum, w, i) => sum + (q[i] - w / scale + e[i]), 0) / block.length;
    } else {
      const num = block.reduce((sum, w, i) => sum + (w - e[i] * scale) * (q[i] - zero), 0);
      const den = block.reduce((sum, _, i) => sum + (q[i] - zero) ** 2, 0);
      if (den > 0 && num !== 0) scale = num / den;
    }
    beta *= o.kappa;
    const error = lp(block, scale, zero, qmax, o.p);
    // HQQ stops at the first update that does not lower the error.
    if (!(error < bestError)) break;
    bestError = error;
    best = [scale, zero];
  }
  return best;
}

export function quantizeBlocksRef(data: Float32Array, rows: number, cols: number, options: BlockQuantOptions): QuantizedBlocks {
  const bits: QuantBits = options.bits;
  const { blockSize, symmetric } = options;
  const scaleType = options.scaleType ?? 'float32';
  const zeroPointType = symmetric ? 'integer' : (options.zeroPointType ?? 'integer');
  const hqq: HqqOptions = { ...DEFAULT_HQQ, ...options.hqq };
  const qmax = 2 ** bits - 1;
  const mid = 2 ** (bits - 1);
  const codes: number[] = [];
  const scales: number[] = [];
  const zeroPoints: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += blockSize) {
      const block = Array.from(data.subarray(r * cols + c0, r * cols + c0 + blockSize));
      let scale: number;
      let zero: number;
      if (symmetric) {
        const extreme = block.reduce((a, w) => (Math.abs(w) > Math.abs(a) ? w : a), 0);
        scale = extreme / -mid;
        zero = mid;
      } else {
        let lo = Math.min(...block);
        let hi = Math.max(...block);
        if (zeroPointType === 'integer') {
          lo = Math.min(lo, 0);
          hi = Math.max(hi, 0);
        }
        scale = (hi - lo) / qmax;
        zero = scale === 0 ? 0 : -lo / scale;
      }
      if (options.rounding === 'hqq' && scale !== 0) {
        if (!symmetric) [scale, zero] = hqqRef(block, scale, zero, qmax, 'zero', hqq);
        if (zeroPointType === 'integer') {
          zero = clamp(roundEven(zero), 0, qmax);
          [scale, zero] = hqqRef(block, scale, zero, qmax, 'scale', hqq);
        }
      }
      scale = storeScale(scale, scaleType);
      zero = zeroPointType === 'float' ? storeScale(zero, scaleType) : clamp(roundEven(zero), 0, qmax);
      scales.push(scale);
      zeroPoints.push(zero);
      for (const w of block) codes.push(codeOf(w, scale, zero, qmax));
    }
  }
  return {
    rows,
    cols,
    bits,
    blockSize,
    blocksPerRow: cols / blockSize,
    symmetric,
    scaleType,
    zeroPointType,
    codes: Uint8Array.from(codes),
    scales: Float32Array.from(scales),
    zeroPoints: Float32Array.from(zeroPoints),
  };
}

export function dequantizeBlocksRef(q: QuantizedBlocks): number[] {
  const out: number[] = [];
  for (let i = 0; i < q.rows * q.cols; i++) {
    const b = Math.floor(i / q.blockSize);
    out.push((q.codes[i] - q.zeroPoints[b]) * q.scales[b]);
  }
  return out;
}

/** Ternary and binary, from their definitions (threshold undefined: binary). */
export function signBlocksRef(data: Float32Array, rows: number, cols: number, blockSize: number, scaleType: ScaleType, threshold: number | undefined): QuantizedBlocks {
  const codes: number[] = [];
  const scales: number[] = [];
  for (let start = 0; start < rows * cols; start += blockSize) {
    const block = Array.from(data.subarray(start, start + blockSize));
    const meanAbs = block.reduce((s, w) => s + Math.abs(w), 0) / blockSize;
    const t = block.map((w) => (threshold === undefined || Math.abs(w) > threshold * meanAbs ? (w < 0 ? -1 : 1) : 0));
    const kept = block.filter((_, i) => t[i] !== 0).map(Math.abs);
    scales.push(storeScale(kept.length === 0 ? 0 : kept.reduce((a, b) => a + b, 0) / kept.length, scaleType));
    codes.push(...t.map((x) => x + 2));
  }
  return {
    rows,
    cols,
    bits: 2,
    blockSize,
    blocksPerRow: cols / blockSize,
    symmetric: true,
    scaleType,
    zeroPointType: 'integer',
    codes: Uint8Array.from(codes),
    scales: Float32Array.from(scales),
    zeroPoints: new Float32Array(scales.length).fill(2),
  };
}
