// The training graph's own rewrites (src/train/rewrites/) keep every gradient: a CNN's step with
// Relu -> MaxPool swapped gives the gradients of the model as written, on images with flat
// backgrounds, where pooling windows tie.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { addGradients } from '../src/train/autodiff.js';
import { cnnModel } from '../src/train/init-models.js';
import { Trainer } from '../src/train/trainer.js';
import { runModel } from './helpers/run-model.js';

const BATCH = 8;

/** Images that are zero but for one bright random square each, and their labels. */
function images(seed: number): Record<string, Tensor> {
  const next = mulberry32(seed);
  const data = new Float32Array(BATCH * 784);
  for (let n = 0; n < BATCH; n++) {
    const [top, left, size] = [Math.floor(next() * 14), Math.floor(next() * 14), 6 + Math.floor(next() * 8)];
    for (let r = top; r < Math.min(28, top + size); r++) for (let c = left; c < Math.min(28, left + size); c++) data[n * 784 + r * 28 + c] = next();
  }
  return {
    input: Tensor.fromArray('input', DataType.FLOAT, [BATCH, 1, 28, 28], data),
    'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [BATCH], BigInt64Array.from({ length: BATCH }, (_, i) => BigInt(i % 10))),
  };
}

/** Gradients of the mean cross-entropy of the model as written (BatchNorm on batch statistics), by addGradients alone. */
async function plainGradients(model: Model, feeds: Record<string, Tensor>, weights: string[]): Promise<{ loss: number; gradients: Map<string, Float32Array> }> {
  const copy = readModel(writeModel(model));
  const g = copy.graph;
  for (const node of g.nodes) {
    if (node.opType !== 'BatchNormalization') continue;
    node.setAttribute(attr.int('training_mode', 1));
    node.outputs = [node.outputs[0], `${node.name}_running_mean`, `${node.name}_running_var`];
  }
  g.changed();
  const b = new GraphBuilder(g);
  b.input('labels', DataType.INT64, [BATCH]);
  const onehot = b.node('OneHot', ['labels', b.initializer('depth', DataType.INT64, [], BigInt64Array.of(10n)), b.initializer('values', DataType.FLOAT, [2], Float32Array.of(0, 1))]);
  const logp = b.node('LogSoftmax', ['logits'], [attr.int('axis', 1)]);
  const picked = b.node('ReduceSum', [b.node('Mul', [onehot, logp]), b.initializer('axes', DataType.INT64, [1], BigInt64Array.of(1n))], [attr.int('keepdims', 0)]);
  b.node('Div', [b.node('Neg', [b.node('ReduceSum', [picked], [attr.int('keepdims', 0)])]), b.initializer('count', DataType.FLOAT, [], Float32Array.of(BATCH))], [], { outputs: ['plain_loss'] });
  const { gradients } = addGradients(copy, { loss: 'plain_loss', wrt: weights });
  g.outputs = [];
  b.output('plain_loss');
  weights.forEach((w, i) => {
    b.node('Identity', [gradients.get(w) as string], [], { outputs: [`g${i}`] });
    b.output(`g${i}`);
  });
  g.changed();
  // Optimizations off: at 'basic' onnxruntime folds BatchNormalization into the Conv with the
  // running statistics, training_mode notwithstanding.
  const out = await runModel(copy, [feeds.input, Tensor.fromBytes('labels', DataType.INT64, [BATCH], feeds['train/labels'].bytes())], { threads: 1, graphOptimization: 'disabled' });
  return { loss: (out[0].data() as Float32Array)[0], gradients: new Map(weights.map((w, i) => [w, out[i + 1].data() as Float32Array])) };
}

test('Relu -> MaxPool runs as MaxPool -> Relu in the training step, with the gradients of the model as written (tied windows included)', async () => {
  const model = cnnModel({ classes: 10, channels: [4, 8], hidden: 16, seed: 3 });
  const trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0 } }, { threads: 1 });
  const graph = trainer.training.model.graph;
  const pools = graph.nodes.filter((n) => n.opType === 'MaxPool');
  assert.equal(pools.length, 2);
  for (const pool of pools) {
    assert.equal(graph.producer(pool.inputs[0])?.opType, 'BatchNormalization', `${pool.name} still reads a Relu`);
    assert.ok(graph.consumers(pool.outputs[0]).some((n) => n.opType === 'Relu'), `${pool.name} feeds no Relu`);
  }
  const feeds = images(7);
  const weights = trainer.training.weights.map((w) => w.name);
  const before = trainer.currentWeights();
  // Plain SGD at rate 1: the step moves every weight by exactly its gradient.
  const loss = await trainer.step(feeds, 1);
  const after = trainer.currentWeights();
  const { loss: expectedLoss, gradients: expected } = await plainGradients(model, feeds, weights);
  assert.ok(Math.abs(loss - expectedLoss) < 1e-6, `loss ${loss}, the model as written ${expectedLoss}`);
  for (const name of weights) {
    const [w0, w1, g] = [before.get(name)?.data() as Float32Array, after.get(name)?.data() as Float32Array, expected.get(name) as Float32Array];
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < g.length; i++) {
      diff += (w0[i] - w1[i] - g[i]) ** 2;
      norm += g[i] ** 2;
    }
    assert.ok(norm > 0, `${name}: zero gradient, the case checks nothing`);
    // Conv biases before a batch-statistics BatchNorm have a zero gradient up to rounding (~1e-7).
    assert.ok(Math.sqrt(diff) < 1e-4 * Math.sqrt(norm) + 1e-6, `${name}: difference ${Math.sqrt(diff)}, gradient norm ${Math.sqrt(norm)}`);
  }
  await trainer.release();
});
