// Quantization kernels: the format table's layout, fast kernels against their slow references
// (with a named tolerance per bit width), and a round trip through packing for every format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { numberToFloat16 } from '../src/eval/numeric.js';
import { mulberry32 } from '../src/kernels/random.js';
import { packRows, packRowsRef, unpackRows, unpackRowsRef } from '../src/kernels/pack.js';
import {
  BLOCK_SIZES,
  QUANT_FORMATS,
  type QuantBits,
  blockStorage,
  codeBytesPerBlock,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  quantFormat,
} from '../src/kernels/quant-formats.js';
import {
  DEFAULT_HQQ,
  binarizeBlocks,
  dequantizeBlocks,
  lpError,
  quantizeBlocks,
  setHqqBackend,
  sqnrDb,
  ternarizeBlocks,
} from '../src/kernels/quantize-blocks.js';
import { dequantizeBlocksRef, quantizeBlocksRef, signBlocksRef } from '../src/kernels/quantize-blocks-ref.js';

/**
 * How far the fast kernel may stray from the reference: the fraction of codes allowed to differ
 * (by one step, where w/scale lands within float rounding of a tie, since the fast kernel
 * multiplies by 1/scale and the reference divides) and the largest dequantized difference in
 * steps. Lower widths have wider steps, so ties are rarer, not more frequent.
 */
const FAST_VS_REF: Record<QuantBits, { codeFraction: number; steps: number }> = {
  2: { codeFraction: 1e-3, steps: 1 },
  4: { codeFraction: 1e-3, steps: 1 },
  8: { codeFraction: 2e-3, steps: 1 },
};

/** The SQNR round-to-nearest must reach on Gaussian weights, per width, asymmetric block 32. */
const MIN_SQNR_DB: Record<QuantBits, number> = { 2: 7, 4: 18, 8: 40 };

function gaussian(count: number, seed: number, outliers = 0): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = 0.02 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  for (let i = 0; i < outliers; i++) out[Math.floor(random() * count)] *= 8;
  return out;
}

test('format table: ranges, elements per byte and bytes per block for every format and block size', () => {
  const expected: Record<string, [number, number, number]> = {
    int2: [-2, 1, 4],
    uint2: [0, 3, 4],
    int4: [-8, 7, 2],
    uint4: [0, 15, 2],
    int8: [-128, 127, 1],
    uint8: [0, 255, 1],
  };
  for (const fmt of Object.values(QUANT_FORMATS)) {
    assert.deepEqual([fmt.qmin, fmt.qmax, fmt.elementsPerByte], expected[fmt.name], fmt.name);
    assert.equal(quantFormat(fmt.bits, fmt.signed), fmt);
    for (const blockSize of BLOCK_SIZES) {
      // ggml-style layout assertion: a block of B codes of b bits is exactly B*b/8 bytes.
      assert.equal(codeBytesPerBlock(fmt, blockSize), (blockSize * fmt.bits) / 8, `${fmt.name} block ${blockSize}`);
    }
  }
  assert.deepEqual(
    BLOCK_SIZES.map((b) => codeBytesPerBlock(QUANT_FORMATS.uint4, b)),
    [8, 16, 32, 64, 128],
  );
  assert.deepEqual(
    BLOCK_SIZES.map((b) => codeBytesPerBlock(QUANT_FORMATS.uint2, b)),
    [4, 8, 16, 32, 64],
  );
  // q4 with float16 scales and packed 4-bit zero points: 4 + 16/32 + 4/32 bits per weight.
  assert.equal(blockStorage(QUANT_FORMATS.uint4, 32, 'float16', true).bitsPerWeight, 4.625);
  assert.equal(blockStorage(QUANT_FORMATS.uint4, 32, 'float16', false).bitsPerWeight, 4.5);
  assert.equal(blockStorage(QUANT_FORMATS.uint8, 128, 'float32', false).bitsPerWeight, 8.25);
  assert.throws(() => codeBytesPerBlock(QUANT_FORMATS.uint2, 6), /does not fill whole bytes/);
});

test('float16 conversion agrees with the readable one in eval/numeric.ts', () => {
  const random = mulberry32(7);
  const special = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e-8, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 6.1e-5, 0.1, 1 / 3];
  const values = [...special, ...Array.from({ length: 20000 }, () => (random() - 0.5) * 10 ** (random() * 12 - 8))];
  for (const v of values) {
    const x = Math.fround(v);
    assert.equal(float32ToFloat16Bits(x), numberToFloat16(x), `value ${x}`);
  }
  for (let bits = 0; bits < 0x7c00; bits += 7) assert.equal(float32ToFloat16Bits(float16BitsToFloat32(bits)), bits);
});

test('packing 2/4/8-bit codes matches the reference and round-trips, signed and unsigned', () => {
  const random = mulberry32(11);
  for (const bits of [2, 4, 8] as const) {
    for (const signed of [false, true]) {
      const fmt = quantFormat(bits, signed);
      for (const [rows, cols] of [[3, 64], [5, 7], [1, 1], [4, 33]] as const) {
        const codes = Array.from({ length: rows * cols }, () => fmt.qmin + Math.floor(random() * (fmt.qmax - fmt.qmin + 1)));
        const packed = packRows(codes, rows, cols, bits);
        assert.deepEqual(packed, packRowsRef(codes, rows, cols, bits), `${fmt.name} [${rows},${cols}] pack`);
        assert.equal(packed.length, rows * Math.ceil((cols * bits) / 8));
        assert.deepEqual(Array.from(unpackRows(packed, rows, cols, bits, signed)), codes, `${fmt.name} [${rows},${cols}] unpack`);
        assert.deepEqual(unpackRowsRef(packed, rows, cols, bits, signed), codes);
      }
    }
  }
  // LSB-first, as ONNX int4 raw_data: [1, -2] as int4 is 0xE1; [0,1,2,3] as uint2 is 0xE4.
  assert.deepEqual(Array.from(packRows([1, -2], 1, 2, 4)), [0xe1]);
  assert.deepEqual(Array.from(packRows([0, 1, 2, 3], 1, 4, 2)), [0xe4]);
});

test('block quantization: fast kernel against the reference, per width, RTN and HQQ', (t) => {
  // HQQ's JS loops are what the reference checks; its WebAssembly path (approximate powers) is
  // checked against them in quant-fast.test.ts.
  setHqqBackend('js');
  t.after(() => setHqqBackend('auto'));
  const rows = 24;
  const cols = 256;
  const data = gaussian(rows * cols, 3, 40);
  const summary: string[] = [];
  for (const bits of [2, 4, 8] as const) {
    for (const symmetric of [true, false]) {
      for (const scaleType of ['float32', 'float16'] as const) {
        for (const rounding of ['rtn', 'hqq'] as const) {
          for (const zeroPointType of symmetric ? (['integer'] as const) : (['integer', 'float'] as const)) {
            const options = { bits, blockSize: 32, symmetric, scaleType, rounding, zeroPointType, hqq: { iterations: 8 } };
            const label = `${bits}-bit ${symmetric ? 'sym' : 'asym'} ${scaleType} ${rounding} zp:${zeroPointType}`;
            const fast = quantizeBlocks(data, rows, cols, options);
            const ref = quantizeBlocksRef(data, rows, cols, options);
            const tolerance = FAST_VS_REF[bits];
            let differing = 0;
            for (let i = 0; i < fast.codes.length; i++) if (fast.codes[i] !== ref.codes[i]) differing++;
            assert.ok(differing / fast.codes.length <= tolerance.codeFraction, `${label}: ${differing} codes differ`);
            const a = dequantizeBlocks(fast);
            const b = dequantizeBlocksRef(ref);
            for (let i = 0; i < a.length; i++) {
              const step = Math.abs(fast.scales[Math.floor(i / 32)]);
              assert.ok(Math.abs(a[i] - b[i]) <= tolerance.steps * step * (1 + 1e-3) + 1e-12, `${label}: element ${i}`);
            }
            for (let i = 0; i < fast.scales.length; i++) {
              assert.ok(Math.abs(fast.scales[i] - ref.scales[i]) <= 1e-6 * Math.abs(ref.scales[i]) + 1e-12, `${label}: scale ${i}`);
            }
            summary.push(`${label}: ${sqnrDb(data, a).toFixed(1)} dB`);
          }
        }
      }
    }
  }
  console.log(summary.join('\n'));
});

test('round-to-nearest error is at most half a step inside the range, and SQNR per width', () => {
  const rows = 16;
  const cols = 128;
  const data = gaussian(rows * cols, 5);
  for (const bits of [2, 4, 8] as const) {
    const q = quantizeBlocks(data, rows, cols, { bits, blockSize: 32, symmetric: false });
    const out = dequantizeBlocks(q);
    for (let i = 0; i < data.length; i++) {
      const step = q.scales[Math.floor(i / 32)];
      assert.ok(Math.abs(out[i] - data[i]) <= step / 2 + 1e-7, `${bits}-bit element ${i}`);
    }
    const sqnr = sqnrDb(data, out);
    assert.ok(sqnr >= MIN_SQNR_DB[bits], `${bits}-bit SQNR ${sqnr.toFixed(1)} dB < ${MIN_SQNR_DB[bits]}`);
    // Zero points are codes, scales non-negative for asymmetric blocks.
    for (const z of q.zeroPoints) assert.ok(Number.isInteger(z) && z >= 0 && z <= 2 ** bits - 1);
  }
});

test('HQQ refinement never loses to round-to-nearest on its own lp objective, and helps at 2-4 bits', () => {
  const rows = 32;
  const cols = 128;
  const data = gaussian(rows * cols, 9, 60);
  for (const bits of [2, 4] as const) {
    for (const zeroPointType of ['integer', 'float'] as const) {
      const rtn = quantizeBlocks(data, rows, cols, { bits, blockSize: 64, symmetric: false, zeroPointType, rounding: 'rtn' });
      const hqq = quantizeBlocks(data, rows, cols, { bits, blockSize: 64, symmetric: false, zeroPointType, rounding: 'hqq' });
      let rtnTotal = 0;
      let hqqTotal = 0;
      for (let b = 0; b < rtn.scales.length; b++) {
        const block = data.subarray(b * 64, b * 64 + 64);
        rtnTotal += lpError(block, rtn.scales[b], rtn.zeroPoints[b], 2 ** bits - 1, DEFAULT_HQQ.p);
        hqqTotal += lpError(block, hqq.scales[b], hqq.zeroPoints[b], 2 ** bits - 1, DEFAULT_HQQ.p);
      }
      const rtnSqnr = sqnrDb(data, dequantizeBlocks(rtn));
      const hqqSqnr = sqnrDb(data, dequantizeBlocks(hqq));
      console.log(`${bits}-bit zp:${zeroPointType}: lp ${rtnTotal.toFixed(4)} -> ${hqqTotal.toFixed(4)}, SQNR ${rtnSqnr.toFixed(2)} -> ${hqqSqnr.toFixed(2)} dB`);
      assert.ok(hqqTotal < rtnTotal, `${bits}-bit ${zeroPointType}: HQQ lp error ${hqqTotal} >= RTN ${rtnTotal}`);
    }
  }
});

test('ternary and binary blocks in the 2-bit format match their definitions', () => {
  const rows = 8;
  const cols = 64;
  const data = gaussian(rows * cols, 13);
  for (const scaleType of ['float32', 'float16'] as const) {
    const ternary = ternarizeBlocks(data, rows, cols, 32, scaleType);
    assert.deepEqual(ternary, signBlocksRef(data, rows, cols, 32, scaleType, 0.7));
    const binary = binarizeBlocks(data, rows, cols, 32, scaleType);
    assert.deepEqual(binary, signBlocksRef(data, rows, cols, 32, scaleType, undefined));
    assert.ok(ternary.codes.every((c) => c >= 1 && c <= 3));
    assert.ok(binary.codes.every((c) => c === 1 || c === 3));
    // About 40-50% of Gaussian values fall under 0.7 * mean|w| (0.7*0.8 sigma = 0.56 sigma).
    const zeros = ternary.codes.filter((c) => c === 2).length / ternary.codes.length;
    assert.ok(zeros > 0.35 && zeros < 0.5, `ternary zero fraction ${zeros}`);
    const t = sqnrDb(data, dequantizeBlocks(ternary));
    const b = sqnrDb(data, dequantizeBlocks(binary));
    console.log(`${scaleType}: ternary ${t.toFixed(2)} dB, binary ${b.toFixed(2)} dB`);
    assert.ok(t > b && b > 3, `ternary ${t} dB, binary ${b} dB`);
  }
});

test('every format round-trips through packing: quantize, pack, unpack, dequantize', () => {
  const rows = 6;
  const cols = 96;
  const data = gaussian(rows * cols, 17);
  for (const bits of [2, 4, 8] as const) {
    for (const symmetric of [true, false]) {
      const q = quantizeBlocks(data, rows, cols, { bits, blockSize: 16, symmetric, scaleType: 'float16' });
      const direct = dequantizeBlocks(q);
      // Signed storage (int4 etc.) holds code - midpoint; unsigned storage holds the code.
      const fmt = quantFormat(bits, symmetric);
      const mid = symmetric ? 2 ** (bits - 1) : 0;
      const stored = Array.from(q.codes, (c) => c - mid);
      assert.ok(stored.every((s) => s >= fmt.qmin && s <= fmt.qmax), fmt.name);
      const back = unpackRows(packRows(stored, rows, cols, bits), rows, cols, bits, symmetric);
      const zeros = packRows(Array.from(q.zeroPoints, (z) => z - mid), rows, cols / 16, bits);
      const zeroBack = unpackRows(zeros, rows, cols / 16, bits, symmetric);
      for (let i = 0; i < data.length; i++) {
        const b = Math.floor(i / 16);
        assert.equal((back[i] - zeroBack[b]) * q.scales[b], direct[i], `${fmt.name} element ${i}`);
      }
    }
  }
});

test('chunked SQNR (blocks and float16 bits) equals SQNR of the full dequantized copy', async () => {
  const { blocksSqnrDb, narrowSqnrDb, sqnrDb } = await import('../src/kernels/sqnr.js');
  const { quantizeBlocks, dequantizeBlocks } = await import('../src/kernels/quantize-blocks.js');
  const { float32ToFloat16, float16ToFloat32 } = await import('../src/kernels/float16.js');
  // More than one chunk (2^20 elements), rows not a multiple of the chunk.
  const rows = 700;
  const cols = 2048;
  const data = new Float32Array(rows * cols);
  let state = 7;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 2 ** 31 - 1;
  }
  for (const [bits, symmetric] of [[4, true], [4, false], [8, false], [2, true]] as const) {
    const q = quantizeBlocks(data, rows, cols, { bits, blockSize: 32, symmetric });
    assert.equal(blocksSqnrDb(data, q), sqnrDb(data, dequantizeBlocks(q)), `${bits}-bit ${symmetric ? 'symmetric' : 'asymmetric'}`);
  }
  const half = float32ToFloat16(data).bits;
  assert.equal(narrowSqnrDb(data, half, float16ToFloat32), sqnrDb(data, float16ToFloat32(half)));
});
