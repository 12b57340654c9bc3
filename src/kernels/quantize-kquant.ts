// Two-level scales (ggml's Q4_K / Q2_K idea): blocks of 16-32 codes each get a scale and a min
// found by the scale search (quantize-search.ts), and those are themselves quantized to small
// integer codes against one float scale and one float min per super-block of blocks:
//   scale_j = d * sc_j,  min_j = dmin * mc_j,  value = code * scale_j - min_j
// In MatMulNBits terms (methods/quantize/matmul-nbits-kquant.ts writes the graph that computes
// them, which onnxruntime folds into constants): scales = f32(d * sc), float zero points
// = f32(f32(dmin * mc) / scale), so value = (code - zero) * scale. The effective scales and zero
// points returned here are computed with that float32 arithmetic, so the codes are the best ones
// for the values the graph will produce.
import { type QuantBits, type ScaleType, roundToScaleType } from './quant-formats.js';
import { type QuantizedBlocks, checkBlockShape } from './quantize-blocks.js';
import { type KQuantPick, wasmKQuant } from './quantize-blocks-wasm.js';
import { encodeWithParameters, fitBlocks } from './quantize-search.js';

export interface KQuantOptions {
  bits: QuantBits;
  /** Values per block (16 or 32 in ggml's k-quants). */
  blockSize: number;
  /** Blocks per super-block: one d and one dmin each. */
  superBlock: number;
  /**
   * Width of the per-block scale and min codes: 6 and 6 (Q4_K: 12 bits a block, stored as a byte
   * and a nibble) or 4 and 4 (Q2_K: one byte a block). Any width up to 8 quantizes here.
   */
  scaleBits: number;
  minBits: number;
  /** How d and dmin are stored (float16, Cast to float32 at load, or float32). */
  superScaleType: ScaleType;
  importance?: Float32Array;
  steps?: number;
}

export interface KQuantBlocks extends QuantizedBlocks {
  superBlock: number;
  /** Super-blocks per row (the last may be partly padding). */
  groupsPerRow: number;
  /** [rows, groupsPerRow * superBlock] integer codes; padding entries are 0. */
  scaleCodes: Uint8Array;
  minCodes: Uint8Array;
  /** [rows, groupsPerRow], rounded to superScaleType. */
  superScales: Float32Array;
  superMins: Float32Array;
}

/** Smallest positive float16 (2^-24): stands in for d when a super-block has only zero scales. */
const TINY = 2 ** -24;

/** Bits per weight of the two-level layout: codes, block scale and min codes, d and dmin per super-block. */
export function kquantBitsPerWeight(o: Pick<KQuantOptions, 'bits' | 'blockSize' | 'superBlock' | 'scaleBits' | 'minBits' | 'superScaleType'>): number {
  const superBits = o.superScaleType === 'float16' ? 32 : 64;
  return o.bits + (o.scaleBits + o.minBits) / o.blockSize + superBits / (o.blockSize * o.superBlock);
}

export function kquantBlocks(data: Float32Array, rows: number, cols: number, o: KQuantOptions): KQuantBlocks {
  const { bits, blockSize, superBlock } = o;
  checkBlockShape(data.length, rows, cols, blockSize);
  if (o.importance !== undefined && o.importance.length !== cols) throw new Error(`quantize: ${o.importance.length} importance weights given for rows of ${cols}`);
  const steps = o.steps ?? 20;
  const qmax = 2 ** bits - 1;
  const scaleMax = 2 ** o.scaleBits - 1;
  const minMax = 2 ** o.minBits - 1;
  const blocksPerRow = cols / blockSize;
  const groupsPerRow = Math.ceil(blocksPerRow / superBlock);
  const padded = groupsPerRow * superBlock;
  const scaleCodes = new Uint8Array(rows * padded);
  const minCodes = new Uint8Array(rows * padded);
  const superScales = new Float32Array(rows * groupsPerRow);
  const superMins = new Float32Array(rows * groupsPerRow);
  const scales = new Float32Array(rows * blocksPerRow);
  const zeroPoints = new Float32Array(rows * blocksPerRow);
  const fr = Math.fround;
  // Every block's own fit first (scale and min, as floats); then d and dmin per super-block; then
  // each block's codes near the rounded ones (WebAssembly SIMD where it can, else JS); then the
  // parameters as the graph computes them.
  const count = rows * blocksPerRow;
  const fits = fitBlocks(data, cols, blockSize, bits, 'float-zero', steps, o.importance);
  const pick: KQuantPick = {
    fitScale: fits.scales,
    fitMin: fits.zeros.map((z, b) => z * fits.scales[b]),
    d: new Float32Array(count),
    dmin: new Float32Array(count),
    sc: new Uint8Array(count),
    mc: new Uint8Array(count),
  };
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groupsPerRow; g++) {
      const first = r * blocksPerRow + g * superBlock;
      const last = r * blocksPerRow + Math.min(blocksPerRow, (g + 1) * superBlock);
      let maxScale = 0;
      let maxMin = 0;
      for (let b = first; b < last; b++) {
        if (pick.fitScale[b] > maxScale) maxScale = pick.fitScale[b];
        if (pick.fitMin[b] > maxMin) maxMin = pick.fitMin[b];
      }
      let d = roundToScaleType(maxScale / scaleMax, o.superScaleType);
      if (!(d > 0)) d = TINY;
      const dmin = roundToScaleType(maxMin / minMax, o.superScaleType);
      superScales[r * groupsPerRow + g] = d;
      superMins[r * groupsPerRow + g] = dmin;
      pick.d.fill(d, first, last);
      pick.dmin.fill(dmin, first, last);
    }
  }
  const wasm = blockSize % 4 === 0 ? kquantBackend() : undefined;
  if (wasm) wasm.pick(data, cols, blockSize, bits, o.importance, scaleMax, minMax, pick);
  else pickCodesJs(data, cols, blockSize, qmax, o.importance, scaleMax, minMax, pick);
  for (let b = 0; b < count; b++) {
    const r = Math.floor(b / blocksPerRow);
    const j = b - r * blocksPerRow;
    scaleCodes[r * padded + j] = pick.sc[b];
    minCodes[r * padded + j] = pick.mc[b];
    // The graph's float32 arithmetic: scale = d * sc, zero = (dmin * mc) / scale.
    const scale = fr(pick.d[b] * pick.sc[b]);
    scales[b] = scale;
    zeroPoints[b] = fr(fr(pick.dmin[b] * pick.mc[b]) / scale);
  }
  const codes = new Uint8Array(rows * cols);
  encodeWithParameters(data, blockSize, qmax, scales, zeroPoints, codes);
  return {
    rows,
    cols,
    bits,
    blockSize,
    blocksPerRow,
    symmetric: false,
    scaleType: 'float32',
    zeroPointType: 'float',
    codes,
    scales,
    zeroPoints,
    superBlock,
    groupsPerRow,
    scaleCodes,
    minCodes,
    superScales,
    superMins,
  };
}

let kquantWasm: 'auto' | 'js' = 'auto';

/** Which loops choose the two-level codes: WebAssembly SIMD where available ('auto'), or the JS ones. */
export function setKQuantBackend(backend: 'auto' | 'js'): void {
  kquantWasm = backend;
}

function kquantBackend() {
  return kquantWasm === 'auto' ? wasmKQuant() : undefined;
}

/**
 * The JS loops of the code choice: per block, the min's two neighbouring codes and scale codes
 * within +-2 of the rounded one, each measured with the graph's float32 values (a coarse min
 * code is offset by the scale).
 */
function pickCodesJs(data: Float32Array, cols: number, blockSize: number, qmax: number, importance: Float32Array | undefined, scaleMax: number, minMax: number, p: KQuantPick): void {
  const fr = Math.fround;
  const blocksPerRow = cols / blockSize;
  for (let b = 0; b < p.sc.length; b++) {
    const d = p.d[b];
    const dmin = p.dmin[b];
    const minExact = dmin > 0 ? p.fitMin[b] / dmin : 0;
    const scaleExact = p.fitScale[b] / d;
    let bestError = Number.POSITIVE_INFINITY;
    let bestSc = 1;
    let bestMc = 0;
    for (let mc = Math.max(0, Math.floor(minExact)); mc <= Math.min(minMax, Math.ceil(minExact)); mc++) {
      const min = fr(dmin * mc);
      const center = Math.round(scaleExact);
      for (let sc = Math.max(1, center - 2); sc <= Math.min(scaleMax, center + 2); sc++) {
        const scale = fr(d * sc);
        const error = blockError(data, b * blockSize, blockSize, importance, (b % blocksPerRow) * blockSize, scale, fr(min / scale), qmax, bestError);
        if (error < bestError) {
          bestError = error;
          bestSc = sc;
          bestMc = mc;
        }
      }
    }
    p.sc[b] = bestSc;
    p.mc[b] = bestMc;
  }
}

/** Weighted squared error of one block encoded with (scale, zero) as the kernels round; stops past `limit`. */
function blockError(x: Float32Array, start: number, n: number, w: Float32Array | undefined, wStart: number, scale: number, zero: number, qmax: number, limit: number): number {
  const fr = Math.fround;
  const inv = fr(1 / scale);
  let error = 0;
  for (let i = 0; i < n; i++) {
    const v = x[start + i];
    let q = fr(fr(v * inv) + zero);
    q = q < 0 ? 0 : q > qmax ? qmax : q;
    q = q + 6755399441055744 - 6755399441055744;
    const e = v - fr(fr(q - zero) * scale);
    error += (w === undefined ? 1 : w[wStart + i]) * e * e;
    if (error > limit) return error;
  }
  return error;
}
