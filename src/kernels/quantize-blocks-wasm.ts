// The WebAssembly SIMD path of round-to-nearest block quantization (wasm/quantize.c). It computes
// exactly what rtnBlocksJs in quantize-blocks.ts computes (test/quant-fast.test.ts checks bit for
// bit), three to four times faster. The module is compiled synchronously on first use (3 KB, under
// the browsers' 4 KB limit for synchronous compilation on the main thread); where WebAssembly SIMD
// is missing, `wasmQuantizer()` returns undefined and callers use the JS loops.
import { HQQ_WASM_BASE64, KQUANT_WASM_BASE64, QUANTIZE_WASM_BASE64, SEARCH_WASM_BASE64 } from './wasm/quantize-wasm.js';

export type RtnMode = 'symmetric' | 'integer-zero' | 'float-zero';

const MODE_CODES: Record<RtnMode, number> = { symmetric: 0, 'integer-zero': 1, 'float-zero': 2 };

/** Floats copied into WebAssembly memory per call: 1 MiB of input keeps the module's memory small. */
const CHUNK_VALUES = 1 << 12;
const PAGE = 65536;

interface Exports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  rtn_blocks(w: number, blocks: number, size: number, bits: number, mode: number, half: number, codes: number, packed: number, scales: number, zeros: number): void;
  pack_codes(codes: number, count: number, bits: number, out: number): void;
}

export interface WasmQuantizer {
  /**
   * Round-to-nearest of `blockCount` blocks of `data` starting at block `firstBlock` (block size a
   * multiple of 16). Codes go to `codes` from `codesAt` (one per byte, or packed LSB-first when
   * `packed`), parameters to `scales`/`zeroPoints` from `firstBlock`.
   */
  rtn(
    data: Float32Array,
    firstBlock: number,
    blockCount: number,
    blockSize: number,
    bits: 2 | 4 | 8,
    mode: RtnMode,
    halfScales: boolean,
    codes: Uint8Array,
    codesAt: number,
    packed: boolean,
    scales: Float32Array,
    zeroPoints: Float32Array,
  ): void;
  /** Packs `count` codes (a multiple of 16) LSB-first into out (from `outAt`). */
  pack(codes: Uint8Array, bits: 2 | 4 | 8, out: Uint8Array, outAt: number): void;
}

/** The WebAssembly quantizer, or undefined where WebAssembly SIMD is not available. */
export const wasmQuantizer: () => WasmQuantizer | undefined = lazily(instantiate);

function instantiate(): WasmQuantizer | null {
  const loaded = loadModule<Exports>(QUANTIZE_WASM_BASE64);
  if (loaded === null) return null;
  const { exports, base } = loaded;
  // Input floats, then codes, scales and zero points of one chunk.
  const layout = (blockSize: number) => {
    const blocks = Math.max(1, Math.floor(CHUNK_VALUES / blockSize));
    const values = blocks * blockSize;
    const input = base;
    const codes = input + values * 4;
    const scales = codes + values;
    const zeros = scales + blocks * 4;
    const end = zeros + blocks * 4;
    const have = exports.memory.buffer.byteLength;
    if (end > have) exports.memory.grow(Math.ceil((end - have) / PAGE));
    return { blocks, input, codes, scales, zeros };
  };
  return {
    rtn(data, firstBlock, blockCount, blockSize, bits, mode, halfScales, codes, codesAt, packed, scales, zeroPoints) {
      const at = layout(blockSize);
      const codeBytes = packed ? (blockSize * bits) / 8 : blockSize;
      for (let done = 0; done < blockCount; done += at.blocks) {
        const n = Math.min(at.blocks, blockCount - done);
        const first = firstBlock + done;
        const memory = exports.memory.buffer;
        new Float32Array(memory, at.input, n * blockSize).set(data.subarray(first * blockSize, (first + n) * blockSize));
        exports.rtn_blocks(at.input, n, blockSize, bits, MODE_CODES[mode], halfScales ? 1 : 0, at.codes, packed ? 1 : 0, at.scales, at.zeros);
        codes.set(new Uint8Array(memory, at.codes, n * codeBytes), codesAt + done * codeBytes);
        scales.set(new Float32Array(memory, at.scales, n), first);
        zeroPoints.set(new Float32Array(memory, at.zeros, n), first);
      }
    },
    pack(codes, bits, out, outAt) {
      const at = layout(16);
      const chunk = at.blocks * 16;
      for (let done = 0; done < codes.length; done += chunk) {
        const n = Math.min(chunk, codes.length - done);
        const memory = exports.memory.buffer;
        new Uint8Array(memory, at.codes, n).set(codes.subarray(done, done + n));
        exports.pack_codes(at.codes, n, bits, at.input);
        out.set(new Uint8Array(memory, at.input, (n * bits) / 8), outAt + (done * bits) / 8);
      }
    },
  };
}

interface HqqExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  hqq_blocks(w: number, blocks: number, size: number, bits: number, mode: number, iterations: number, p: number, beta: number, kappa: number, scales: number, zeros: number): void;
}

/** Which parameters HQQ refines: the scale (symmetric), the zero point (float zero points), or both in turn. */
export type HqqMode = 'scale' | 'zero' | 'zero-then-scale';

const HQQ_MODES: Record<HqqMode, number> = { scale: 0, zero: 1, 'zero-then-scale': 2 };

export interface WasmHqq {
  /**
   * Refines the starting scales and zero points of blocks [firstBlock, firstBlock + blockCount) of
   * `data` in place (blocks of at most 256 values, a multiple of 4).
   */
  refine(data: Float32Array, firstBlock: number, blockCount: number, blockSize: number, bits: number, mode: HqqMode, o: { iterations: number; p: number; beta: number; kappa: number }, scales: Float64Array, zeros: Float64Array): void;
}

/** The WebAssembly HQQ refinement, or undefined where WebAssembly SIMD is not available. */
export const wasmHqq: () => WasmHqq | undefined = lazily(instantiateHqq);

function instantiateHqq(): WasmHqq | null {
  const loaded = loadModule<HqqExports>(HQQ_WASM_BASE64);
  if (loaded === null) return null;
  const { exports, base } = loaded;
  return {
    refine(data, firstBlock, blockCount, blockSize, bits, mode, o, scales, zeros) {
      const chunk = Math.max(1, Math.floor(CHUNK_VALUES / blockSize));
      const input = base;
      const scalesAt = input + chunk * blockSize * 4;
      const zerosAt = scalesAt + chunk * 8;
      const end = zerosAt + chunk * 8;
      const have = exports.memory.buffer.byteLength;
      if (end > have) exports.memory.grow(Math.ceil((end - have) / PAGE));
      for (let done = 0; done < blockCount; done += chunk) {
        const n = Math.min(chunk, blockCount - done);
        const first = firstBlock + done;
        const memory = exports.memory.buffer;
        new Float32Array(memory, input, n * blockSize).set(data.subarray(first * blockSize, (first + n) * blockSize));
        new Float64Array(memory, scalesAt, n).set(scales.subarray(first, first + n));
        new Float64Array(memory, zerosAt, n).set(zeros.subarray(first, first + n));
        exports.hqq_blocks(input, n, blockSize, bits, HQQ_MODES[mode], o.iterations, o.p, o.beta, o.kappa, scalesAt, zerosAt);
        scales.set(new Float64Array(memory, scalesAt, n), first);
        zeros.set(new Float64Array(memory, zerosAt, n), first);
      }
    },
  };
}

interface SearchExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  search_blocks(x: number, blocks: number, size: number, bits: number, mode: number, steps: number, weights: number, blocksPerRow: number, scales: number, zeros: number): void;
}

/** Block forms the search fits: symmetric, asymmetric with integer or with float zero points. */
export type SearchMode = 'symmetric' | 'integer-zero' | 'float-zero';

const SEARCH_MODES: Record<SearchMode, number> = { symmetric: 0, 'integer-zero': 1, 'float-zero': 2 };

export interface WasmSearch {
  /**
   * Scale and zero point per block of `data` ([rows, cols] row-major, blocks of `blockSize`, a
   * multiple of 4) into `scales`/`zeros`; `importance` ([cols]) weights each column's error.
   */
  fit(data: Float32Array, cols: number, blockSize: number, bits: number, mode: SearchMode, steps: number, importance: Float32Array | undefined, scales: Float64Array, zeros: Float64Array): void;
}

/** The WebAssembly scale search, or undefined where WebAssembly SIMD is not available. */
export const wasmSearch: () => WasmSearch | undefined = lazily(instantiateSearch);

function instantiateSearch(): WasmSearch | null {
  const loaded = loadModule<SearchExports>(SEARCH_WASM_BASE64);
  if (loaded === null) return null;
  const { exports, base } = loaded;
  return {
    fit(data, cols, blockSize, bits, mode, steps, importance, scales, zeros) {
      const blocksPerRow = cols / blockSize;
      // Whole rows per chunk, so a chunk's first block is a row's first (the weights line up).
      const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / cols));
      const weights = base;
      const input = weights + cols * 4;
      const scalesAt = input + rowsPerChunk * cols * 4;
      const zerosAt = scalesAt + rowsPerChunk * blocksPerRow * 8;
      const end = zerosAt + rowsPerChunk * blocksPerRow * 8;
      const have = exports.memory.buffer.byteLength;
      if (end > have) exports.memory.grow(Math.ceil((end - have) / PAGE));
      const w = new Float32Array(exports.memory.buffer, weights, cols);
      if (importance === undefined) w.fill(1);
      else w.set(importance);
      const rows = data.length / cols;
      for (let first = 0; first < rows; first += rowsPerChunk) {
        const count = Math.min(rowsPerChunk, rows - first);
        const blocks = count * blocksPerRow;
        const memory = exports.memory.buffer;
        new Float32Array(memory, input, count * cols).set(data.subarray(first * cols, (first + count) * cols));
        exports.search_blocks(input, blocks, blockSize, bits, SEARCH_MODES[mode], steps, weights, blocksPerRow, scalesAt, zerosAt);
        scales.set(new Float64Array(memory, scalesAt, blocks), first * blocksPerRow);
        zeros.set(new Float64Array(memory, zerosAt, blocks), first * blocksPerRow);
      }
    },
  };
}

interface KQuantExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  kquant_pick(x: number, blocks: number, size: number, bits: number, weights: number, blocksPerRow: number, fitScale: number, fitMin: number, d: number, dmin: number, scaleMax: number, minMax: number, sc: number, mc: number): void;
}

/** Per-block inputs and outputs of the two-level code choice (see wasm/kquant.c). */
export interface KQuantPick {
  fitScale: Float64Array;
  fitMin: Float64Array;
  /** d and dmin of each block's super-block. */
  d: Float32Array;
  dmin: Float32Array;
  sc: Uint8Array;
  mc: Uint8Array;
}

export interface WasmKQuant {
  pick(data: Float32Array, cols: number, blockSize: number, bits: number, importance: Float32Array | undefined, scaleMax: number, minMax: number, p: KQuantPick): void;
}

/** The WebAssembly two-level code choice, or undefined where WebAssembly SIMD is not available. */
export const wasmKQuant: () => WasmKQuant | undefined = lazily(instantiateKQuant);

function instantiateKQuant(): WasmKQuant | null {
  const loaded = loadModule<KQuantExports>(KQUANT_WASM_BASE64);
  if (loaded === null) return null;
  const { exports, base } = loaded;
  return {
    pick(data, cols, blockSize, bits, importance, scaleMax, minMax, p) {
      const blocksPerRow = cols / blockSize;
      const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / cols));
      const per = rowsPerChunk * blocksPerRow;
      const weights = base;
      const input = weights + cols * 4;
      const fitScale = input + rowsPerChunk * cols * 4;
      const fitMin = fitScale + per * 8;
      const d = fitMin + per * 8;
      const dmin = d + per * 4;
      const sc = dmin + per * 4;
      const mc = sc + per;
      const end = mc + per;
      const have = exports.memory.buffer.byteLength;
      if (end > have) exports.memory.grow(Math.ceil((end - have) / PAGE));
      const w = new Float32Array(exports.memory.buffer, weights, cols);
      if (importance === undefined) w.fill(1);
      else w.set(importance);
      const rows = data.length / cols;
      for (let first = 0; first < rows; first += rowsPerChunk) {
        const count = Math.min(rowsPerChunk, rows - first);
        const blocks = count * blocksPerRow;
        const b0 = first * blocksPerRow;
        const memory = exports.memory.buffer;
        new Float32Array(memory, input, count * cols).set(data.subarray(first * cols, (first + count) * cols));
        new Float64Array(memory, fitScale, blocks).set(p.fitScale.subarray(b0, b0 + blocks));
        new Float64Array(memory, fitMin, blocks).set(p.fitMin.subarray(b0, b0 + blocks));
        new Float32Array(memory, d, blocks).set(p.d.subarray(b0, b0 + blocks));
        new Float32Array(memory, dmin, blocks).set(p.dmin.subarray(b0, b0 + blocks));
        exports.kquant_pick(input, blocks, blockSize, bits, weights, blocksPerRow, fitScale, fitMin, d, dmin, scaleMax, minMax, sc, mc);
        p.sc.set(new Uint8Array(memory, sc, blocks), b0);
        p.mc.set(new Uint8Array(memory, mc, blocks), b0);
      }
    },
  };
}

/**
 * Compiles and instantiates a module from its base64 text (synchronously: each is under the
 * browsers' 4 KB limit), with `base` the first 64-byte-aligned address past its own data, where
 * inputs go. Null where WebAssembly SIMD is missing (or synchronous compilation is refused): the JS
 * loops do the work then.
 */
function loadModule<E extends { __heap_base: WebAssembly.Global }>(base64: string): { exports: E; base: number } | null {
  if (typeof WebAssembly !== 'object') return null;
  try {
    const binary = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const exports = new WebAssembly.Instance(new WebAssembly.Module(binary), {}).exports as unknown as E;
    return { exports, base: Math.ceil((exports.__heap_base.value as number) / 64) * 64 };
  } catch {
    return null;
  }
}

/** `make` run once, on first use; a null result (no WebAssembly) is kept and returned as undefined. */
function lazily<T>(make: () => T | null): () => T | undefined {
  let made: T | null | undefined;
  return () => {
    if (made === undefined) made = make();
    return made ?? undefined;
  };
}
