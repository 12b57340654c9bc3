// Dynamic int8 against onnxruntime: tiny MatMul, Gemm, Conv and LSTM models are quantized, and
// onnxruntime-node's output must match the dynamic-quantized computation done here in JS from the
// stored codes (DynamicQuantizeLinear as the ONNX spec defines it, integer products, scales), and
// stay close to float32. Then the real models: each quantizes, loads and runs in onnxruntime-node
// and onnxruntime-web, keeps a cosine floor against float32, and stores its weights in ~0.25x.
import { cosineSimilarity as cosine } from '../src/eval/metrics.js';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { roundHalfEven } from '../src/kernels/quantize-blocks.js';
import { type DynamicInt8Options, quantizeDynamicInt8 } from '../src/methods/quantize/dynamic-int8.js';
import { codeRange, groupByAxes, quantizeLinearWeight } from '../src/methods/quantize/dynamic-int8-weights.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import type { QuantizeCommandReport as QuantizeReport } from '../src/pipeline/quantize-report.js';
import { spawnShrink } from './helpers/cli.js';
import { CLS, REAL_MODELS, type RealModelKey } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';
import { floats, pseudoRandom } from './helpers/tensors.js';

/** onnxruntime against the JS reference, relative to the output's largest magnitude. */
const RUNTIME_VS_JS = 1e-3;

function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  let peak = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    peak = Math.max(peak, Math.abs(expected[i]));
  }
  return worst / peak;
}

/** DynamicQuantizeLinear as ONNX defines it: uint8, range widened to hold 0, ties to even. */
function dynamicQuantize(x: Float32Array): {
  q: Float64Array;
  scale: number;
  zero: number;
} {
  let lo = 0;
  let hi = 0;
  for (const v of x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const scale = Math.fround((hi - lo) / 255);
  const zero = Math.min(255, Math.max(0, roundHalfEven(-lo / scale)));
  const q = Float64Array.from(x, (v) => Math.min(255, Math.max(0, roundHalfEven(v / scale) + zero)));
  return { q, scale, zero };
}

function valuesOf(graph: Graph, name: string): number[] {
  const t = constantValue(graph, name);
  assert.ok(t !== undefined, `constant '${name}'`);
  return Array.from(t.data() as ArrayLike<number>, Number);
}

/** Y = (q(A) - a_zp) @ (B_q - b_zp) * a_scale * b_scale + bias, decoded from the DynamicQuantizeMatMul node. */
function referenceMatMul(model: Model, a: Float32Array, M: number): Float64Array {
  const node = model.graph.nodes.find((n) => n.opType === 'DynamicQuantizeMatMul');
  assert.ok(node !== undefined);
  const b = constantValue(model.graph, node.inputs[1]) as Tensor;
  const [K, N] = b.dims;
  const codes = valuesOf(model.graph, node.inputs[1]);
  const scales = valuesOf(model.graph, node.inputs[2]);
  const zeros = (node.inputs[3] ?? '') === '' ? [0] : valuesOf(model.graph, node.inputs[3]);
  const bias = (node.inputs[4] ?? '') === '' ? undefined : valuesOf(model.graph, node.inputs[4]);
  const qa = dynamicQuantize(a);
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      const zero = zeros.length === 1 ? zeros[0] : zeros[n];
      for (let k = 0; k < K; k++) sum += (qa.q[m * K + k] - qa.zero) * (codes[k * N + n] - zero);
      y[m * N + n] = sum * qa.scale * (scales.length === 1 ? scales[0] : scales[n]) + (bias?.[n] ?? 0);
    }
  }
  return y;
}

function matmulModel(K: number, N: number, seed: number): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['M', K]);
  // Columns of different magnitude, so per-channel scales matter.
  const w = pseudoRandom(K * N, seed).map((v, i) => v * (1 + (i % N) / 4));
  b.output(b.node('MatMul', [x, b.tensor(Tensor.fromArray('w', DataType.FLOAT, [K, N], w))]), DataType.FLOAT);
  return buildModel(b.graph);
}

const variants: [string, DynamicInt8Options][] = [
  ['int8 per tensor', { perChannel: false }],
  ['int8 per channel', { perChannel: true }],
  ['uint8 per channel (zero points)', { weightType: 'uint8', perChannel: true }],
  ['int8 reduce_range', { reduceRange: true }],
  ['uint8 reduce_range per tensor', { weightType: 'uint8', reduceRange: true, perChannel: false }],
];

for (const [label, options] of variants) {
  test(`MatMul -> DynamicQuantizeMatMul (${label}) matches the JS reference in onnxruntime`, async () => {
    const [M, K, N] = [6, 40, 24];
    const original = matmulModel(K, N, 3);
    const model = matmulModel(K, N, 3);
    const report = quantizeDynamicInt8(model, options);
    assert.equal(report.stats.quantized, 1);
    assert.deepEqual(
      model.graph.nodes.map((n) => n.opType),
      ['DynamicQuantizeMatMul'],
    );
    const node = model.graph.nodes[0];
    const codes = constantValue(model.graph, node.inputs[1]) as Tensor;
    assert.equal(codes.dataType, options.weightType === 'uint8' ? DataType.UINT8 : DataType.INT8);
    const { qmin, qmax } = codeRange(options.weightType ?? 'int8', options.reduceRange ?? false);
    const values = valuesOf(model.graph, node.inputs[1]);
    assert.ok(Math.min(...values) >= qmin && Math.max(...values) <= qmax, `codes in [${qmin}, ${qmax}]`);
    // Per channel: one scale per column; weights are 4x smaller (plus scales).
    assert.equal(valuesOf(model.graph, node.inputs[2]).length, (options.perChannel ?? true) ? N : 1);
    const scaleCount = (options.perChannel ?? true) ? N : 1;
    const zeroBytes = options.weightType === 'uint8' ? scaleCount : 0;
    assert.equal(report.tensors[0].bytesAfter, K * N + 4 * scaleCount + zeroBytes);
    const x = floats('x', [M, K], 9);
    const [y] = await runModel(model, [x]);
    const [y32] = await runModel(original, [x]);
    const expected = referenceMatMul(model, x.data() as Float32Array, M);
    const error = relativeError(y.data() as Float32Array, expected);
    assert.ok(error < RUNTIME_VS_JS, `onnxruntime vs JS reference: ${error}`);
    const c = cosine(y.data() as Float32Array, y32.data() as Float32Array);
    assert.ok(c > (options.reduceRange ? 0.999 : 0.9995), `cosine vs float32 ${c}`);
  });
}

test('per-channel weights beat per-tensor ones on columns of different magnitude', () => {
  const [K, N] = [64, 16];
  const w = pseudoRandom(K * N, 5).map((v, i) => v * 10 ** ((i % N) / 5));
  const perTensor = quantizeLinearWeight(w, groupByAxes([K, N], []), {
    type: 'int8',
    symmetric: true,
    reduceRange: false,
  });
  const perChannel = quantizeLinearWeight(w, groupByAxes([K, N], [1]), {
    type: 'int8',
    symmetric: true,
    reduceRange: false,
  });
  assert.ok(perChannel.sqnrDb > perTensor.sqnrDb + 6, `${perChannel.sqnrDb} vs ${perTensor.sqnrDb} dB`);
  // Reduce range costs about 6 dB (one bit).
  const reduced = quantizeLinearWeight(w, groupByAxes([K, N], [1]), {
    type: 'int8',
    symmetric: true,
    reduceRange: true,
  });
  assert.ok(Math.abs(perChannel.sqnrDb - reduced.sqnrDb - 6) < 1.5, `${perChannel.sqnrDb} vs ${reduced.sqnrDb} dB`);
});

function gemmModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['M', 32]);
  const w = b.tensor(floats('w', [12, 32], 21));
  const c = b.tensor(floats('c', [12], 22));
  b.output(b.node('Gemm', [x, w, c], [attr.int('transB', 1), attr.float('alpha', 0.5), attr.float('beta', 2)]), DataType.FLOAT);
  return buildModel(b.graph);
}

test('Gemm with transB, alpha, beta and bias -> DynamicQuantizeMatMul with the bias folded in', async () => {
  const model = gemmModel();
  quantizeDynamicInt8(model);
  assert.deepEqual(
    model.graph.nodes.map((n) => n.opType),
    ['DynamicQuantizeMatMul'],
  );
  const x = floats('x', [5, 32], 23);
  const [y] = await runModel(model, [x]);
  const [y32] = await runModel(gemmModel(), [x]);
  const error = relativeError(y.data() as Float32Array, referenceMatMul(model, x.data() as Float32Array, 5));
  assert.ok(error < RUNTIME_VS_JS, `onnxruntime vs JS reference: ${error}`);
  assert.ok(cosine(y.data() as Float32Array, y32.data() as Float32Array) > 0.9995);
});

test('the standard-op form (DynamicQuantizeLinear + MatMulInteger) computes the same as DynamicQuantizeMatMul', async () => {
  const ms = gemmModel();
  quantizeDynamicInt8(ms);
  const onnx = gemmModel();
  quantizeDynamicInt8(onnx, { matmulForm: 'onnx' });
  assert.deepEqual(onnx.graph.nodes.map((n) => n.opType).sort(), ['Add', 'Cast', 'DynamicQuantizeLinear', 'MatMulInteger', 'Mul', 'Mul']);
  assert.equal(onnx.opset('com.microsoft'), undefined);
  const x = floats('x', [5, 32], 24);
  const [a] = await runModel(ms, [x]);
  const [b] = await runModel(onnx, [x]);
  assert.ok(relativeError(b.data() as Float32Array, a.data() as Float32Array) < 1e-5);
});

function convModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 4, 9, 9]);
  // Output channels of very different scale, as after BatchNorm folding.
  const w = pseudoRandom(6 * 4 * 3 * 3, 31).map((v, i) => v * 4 ** Math.floor(i / 36));
  const weight = b.tensor(Tensor.fromArray('w', DataType.FLOAT, [6, 4, 3, 3], w));
  const bias = b.tensor(floats('bias', [6], 32));
  b.output(b.node('Conv', [x, weight, bias], [attr.ints('pads', [1, 1, 1, 1]), attr.ints('strides', [2, 2])]), DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

/** The float Conv on dequantized weights (and, for ConvInteger, dequantized activations). */
function dequantizedConv(weights: Float32Array, x: Tensor, quantizeX: boolean): Model {
  const model = convModel();
  const w = model.graph.initializers.find((t) => t.name === 'w') as Tensor;
  model.graph.initializers[model.graph.initializers.indexOf(w)] = Tensor.fromArray('w', DataType.FLOAT, w.dims, weights);
  model.graph.changed();
  if (quantizeX) {
    const { q, scale, zero } = dynamicQuantize(x.data() as Float32Array);
    (x.data() as Float32Array).set(Float32Array.from(q, (v) => (v - zero) * scale));
  }
  return model;
}

const CONV_FORM_OPS = {
  'cast-weights': ['Cast', 'Mul', 'Conv'],
  'dequantize-weights': ['DequantizeLinear', 'Conv'],
  'conv-integer': ['DynamicQuantizeLinear', 'ConvInteger', 'Cast', 'Mul', 'Mul', 'Add'],
} as const;

for (const form of ['cast-weights', 'dequantize-weights', 'conv-integer'] as const) {
  test(`Conv (${form}, per channel) matches float Conv on the dequantized operands`, async () => {
    const model = convModel();
    const report = quantizeDynamicInt8(model, { convForm: form });
    assert.equal(report.stats.quantized, 1);
    const ops = model.graph.nodes.map((n) => n.opType);
    assert.deepEqual(ops, CONV_FORM_OPS[form]);
    // Rebuild W from the stored codes and per-channel scales.
    const codesNode = model.graph.nodes.find((n) => ['ConvInteger', 'DequantizeLinear', 'Cast'].includes(n.opType));
    assert.ok(codesNode !== undefined);
    const codes = valuesOf(model.graph, codesNode.inputs[form === 'conv-integer' ? 1 : 0]);
    const scaleName = model.graph.initializers.find((t) => t.name.startsWith('w_scale'))?.name as string;
    const scales = valuesOf(model.graph, scaleName);
    assert.equal(scales.length, 6);
    const w = Float32Array.from(codes, (c, i) => c * scales[Math.floor(i / 36)]);
    const x = floats('x', [1, 4, 9, 9], 33);
    const [y] = await runModel(model, [x]);
    const [y32] = await runModel(convModel(), [x]);
    const xRef = floats('x', [1, 4, 9, 9], 33);
    const [expected] = await runModel(dequantizedConv(w, xRef, form === 'conv-integer'), [xRef]);
    const error = relativeError(y.data() as Float32Array, expected.data() as Float32Array);
    assert.ok(error < RUNTIME_VS_JS, `onnxruntime vs reference: ${error}`);
    assert.ok(cosine(y.data() as Float32Array, y32.data() as Float32Array) > 0.999);
  });
}

function lstmModel(): Model {
  const [I, H] = [8, 16];
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [5, 2, I]);
  // Weights as Constant nodes reached through Unsqueeze, the way Silero feeds its LSTM.
  const axes = b.constant(Tensor.fromArray('axes', DataType.INT64, [1], new BigInt64Array([0n])));
  const w = b.node('Unsqueeze', [b.constant(floats('W', [4 * H, I], 41, -0.5, 0.5)), axes]);
  const r = b.node('Unsqueeze', [b.constant(floats('R', [4 * H, H], 42, -0.5, 0.5)), axes]);
  const bias = b.constant(floats('B', [1, 8 * H], 43, -0.1, 0.1));
  const [y, h] = b.node('LSTM', [x, w, r, bias], [attr.int('hidden_size', H)], {
    outputs: 2,
  });
  b.output(y, DataType.FLOAT);
  b.output(h, DataType.FLOAT);
  return buildModel(b.graph);
}

test('LSTM -> DynamicQuantizeLSTM with transposed int8 weights, close to float32', async () => {
  const model = lstmModel();
  const report = quantizeDynamicInt8(model);
  assert.equal(report.stats.quantized, 1);
  // The Constant -> Unsqueeze chains that fed W and R are gone; only B's Constant stays.
  assert.deepEqual(
    model.graph.nodes.map((n) => n.opType),
    ['Constant', 'DynamicQuantizeLSTM'],
  );
  const node = model.graph.nodes[1];
  const wq = constantValue(model.graph, node.inputs[1]) as Tensor;
  assert.deepEqual(wq.dims, [1, 8, 64]);
  assert.deepEqual((constantValue(model.graph, node.inputs[8]) as Tensor).dims, [1, 64]);
  // W_q[0, i, g] * scale[g] reproduces W[g, i] within half a step.
  const original = floats('W', [64, 8], 41, -0.5, 0.5).data() as Float32Array;
  const codes = valuesOf(model.graph, node.inputs[1]);
  const scales = valuesOf(model.graph, node.inputs[8]);
  for (let g = 0; g < 64; g++) for (let i = 0; i < 8; i++) assert.ok(Math.abs(codes[i * 64 + g] * scales[g] - original[g * 8 + i]) <= scales[g] / 2 + 1e-7);
  const x = floats('x', [5, 2, 8], 44);
  const out = await runModel(model, [x]);
  const out32 = await runModel(lstmModel(), [x]);
  for (let k = 0; k < 2; k++) {
    const c = cosine(out[k].data() as Float32Array, out32[k].data() as Float32Array);
    assert.ok(c > 0.999, `output ${k} cosine ${c}`);
  }
});

test('bad options fail with one line naming the option', () => {
  assert.throws(
    () =>
      quantizeDynamicInt8(matmulModel(8, 8, 1), {
        weightType: 'int4' as never,
      }),
    /^Error: dynamic int8: weight type must be int8 or uint8, got 'int4'$/,
  );
  assert.throws(() => quantizeDynamicInt8(matmulModel(8, 8, 1), { ops: ['Gather'] }), /cannot quantize op type 'Gather'/);
});

test('excluded nodes and unselected op types stay float, with the reason', () => {
  const model = convModel();
  const report = quantizeDynamicInt8(model, { ops: ['MatMul'] });
  assert.equal(report.stats.quantized, 0);
  assert.ok(report.warnings.some((w) => w.code === 'op-not-selected'));
  assert.ok(report.warnings.some((w) => w.code === 'nothing-quantized'));
  const excluded = quantizeDynamicInt8(matmulModel(8, 8, 1), {
    exclude: () => true,
  });
  assert.equal(excluded.warnings[0].code, 'excluded');
});

/** Cosine floors on the seeded inputs of test/helpers/real-models.ts (measured: rec 0.998, det 0.970, cls 0.9999, v5 0.9975, v6 0.9997, legacy 0.9999). */
const FLOORS: Record<RealModelKey, number> = {
  rec: 0.995,
  det: 0.95,
  cls: 0.999,
  vadV5: 0.99,
  vadV6: 0.995,
  vadLegacy: 0.999,
};
/** Ops each real model gains (Conv weights decode through one Cast each). */
const EXPECTED: Record<RealModelKey, Record<string, number>> = {
  rec: { DynamicQuantizeMatMul: 9, Cast: 38 },
  det: { Cast: 62 },
  cls: { DynamicQuantizeMatMul: 1, Cast: 53 },
  vadV5: { DynamicQuantizeLSTM: 4, Cast: 12 },
  vadV6: { DynamicQuantizeLSTM: 4, Cast: 12 },
  vadLegacy: { DynamicQuantizeLSTM: 8, Cast: 36 },
};

function opCounts(model: Model): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { node } of model.graph.allNodes()) counts[node.opType] = (counts[node.opType] ?? 0) + 1;
  return counts;
}

test('real models: quantized, run in onnxruntime-node and -web, fidelity floors, weights ~0.25x', async () => {
  const web = await loadWebOrt();
  for (const real of REAL_MODELS) {
    const model = loadModel(real.file);
    const before = opCounts(model);
    const report = quantizeDynamicInt8(model);
    const counts = opCounts(model);
    for (const [op, count] of Object.entries(EXPECTED[real.key])) assert.equal((counts[op] ?? 0) - (before[op] ?? 0), count, `${real.name}: ${op}`);
    assert.equal(counts.DequantizeLinear ?? 0, 0, `${real.name}: DequantizeLinear (onnxruntime would not fold it)`);
    assert.equal(counts.LSTM ?? 0, 0, `${real.name}: LSTM left`);
    const ratio = report.stats.bytesAfter / report.stats.bytesBefore;
    assert.ok(ratio > 0.25 && ratio < 0.28, `${real.name}: weight bytes ratio ${ratio}`);
    const bytes = writeModel(model);
    const reference = await runModel(real.file, real.feeds());
    const quantized = await runModel(bytes, real.feeds());
    const session = await web.InferenceSession.create(bytes, {
      executionProviders: WASM_EXECUTION_PROVIDERS,
    });
    const feeds = Object.fromEntries(
      real.feeds().map((t) => [t.name, new web.Tensor(t.dataType === DataType.INT64 ? 'int64' : 'float32', t.data() as Float32Array, t.dims)]),
    );
    const webOut = await session.run(feeds);
    await session.release();
    const lowest = Math.min(...reference.map((r, i) => cosine(r.data() as Float32Array, quantized[i].data() as Float32Array)));
    const lowestWeb = Math.min(...reference.map((r, i) => cosine(r.data() as Float32Array, webOut[session.outputNames[i]].data as Float32Array)));
    assert.ok(lowest > FLOORS[real.key], `${real.name}: cosine ${lowest}`);
    assert.ok(lowestWeb > FLOORS[real.key], `${real.name}: web cosine ${lowestWeb}`);
  }
});

test('onnxruntime folds the Conv weights of the default form at load: the session holds float32 weights', async () => {
  const model = loadModel(CLS);
  quantizeDynamicInt8(model);
  const codes = new Set(model.graph.nodes.filter((n) => n.opType === 'Cast' && n.inputs[0].endsWith('_quantized')).map((n) => n.inputs[0]));
  assert.equal(codes.size, 53);
  const folder = mkdtempSync(join(tmpdir(), 'shrink-dynamic-fold-'));
  try {
    const optimized = join(folder, 'optimized.onnx');
    const session = await nodeOrt.InferenceSession.create(writeModel(model), { graphOptimizationLevel: 'basic', optimizedModelFilePath: optimized });
    await session.release();
    const after = readModel(readFileSync(optimized));
    // No node reads the int8 codes any more: each Cast -> Mul chain became a float32 constant.
    const readers = after.graph.nodes.filter((n) => n.inputs.some((i) => codes.has(i)));
    assert.deepEqual(readers.map((n) => n.name), []);
    assert.equal(opCounts(after).Conv, opCounts(loadModel(CLS)).Conv);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test('shrink quantize --method dynamic-int8 into a folder writes <input>_quantized.onnx with a report', () => {
  const folder = mkdtempSync(join(tmpdir(), 'shrink-dynamic-'));
  try {
    const dims = 'p2o.DynamicDimension.0=1,p2o.DynamicDimension.1=48,p2o.DynamicDimension.2=192';
    const result = spawnShrink(['quantize', CLS, '-o', `${folder}/`, '--method', 'dynamic-int8', '--json', '--samples', '2', '--dims', dims]);
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout) as QuantizeReport;
    assert.equal(report.output, join(folder, 'ch_ppocr_mobile_v2.0_cls_infer_quantized.onnx'));
    assert.equal(report.size.after, statSync(report.output).size);
    assert.equal(report.nodes.quantized, 54);
    assert.equal(report.stats.quantized, 54);
    const cosine = report.fidelity?.outputs['softmax_0.tmp_0'].cosine;
    assert.ok(typeof cosine === 'number' && cosine > 0.999, `cosine ${cosine}`);
    // --per-tensor and --weight-type reach the pass: uint8 codes with zero points.
    const uint8 = spawnShrink([
      'quantize',
      CLS,
      '-o',
      join(folder, 'u8.onnx'),
      '--method',
      'dynamic-int8',
      '--weight-type',
      'uint8',
      '--per-tensor',
      '--samples',
      '0',
    ]);
    assert.equal(uint8.status, 0, uint8.stderr);
    const written = loadModel(join(folder, 'u8.onnx'));
    const matmul = written.graph.nodes.find((n) => n.opType === 'DynamicQuantizeMatMul');
    assert.ok(matmul !== undefined);
    assert.equal(constantValue(written.graph, matmul.inputs[1])?.dataType, DataType.UINT8);
    assert.deepEqual(constantValue(written.graph, matmul.inputs[2])?.dims, []);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});
