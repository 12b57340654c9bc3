// SmoothQuant and bias correction for static int8 (issue 14).
// - SmoothQuant moves activation outliers into the weights without changing what the float model
//   computes: on spam-bert (post-LN BERT) with scales folded where they can be and Muls elsewhere,
//   the logits stay within 1e-5; s_j = max|X_j|^α / max|W_j|^(1−α) checked on numbers by hand.
// - Bias correction removes the per-channel mean shift int8 leaves in each Conv/Gemm output: on a
//   small Fashion-MNIST CNN (trained here, per-tensor weights so the shift is visible), the mean
//   shift measured on held-out test images (never calibrated on) drops.
// - Bad input: --smooth outside [0, 1] or with another method, --bias-correction with another
//   method, recipe keys out of range: one line, exit 2, nothing written.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { SampleSource } from '../src/eval/samples.js';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { smoothingScales, smoothQuant } from '../src/methods/quantize/smooth-quant.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { ModelSession } from '../src/runtime/session.js';
import { cnnModel } from '../src/train/init-models.js';
import { imageTrainingData } from '../src/train/classification.js';
import { Trainer } from '../src/train/trainer.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionCalibration } from './helpers/fashion-files.js';
import { runModel } from './helpers/run-model.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-smooth-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const ctx = { ort: nodeOrt, threads: 1 };

function source(rows: Record<string, Tensor>[]): SampleSource {
  return {
    inputs: Object.keys(rows[0]),
    count: rows.length,
    description: 'test samples',
    async *[Symbol.asyncIterator]() {
      for (const [index, inputs] of rows.entries()) yield { index, where: `sample ${index}`, inputs };
    },
  };
}

function relativeDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  let largest = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    largest = Math.max(largest, Math.abs(a[i]));
  }
  return worst / Math.max(1, largest);
}

test('smoothing scales: s_j = max|X_j|^α / max|W_j|^(1−α), 1 where a channel is all zeros', () => {
  const s = smoothingScales(Float64Array.of(4, 1, 9, 0), Float64Array.of(1, 4, 1, 2), 0.5);
  // sqrt(4)/sqrt(1), sqrt(1)/sqrt(4), sqrt(9)/1, and the dead channel.
  assert.deepEqual(Array.from(s), [2, 0.5, 3, 1]);
  const t = smoothingScales(Float64Array.of(8), Float64Array.of(2), 0.75);
  // 8^0.75 / 2^0.25 = 4.7568 / 1.1892 = 4
  assert.ok(Math.abs(t[0] - 4) < 1e-5, `${t[0]}`);
  assert.deepEqual(Array.from(smoothingScales(Float64Array.of(5), Float64Array.of(0.5), 1)), [5]);
});

function gaussians(n: number, next: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()));
}

/**
 * x [N, 32] -> LayerNormalization (gamma with outlier channels) -> Q, K: MatMul [32, 32] -> Add ->
 * Gemm transB [48, 32] + bias -> Gemm [48, 10] + bias -> y. 1/s folds into the LayerNorm's scale
 * and bias (Q and K share one s), and into the first Gemm's output rows and bias; the Add of Q and
 * K gets a Mul.
 */
function inCodeModel(): Model {
  const next = mulberry32(5);
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 32]);
  const gamma = Float32Array.from({ length: 32 }, (_, j) => (j % 8 === 0 ? 20 : 0.5 + next()));
  const ln = b.node('LayerNormalization', [x, b.initializer('ln.scale', DataType.FLOAT, [32], gamma), b.initializer('ln.bias', DataType.FLOAT, [32], gaussians(32, next, 0.1))], [], { name: 'ln' });
  const q = b.node('MatMul', [ln, b.initializer('wq', DataType.FLOAT, [32, 32], gaussians(1024, next, 0.2))], [], { name: 'q' });
  const k = b.node('MatMul', [ln, b.initializer('wk', DataType.FLOAT, [32, 32], gaussians(1024, next, 0.2))], [], { name: 'k' });
  const sum = b.node('Add', [q, k], [], { name: 'add' });
  const g1 = b.node('Gemm', [sum, b.initializer('w1', DataType.FLOAT, [48, 32], gaussians(48 * 32, next, 0.2)), b.initializer('b1', DataType.FLOAT, [48], gaussians(48, next, 0.1))], [attr.int('transB', 1)], { name: 'g1' });
  b.node('Gemm', [g1, b.initializer('w2', DataType.FLOAT, [48, 10], gaussians(480, next, 0.2)), b.initializer('b2', DataType.FLOAT, [10], gaussians(10, next, 0.1))], [], { name: 'g2', outputs: ['y'] });
  b.output('y', DataType.FLOAT, ['N', 10]);
  return buildModel(b.graph);
}

test('smoothquant folds 1/s into a LayerNormalization and a Gemm, inserts a Mul after an Add, and the float model stays within 1e-5', async () => {
  const model = inCodeModel();
  const next = mulberry32(8);
  const rows = Array.from({ length: 8 }, () => ({ x: Tensor.fromArray('x', DataType.FLOAT, [4, 32], gaussians(128, next)) }));
  const before = await Promise.all(rows.map((r) => runModel(model, [r.x])));
  const smoothed = model.clone();
  const layers = smoothed.graph.nodes.filter((n) => n.opType === 'MatMul' || n.opType === 'Gemm');
  const result = await smoothQuant(smoothed, layers, { alpha: 0.5, calibration: source(rows) }, ctx);
  assert.deepEqual(
    result.groups.map((g) => [g.layers.join('+'), 'into' in g.placed ? g.placed.into : 'mul' in g.placed ? 'Mul' : 'left']),
    [
      ['q+k', "LayerNormalization 'ln'"],
      ['g1', 'Mul'],
      ['g2', "Gemm 'g1'"],
    ],
  );
  // The LayerNorm's outlier channels (gamma 20) stand out in its output and are divided most.
  assert.ok(result.groups[0].outlierRatio > 5, `${result.groups[0].outlierRatio}`);
  const scale = smoothed.graph.initializers.find((t) => t.name === 'ln.scale')?.data() as Float32Array;
  assert.ok(scale[0] / gamma0(model) < 0.5, `outlier channel's gamma ${scale[0]}`);
  for (const [i, r] of rows.entries()) {
    const [y] = await runModel(smoothed, [r.x]);
    assert.ok(relativeDiff(before[i][0].data() as Float32Array, y.data() as Float32Array) < 1e-5);
  }
});

function gamma0(model: Model): number {
  return (model.graph.initializers.find((t) => t.name === 'ln.scale')?.data() as Float32Array)[0];
}

test('smoothquant on spam-bert: the smoothed float model equals the original within 1e-5 (folds and Muls)', async () => {
  const bert = loadModel('models/spam-bert/onnx/model.onnx');
  const next = mulberry32(4);
  const feeds = (length: number) => {
    const int64 = (name: string, value: () => bigint) => Tensor.fromArray(name, DataType.INT64, [1, length], BigInt64Array.from({ length }, value));
    return { input_ids: int64('input_ids', () => BigInt(100 + Math.floor(next() * 3000))), attention_mask: int64('attention_mask', () => 1n), token_type_ids: int64('token_type_ids', () => 0n) };
  };
  const calibration = source(Array.from({ length: 6 }, (_, i) => feeds(16 + 8 * i)));
  const checks = Array.from({ length: 3 }, (_, i) => feeds(20 + 11 * i));
  const order = (f: Record<string, Tensor>) => bert.graph.inputs.map((i) => f[i.name]);
  const before = await Promise.all(checks.map((f) => runModel(bert, order(f))));
  const layers = (m: Model) => m.graph.nodes.filter((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && m.graph.initializers.some((t) => t.name === n.inputs[1]));
  for (const mul of [true, false]) {
    const smoothed = bert.clone();
    const result = await smoothQuant(smoothed, layers(smoothed), { alpha: 0.5, calibration, mul }, ctx);
    const folded = result.groups.filter((g) => 'into' in g.placed);
    process.stderr.write(`spam-bert smoothquant (mul ${mul}): ${result.groups.length} inputs, ${folded.length} folded; outlier ratio max/median per input ${result.groups.map((g) => g.outlierRatio.toFixed(1)).join(', ')}\n`);
    // Post-LN: LayerNorm outputs feed the residual Add too; only the FFN-outs fold (GELU's 0.5).
    assert.deepEqual(folded.map((g) => g.layers.join('+')), ['/layers.0/output/MatMul', '/layers.1/output/MatMul']);
    assert.equal(result.groups.filter((g) => 'mul' in g.placed).length, mul ? result.groups.length - 2 : 0);
    assert.ok(result.groups.length >= 6 && result.groups.every((g) => g.outlierRatio >= 1));
    assert.equal(smoothed.graph.nodes.filter((n) => n.name.includes('_smooth_Mul')).length, mul ? result.groups.length - 2 : 0);
    // The weights did change (a no-op smoothing would pass the equality below trivially).
    const changed = smoothed.graph.initializers.filter((t) => {
      const original = bert.graph.initializers.find((o) => o.name === t.name);
      return original !== undefined && relativeDiff(original.data() as Float32Array, t.data() as Float32Array) > 1e-3;
    });
    assert.ok(changed.length >= (mul ? 10 : 2), `${changed.length} weights changed`);
    for (const [i, f] of checks.entries()) {
      const [logits] = await runModel(smoothed, order(f));
      const diff = relativeDiff(before[i][0].data() as Float32Array, logits.data() as Float32Array);
      assert.ok(diff < 1e-5, `logits moved by ${diff}`);
    }
  }
});

/** Per-channel means of `values` (Conv outputs on axis 1, Gemm outputs on the last) over `images`. */
async function channelMeans(model: Model, values: readonly { name: string; axis: number }[], images: Float32Array, count: number): Promise<Map<string, Float64Array>> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 1, extraOutputs: values.map((v) => v.name) });
  try {
    const out = await session.run({ input: new nodeOrt.Tensor('float32', images, [count, 1, 28, 28]) }, values.map((v) => v.name));
    const means = new Map<string, Float64Array>();
    for (const { name, axis } of values) {
      const t = out[name];
      const data = t.data as Float32Array;
      const channels = t.dims[axis];
      const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
      const sums = new Float64Array(channels);
      for (let i = 0; i < data.length; i++) sums[Math.floor(i / inner) % channels] += data[i];
      means.set(name, sums.map((s) => (s * channels) / data.length));
    }
    return means;
  } finally {
    await session.release();
  }
}

test('bias correction shrinks the per-channel mean shift of a Fashion-MNIST CNN on held-out images', async () => {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const trainer = await Trainer.create(nodeOrt, cnnModel({ classes: 10, channels: [8, 16], hidden: 32, seed: 0 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'adamw' } }, { threads: 1 });
  let float: Model;
  try {
    await trainer.fit(imageTrainingData(train), { epochs: 1, batchSize: 64, schedule: { kind: 'constant', rate: 0.003 }, maxSteps: 150 });
    float = trainer.exportModel();
  } finally {
    await trainer.release();
  }
  // Calibration: 64 training images (seeded pick), one per sample.
  const next = mulberry32(21);
  const calib = source(Array.from({ length: 64 }, () => {
    const at = Math.floor(next() * train.count);
    return { input: Tensor.fromArray('input', DataType.FLOAT, [1, 1, 28, 28], Float32Array.from(train.images.subarray(at * 784, (at + 1) * 784), (v) => v / 255)) };
  }));
  const quantized: Record<string, Model> = {};
  const stats: Record<string, Record<string, number>> = {};
  for (const corrected of [false, true]) {
    const model = float.clone();
    // floatStem off: the 1-channel conv1 would stay float (float-stem.ts); all four layers are corrected here.
    const report = await quantizeStaticInt8(model, { calibration: calib, perChannel: false, biasCorrection: corrected, floatStem: false }, ctx);
    quantized[String(corrected)] = model;
    stats[String(corrected)] = report.stats;
  }
  assert.equal(stats.true.biasCorrected, 4, JSON.stringify(stats.true));
  assert.equal(stats.true.biasCorrectionRounds, 4);
  // Held out: the first 512 test images.
  const test = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const count = 512;
  const images = Float32Array.from(test.images.subarray(0, count * 784), (v) => v / 255);
  const layers = quantized.true.graph.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm').map((n) => ({ name: n.outputs[0], axis: 1 }));
  assert.equal(layers.length, 4);
  const reference = await channelMeans(float, layers, images, count);
  const shift: Record<string, number[]> = {};
  for (const key of ['false', 'true']) {
    const means = await channelMeans(quantized[key], layers, images, count);
    shift[key] = layers.map(({ name }) => {
      const want = reference.get(name) as Float64Array;
      const got = means.get(name) as Float64Array;
      return want.reduce((s, w, c) => s + Math.abs(got[c] - w), 0) / want.length;
    });
  }
  process.stderr.write(`CNN mean |E[int8] - E[float]| per channel on ${count} held-out images, layer by layer: ${shift.false.map((v) => v.toExponential(2)).join(', ')} -> ${shift.true.map((v) => v.toExponential(2)).join(', ')} (bias correction)\n`);
  const total = (v: number[]) => v.reduce((a, b) => a + b, 0);
  assert.ok(total(shift.true) < 0.6 * total(shift.false), JSON.stringify(shift));
  // The correction must not damage the outputs: logits closer to float's on average.
  const [floatLogits] = await runModel(float, [Tensor.fromArray('input', DataType.FLOAT, [count, 1, 28, 28], images)]);
  const errors = await Promise.all(['false', 'true'].map(async (key) => {
    const [logits] = await runModel(quantized[key], [Tensor.fromArray('input', DataType.FLOAT, [count, 1, 28, 28], images)]);
    const a = floatLogits.data() as Float32Array;
    const b = logits.data() as Float32Array;
    return a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);
  }));
  assert.ok(errors[1] <= errors[0] * 1.05, `squared logit error ${errors[0]} -> ${errors[1]}`);
});

test('bias correction of MatMul layers: the constant of the Add after it is corrected; a bare MatMul is skipped with the reason', async () => {
  // x [N, 4, 64] -> MatMul [64, 32] -> Add b -> Relu -> MatMul [32, 8] -> y: the first has a bias
  // Add, the last none. Rank 3, as in a transformer: 2-D MatMul + Add would be fused into a Gemm.
  const next = mulberry32(3);
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 4, 64]);
  const h = b.node('MatMul', [x, b.initializer('w1', DataType.FLOAT, [64, 32], gaussians(64 * 32, next, 0.3))], [], { name: 'm1' });
  const [biased] = b.node('Add', [h, b.initializer('b1', DataType.FLOAT, [32], gaussians(32, next, 0.1))], [], { name: 'bias1', outputs: ['h1'] });
  const r = b.node('Relu', [biased], [], { name: 'relu' });
  b.node('MatMul', [r, b.initializer('w2', DataType.FLOAT, [32, 8], gaussians(256, next, 0.3))], [], { name: 'm2', outputs: ['y'] });
  b.output('y', DataType.FLOAT, ['N', 4, 8]);
  const model = buildModel(b.graph, [{ domain: '', version: 17 }]);
  // Inputs with a mean, so the int8 error of the weights has a mean in the outputs too.
  const batch = (seed: number) => {
    const g = mulberry32(seed);
    return Tensor.fromArray('x', DataType.FLOAT, [16, 4, 64], Float32Array.from(gaussians(64 * 64, g), (v) => 0.8 + v));
  };
  const calibration = source([1, 2, 3, 4].map((seed) => ({ x: batch(seed) })));
  const shifts: number[] = [];
  const heldOut = batch(99);
  for (const biasCorrection of [false, true]) {
    const q = model.clone();
    const report = await quantizeStaticInt8(q, { calibration, perChannel: false, biasCorrection }, ctx);
    if (biasCorrection) {
      assert.equal(report.stats.biasCorrected, 1);
      // Still a MatMul and an Add (not fused into a Gemm): the Add's constant is what moved.
      assert.deepEqual(['m1', 'bias1'].map((name) => q.graph.nodes.find((n) => n.name === name)?.opType), ['MatMul', 'Add']);
      assert.ok(report.warnings.some((w) => w.code === 'bias-correction-skipped' && w.node === 'm2' && /MatMul has no bias input/.test(w.message)), JSON.stringify(report.warnings));
    }
    const means = async (m: Model) => {
      const session = await ModelSession.create(nodeOrt, m, { threads: 1, extraOutputs: ['h1'] });
      try {
        const out = await session.run({ x: new nodeOrt.Tensor('float32', heldOut.data() as Float32Array, heldOut.dims) }, ['h1']);
        const data = out.h1.data as Float32Array;
        return Array.from({ length: 32 }, (_, c) => data.reduce((s, v, i) => (i % 32 === c ? s + v : s), 0) / 64);
      } finally {
        await session.release();
      }
    };
    const [want, got] = [await means(model), await means(q)];
    shifts.push(want.reduce((s, w, c) => s + Math.abs(got[c] - w), 0) / 32);
  }
  process.stderr.write(`MatMul + Add bias correction, mean channel shift on held-out rows: ${shifts.map((v) => v.toExponential(2)).join(' -> ')}\n`);
  assert.ok(shifts[1] < 0.5 * shifts[0], JSON.stringify(shifts));
});

test('--smooth and --bias-correction: bad values and other methods are one line, exit 2, nothing written', async () => {
  const out = path.join(work, 'bad.onnx');
  const calib = writeFashionCalibration(work, 8);
  for (const [args, message] of [
    [['--method', 'static-int8', '--calib', calib, '--smooth', '1.5'], /^shrink: --smooth must be a number in \[0, 1\], got '1.5'\n$/],
    [['--method', 'static-int8', '--calib', calib, '--smooth', '-0.1'], /^shrink: --smooth must be a number in \[0, 1\], got '-0.1'\n$/],
    [['--method', 'static-int8', '--calib', calib, '--smooth', 'half'], /^shrink: --smooth must be a number in \[0, 1\], got 'half'\n$/],
    [['--method', 'dynamic-int8', '--smooth', '0.5'], /^shrink: --smooth has no effect with --method dynamic-int8 \(it applies to static-int8\)\n$/],
    [['--method', 'int4', '--bias-correction'], /^shrink: --bias-correction has no effect with --method int4 \(it applies to static-int8\)\n$/],
  ] as const) {
    const run = await runShrink(['quantize', MLP, '-o', out, ...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, message);
    assert.equal(fs.existsSync(out), false);
  }
  assert.throws(() => parseRecipe('steps:\n  - quantize: { method: static-int8, smooth: 1.2 }\n', 'r.yaml'), /smooth/);
  assert.throws(() => parseRecipe('steps:\n  - quantize: { method: int4, bias_correction: true }\n', 'r.yaml'), /bias_correction/);
  const recipe = parseRecipe('steps:\n  - quantize: { method: static-int8, smooth: 0.6, bias_correction: true }\n', 'r.yaml');
  assert.deepEqual(JSON.parse(JSON.stringify(recipe.steps[0])).options.smooth, 0.6);
});

test('shrink quantize --smooth --bias-correction reaches static int8 through the CLI (MLP: 2 of 3 inputs fold, 3 biases corrected)', async () => {
  const out = path.join(work, 'mlp-smooth.onnx');
  const calib = writeFashionCalibration(work, 32);
  const run = await runShrink(['quantize', MLP, '-o', out, '--method', 'static-int8', '--calib', calib, '--smooth', '--bias-correction', '--samples', '8', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const stats = JSON.parse(run.stdout).stats;
  // fc1 reads the flattened image (a Mul); fc2 and fc3 fold into the Gemm before them through Relu.
  assert.deepEqual([stats.smooth_alpha, stats.smooth_groups, stats.smooth_folded, stats.smooth_mul, stats.bias_corrected, stats.bias_created], [0.5, 3, 2, 1, 3, 0], JSON.stringify(stats));
  assert.equal(loadModel(out).graph.nodes.filter((n) => n.opType === 'Mul').length, 1);
});
