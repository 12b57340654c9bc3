// Several steps in one onnxruntime run (a Loop over the step graph) compute what single steps do:
// the same losses, weights, optimizer state and running statistics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { arrayTrainingData } from '../src/train/array-data.js';
import { cnnModel, mlpModel } from '../src/train/init-models.js';
import { Trainer } from '../src/train/trainer.js';
import type { TrainingSpec } from '../src/train/training-graph.js';
import { pseudoRandom } from './helpers/tensors.js';

function assertSameState(a: Trainer, b: Trainer, tolerance: number): void {
  const [x, y] = [a.state(), b.state()];
  assert.equal(x.step, y.step);
  assert.deepEqual([...x.tensors.keys()].sort(), [...y.tensors.keys()].sort());
  for (const [name, tensor] of x.tensors) {
    const [p, q] = [tensor.data() as Float32Array, y.tensors.get(name)?.data() as Float32Array];
    let worst = 0;
    for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i] - q[i]));
    assert.ok(worst <= tolerance, `${name}: differs by ${worst}`);
  }
}

async function compare(model: () => Model, spec: TrainingSpec, imageDims: number[], batch: number, count: number): Promise<void> {
  const per = imageDims.reduce((p, d) => p * d, 1);
  const images = Float32Array.from(pseudoRandom(count * batch * per, 3), (v) => Math.max(0, v));
  const labels = BigInt64Array.from({ length: count * batch }, (_, i) => BigInt((i * 7) % 10));
  const rates = Array.from({ length: count }, (_, i) => 0.05 / (i + 1));
  const single = await Trainer.create(nodeOrt, model(), spec, { threads: 1 });
  const looped = await Trainer.create(nodeOrt, model(), spec, { threads: 1 });
  const singleLosses: number[] = [];
  for (let s = 0; s < count; s++) {
    singleLosses.push(
      await single.step(
        {
          input: Tensor.fromArray('input', DataType.FLOAT, [batch, ...imageDims], images.slice(s * batch * per, (s + 1) * batch * per)),
          'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [batch], labels.slice(s * batch, (s + 1) * batch)),
        },
        rates[s],
      ),
    );
  }
  const losses = await looped.steps(
    { input: Tensor.fromArray('input', DataType.FLOAT, [count * batch, ...imageDims], images), 'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [count * batch], labels) },
    rates,
  );
  assert.equal(losses.length, count);
  for (let s = 0; s < count; s++) assert.ok(Math.abs(losses[s] - singleLosses[s]) <= 1e-6 * Math.abs(singleLosses[s]), `step ${s + 1}: loss ${losses[s]} vs ${singleLosses[s]}`);
  assertSameState(single, looped, 1e-6);
  await single.release();
  await looped.release();
}

test('steps in one run = single steps: MLP with SGD momentum, CNN with BatchNorm statistics and AdamW', async () => {
  await compare(() => mlpModel({ imageDims: [12], hidden: [8], classes: 10, seed: 2 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0.9 } }, [12], 4, 5);
  await compare(() => cnnModel({ classes: 10, channels: [3, 4], hidden: 8, seed: 6 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'adamw' } }, [1, 28, 28], 4, 3);
});

test('fit with 8 steps per run = fit step by step, a last partial batch included', async () => {
  const data = arrayTrainingData({
    input: { data: Float32Array.from(pseudoRandom(50 * 12, 9)), sampleDims: [12], dataType: DataType.FLOAT },
    'train/labels': { data: BigInt64Array.from({ length: 50 }, (_, i) => BigInt(i % 10)), sampleDims: [], dataType: DataType.INT64 },
  });
  const spec: TrainingSpec = { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0.9 } };
  const fit = { epochs: 2, batchSize: 4, schedule: { kind: 'cosine' as const, rate: 0.1 }, seed: 1, dropLast: false };
  const runs = [];
  for (const stepsPerRun of [1, 8]) {
    const trainer = await Trainer.create(nodeOrt, mlpModel({ imageDims: [12], hidden: [8], classes: 10, seed: 2 }), spec, { threads: 1, stepsPerRun });
    const history = await trainer.fit(data, fit);
    runs.push({ trainer, history });
  }
  assert.equal(runs[0].history.length, 2);
  for (const [e, record] of runs[0].history.entries()) {
    assert.equal(runs[1].history[e].steps, 13);
    assert.ok(Math.abs(record.meanLoss - runs[1].history[e].meanLoss) < 1e-6, `epoch ${e + 1}: mean loss ${record.meanLoss} vs ${runs[1].history[e].meanLoss}`);
  }
  assertSameState(runs[0].trainer, runs[1].trainer, 1e-6);
  for (const r of runs) await r.trainer.release();
});
