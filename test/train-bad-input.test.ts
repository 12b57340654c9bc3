// Bad input to `shrink train`, `qat`, `distill` (and `bench`), end to end on the Fashion-MNIST MLP
// and its real test images: every failure is one stderr line that names the file and the real
// cause, nothing is written, and nothing is written over an input. Covered: NaN/infinity in the
// training data, degenerate archives (no samples, no arrays, no labels), labels out of range,
// models onnxruntime cannot load, a model shape inference cannot type, a NaN loss, and outputs
// that are inputs or lie in missing folders.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeNpz } from '../src/eval/npz.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { makeValueInfo } from '../src/ir/value-info.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { arrayTrainingData } from '../src/train/array-data.js';
import { mlpModel } from '../src/train/init-models.js';
import { Trainer, type TrainingData } from '../src/train/trainer.js';
import { runShrink, spawnShrink } from './helpers/cli.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-train-bad-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const file = (name: string) => path.join(work, name);

const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
/** The first `count` test images as floats 0-1 (a fresh copy to spoil). */
const images = (count: number) => Float32Array.from(set.images.subarray(0, count * 784), (v) => v / 255);
const labels = (count: number) => BigInt64Array.from(set.labels.subarray(0, count), BigInt);
const bytesOf = (a: Float32Array | Float64Array | BigInt64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** An .npz of images under each of `keys` (the MLP reads 'image', a student built here 'input'), with labels unless null. */
function npz(name: string, pixels: Float32Array | Float64Array, ids: BigInt64Array | null, keys = ['image']): string {
  const count = pixels.length / 784;
  const dataType = pixels instanceof Float64Array ? DataType.DOUBLE : DataType.FLOAT;
  const arrays: Parameters<typeof writeNpz>[0] = {};
  for (const key of keys) arrays[key] = { dataType, dims: [count, 1, 28, 28], data: bytesOf(pixels) };
  if (ids !== null) arrays.labels = { dataType: DataType.INT64, dims: [ids.length], data: bytesOf(ids) };
  fs.writeFileSync(file(name), writeNpz(arrays));
  return file(name);
}

/** A student for distillation: input 'input' [N,1,28,28], output 'logits' [N,10]. */
const student = file('student.onnx');
saveModel(mlpModel({ imageDims: [1, 28, 28], hidden: [8], classes: 10, seed: 2 }), student);
const good = npz('good.npz', images(64), labels(64));
const goodBoth = npz('good-both.npz', images(64), labels(64), ['image', 'input']);

type Run = { code: number; stdout: string; stderr: string };

/** Exit `code`, one stderr line matching `pattern` (and no C++ noise), nothing on stdout, no output file. */
function failsWith(run: Run, code: number, pattern: RegExp, output?: string): void {
  assert.equal(run.code, code, run.stderr);
  assert.equal(run.stdout, '');
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(lines[0], /onnxruntime_src|::|Cannot read properties/);
  if (output !== undefined) assert.ok(!fs.existsSync(output), `${output} was written`);
}

const train = (...args: string[]) => runShrink(['train', MLP, '--no-progress', '--threads', '1', ...args]);
const qat = (...args: string[]) => runShrink(['qat', MLP, '--method', 'int4', '--no-progress', '--threads', '1', ...args]);
const distill = (...args: string[]) => runShrink(['distill', '--teacher', MLP, '--student', student, '--no-progress', '--threads', '1', ...args]);

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

test('NaN or infinity in the training data: one line naming the file, the sample and the input, before any step (was: a NaN loss blamed on the learning rate)', async () => {
  const out = file('never.onnx');
  const spoilt = images(64);
  spoilt[41 * 784 + 100] = Number.NaN;
  const nan = npz('nan.npz', spoilt, labels(64));
  const nanBoth = npz('nan-both.npz', spoilt, labels(64), ['image', 'input']);
  const says = (f: string, value: string) => new RegExp(`^shrink: ${escape(f)} sample 41: input '(image|input)' holds ${value} at element 100 of the sample; training data must be finite$`);
  failsWith(await train('-o', out, '--data', nan), 1, says(nan, 'NaN'), out);
  failsWith(await qat('-o', out, '--data', nan), 1, says(nan, 'NaN'), out);
  failsWith(await distill('-o', out, '--data', nanBoth), 1, says(nanBoth, 'NaN'), out);

  // float64 data feeds a float32 input: a value float32 cannot hold is as bad as infinity.
  const wide = Float64Array.from(images(64));
  wide[41 * 784 + 100] = 1e39;
  const f64 = npz('f64.npz', wide, labels(64));
  failsWith(await train('-o', out, '--data', f64), 1, says(f64, '1e\\+39, infinite in float32'), out);
  // ... and so is one that only overflows once scaled.
  const large = images(64);
  large[41 * 784 + 100] = 2 ** 100;
  const scaled = npz('large.npz', large, labels(64));
  failsWith(await train('-o', out, '--data', scaled, '--scale', '1e9'), 1, says(scaled, '1\\.2676506002282294e\\+30, infinite in float32 once scaled by 1000000000'), out);

  // Infinity in --eval-data too.
  const inf = images(64);
  inf[3 * 784] = Infinity;
  const infEval = npz('inf-eval.npz', inf, labels(64));
  failsWith(await train('-o', out, '--data', good, '--eval-data', infEval), 1, new RegExp(`^shrink: ${escape(infEval)} sample 3: input 'image' holds Infinity at element 0`), out);
});

test('degenerate training archives: no samples, no arrays, no labels, labels out of range', async () => {
  const out = file('never.onnx');
  const none = npz('none.npz', new Float32Array(0), new BigInt64Array(0), ['image', 'input']);
  const noSamples = new RegExp(`^shrink: ${escape(none)}: holds no samples \\(arrays 'image', 'input', 'labels' are empty along axis 0\\)$`);
  // distill used to print "Cannot read properties of undefined (reading 'sampleDims')".
  failsWith(await distill('-o', out, '--data', none), 1, noSamples, out);
  failsWith(await distill('-o', out, '--data', none, '--alpha', '0'), 1, noSamples, out);
  // train called this a usage mistake (--batch-size larger than the 0 samples, exit 2).
  const noImages = npz('no-images.npz', new Float32Array(0), new BigInt64Array(0));
  failsWith(await train('-o', out, '--data', noImages), 1, /holds no samples/, out);
  failsWith(await qat('-o', out, '--data', noImages), 1, /holds no samples/, out);

  fs.writeFileSync(file('empty.npz'), writeNpz({}));
  failsWith(await distill('-o', out, '--data', file('empty.npz')), 1, new RegExp(`^shrink: ${escape(file('empty.npz'))}: no array 'input' for the model's input \\(arrays: none\\)$`), out);

  const unlabelled = npz('unlabelled.npz', images(64), null, ['image', 'input']);
  failsWith(
    await distill('-o', out, '--data', unlabelled),
    1,
    new RegExp(`^shrink: ${escape(unlabelled)}: no 'labels' array of class ids; add one or give --labels FILE\\.npy \\(--alpha 0\\.5 weights a hard-label loss; --alpha 0 learns from the teacher alone\\)$`),
    out,
  );

  const ids = labels(64);
  ids[12] = 10n;
  const outOfRange = npz('label-10.npz', images(64), ids);
  failsWith(await train('-o', out, '--data', outOfRange), 1, new RegExp(`^shrink: ${escape(outOfRange)}\\[labels\\]: label 10 at index 12 is not a class id in 0\\.\\.9$`), out);
  failsWith(await qat('-o', out, '--data', outOfRange), 1, /label 10 at index 12 is not a class id in 0\.\.9$/, out);
  ids[12] = -3n;
  failsWith(await train('-o', out, '--data', npz('label-neg.npz', images(64), ids)), 1, /label -3 at index 12 is not a class id in 0\.\.9$/, out);
});

/** The MLP with its first Relu turned into an op nothing implements, and with an IR version from the future. */
function brokenModels(): { unknownOp: string; futureIr: string } {
  const unknownOp = file('frobnicate.onnx');
  const model = loadModel(MLP);
  (model.graph.nodes.find((n) => n.name === 'relu1') as { opType: string }).opType = 'Frobnicate';
  model.graph.changed();
  saveModel(model, unknownOp);
  const futureIr = file('ir99.onnx');
  const future = loadModel(MLP);
  future.irVersion = 99;
  fs.writeFileSync(futureIr, writeModel(future));
  return { unknownOp, futureIr };
}

test("models onnxruntime cannot load: bench, train, qat and distill name the file and onnxruntime's reason, without its C++ source locations", async () => {
  const { unknownOp, futureIr } = brokenModels();
  const out = file('never.onnx');
  const noOp = (f: string, what = 'the model') => new RegExp(`^shrink: ${escape(f)}: onnxruntime cannot load ${what}: node 'relu1' \\(Frobnicate\\): No Op registered for Frobnicate with domain_version of 17$`);
  const ir = (f: string, what = 'the model') => new RegExp(`^shrink: ${escape(f)}: onnxruntime cannot load ${what}: Unsupported model IR version: 99, max supported IR version: \\d+$`);
  for (const [model, says] of [[unknownOp, noOp], [futureIr, ir]] as const) {
    failsWith(await runShrink(['train', model, '-o', out, '--data', good, '--no-progress']), 1, says(model), out);
    failsWith(await runShrink(['qat', model, '--method', 'int4', '-o', out, '--data', good, '--no-progress']), 1, says(model), out);
    failsWith(await runShrink(['distill', '--teacher', model, '--student', student, '-o', out, '--data', goodBoth, '--no-progress']), 1, says(model, 'the teacher'), out);
  }
  // bench reports progress on stderr as it goes; the error is its last line, and the only one.
  const bench = spawnShrink(['bench', unknownOp, '--runs', '1', '--warmup', '0', '--no-memory']);
  assert.equal(bench.status, 1, bench.stderr);
  const lines = bench.stderr.trimEnd().split('\n');
  assert.match(lines[lines.length - 1], noOp(unknownOp));
  assert.equal(lines.filter((l) => l.startsWith('shrink:')).length, 1, bench.stderr);
  const wasm = spawnShrink(['bench', futureIr, '--runs', '1', '--warmup', '0', '--no-memory', '--backend', 'wasm']);
  assert.equal(wasm.status, 1, wasm.stderr);
  assert.match(wasm.stderr.trimEnd().split('\n').pop() as string, ir(futureIr));
});

test("qat on a model whose input declares no shape states the cause (was: 'logits' is not an output of the model (outputs: logits))", async () => {
  const model = loadModel(MLP);
  model.graph.inputs = [makeValueInfo('image', { elemType: DataType.FLOAT, shape: undefined })];
  model.graph.changed();
  const shapeless = file('shapeless.onnx');
  saveModel(model, shapeless);
  const out = file('never.onnx');
  const cause = new RegExp(
    `^shrink: ${escape(shapeless)}: loss: shape inference cannot type output 'logits', which the loss reads: it stops at node 'flatten' \\(Flatten\\): rank of input 'image' is unknown$`,
  );
  failsWith(await runShrink(['qat', shapeless, '--method', 'int4', '-o', out, '--data', good, '--no-progress']), 1, cause, out);
  failsWith(await runShrink(['train', shapeless, '-o', out, '--data', good, '--no-progress']), 1, cause, out);
  // The op shape inference does not know, in the student of a distillation.
  const { unknownOp } = brokenModels();
  failsWith(
    await runShrink(['distill', '--teacher', MLP, '--student', unknownOp, '-o', out, '--data', good, '--no-progress']),
    1,
    /^shrink: distill: shape inference cannot type student output 'logits': it stops at node 'relu1' \(Frobnicate\): no shape rule for Frobnicate$/,
    out,
  );
});

test('a NaN loss says what was checked: the batch, the starting weights, or neither (training diverged)', async () => {
  const sgd = { kind: 'sgd', momentum: 0.9 } as const;
  const fit = async (model = loadModel(MLP), data: TrainingData, rate = 0.01) => {
    const trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: sgd }, { threads: 1 });
    try {
      await trainer.fit(data, { epochs: 1, batchSize: 16, schedule: { kind: 'constant', rate } });
    } finally {
      await trainer.release();
    }
  };
  const fields = (pixels: Float32Array) => ({
    image: { data: pixels, sampleDims: [1, 28, 28], dataType: DataType.FLOAT },
    'train/labels': { data: labels(64), sampleDims: [], dataType: DataType.INT64 },
  });
  // A weight of the model itself holds NaN.
  const poisoned = loadModel(MLP);
  const weight = poisoned.graph.initializer('fc2.weight') as Tensor;
  const values = Float32Array.from(weight.data() as Float32Array);
  values[5] = Number.NaN;
  poisoned.graph.initializers[poisoned.graph.initializers.indexOf(weight)] = Tensor.fromArray('fc2.weight', DataType.FLOAT, weight.dims, values);
  poisoned.graph.changed();
  await assert.rejects(fit(poisoned, arrayTrainingData(fields(images(64)))), {
    message: "the loss became NaN at step 1 (epoch 1): the model's weight 'fc2.weight' holds NaN (element 5) before any training",
  });
  // Data that did not go through the checked arrays: the batch is looked at.
  const spoilt = images(64);
  const unchecked: TrainingData = {
    size: 64,
    batch: (indices) => {
      const out = Tensor.fromArray('image', DataType.FLOAT, [indices.length, 1, 28, 28], new Float32Array(indices.length * 784).fill(Number.NaN));
      return { ...arrayTrainingData(fields(spoilt)).batch(indices), image: out };
    },
  };
  await assert.rejects(fit(undefined, unchecked), { message: /^the loss became NaN at step 1 \(epoch 1\): the batch's 'image' holds NaN \(element 0\); training data must be finite$/ });
  // Finite data and weights: a learning rate far too high.
  await assert.rejects(fit(undefined, arrayTrainingData(fields(images(64))), 1e30), {
    message: /^the loss became (NaN|Infinity) at step \d+ \(epoch 1\) although the batch and the model's starting weights are finite: training diverged; lower the learning rate \(1e\+30 at this step\) or clip gradients$/,
  });
});

test('train, qat and distill refuse to write over an input (exit 2), and check the output folder before reading any data', async () => {
  const inputs = [MLP, student, good, goodBoth];
  const stamp = () => inputs.map((f) => `${f} ${fs.statSync(f).size} ${fs.statSync(f).mtimeMs}`);
  const before = stamp();
  const isInput = (f: string) => new RegExp(`^shrink: -o ${escape(f)} is the input ${escape(f)}: writing it would destroy the input; choose another output$`);
  failsWith(await train('-o', MLP, '--data', good), 2, isInput(MLP));
  failsWith(await train('-o', good, '--data', good), 2, isInput(good));
  const evalData = file('eval.npz');
  fs.copyFileSync(good, evalData);
  failsWith(await train('-o', evalData, '--data', good, '--eval-data', evalData), 2, isInput(evalData));
  failsWith(await qat('-o', MLP, '--data', good), 2, isInput(MLP));
  failsWith(await distill('-o', MLP, '--data', goodBoth), 2, isInput(MLP));
  failsWith(await distill('-o', student, '--data', goodBoth), 2, isInput(student));
  failsWith(await distill('-o', goodBoth, '--data', goodBoth), 2, isInput(goodBoth));

  // The external data file of a model is an input too.
  const external = path.join(file('external'), 'student.onnx');
  fs.mkdirSync(path.dirname(external));
  saveModel(loadModel(student), external, { externalData: true });
  failsWith(
    await runShrink(['distill', '--teacher', MLP, '--student', external, '-o', `${external}.data`, '--data', goodBoth, '--no-progress']),
    2,
    new RegExp(`^shrink: -o ${escape(external)}\\.data is the external data file of ${escape(external)}: writing it would destroy the input`),
  );

  // A missing folder is found before the data is read: the data file does not exist either.
  const missing = file('no-such-folder/out.onnx');
  const folderError = new RegExp(`^shrink: ${escape(missing)}: folder '${escape(path.dirname(missing))}' does not exist$`);
  failsWith(await train('-o', missing, '--data', file('no-such-data.npz')), 1, folderError);
  failsWith(await qat('-o', missing, '--data', file('no-such-data.npz')), 1, folderError);
  failsWith(await distill('-o', missing, '--data', file('no-such-data.npz')), 1, folderError);
  assert.deepEqual(stamp(), before, 'an input changed');
});
