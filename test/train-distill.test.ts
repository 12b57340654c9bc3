// Knowledge distillation: the loss the training graph computes against the formula written out
// here, a distilled Fashion-MNIST student against the same student trained on hard labels alone,
// the one-line errors a bad setup gets before any training, and `shrink distill` end to end.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { DistillReport } from '../src/cli/distill-command.js';
import { writeNpy } from '../src/eval/npy.js';
import { writeNpz } from '../src/eval/npz.js';
import { inspectModel } from '../src/inspect/inspect.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import { classifierAccuracy, imageTrainingData, type LabelledImages } from '../src/train/classification.js';
import { type DistillData, type DistillOptions, distill } from '../src/train/distill.js';
import { mlpModel } from '../src/train/init-models.js';
import { Trainer } from '../src/train/trainer.js';
import { runShrink } from './helpers/cli.js';
import { pseudoRandom } from './helpers/tensors.js';

const work = mkdtempSync(join(tmpdir(), 'shrink-distill-'));
after(() => rmSync(work, { recursive: true, force: true }));

const sgd = { kind: 'sgd', momentum: 0.9 } as const;
const tinyMlp = (hidden: number, classes: number, seed: number) => mlpModel({ imageDims: [6], hidden: [hidden], classes, seed });

/** Eight samples of six features and their class ids. */
function tinyData(): DistillData {
  return {
    inputs: { input: { data: pseudoRandom(48, 7), sampleDims: [6], dataType: DataType.FLOAT } },
    labels: Uint8Array.of(0, 1, 2, 0, 1, 2, 2, 1),
  };
}

const imageData = (set: LabelledImages): DistillData => ({
  inputs: { input: { data: set.images, sampleDims: set.imageDims, dataType: DataType.FLOAT, scale: 1 / 255 } },
  labels: set.labels,
});

/** Logits and one intermediate value of `model` on the tiny data, in float64. */
async function forward(model: Model, value: string): Promise<{ logits: Float64Array; value: Float64Array }> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 1, extraOutputs: [value] });
  try {
    const out = await session.run({ input: new nodeOrt.Tensor('float32', pseudoRandom(48, 7), [8, 6]) });
    return { logits: Float64Array.from(out.logits.data as Float32Array), value: Float64Array.from(out[value].data as Float32Array) };
  } finally {
    await session.release();
  }
}

function logSoftmax(row: Float64Array, temperature: number): number[] {
  const scaled = Array.from(row, (v) => v / temperature);
  const max = Math.max(...scaled);
  const log = Math.log(scaled.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
  return scaled.map((v) => v - log);
}

test('the training step computes alpha*CE + (1-alpha)*T^2*KL + weight*MSE of the features', async () => {
  const teacher = tinyMlp(5, 3, 1);
  const student = tinyMlp(5, 3, 2);
  const [temperature, alpha, weight] = [3, 0.3, 0.7];
  // One full batch at learning rate 0: the recorded loss is the loss of the initial weights.
  const result = await distill(nodeOrt, {
    teacher,
    student,
    data: tinyData(),
    temperature,
    alpha,
    features: [{ teacher: 'relu1_out', student: 'relu1_out', weight }],
    epochs: 1,
    batchSize: 8,
    schedule: { kind: 'constant', rate: 0 },
    optimizer: sgd,
    threads: 1,
  });
  assert.equal(result.steps, 1);
  assert.equal(result.classes, 3);

  const t = await forward(teacher, 'relu1_out');
  const s = await forward(student, 'relu1_out');
  const labels = tinyData().labels as Uint8Array;
  let ce = 0;
  let kl = 0;
  for (let n = 0; n < 8; n++) {
    const row = (x: Float64Array) => x.subarray(n * 3, n * 3 + 3);
    ce -= logSoftmax(row(s.logits), 1)[labels[n]] / 8;
    const lt = logSoftmax(row(t.logits), temperature);
    const ls = logSoftmax(row(s.logits), temperature);
    kl += lt.reduce((sum, v, c) => sum + Math.exp(v) * (v - ls[c]), 0) / 8;
  }
  const mse = t.value.reduce((sum, v, i) => sum + (s.value[i] - v) ** 2, 0) / t.value.length;
  assert.ok(mse > 0.01 && kl > 1e-4, `terms too small to check: mse ${mse}, kl ${kl}`);
  const expected = alpha * ce + (1 - alpha) * temperature ** 2 * kl + weight * mse;
  const got = result.history[0].meanLoss;
  assert.ok(Math.abs(got - expected) <= 1e-5 * Math.abs(expected), `loss ${got}, formula ${expected}`);
});

test('Fashion-MNIST: a student distilled from a 4x larger teacher beats the same student on hard labels', async (t) => {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const testSet = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const accuracy = (model: Model) => classifierAccuracy(nodeOrt, model, testSet, { threads: 1 });

  // Teacher 784-256-128-10, two epochs on all 60k images.
  const teacherTrainer = await Trainer.create(nodeOrt, mlpModel({ imageDims: [1, 28, 28], hidden: [256, 128], classes: 10, seed: 1 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: sgd }, { threads: 1 });
  await teacherTrainer.fit(imageTrainingData(train), { epochs: 2, batchSize: 64, schedule: { kind: 'cosine', rate: 0.05 }, seed: 1 });
  const teacher = teacherTrainer.exportModel();
  await teacherTrainer.release();

  // Student 784-64-32-10. The transfer set is the first 500 training images: with few samples the
  // teacher's soft targets carry most of what the student can learn (Hinton et al. 2015, sec. 3);
  // on all 60k images for one epoch the gap was about 0.5 points.
  const student = () => mlpModel({ imageDims: [1, 28, 28], hidden: [64, 32], classes: 10, seed: 3 });
  const parameters = (model: Model) => inspectModel(model).parameters.elements;
  const ratio = parameters(student()) / parameters(teacher);
  assert.ok(ratio >= 0.2 && ratio <= 0.3, `parameter ratio ${ratio}`);
  const transfer: LabelledImages = { images: train.images.subarray(0, 500 * 784), labels: train.labels.subarray(0, 500), imageDims: [1, 28, 28], count: 500 };
  // 7 batches of 64 per epoch, 86 epochs: 602 steps, the same shuffled batches in every run.
  const fit = { epochs: 86, batchSize: 64, schedule: { kind: 'cosine', rate: 0.05 }, seed: 13 } as const;

  const distilled = await distill(nodeOrt, { teacher, student: student(), data: imageData(transfer), temperature: 4, alpha: 0.5, optimizer: sgd, threads: 1, ...fit });
  const hardTrainer = await Trainer.create(nodeOrt, student(), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: sgd }, { threads: 1 });
  await hardTrainer.fit(imageTrainingData(transfer), fit);
  const hard = hardTrainer.exportModel();
  await hardTrainer.release();
  assert.equal(distilled.steps, 602);
  assert.equal(hardTrainer.stepCount, 602);

  // alpha = 1 leaves only the hard-label term: the same weights as the plain cross-entropy run,
  // which shows both runs start from the same weights and see the same batches.
  const alphaOne = await distill(nodeOrt, { teacher, student: student(), data: imageData(transfer), alpha: 1, optimizer: sgd, threads: 1, ...fit });
  for (const w of hard.graph.initializers) {
    const a = w.data() as Float32Array;
    const b = alphaOne.model.graph.initializer(w.name)?.data() as Float32Array;
    const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    assert.ok(worst <= 1e-5, `'${w.name}' differs by ${worst} between alpha 1 and plain cross-entropy`);
  }

  const [teacherAccuracy, distilledAccuracy, hardAccuracy] = [await accuracy(teacher), await accuracy(distilled.model), await accuracy(hard)];
  t.diagnostic(`parameters: teacher ${parameters(teacher)}, student ${parameters(hard)} (ratio ${ratio.toFixed(3)})`);
  t.diagnostic(`test accuracy: teacher ${teacherAccuracy.toFixed(2)}%, distilled student ${distilledAccuracy.toFixed(2)}%, hard-label student ${hardAccuracy.toFixed(2)}%`);
  assert.ok(teacherAccuracy > 85, `teacher ${teacherAccuracy}%`);
  assert.ok(distilledAccuracy >= hardAccuracy + 2, `distilled ${distilledAccuracy}% vs hard labels ${hardAccuracy}%`);
});

test('bad setups fail before training with one line naming the problem', async () => {
  const base: DistillOptions = { teacher: tinyMlp(5, 3, 1), student: tinyMlp(5, 3, 2), data: tinyData(), epochs: 1, batchSize: 4, schedule: { kind: 'constant', rate: 0.1 }, optimizer: sgd, threads: 1 };
  const fails = async (changes: Partial<DistillOptions>, message: RegExp) => {
    await assert.rejects(distill(nodeOrt, { ...base, ...changes }), (error: Error) => {
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  };
  await fails({ student: tinyMlp(5, 4, 2) }, /^distill: teacher output 'logits' is \[N,3\], student output 'logits' is \[N,4\]: they must both be \[N, 4\]$/);
  await fails({ features: [{ teacher: 'relu9_out', student: 'relu1_out' }] }, /^distill: the teacher computes no value 'relu9_out' in its main graph/);
  await fails({ features: [{ teacher: 'relu1_out', student: 'hidden' }] }, /^distill: the student computes no value 'hidden' in its main graph/);
  await fails({ student: tinyMlp(4, 3, 2), features: [{ teacher: 'relu1_out', student: 'relu1_out' }] }, /^distill: feature shapes differ: teacher 'relu1_out' is \[N,5\], student 'relu1_out' is \[N,4\]$/);
  await fails({ data: { inputs: tinyData().inputs } }, /^distill: alpha 0.5 weights a hard-label loss, but the data has no labels/);
  await fails({ data: { ...tinyData(), labels: Uint8Array.of(0, 1, 2) } }, /^distill: 3 labels for 8 samples$/);
  await fails({ data: { ...tinyData(), labels: Uint8Array.of(0, 1, 2, 3, 0, 0, 0, 0) } }, /^distill: label 3 of sample 3 is not a class id of the 3 classes$/);
  await fails({ data: { inputs: { pixels: tinyData().inputs.input }, labels: tinyData().labels } }, /^distill: the data has no 'input' for the teacher's input \(data holds 'pixels'\)$/);
  await fails({ alpha: 1.5 }, /^distill: alpha must be in \[0, 1\], not 1.5$/);
  await fails({ temperature: 0 }, /^distill: temperature must be a positive number, not 0$/);
  await fails({ studentOutput: 'probs' }, /^distill: 'probs' is not an output of the student \(outputs: logits\)$/);

  // alpha 0 needs no labels: the teacher alone teaches.
  const soft = await distill(nodeOrt, { ...base, alpha: 0, data: { inputs: tinyData().inputs } });
  assert.equal(soft.steps, 2);
});

/** `shrink distill ...` in this process, as main() runs a command: exit code, stdout, stderr. */
const shrinkDistill = (args: string[]) => runShrink(['distill', ...args]);

test('shrink distill trains the student from an .npz and writes it; bad input gets one line', async () => {
  const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const images = set.images.subarray(0, 256 * 784) as Uint8Array;
  const labels = set.labels.subarray(0, 256);
  const npy = (dataType: DataType, dims: number[], data: Uint8Array) => ({ dataType, dims, data });
  const withLabels = join(work, 'train.npz');
  const imagesOnly = join(work, 'images.npz');
  writeFileSync(withLabels, writeNpz({ input: npy(DataType.UINT8, [256, 1, 28, 28], images), labels: npy(DataType.UINT8, [256], labels) }));
  writeFileSync(imagesOnly, writeNpz({ input: npy(DataType.UINT8, [256, 1, 28, 28], images) }));
  const teacherFile = join(work, 'teacher.onnx');
  const studentFile = join(work, 'student.onnx');
  saveModel(mlpModel({ imageDims: [1, 28, 28], hidden: [32], classes: 10, seed: 1 }), teacherFile);
  saveModel(mlpModel({ imageDims: [1, 28, 28], hidden: [8], classes: 10, seed: 2 }), studentFile);
  const output = join(work, 'distilled.onnx');
  const common = ['--teacher', teacherFile, '--student', studentFile, '-o', output, '--scale', '1/255', '--threads', '1', '--no-progress'];

  const run = await shrinkDistill([...common, '--data', withLabels, '--epochs', '2', '--batch-size', '64', '--lr', '0.1', '--json']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  const report = JSON.parse(run.stdout) as DistillReport;
  assert.equal(report.samples, 256);
  assert.equal(report.classes, 10);
  assert.equal(report.steps, 8);
  assert.deepEqual(report.epochs.map((e) => e.steps), [4, 4]);
  assert.equal(report.temperature, 4);
  assert.equal(report.alpha, 0.5);
  assert.equal(report.parameters.teacher, 784 * 32 + 32 + 32 * 10 + 10);
  assert.equal(report.parameters.student, 784 * 8 + 8 + 8 * 10 + 10);
  assert.equal(report.command, 'distill');
  assert.deepEqual(report.input, { teacher: teacherFile, student: studentFile });
  assert.equal(report.output, output);
  assert.deepEqual(report.size, { before: readFileSync(studentFile).byteLength, after: readFileSync(output).byteLength, ratio: 1 });
  // The written student: same graph, new weights.
  const before = loadModel(studentFile);
  const trained = loadModel(output);
  assert.deepEqual(trained.graph.nodes.map((n) => n.opType), before.graph.nodes.map((n) => n.opType));
  const weight = (model: Model) => model.graph.initializer('fc1.weight')?.data() as Float32Array;
  const moved = weight(trained).some((v, i) => v !== weight(before)[i]);
  assert.ok(moved, 'fc1.weight did not change');

  const oneLine = (result: Awaited<ReturnType<typeof shrinkDistill>>, code: number, pattern: RegExp) => {
    assert.equal(result.code, code, result.stderr);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
    assert.match(result.stderr.trimEnd(), pattern);
  };
  oneLine(await shrinkDistill([...common, '--data', imagesOnly]), 1, /^shrink: \S*images\.npz: no 'labels' array of class ids; add one or give --labels FILE\.npy \(--alpha 0\.5 weights a hard-label loss; --alpha 0 learns from the teacher alone\)$/);
  oneLine(await shrinkDistill([...common, '--data', withLabels, '--alpha', '2']), 2, /^shrink: --alpha must be a number in \[0, 1\], got '2'$/);
  oneLine(await shrinkDistill([...common, '--data', join(work, 'missing.npz')]), 1, /missing\.npz: no such file/);
  oneLine(await shrinkDistill([...common, '--data', withLabels, '--feature', 'relu1_out']), 2, /^shrink: --feature: 'relu1_out' is not teacher=student or teacher=student@weight$/);
  oneLine(await shrinkDistill([...common, '--data', withLabels, '--feature', 'relu1_out=relu1_out']), 1, /^shrink: distill: feature shapes differ: teacher 'relu1_out' is \[N,32\], student 'relu1_out' is \[N,8\]$/);
  const labelsFile = join(work, 'labels.npy');
  writeFileSync(labelsFile, writeNpy(npy(DataType.UINT8, [256], labels)));
  oneLine(await shrinkDistill([...common, '--data', withLabels, '--labels', labelsFile]), 2, /holds 'labels' and --labels gives them too/);
  oneLine(await shrinkDistill([...common, '--data', imagesOnly, '--labels', join(work, 'train.npz')]), 1, /train\.npz: not a \.npy file/);
  // Labels from their own file.
  const separate = await shrinkDistill([...common, '--data', imagesOnly, '--labels', labelsFile, '--json']);
  assert.equal(separate.code, 0, separate.stderr);
  assert.equal((JSON.parse(separate.stdout) as DistillReport).steps, 4);
});
