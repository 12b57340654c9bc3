// The train recipe step in-process (src/pipeline/train.ts), no files: the Fashion-MNIST MLP
// fine-tuned for a few steps on test images, its accuracy before and after checked against a count
// made here with onnxruntime-node directly on the input and on the returned model, on held-out
// images. The input model must come back unchanged and the result must be the same graph.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import type { Tensor } from '../src/ir/tensor.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { InputModelError, LABEL_INPUT, train } from '../src/pipeline/train.js';
import { arrayTrainingData } from '../src/train/array-data.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
const PER = 784;

/** Images [from, from + count) as bytes scaled to [0, 1] on the way, with their class ids. */
function slice(from: number, count: number) {
  return {
    images: set.images.subarray(from * PER, (from + count) * PER) as Uint8Array,
    labels: set.labels.subarray(from, from + count),
  };
}

function trainingData(from: number, count: number) {
  const { images, labels } = slice(from, count);
  return arrayTrainingData({
    image: { data: images, sampleDims: [1, 28, 28], dataType: DataType.FLOAT, scale: 1 / 255 },
    [LABEL_INPUT]: { data: labels, sampleDims: [], dataType: DataType.INT64 },
  });
}

/** Correct top-1 predictions of `model` on images [from, from + count), in one onnxruntime run. */
async function countCorrect(model: Model, from: number, count: number): Promise<number> {
  const { images, labels } = slice(from, count);
  const session = await ort.InferenceSession.create(writeModel(model), { intraOpNumThreads: 1 });
  try {
    const x = Float32Array.from(images, (v) => v / 255);
    const logits = (await session.run({ image: new ort.Tensor('float32', x, [count, 1, 28, 28]) })).logits.data as Float32Array;
    let correct = 0;
    for (let r = 0; r < count; r++) {
      const row = logits.subarray(r * 10, r * 10 + 10);
      if (row.indexOf(Math.max(...row)) === labels[r]) correct++;
    }
    return correct;
  } finally {
    await session.release();
  }
}

const weights = (model: Model) => new Map(model.graph.initializers.map((t: Tensor) => [t.name, Array.from(t.data() as Float32Array)]));

test('train (the recipe step) on the Fashion-MNIST MLP: accuracy before and after agree with an independent onnxruntime count', async () => {
  const model = loadModel(MLP);
  const original = weights(model);
  const evalFrom = 5000;
  const evalCount = 1000;
  const { model: trained, report } = await train(
    model,
    {
      data: trainingData(0, 1280),
      evaluation: trainingData(evalFrom, evalCount),
      epochs: 1,
      batchSize: 64,
      schedule: { kind: 'constant', rate: 0.01 },
      optimizer: { kind: 'sgd', momentum: 0.9 },
    },
    { ort: nodeOrt, threads: 1 },
  );
  const before = (100 * (await countCorrect(model, evalFrom, evalCount))) / evalCount;
  const after = (100 * (await countCorrect(trained, evalFrom, evalCount))) / evalCount;
  console.log(`# Fashion-MNIST MLP, 20 steps: report ${report.accuracy.before}% -> ${report.accuracy.after}%, counted ${before}% -> ${after}%`);
  // The step runs 500 samples per batch, the count here all 1000 at once: allow one sample either way.
  const oneSample = 100 / evalCount;
  assert.ok(Math.abs(report.accuracy.before - before) <= oneSample + 1e-9, `before: reported ${report.accuracy.before}, counted ${before}`);
  assert.ok(Math.abs(report.accuracy.after - after) <= oneSample + 1e-9, `after: reported ${report.accuracy.after}, counted ${after}`);
  assert.ok(before > 85, `the shipped MLP scores ${before}%`);
  assert.ok(after > 80, `fine-tuned ${after}%`);

  assert.equal(report.samples, 1280);
  assert.equal(report.steps, 20);
  assert.deepEqual(report.epochs.map((e) => [e.epoch, e.steps]), [[1, 20]]);
  assert.ok(Number.isFinite(report.epochs[0].mean_loss) && report.epochs[0].mean_loss > 0);
  assert.equal(report.trained_weights, 6);
  assert.equal(report.parameters, 256 * 784 + 256 + 128 * 256 + 128 + 10 * 128 + 10);
  // The report is plain JSON data.
  assert.deepEqual(JSON.parse(JSON.stringify(report)), report);

  // The input is untouched; the result is the same graph with new weights.
  assert.deepEqual(weights(model), original, 'the input model changed');
  assert.deepEqual(trained.graph.nodes.map((n) => n.opType), model.graph.nodes.map((n) => n.opType));
  assert.deepEqual(trained.graph.inputs.map((i) => i.name), ['image']);
  const moved = [...weights(trained)].filter(([name, values]) => values.some((v, i) => v !== original.get(name)?.[i]));
  assert.equal(moved.length, 6, 'every weight trained');
});

test('train (the recipe step): a logits output the model lacks is an InputModelError, before any work', async () => {
  const model = loadModel(MLP);
  await assert.rejects(
    train(model, { data: trainingData(0, 64), logits: 'nope', epochs: 1, batchSize: 64, schedule: { kind: 'constant', rate: 0.01 }, optimizer: { kind: 'sgd' } }, { ort: nodeOrt, threads: 1 }),
    (error: unknown) => error instanceof InputModelError && error.model === 'model' && error.message === "no output 'nope' (outputs: logits)",
  );
});
