// Quantization-aware training: the fake quantization reproduces what the PTQ pass writes for every
// weight form (MatMulNBits with padded blocks, GatherBlockQuantized, blocked and per-channel
// DequantizeLinear; symmetric and asymmetric), QAT on Fashion-MNIST recovers the accuracy int2
// PTQ loses and writes the same format as PTQ, and `shrink qat` runs from the command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { dequantizeBlocks, quantizeBlocks } from '../src/kernels/quantize-blocks.js';
import { quantizeMethod } from '../src/methods/quantize/registry.js';
import type { WeightOnlyOptions } from '../src/methods/quantize/weight-only.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeNpz } from '../src/eval/npz.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { runPass } from '../src/pipeline/pass.js';
import { classifierAccuracy, imageTrainingData, type LabelledImages } from '../src/train/classification.js';
import { cnnModel } from '../src/train/init-models.js';
import { insertFakeQuant, quantizationAwareTraining } from '../src/train/qat.js';
import { dataAccuracy } from '../src/train/qat-accuracy.js';
import { Trainer } from '../src/train/trainer.js';
import { runShrink } from './helpers/cli.js';
import { maxAbsDiff, runModel } from './helpers/run-model.js';
import { pseudoRandom } from './helpers/tensors.js';

/** PTQ exactly as `shrink quantize --method M` runs it, on a copy. */
async function ptq(model: Model, method: 'int8-weight' | 'int4' | 'int2', settings: { blockSize?: number; symmetric?: boolean } = {}): Promise<Model> {
  const m = quantizeMethod(method);
  const out = readModel(writeModel(model));
  await runPass(m.pass as NonNullable<typeof m.pass>, out, m.options(settings) as never);
  return out;
}

/**
 * Every weight form in one opset-21 model: Conv [4,16,3,3] (int4: blocked DequantizeLinear along
 * input channels), MatMul [36,6] (K = 36: a padded partial block), Gemm transB 0 [6,5] (channels
 * on axis 1, or 2-bit MatMulNBits along axis 0), Gather on a [10,32] table.
 */
function allForms(): Model {
  const b = new GraphBuilder(new Graph('forms'));
  b.input('image', DataType.FLOAT, [2, 16, 5, 5]);
  b.input('ids', DataType.INT64, [3]);
  const w = (name: string, dims: number[], seed: number) => b.initializer(name, DataType.FLOAT, dims, pseudoRandom(dims.reduce((p, d) => p * d, 1), seed, -0.5, 0.5));
  const conv = b.node('Conv', ['image', w('conv.w', [4, 16, 3, 3], 1)], [attr.ints('kernel_shape', [3, 3])]);
  const flat = b.node('Flatten', [conv], [attr.int('axis', 1)]);
  const mm = b.node('MatMul', [flat, w('mm.w', [36, 6], 2)]);
  b.node('Gemm', [mm, w('gemm.w', [6, 5], 3), w('gemm.b', [5], 4)], [], { outputs: ['y'] });
  b.node('Gather', [w('table', [10, 32], 5), 'ids'], [attr.int('axis', 0)], { outputs: ['emb'] });
  b.output('y', DataType.FLOAT, [2, 5]);
  b.output('emb', DataType.FLOAT, [3, 32]);
  return buildModel(b.graph, [{ domain: '', version: 21 }], 10);
}

const formFeeds = [
  Tensor.fromArray('image', DataType.FLOAT, [2, 16, 5, 5], pseudoRandom(800, 9)),
  Tensor.fromArray('ids', DataType.INT64, [3], BigInt64Array.of(7n, 0n, 3n)),
];

test('fake quantization gives the values PTQ writes, for every weight form, symmetric and asymmetric', async () => {
  const model = allForms();
  const float = await runModel(model, formFeeds);
  for (const method of ['int8-weight', 'int4', 'int2'] as const) {
    for (const symmetric of [true, false]) {
      const settings = { blockSize: 16, symmetric };
      const fake = insertFakeQuant(model, quantizeMethod(method).options(settings) as WeightOnlyOptions);
      const formats = fake.plan.targets.map((t) => `${t.weight}:${t.format}:${t.bits}:${t.grouping.kind}`).sort();
      const expected = {
        'int8-weight': ['conv.w:DequantizeLinear:8:channel', 'gemm.w:DequantizeLinear:8:channel', 'mm.w:MatMulNBits:8:blocks', 'table:GatherBlockQuantized:8:blocks'],
        int4: ['conv.w:DequantizeLinear:4:blocks', 'gemm.w:DequantizeLinear:8:channel', 'mm.w:MatMulNBits:4:blocks', 'table:GatherBlockQuantized:4:blocks'],
        int2: ['conv.w:DequantizeLinear:8:channel', 'gemm.w:MatMulNBits:2:blocks', 'mm.w:MatMulNBits:2:blocks', 'table:GatherBlockQuantized:2:blocks'],
      }[method];
      assert.deepEqual(formats, expected, `${method} forms`);
      const quantized = await runModel(await ptq(model, method, settings), formFeeds);
      const faked = await runModel(fake.model, formFeeds);
      for (let o = 0; o < 2; o++) {
        const q = quantized[o].data() as Float32Array;
        const gap = maxAbsDiff(faked[o].data() as Float32Array, q);
        const error = maxAbsDiff(float[o].data() as Float32Array, q);
        // Float rounding of differently ordered sums only, against the quantization error itself.
        assert.ok(gap <= 2e-6 && gap * 100 < error, `${method} ${symmetric ? 'symmetric' : 'asymmetric'} output ${o}: fake-quant vs PTQ ${gap}, float vs PTQ ${error}`);
      }
    }
  }
});

test('the fake-quantized MatMul weight equals the block kernel\'s dequantized values, padded block included', async () => {
  const model = allForms();
  const fake = insertFakeQuant(model, quantizeMethod('int4').options({ blockSize: 16 }) as WeightOnlyOptions);
  const reader = fake.model.graph.nodes.find((n) => n.opType === 'MatMul');
  assert.ok(reader !== undefined);
  fake.model.graph.addOutput(reader.inputs[1]);
  const values = (await runModel(fake.model, formFeeds))[2].data() as Float32Array;
  // The kernel's view: columns of the [36, 6] weight as rows, zero-padded to 48 (3 blocks of 16).
  const w = model.graph.initializer('mm.w')?.data() as Float32Array;
  const rows = new Float32Array(6 * 48);
  for (let k = 0; k < 36; k++) for (let n = 0; n < 6; n++) rows[n * 48 + k] = w[k * 6 + n];
  const reference = dequantizeBlocks(quantizeBlocks(rows, 6, 48, { bits: 4, blockSize: 16, symmetric: true }));
  let mismatches = 0;
  for (let k = 0; k < 36; k++) for (let n = 0; n < 6; n++) if (values[k * 6 + n] !== reference[n * 48 + k]) mismatches++;
  assert.equal(mismatches, 0);
  // And it is quantized: at most 16 distinct values per block.
  assert.ok(new Set(Array.from({ length: 16 }, (_, k) => values[k * 6])).size <= 16);
  assert.notDeepEqual(Array.from(values.subarray(0, 6)), Array.from(w.subarray(0, 6)));
});

test('every fake-quant form trains: only the float weights are trainable, and they move', async () => {
  const model = allForms();
  const batch = { image: formFeeds[0], ids: formFeeds[1], 'train/targets': Tensor.fromArray('train/targets', DataType.FLOAT, [2, 5], pseudoRandom(10, 11)) };
  for (const method of ['int8-weight', 'int4', 'int2'] as const) {
    for (const symmetric of [true, false]) {
      const fake = insertFakeQuant(model, quantizeMethod(method).options({ blockSize: 16, symmetric }) as WeightOnlyOptions);
      const trainer = await Trainer.create(nodeOrt, fake.model, { loss: { kind: 'mse', output: 'y' }, optimizer: { kind: 'sgd' } }, { threads: 1 });
      try {
        assert.deepEqual(trainer.training.weights.map((w) => w.name).sort(), ['conv.w', 'gemm.b', 'gemm.w', 'mm.w']);
        const first = await trainer.step(batch, 0.002);
        const second = await trainer.step(batch, 0.002);
        assert.ok(Number.isFinite(first) && second < first, `${method} ${symmetric}: loss ${first} -> ${second}`);
        const after = trainer.currentWeights();
        for (const name of ['conv.w', 'mm.w', 'gemm.w']) {
          const moved = maxAbsDiff(after.get(name)?.data() as Float32Array, model.graph.initializer(name)?.data() as Float32Array);
          assert.ok(moved > 0, `${method} ${symmetric}: '${name}' did not move`);
        }
      } finally {
        await trainer.release();
      }
    }
  }
});

const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
const testSet = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
const accuracy = (model: Model) => classifierAccuracy(nodeOrt, model, testSet, { threads: 1 });

/** A small CNN trained from scratch for 600 steps (about 87% on the test set), trained once. */
let floatModel: Promise<Model> | undefined;
function trainedFloat(): Promise<Model> {
  floatModel ??= (async () => {
    const trainer = await Trainer.create(nodeOrt, cnnModel({ classes: 10, channels: [8, 16], hidden: 32, seed: 0 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'adamw' } }, { threads: 1 });
    try {
      await trainer.fit(imageTrainingData(train), { epochs: 1, batchSize: 64, schedule: { kind: 'constant', rate: 0.003 }, maxSteps: 600 });
      return trainer.exportModel();
    } finally {
      await trainer.release();
    }
  })();
  return floatModel;
}

/** Op types with their counts, sorted: the format of a quantized model. */
function opCounts(model: Model): string[] {
  const counts = new Map<string, number>();
  for (const n of model.graph.nodes) counts.set(`${n.domain}:${n.opType}`, (counts.get(`${n.domain}:${n.opType}`) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} x${n}`).sort();
}

test('QAT on Fashion-MNIST recovers the accuracy int2 PTQ loses, and writes the PTQ format', async () => {
  const float = await trainedFloat();
  const steps = 200;
  const settings = { data: imageTrainingData(train), epochs: 1, batchSize: 64, schedule: { kind: 'cosine', rate: 0.001 } as const, maxSteps: steps, seed: 1, threads: 1 };
  const result = await quantizationAwareTraining(nodeOrt, float, { method: 'int2', ...settings, evaluate: accuracy });
  const metric = result.report.metric;
  assert.ok(metric !== undefined);
  // The control: the same fine-tuning without fake quantization, then PTQ.
  const control = await Trainer.create(nodeOrt, float, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'adamw' } }, { threads: 1 });
  await control.fit(settings.data, settings);
  const tuned = control.exportModel();
  await control.release();
  const controlPtq = await accuracy(await ptq(tuned, 'int2'));
  const loss = metric.float - metric.ptq;
  console.log(`Fashion-MNIST CNN test accuracy: float ${metric.float.toFixed(2)}%, int2 PTQ ${metric.ptq.toFixed(2)}%, int2 QAT (${steps} steps) ${metric.qat.toFixed(2)}%; same fine-tuning without fake quant, then PTQ: ${controlPtq.toFixed(2)}%`);
  assert.equal(result.report.steps, steps);
  assert.ok(loss >= 3, `int2 PTQ should lose clearly: float ${metric.float}%, PTQ ${metric.ptq}%`);
  assert.ok(metric.qat - metric.ptq >= loss / 2, `QAT should recover at least half of the ${loss.toFixed(2)} points PTQ lost: QAT ${metric.qat}%`);
  assert.ok(metric.qat >= controlPtq + 0.5, `QAT ${metric.qat}% should beat fine-tuning without fake quantization (${controlPtq}% after PTQ)`);

  // Same format as PTQ: same ops, same initializers (names, types, dims), and it runs in onnxruntime.
  const plain = await ptq(float, 'int2');
  assert.deepEqual(opCounts(result.model), opCounts(plain));
  assert.ok(opCounts(result.model).includes('com.microsoft:MatMulNBits x2'));
  const layout = (m: Model) => m.graph.initializers.map((t) => `${t.name}:${t.dataType}:${t.dims.join('x')}`).sort();
  assert.deepEqual(layout(result.model), layout(plain));
  assert.equal(await accuracy(result.model), metric.qat);
  assert.deepEqual(result.report.targets.map((t) => `${t.weight}:${t.format}:${t.bits}`), ['conv1.weight:DequantizeLinear:8', 'conv2.weight:DequantizeLinear:8', 'fc1.weight:MatMulNBits:2', 'fc2.weight:MatMulNBits:2']);
});

/** Runs `shrink ...args` in-process. */
const shrink = runShrink;

/** The first `count` samples of a set as float32 [N,1,28,28] in [0, 1] and int64 labels. */
function npzOf(set: LabelledImages, count: number, labels: boolean): Uint8Array {
  const images = new Float32Array(count * 784);
  for (let i = 0; i < images.length; i++) images[i] = set.images[i] / 255;
  const arrays: Parameters<typeof writeNpz>[0] = { input: { dataType: DataType.FLOAT, dims: [count, 1, 28, 28], data: new Uint8Array(images.buffer) } };
  if (labels) arrays.labels = { dataType: DataType.INT64, dims: [count], data: new Uint8Array(BigInt64Array.from(set.labels.subarray(0, count), BigInt).buffer) };
  return writeNpz(arrays);
}

test('shrink qat: trains, writes the PTQ format into a folder, reports accuracy; one-line errors', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-qat-'));
  try {
    const input = path.join(dir, 'cnn.onnx');
    saveModel(await trainedFloat(), input);
    const data = path.join(dir, 'train.npz');
    fs.writeFileSync(data, npzOf(train, 1024, true));
    const out = path.join(dir, 'out') + path.sep;
    const run = await shrink(['qat', input, '-o', out, '--method', 'int2', '--data', data, '--epochs', '1', '--batch-size', '64', '--json', '--no-progress']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.output, path.join(out, 'cnn_q2.onnx'));
    assert.equal(report.steps, 16);
    assert.equal(report.samples, 1024);
    assert.deepEqual(report.weights.map((w: { name: string }) => w.name), ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight']);
    const written = loadModel(report.output);
    assert.deepEqual(opCounts(written), opCounts(await ptq(loadModel(input), 'int2')));
    // The reported QAT accuracy is the written file's, run in onnxruntime-node.
    const samples = imageTrainingData({ ...train, count: 1024, images: train.images.subarray(0, 1024 * 784), labels: train.labels.subarray(0, 1024) });
    assert.equal(await dataAccuracy(nodeOrt, written, samples, { labels: 'train/labels', threads: 1 }), report.accuracy.qat);
    assert.ok(report.accuracy.float > report.accuracy.ptq, JSON.stringify(report.accuracy));
    assert.equal(report.command, 'qat');
    assert.equal(report.input, input);
    assert.deepEqual(report.size, { before: fs.statSync(input).size, after: fs.statSync(report.output).size, ratio: Number((fs.statSync(report.output).size / fs.statSync(input).size).toFixed(4)) });
    assert.ok(report.size.after < report.size.before);

    const text = await shrink(['qat', input, '-o', path.join(dir, 'text.onnx'), '--method', 'int4', '--data', data, '--max-steps', '2', '--no-progress']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^qat int4: 4 weights trained under fake quantization/);
    assert.match(text.stdout, /accuracy on the training data \(1024 samples\): float [\d.]+%, PTQ [\d.]+%, QAT [\d.]+%/);

    const unlabelled = path.join(dir, 'unlabelled.npz');
    fs.writeFileSync(unlabelled, npzOf(train, 64, false));
    const failures: [string[], number, RegExp][] = [
      [['--data', unlabelled], 1, /unlabelled\.npz: no 'labels' array of class ids; add one or give --labels FILE\.npy/],
      [['--data', data, '--method', 'ternary'], 2, /argument 'ternary' is invalid/],
      [['--data', data, '--epochs', '0'], 2, /--epochs must be a whole number >= 1/],
      [['--data', path.join(dir, 'missing.npz')], 1, /missing\.npz: no such file/],
    ];
    for (const [extra, code, message] of failures) {
      const args = ['qat', input, '-o', path.join(dir, 'bad.onnx'), '--method', 'int4', '--no-progress', ...extra];
      const failed = await shrink(args);
      assert.equal(failed.code, code, `${extra.join(' ')}: ${failed.stderr}`);
      assert.match(failed.stderr, message);
      assert.equal(failed.stderr.trim().split('\n').length, 1, failed.stderr);
      assert.ok(!fs.existsSync(path.join(dir, 'bad.onnx')));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
