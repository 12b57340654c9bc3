// The training step as a graph: optimizer updates against their formulas, masks, frozen weights,
// resume from a saved state, and the one-line errors a bad setup gets before any step runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Model } from '../src/ir/model.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { addGradients } from '../src/train/autodiff.js';
import { arrayTrainingData } from '../src/train/array-data.js';
import { mlpModel } from '../src/train/init-models.js';
import { Trainer } from '../src/train/trainer.js';
import type { TrainingSpec } from '../src/train/training-graph.js';
import { pseudoRandom } from './helpers/tensors.js';
import { runModel } from './helpers/run-model.js';

const tiny = () => mlpModel({ imageDims: [6], hidden: [5], classes: 3, seed: 4 });

function batch(seed: number): Record<string, Tensor> {
  return {
    input: Tensor.fromArray('input', DataType.FLOAT, [4, 6], pseudoRandom(24, seed)),
    'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [4], BigInt64Array.of(0n, 2n, 1n, 2n)),
  };
}

/**
 * Gradients of the mean cross-entropy with respect to every weight, from a separate graph: the
 * model plus the same loss written out here, differentiated by addGradients (checked against
 * finite differences in the train-grad-* tests).
 */
async function referenceGradients(model: Model, feeds: Record<string, Tensor>): Promise<Map<string, Float32Array>> {
  const copy = readModel(writeModel(model));
  const g = copy.graph;
  const weights = g.initializers.map((t) => t.name);
  const { GraphBuilder } = await import('../src/ir/builder.js');
  const { attr } = await import('../src/ir/attribute.js');
  const b = new GraphBuilder(g);
  b.input('labels', DataType.INT64, [4]);
  const onehot = b.node('OneHot', ['labels', b.initializer('depth', DataType.INT64, [], BigInt64Array.of(3n)), b.initializer('values', DataType.FLOAT, [2], Float32Array.of(0, 1))]);
  const logp = b.node('LogSoftmax', ['logits'], [attr.int('axis', 1)]);
  const picked = b.node('ReduceSum', [b.node('Mul', [onehot, logp]), b.initializer('axes', DataType.INT64, [1], BigInt64Array.of(1n))], [attr.int('keepdims', 0)]);
  b.node('Div', [b.node('Neg', [b.node('ReduceSum', [picked], [attr.int('keepdims', 0)])]), b.initializer('four', DataType.FLOAT, [], Float32Array.of(4))], [], { outputs: ['ref_loss'] });
  const { gradients } = addGradients(copy, { loss: 'ref_loss', wrt: weights });
  g.outputs = [];
  weights.forEach((w, i) => {
    b.node('Identity', [gradients.get(w) as string], [], { outputs: [`g${i}`] });
    b.output(`g${i}`);
  });
  g.changed();
  const out = await runModel(copy, [feeds.input, Tensor.fromBytes('labels', DataType.INT64, [4], feeds['train/labels'].bytes())]);
  return new Map(weights.map((w, i) => [w, out[i].data() as Float32Array]));
}

const initial = (model: Model, name: string) => model.graph.initializer(name)?.data() as Float32Array;

/** Two SGD steps with momentum 0.9 against the formula on reference gradients. */
async function checkSgd(decay: number): Promise<Trainer> {
  const model = tiny();
  const spec: TrainingSpec = { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: decay } };
  const trainer = await Trainer.create(nodeOrt, model, spec, { threads: 1 });
  assert.deepEqual(trainer.training.weights.map((w) => w.name).sort(), ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight']);
  const lr = 0.1;
  // Step 1: v = g + wd w; w1 = w - lr v. Step 2 on another batch: v2 = 0.9 v + g2 + wd w1.
  const g1 = await referenceGradients(model, batch(1));
  await trainer.step(batch(1), lr);
  const after1 = trainer.exportModel();
  const g2 = await referenceGradients(after1, batch(2));
  await trainer.step(batch(2), lr);
  const after2 = trainer.currentWeights();
  for (const name of ['fc1.weight', 'fc2.bias']) {
    const w0 = initial(model, name);
    const w1 = initial(after1, name);
    const w2 = after2.get(name)?.data() as Float32Array;
    let worst = 0;
    for (let i = 0; i < w0.length; i++) {
      const v1 = (g1.get(name) as Float32Array)[i] + decay * w0[i];
      worst = Math.max(worst, Math.abs(w1[i] - (w0[i] - lr * v1)));
      const v2 = 0.9 * v1 + (g2.get(name) as Float32Array)[i] + decay * w1[i];
      worst = Math.max(worst, Math.abs(w2[i] - (w1[i] - lr * v2)));
    }
    assert.ok(worst < 1e-6, `${name}: worst difference ${worst}`);
  }
  await trainer.release();
  return trainer;
}

test('SGD with momentum and weight decay: two steps match the formula on the gradients', async () => {
  await checkSgd(0.01);
});

test("SGD with momentum alone: the weight gradient's Gemm adds the velocity (C, beta) and two steps match the formula", async () => {
  const trainer = await checkSgd(0);
  // Both Gemm layers' weights: their gradient Gemm reads the velocity as C, with beta = momentum.
  const graph = trainer.training.model.graph;
  for (const weight of ['fc1.weight', 'fc2.weight']) {
    const velocity = trainer.training.state.find((s) => s.param === weight)?.input as string;
    const gemm = graph.consumers(velocity).find((n) => n.opType === 'Gemm');
    assert.ok(gemm !== undefined && gemm.inputs[2] === velocity, `${weight}: no Gemm adds the velocity`);
    assert.ok(Math.abs(gemm.attrFloat('beta', 1) - 0.9) < 1e-7);
  }
});

test('AdamW: the first step moves each weight by lr * (sign(g) + wd w), as bias correction makes it', async () => {
  const model = tiny();
  const trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'adamw', weightDecay: 0.1, epsilon: 1e-12 } }, { threads: 1 });
  const g = await referenceGradients(model, batch(3));
  await trainer.step(batch(3), 0.01);
  const w = trainer.currentWeights();
  for (const name of ['fc1.weight', 'fc2.weight', 'fc2.bias']) {
    const w0 = initial(model, name);
    const w1 = w.get(name)?.data() as Float32Array;
    const grad = g.get(name) as Float32Array;
    for (let i = 0; i < w0.length; i++) {
      if (Math.abs(grad[i]) < 1e-6) continue;
      const expected = w0[i] - 0.01 * (Math.sign(grad[i]) + 0.1 * w0[i]);
      assert.ok(Math.abs(w1[i] - expected) < 2e-6, `${name}[${i}]: ${w1[i]} vs ${expected}`);
    }
  }
  await trainer.release();
});

test('frozen weights stay bit-identical; masked weights stay zero where the mask is zero', async () => {
  const model = tiny();
  const weight = initial(model, 'fc1.weight');
  const mask = Float32Array.from(weight, (_, i) => (i % 3 === 0 ? 0 : 1));
  const trainer = await Trainer.create(
    nodeOrt,
    model,
    {
      loss: { kind: 'cross-entropy', output: 'logits' },
      optimizer: { kind: 'adamw' },
      frozen: [/^fc2\./],
      masks: new Map([['fc1.weight', Tensor.fromArray('m', DataType.FLOAT, [5, 6], mask)]]),
    },
    { threads: 1 },
  );
  assert.deepEqual(trainer.training.weights.map((w) => w.name).sort(), ['fc1.bias', 'fc1.weight']);
  for (let s = 0; s < 5; s++) await trainer.step(batch(s), 0.05);
  const out = trainer.exportModel();
  assert.deepEqual(initial(out, 'fc2.weight'), initial(model, 'fc2.weight'));
  const trained = initial(out, 'fc1.weight');
  let moved = 0;
  trained.forEach((v, i) => {
    if (mask[i] === 0) assert.ok(v === 0, `masked element ${i} is ${v}`);
    else if (v !== weight[i]) moved++;
  });
  assert.ok(moved > 15, `${moved} unmasked elements moved`);
  await trainer.release();
});

test('resume: one epoch, save, restore in a new trainer, one more epoch = two epochs straight', async () => {
  const images = pseudoRandom(40 * 6, 9);
  const labels = Uint8Array.from({ length: 40 }, (_, i) => (i * 7) % 3);
  const data = arrayTrainingData({ input: { data: images, sampleDims: [6], dataType: DataType.FLOAT }, 'train/labels': { data: labels, sampleDims: [], dataType: DataType.INT64 } });
  const spec: TrainingSpec = { loss: { kind: 'cross-entropy', output: 'logits', labelSmoothing: 0.1 }, optimizer: { kind: 'adamw' }, clipNorm: 1 };
  const fit = { batchSize: 8, schedule: { kind: 'cosine' as const, rate: 0.01, warmup: 2 }, seed: 5 };
  const straight = await Trainer.create(nodeOrt, tiny(), spec, { threads: 1 });
  const history = await straight.fit(data, { ...fit, epochs: 2 });
  assert.equal(history.length, 2);
  assert.ok(history[1].meanLoss < history[0].meanLoss, `loss ${history[0].meanLoss} -> ${history[1].meanLoss}`);
  const first = await Trainer.create(nodeOrt, tiny(), spec, { threads: 1 });
  // The same two-epoch schedule, stopped after the first epoch's 5 steps.
  await first.fit(data, { ...fit, epochs: 2, maxSteps: 5 });
  assert.equal(first.epochCount, 1);
  const saved = first.state();
  const resumed = await Trainer.create(nodeOrt, tiny(), spec, { threads: 1 });
  resumed.restore(saved);
  await resumed.fit(data, { ...fit, epochs: 2 });
  assert.equal(resumed.stepCount, straight.stepCount);
  for (const [name, tensor] of straight.currentWeights()) assert.deepEqual(resumed.currentWeights().get(name)?.data(), tensor.data(), name);
  for (const t of [straight, first, resumed]) await t.release();
});

test('bad setups fail with one line before any step: missing output, unknown weight, op without a rule, wrong data shape', async () => {
  const sgd = { kind: 'sgd' as const };
  await assert.rejects(Trainer.create(nodeOrt, tiny(), { loss: { kind: 'cross-entropy', output: 'nope' }, optimizer: sgd }), { name: 'GradientError', message: /^loss: 'nope' is not an output of the model \(outputs: logits\)$/ });
  await assert.rejects(Trainer.create(nodeOrt, tiny(), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: sgd, trainable: ['fc9.weight'] }), { name: 'GradientError', message: /^trainable 'fc9.weight' is not a weight of the main graph$/ });
  const model = tiny();
  const relu = model.graph.nodes.find((n) => n.name === 'relu1');
  assert.ok(relu !== undefined);
  relu.opType = 'Mish';
  await assert.rejects(Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: sgd }), { name: 'GradientError', message: /^node 'relu1' \(Mish\): no gradient rule for Mish, and it lies between 'fc1.weight' and the loss$/ });
  const trainer = await Trainer.create(nodeOrt, tiny(), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: sgd }, { threads: 1 });
  const wrong = { ...batch(1), input: Tensor.fromArray('input', DataType.FLOAT, [4, 7], pseudoRandom(28, 1)) };
  await assert.rejects(trainer.step(wrong, 0.1), { name: 'GradientError', message: /^training data 'input' has dims \[4,7\], the model wants \[N,6\]$/ });
  assert.equal(trainer.stepCount, 0);
  await trainer.release();
});
