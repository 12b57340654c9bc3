// The two-level (k-quant) MatMulNBits layout (--rounding kquant) against onnxruntime: the stored
// codes are decoded here from the layout's definition (matmul-nbits-kquant.ts header) and the
// runtime's output, with the scale graph folded ('basic') and not folded ('disabled'), must match
// A @ W computed in JS; bits per weight are counted from the stored tensors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { float16BitsToFloat32 } from '../src/kernels/quant-formats.js';
import { unpackRowsRef } from '../src/kernels/pack.js';
import { mulberry32 } from '../src/kernels/random.js';
import { quantizeMatMuls } from '../src/methods/quantize/matmul-nbits.js';
import { quantizeWeightsOnly } from '../src/methods/quantize/weight-only.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { ModelSession } from '../src/runtime/session.js';

function gaussian(count: number, seed: number, sigma: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: count }, () => sigma * Math.sqrt(-2 * Math.log(Math.max(random(), 1e-12))) * Math.cos(2 * Math.PI * random()));
}

function matmulModel(w: Float32Array, K: number, N: number): Model {
  const b = new GraphBuilder();
  const a = b.input('A', DataType.FLOAT, [3, K]);
  b.node('MatMul', [a, b.tensor(Tensor.fromArray('W', DataType.FLOAT, [K, N], w))], [], { outputs: ['Y'], name: 'mm' });
  b.output('Y', DataType.FLOAT, [3, N]);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

/** The one stored constant whose name ends with `suffix`. */
function stored(graph: Graph, suffix: string): Tensor {
  const names = graph.initializers.map((t) => t.name).filter((n) => n.endsWith(suffix));
  assert.equal(names.length, 1, `one constant named *${suffix}: ${names.join(', ')}`);
  const t = constantValue(graph, names[0]);
  assert.ok(t);
  return t;
}

/** W [K, N] from the layout's definition: value = code * d * sc - dmin * mc, in the graph's float32 steps. */
function decodeKQuant(graph: Graph, bits: number, K: number, N: number, blockSize: number, superBlock: number, scaleBits: number): Float32Array {
  const nBlocks = Math.ceil(K / blockSize);
  const P = Math.ceil(nBlocks / superBlock) * superBlock;
  const codes = unpackRowsRef(stored(graph, '_packed').bytes(), N, nBlocks * blockSize, bits as 2 | 4, false);
  const blockBytes = stored(graph, '_block_codes').bytes();
  const high = scaleBits === 6 ? unpackRowsRef(stored(graph, '_min_high').bytes(), 1, N * P, 4, false) : undefined;
  const half = (suffix: string) => Array.from(new Uint16Array(stored(graph, suffix).data() as Uint16Array), float16BitsToFloat32);
  const d = half('_scales_super');
  const dmin = half('_mins_super');
  const w = new Float32Array(K * N);
  const f = Math.fround;
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < nBlocks; j++) {
      const byte = blockBytes[n * P + j];
      const sc = byte % 2 ** scaleBits;
      const mc = Math.floor(byte / 2 ** scaleBits) + (high ? high[n * P + j] * 2 ** (8 - scaleBits) : 0);
      const g = n * (P / superBlock) + Math.floor(j / superBlock);
      const scale = f(d[g] * sc);
      const zero = f(f(dmin[g] * mc) / scale);
      for (let k = j * blockSize; k < Math.min(K, (j + 1) * blockSize); k++) w[k * N + n] = (codes[n * nBlocks * blockSize + k] - zero) * scale;
    }
  }
  return w;
}

async function run(model: Model, a: Float32Array, K: number, optimization: 'basic' | 'disabled'): Promise<Float32Array> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 1, graphOptimization: optimization });
  try {
    const out = await session.run({ A: new nodeOrt.Tensor('float32', a, [3, K]) });
    return out.Y.data as Float32Array;
  } finally {
    await session.release();
  }
}

function matmul(a: Float32Array, w: Float32Array, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) y[m * N + n] += a[m * K + k] * w[k * N + n];
  return y;
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

test('kquant MatMulNBits: onnxruntime runs the two-level scales (folded and not) and equals A @ W decoded from the stored codes', async () => {
  const cases = [
    { bits: 4 as const, blockSize: 32, superBlock: 8, scaleBits: 6, K: 512, N: 16, bpw: 4.5 },
    // K = 320: 10 blocks of 32 in a super-block of 8 leave a partial one (the Slice path).
    { bits: 4 as const, blockSize: 32, superBlock: 8, scaleBits: 6, K: 320, N: 12, bpw: undefined },
    { bits: 2 as const, blockSize: 16, superBlock: 32, scaleBits: 4, K: 512, N: 16, bpw: 2.5625 },
    { bits: 2 as const, blockSize: 16, superBlock: 32, scaleBits: 4, K: 200, N: 8, bpw: undefined },
  ];
  for (const c of cases) {
    const label = `${c.bits} bits, K ${c.K}`;
    const w = gaussian(c.K * c.N, c.K + c.bits, 0.05);
    const a = gaussian(3 * c.K, 7, 1);
    const model = matmulModel(w, c.K, c.N);
    const report = quantizeMatMuls(model, { bits: c.bits, blockSize: c.blockSize, symmetric: false, rounding: 'kquant' });
    assert.equal(report.stats.quantized, 1, label);
    const node = model.graph.nodes.find((n) => n.opType === 'MatMulNBits');
    assert.ok(node && node.inputs.length === 4, `${label}: MatMulNBits with scales and float zero points`);
    assert.equal(node.attrInt('block_size', 0), c.blockSize);
    const expected = matmul(a, decodeKQuant(model.graph, c.bits, c.K, c.N, c.blockSize, c.superBlock, c.scaleBits), 3, c.K, c.N);
    for (const level of ['basic', 'disabled'] as const) {
      const error = maxRelativeError(await run(model, a, c.K, level), expected);
      assert.ok(error < 1e-4, `${label}, optimization ${level}: onnxruntime vs JS ${error}`);
    }
    const t = report.tensors[0];
    if (c.bpw !== undefined) assert.equal((t.bytesAfter * 8) / (c.K * c.N), c.bpw, `${label}: bits per weight`);
    // Against the float weights: the decoded W is close (the report's SQNR is of this W).
    let signal = 0;
    let noise = 0;
    const decoded = decodeKQuant(model.graph, c.bits, c.K, c.N, c.blockSize, c.superBlock, c.scaleBits);
    for (let i = 0; i < w.length; i++) {
      signal += w[i] ** 2;
      noise += (w[i] - decoded[i]) ** 2;
    }
    const db = 10 * Math.log10(signal / noise);
    // Padded blocks count their padding's rounding too (as the plain MatMulNBits writer does).
    assert.ok(Math.abs(db - t.sqnrDb) < (c.K % c.blockSize === 0 ? 1e-6 : 0.1), `${label}: report SQNR ${t.sqnrDb} vs ${db}`);
    assert.ok(db > (c.bits === 4 ? 21 : 9.5), `${label}: SQNR ${db}`);
  }
});

test('kquant and search through the weight-only method: better SQNR than round to nearest at the same layout; gptq refuses them', async () => {
  const K = 256;
  const N = 64;
  const w = gaussian(K * N, 3, 0.05);
  const sqnr = (rounding: 'rtn' | 'search' | 'kquant') => {
    const model = matmulModel(w, K, N);
    return quantizeWeightsOnly(model, { method: 'int4', symmetric: false, rounding }).tensors[0];
  };
  const rtn = sqnr('rtn');
  const search = sqnr('search');
  const kquant = sqnr('kquant');
  assert.equal(search.bytesAfter, rtn.bytesAfter, 'search keeps the layout');
  assert.ok(search.sqnrDb > rtn.sqnrDb + 0.2, `search ${search.sqnrDb} vs rtn ${rtn.sqnrDb}`);
  assert.ok(kquant.bytesAfter < rtn.bytesAfter, `kquant ${kquant.bytesAfter} B vs rtn ${rtn.bytesAfter} B`);
  assert.ok(kquant.sqnrDb > rtn.sqnrDb + 0.8, `kquant ${kquant.sqnrDb} vs rtn ${rtn.sqnrDb}`);
  const model = matmulModel(w, K, N);
  await assert.rejects(
    async () => {
      const { weightOnlyPass } = await import('../src/methods/quantize/weight-only.js');
      await weightOnlyPass.run(model, { method: 'int4', rounding: 'kquant', gptq: { calibration: undefined as never } }, {});
    },
    /gptq and kquant are two roundings: choose one/,
  );
});

test('recipes take rounding search and kquant (and name the choices when the value is wrong)', () => {
  for (const rounding of ['search', 'kquant'] as const) {
    const step = parseRecipe(`steps:\n  - quantize: {method: int4, rounding: ${rounding}}\n`, 'r.yaml').steps[0];
    assert.ok(step.kind === 'quantize' && step.options.rounding === rounding, rounding);
  }
  assert.throws(() => parseRecipe('steps:\n  - quantize: {method: int4, rounding: bogus}\n', 'r.yaml'), /^Error: r\.yaml: 'steps\.0\.quantize\.rounding': .*"search"\|"kquant"/);
});
