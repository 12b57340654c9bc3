// Training on a real exported model: PP-OCR cls (opset 9, upgraded; weights in Constant nodes;
// BatchNormalization; hard-swish as HardSigmoid x Mul) gets a training graph, its loss falls over a
// few steps, and the exported model is the original graph with new weights.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { Trainer } from '../src/train/trainer.js';
import { CLS } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';

test('PP-OCR cls fine-tunes: every weight in a Constant node trains, the loss falls, the export runs', async () => {
  const model = loadModel(CLS);
  const output = model.graph.outputs[0].name;
  const trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output }, optimizer: { kind: 'sgd', momentum: 0.9 }, inputShapes: { x: [2, 3, 48, 192] } }, { threads: 2 });
  assert.ok(trainer.training.weights.length > 100, `${trainer.training.weights.length} weights`);
  assert.ok(trainer.training.buffers.length > 0, 'BatchNormalization running statistics are buffers');
  const dims = [2, 3, 48, 192];
  const count = dims.reduce((a, b) => a * b, 1);
  const x = Tensor.fromArray('x', DataType.FLOAT, dims, Float32Array.from({ length: count }, (_, i) => Math.sin(i * 0.37)));
  const batch = { x, 'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [2], BigInt64Array.of(0n, 1n)) };
  const losses: number[] = [];
  for (let s = 0; s < 4; s++) losses.push(await trainer.step(batch, 0.001));
  console.log(`# PP-OCR cls fine-tuning losses: ${losses.map((l) => l.toFixed(4)).join(' -> ')}`);
  assert.ok(losses[3] < losses[0], `losses ${losses.join(', ')}`);
  const exported = trainer.exportModel();
  await trainer.release();
  assert.equal(exported.graph.nodes.length, loadModel(CLS).graph.nodes.length);
  const [before] = await runModel(CLS, [x]);
  const [after] = await runModel(exported, [x]);
  assert.deepEqual(after.dims, before.dims);
  assert.notDeepEqual(after.data(), before.data(), 'the weights changed');
});
