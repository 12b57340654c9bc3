// The fast block quantizers against their references: WebAssembly SIMD round to nearest against
// the JS loops (bit for bit), SIMD packing against the reference packing, worker threads against
// one thread (bit for bit), the scale search against a brute-force grid, and the two-level
// (k-quant) scales against their definition.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packRows, packRowsRef } from '../src/kernels/pack.js';
import { type QuantBits, type ScaleType, roundToScaleType } from '../src/kernels/quant-formats.js';
import { dequantizeBlocks, quantizeBlocks, rtnBlocks, rtnBlocksJs, setHqqBackend, setRtnBackend, sqnrDb } from '../src/kernels/quantize-blocks.js';
import { type RtnMode, wasmQuantizer } from '../src/kernels/quantize-blocks-wasm.js';
import { kquantBitsPerWeight, kquantBlocks, setKQuantBackend } from '../src/kernels/quantize-kquant.js';
import { searchBlocks, setSearchBackend } from '../src/kernels/quantize-search.js';
import { gridSearchBlockRef } from '../src/kernels/quantize-search-ref.js';
import { mulberry32 } from '../src/kernels/random.js';
import { QuantizeWorkers } from '../src/node/quantize-workers.js';

function gaussian(count: number, seed: number, sigma = 1): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/** Gaussian rows with the awkward blocks: all zero, constant, max = -min ties, tiny, huge, one value. */
function awkward(blockSize: number, blocks: number, seed: number): Float32Array {
  const data = gaussian(blockSize * blocks, seed, 0.05);
  data.fill(0, 0, blockSize);
  data.fill(0.3, blockSize, 2 * blockSize);
  data.fill(-0.7, 2 * blockSize, 3 * blockSize);
  data[3 * blockSize] = 0.5;
  data[3 * blockSize + 5] = -0.5;
  for (let i = 4 * blockSize; i < 5 * blockSize; i++) data[i] *= 1e-30;
  for (let i = 5 * blockSize; i < 6 * blockSize; i++) data[i] *= 1e20;
  data.fill(0, 6 * blockSize, 7 * blockSize);
  data[6 * blockSize + 3] = -2;
  // Values on exact ties of the code grid: multiples of half a step of a block [-8, 7].
  for (let i = 0; i < blockSize; i++) data[7 * blockSize + i] = -8 + ((i * 0.5) % 15);
  return data;
}

test('round to nearest: WebAssembly SIMD equals the JS loops bit for bit (codes, packed codes, scales, zero points)', () => {
  const wasm = wasmQuantizer();
  assert.ok(wasm, 'WebAssembly SIMD is available in Node 20');
  for (const bits of [2, 4, 8] as QuantBits[]) {
    for (const blockSize of [16, 32, 64]) {
      const blocks = 40;
      const data = awkward(blockSize, blocks, bits * 100 + blockSize);
      for (const mode of ['symmetric', 'integer-zero', 'float-zero'] as RtnMode[]) {
        for (const half of [false, true]) {
          for (const packed of [false, true]) {
            const bytes = packed ? (blocks * blockSize * bits) / 8 : blocks * blockSize;
            const outs = [0, 1].map(() => ({ codes: new Uint8Array(bytes), scales: new Float32Array(blocks), zeros: new Float32Array(blocks) }));
            rtnBlocksJs(data, 0, blocks, blockSize, bits, mode, half, outs[0].codes, 0, packed, outs[0].scales, outs[0].zeros);
            wasm.rtn(data, 0, blocks, blockSize, bits, mode, half, outs[1].codes, 0, packed, outs[1].scales, outs[1].zeros);
            const label = `${bits} bits, block ${blockSize}, ${mode}, ${half ? 'fp16' : 'fp32'}, ${packed ? 'packed' : 'codes'}`;
            assert.deepEqual(outs[1].codes, outs[0].codes, label);
            assert.deepEqual(outs[1].scales, outs[0].scales, label);
            assert.deepEqual(outs[1].zeros, outs[0].zeros, label);
            if (packed) {
              const unpacked = new Uint8Array(blocks * blockSize);
              rtnBlocksJs(data, 0, blocks, blockSize, bits, mode, half, unpacked, 0, false, new Float32Array(blocks), new Float32Array(blocks));
              assert.deepEqual(outs[0].codes, packRowsRef(unpacked, 1, unpacked.length, bits), `${label}: packing`);
            }
          }
        }
      }
    }
  }
});

test('round to nearest: a slice of blocks lands where the whole run puts it; quantizeBlocks is the same on both backends', () => {
  const data = gaussian(64 * 32, 3);
  const whole = { codes: new Uint8Array(data.length), scales: new Float32Array(64), zeros: new Float32Array(64) };
  rtnBlocks(data, 0, 64, 32, 4, 'integer-zero', false, whole.codes, 0, false, whole.scales, whole.zeros);
  const part = { codes: new Uint8Array(data.length), scales: new Float32Array(64), zeros: new Float32Array(64) };
  rtnBlocks(data, 10, 20, 32, 4, 'integer-zero', false, part.codes, 10 * 32, false, part.scales, part.zeros);
  assert.deepEqual(part.codes.subarray(320, 960), whole.codes.subarray(320, 960));
  assert.deepEqual(part.scales.subarray(10, 30), whole.scales.subarray(10, 30));
  assert.equal(part.scales[9], 0);
  try {
    setRtnBackend('js');
    const js = quantizeBlocks(data, 32, 64, { bits: 4, blockSize: 16, symmetric: true });
    setRtnBackend('auto');
    assert.deepEqual(quantizeBlocks(data, 32, 64, { bits: 4, blockSize: 16, symmetric: true }), js);
    // A block size that is not a multiple of 16 runs the JS loops (per-channel int8 over 120 columns).
    const odd = quantizeBlocks(data.subarray(0, 120 * 8), 8, 120, { bits: 8, blockSize: 120, symmetric: true });
    assert.ok(sqnrDb(data.subarray(0, 960), dequantizeBlocks(odd)) > 38);
  } finally {
    setRtnBackend('auto');
  }
});

/**
 * HQQ in WebAssembly against its JS loops: powers are approximated there (relative error ~2e-5),
 * so an iteration can be chosen differently where two errors are that close. Allowed: this share
 * of codes differing, scales this far apart (relative), SQNR this far apart.
 */
const HQQ_WASM_VS_JS = { codeFraction: 1e-3, scale: 0.01, db: 0.01 };

test('HQQ: WebAssembly SIMD against the JS loops within HQQ_WASM_VS_JS, every width and zero-point form', (t) => {
  t.after(() => setHqqBackend('auto'));
  const rows = 32;
  const cols = 512;
  const data = gaussian(rows * cols, 4, 0.02);
  for (const bits of [2, 4, 8] as QuantBits[]) {
    for (const [symmetric, zeroPointType] of [[true, 'integer'], [false, 'integer'], [false, 'float']] as const) {
      for (const blockSize of [16, 64]) {
        const o = { bits, blockSize, symmetric, zeroPointType, rounding: 'hqq' as const };
        const label = `${bits} bits, ${symmetric ? 'symmetric' : zeroPointType} zero points, block ${blockSize}`;
        setHqqBackend('js');
        const js = quantizeBlocks(data, rows, cols, o);
        setHqqBackend('auto');
        const wasm = quantizeBlocks(data, rows, cols, o);
        let differing = 0;
        for (let i = 0; i < js.codes.length; i++) if (js.codes[i] !== wasm.codes[i]) differing++;
        assert.ok(differing / js.codes.length <= HQQ_WASM_VS_JS.codeFraction, `${label}: ${differing} codes differ`);
        for (let b = 0; b < js.scales.length; b++) {
          assert.ok(Math.abs(js.scales[b] - wasm.scales[b]) <= HQQ_WASM_VS_JS.scale * Math.abs(js.scales[b]), `${label}: scale ${b}`);
        }
        const gap = Math.abs(sqnrDb(data, dequantizeBlocks(js)) - sqnrDb(data, dequantizeBlocks(wasm)));
        assert.ok(gap <= HQQ_WASM_VS_JS.db, `${label}: SQNR differs by ${gap} dB`);
      }
    }
  }
});

test('packing through WebAssembly equals the reference, masking codes to their width', () => {
  const random = mulberry32(5);
  for (const bits of [2, 4, 8] as QuantBits[]) {
    for (const [rows, cols] of [[3, 64], [7, 36], [1, 1000], [5, 7]]) {
      // Bytes beyond the width (two's complement of signed codes) keep only their low bits.
      const codes = Uint8Array.from({ length: rows * cols }, () => Math.floor(random() * 256));
      assert.deepEqual(packRows(codes, rows, cols, bits), packRowsRef(Array.from(codes, (c) => c & ((1 << bits) - 1)), rows, cols, bits), `${bits} bits [${rows}, ${cols}]`);
    }
  }
});

test('worker threads give the single-threaded result bit for bit (round to nearest, search, two-level, HQQ)', async () => {
  const rows = 64;
  const cols = 256;
  const data = gaussian(rows * cols, 9, 0.02);
  const pool = new QuantizeWorkers(2);
  try {
    const rtn = { bits: 4 as const, blockSize: 32, symmetric: false };
    const single = quantizeBlocks(data, rows, cols, rtn);
    assert.deepEqual(await pool.quantize(data, rows, cols, rtn), single);
    const packed = await pool.rtnPacked(data, rows, cols, rtn);
    assert.deepEqual(packed.packed, packRowsRef(single.codes, rows, cols, 4));
    assert.deepEqual([packed.scales, packed.zeroPoints], [single.scales, single.zeroPoints]);
    const search = { bits: 2 as const, blockSize: 16, symmetric: false, zeroPointType: 'float' as const, scaleType: 'float16' as ScaleType };
    assert.deepEqual(await pool.quantize(data, rows, cols, { ...search, rounding: 'search' }), searchBlocks(data, rows, cols, search));
    const kq = { bits: 4 as const, blockSize: 32, superBlock: 4, scaleBits: 6, minBits: 6, superScaleType: 'float16' as const };
    assert.deepEqual({ ...(await pool.kquant(data, rows, cols, kq)) }, { ...kquantBlocks(data, rows, cols, kq) });
    const hqq = { bits: 4 as const, blockSize: 32, symmetric: true, rounding: 'hqq' as const };
    const few = data.subarray(0, 8 * cols);
    assert.deepEqual(await pool.quantize(few, 8, cols, hqq), quantizeBlocks(few, 8, cols, hqq));
  } finally {
    await pool.close();
  }
});

test('scale search: never worse than round to nearest per block, within 3% of a brute-force grid on average (JS and WebAssembly)', (t) => {
  t.after(() => setSearchBackend('auto'));
  const blockSize = 32;
  const rows = 16;
  const data = gaussian(rows * blockSize, 21);
  for (const [backend, bits] of [['js', 2], ['js', 4], ['auto', 2], ['auto', 4]] as const) {
    setSearchBackend(backend);
    for (const [symmetric, zeroPointType, form] of [[true, 'integer', 'symmetric'], [false, 'integer', 'integer'], [false, 'float', 'float']] as const) {
      const o = { bits, blockSize, symmetric, zeroPointType };
      const rtn = dequantizeBlocks(quantizeBlocks(data, rows, blockSize, o));
      const searched = dequantizeBlocks(searchBlocks(data, rows, blockSize, o));
      let searchTotal = 0;
      let gridTotal = 0;
      for (let b = 0; b < rows; b++) {
        const block = Array.from(data.subarray(b * blockSize, (b + 1) * blockSize));
        const errorOf = (approx: Float32Array) => block.reduce((s, v, i) => s + (v - approx[b * blockSize + i]) ** 2, 0);
        const mine = errorOf(searched);
        assert.ok(mine <= errorOf(rtn) * (1 + 1e-6), `${backend} ${bits} bits ${form}, block ${b}: search ${mine} > rtn ${errorOf(rtn)}`);
        searchTotal += mine;
        gridTotal += gridSearchBlockRef(block, new Array(blockSize).fill(1), bits, form).error;
      }
      assert.ok(searchTotal <= gridTotal * 1.03, `${backend} ${bits} bits ${form}: search ${searchTotal} vs grid ${gridTotal}`);
    }
  }
});

/** The search in WebAssembly (float32 sums) against its JS loops (float64 sums): SQNR this close. */
const SEARCH_WASM_VS_JS_DB = 0.01;

test('scale search: WebAssembly SIMD against the JS loops within SEARCH_WASM_VS_JS_DB, every form, with and without importance', (t) => {
  t.after(() => setSearchBackend('auto'));
  const rows = 32;
  const cols = 512;
  const data = gaussian(rows * cols, 8, 0.02);
  const importance = Float32Array.from({ length: cols }, (_, c) => 1 + (c % 7));
  for (const bits of [2, 4, 8] as QuantBits[]) {
    for (const [symmetric, zeroPointType] of [[true, 'integer'], [false, 'integer'], [false, 'float']] as const) {
      for (const weights of [undefined, importance]) {
        const o = { bits, blockSize: 32, symmetric, zeroPointType, importance: weights };
        const label = `${bits} bits, ${symmetric ? 'symmetric' : zeroPointType} zero points${weights ? ', weighted' : ''}`;
        setSearchBackend('js');
        const js = sqnrDb(data, dequantizeBlocks(searchBlocks(data, rows, cols, o)));
        setSearchBackend('auto');
        const wasm = sqnrDb(data, dequantizeBlocks(searchBlocks(data, rows, cols, o)));
        assert.ok(Math.abs(js - wasm) <= SEARCH_WASM_VS_JS_DB, `${label}: JS ${js} dB, WebAssembly ${wasm} dB`);
      }
    }
  }
});

test('scale search with importance: the weighted columns get less error than without weights', () => {
  const rows = 64;
  const cols = 64;
  const data = gaussian(rows * cols, 33);
  const importance = Float32Array.from({ length: cols }, (_, c) => (c % 8 === 0 ? 50 : 1));
  const o = { bits: 2 as const, blockSize: 16, symmetric: false, zeroPointType: 'float' as const };
  const plain = dequantizeBlocks(searchBlocks(data, rows, cols, o));
  const weighted = dequantizeBlocks(searchBlocks(data, rows, cols, { ...o, importance }));
  const error = (approx: Float32Array, w: Float32Array) => data.reduce((s, v, i) => s + w[i % cols] * (v - approx[i]) ** 2, 0);
  assert.ok(error(weighted, importance) < 0.9 * error(plain, importance), `${error(weighted, importance)} vs ${error(plain, importance)}`);
  assert.throws(() => searchBlocks(data, rows, cols, { ...o, importance: new Float32Array(3) }), /3 importance weights given for rows of 64/);
});

test('two-level scales: parameters follow from the stored codes as the graph computes them; Q4_K and Q2_K budgets and quality', () => {
  const rows = 128;
  const cols = 4096;
  const data = gaussian(rows * cols, 1);
  const q4 = { bits: 4 as const, blockSize: 32, superBlock: 8, scaleBits: 6, minBits: 6, superScaleType: 'float16' as const };
  const q2 = { bits: 2 as const, blockSize: 16, superBlock: 32, scaleBits: 4, minBits: 4, superScaleType: 'float16' as const };
  assert.equal(kquantBitsPerWeight(q4), 4.5);
  assert.equal(kquantBitsPerWeight(q2), 2.5625);
  for (const [o, minDb] of [[q4, 22.9], [q2, 10.6]] as const) {
    const q = kquantBlocks(data, rows, cols, o);
    const padded = q.groupsPerRow * o.superBlock;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < q.blocksPerRow; j++) {
        const g = r * q.groupsPerRow + Math.floor(j / o.superBlock);
        const sc = q.scaleCodes[r * padded + j];
        const mc = q.minCodes[r * padded + j];
        assert.ok(sc >= 1 && sc < 2 ** o.scaleBits && mc < 2 ** o.minBits);
        assert.equal(q.superScales[g], roundToScaleType(q.superScales[g], 'float16'));
        const scale = Math.fround(q.superScales[g] * sc);
        assert.equal(q.scales[r * q.blocksPerRow + j], scale);
        assert.equal(q.zeroPoints[r * q.blocksPerRow + j], Math.fround(Math.fround(q.superMins[g] * mc) / scale));
      }
    }
    const db = sqnrDb(data, dequantizeBlocks(q));
    assert.ok(db >= minDb, `${o.bits} bits: ${db} dB < ${minDb}`);
  }
});

test('two-level codes: WebAssembly SIMD against the JS loops within SEARCH_WASM_VS_JS_DB (codes near the rounded ones, errors summed in float32)', (t) => {
  t.after(() => setKQuantBackend('auto'));
  const rows = 16;
  const cols = 1024;
  const data = gaussian(rows * cols, 12, 0.03);
  for (const o of [
    { bits: 4 as const, blockSize: 32, superBlock: 8, scaleBits: 6, minBits: 6, superScaleType: 'float16' as const },
    { bits: 2 as const, blockSize: 16, superBlock: 32, scaleBits: 4, minBits: 4, superScaleType: 'float16' as const, importance: Float32Array.from({ length: cols }, (_, c) => 1 + (c % 5)) },
  ]) {
    setKQuantBackend('js');
    const js = kquantBlocks(data, rows, cols, o);
    setKQuantBackend('auto');
    const wasm = kquantBlocks(data, rows, cols, o);
    assert.deepEqual(wasm.superScales, js.superScales, `${o.bits} bits: d is chosen before the codes`);
    const gap = Math.abs(sqnrDb(data, dequantizeBlocks(js)) - sqnrDb(data, dequantizeBlocks(wasm)));
    assert.ok(gap <= SEARCH_WASM_VS_JS_DB, `${o.bits} bits: SQNR differs by ${gap} dB`);
  }
});
