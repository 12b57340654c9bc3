// Stochastic weight averaging (train/weight-average.ts; recipe key `average_epochs` on a cluster
// step that distils a value): the float weights of the last N epochs' ends averaged, others kept
// at their last value; one epoch gives nothing to average; the recipe key's rules. And on the
// Fashion-MNIST MLP's logits, a run that averages its last 2 epochs ends between them: its
// centroids differ from the plain run's last ones.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { cluster } from '../src/pipeline/cluster.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import type { Trainer } from '../src/train/trainer.js';
import { WeightAverage } from '../src/train/weight-average.js';

/** A stand-in for the trainer's one method the average reads. */
function at(weights: Record<string, Tensor>): Trainer {
  return { currentWeights: () => new Map(Object.entries(weights)) } as unknown as Trainer;
}

/** The Fashion-MNIST MLP clustered at 2 bits per tensor, its centroids distilled on its logits (256 training images). */
async function clusterMlp(settings: { epochs: number; seed?: number; averageEpochs?: number; averageRuns?: number }) {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const inputs = { image: { data: Float32Array.from(train.images.subarray(0, 256 * 784), (v) => v / 255), sampleDims: [1, 28, 28], dataType: DataType.FLOAT } };
  const finetune = { batchSize: 32, schedule: { kind: 'constant' as const, rate: 1e-3 }, optimizer: { kind: 'adamw' as const }, distillValue: 'logits', distillLoss: 'mse' as const, ...settings };
  const { model, report } = await cluster(loadModel('models/fashion-mnist/mlp.onnx'), { bits: 2, data: { inputs }, finetune }, { ort: nodeOrt, threads: 1 });
  return { report, books: model.graph.initializers.filter((t) => t.name.endsWith('_codebook')).map((t) => t.data() as Float32Array) };
}

test('WeightAverage: the mean of the float weights over the epochs from `from` on; integers keep their last value', () => {
  const average = new WeightAverage(1);
  const w = (v: number[]) => Tensor.fromArray('w', DataType.FLOAT, [2], Float32Array.from(v));
  const step = (n: number) => Tensor.fromArray('step', DataType.INT64, [], BigInt64Array.from([BigInt(n)]));
  assert.deepEqual(average.afterEpoch(0, at({ w: w([100, 100]), step: step(1) })), {}, 'epoch 0 is before the average');
  average.afterEpoch(1, at({ w: w([1, 2]), step: step(2) }));
  assert.equal(average.weights(), undefined, 'one epoch: nothing to average');
  assert.deepEqual(average.afterEpoch(2, at({ w: w([3, 6]), step: step(3) })), { averaged_epochs: 2 });
  const out = average.weights() as Map<string, Tensor>;
  assert.deepEqual([...(out.get('w')?.data() as Float32Array)], [2, 4]);
  assert.equal((out.get('step')?.data() as BigInt64Array)[0], 3n);
});

test('recipe: average_epochs goes with epochs and distill_value, and is at most epochs', () => {
  const ok = parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 4, distill_value: logits, average_epochs: 2}\n', 'r.yaml').steps[0];
  assert.ok(ok.kind === 'cluster' && ok.training?.averageEpochs === 2);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 4, average_epochs: 2}\n', 'r.yaml'), /'average_epochs' goes with 'epochs' and 'distill_value'/);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 2, distill_value: logits, average_epochs: 3}\n', 'r.yaml'), /'average_epochs' \(3\) is more than 'epochs' \(2\)/);
});

test('cluster distilling the MLP logits: averaging the last 2 of 2 epochs gives other centroids than the last epoch alone', async () => {
  const books = async (averageEpochs: number) => (await clusterMlp({ epochs: 2, averageEpochs })).books.map((b) => [...b]);
  const last = await books(1);
  const averaged = await books(2);
  assert.equal(averaged.length, last.length);
  assert.ok(averaged.length > 0, 'codebooks found');
  assert.notDeepEqual(averaged, last);
});

test('WeightAverage.add: the mean of whole sets of weights; a set of another size is refused', () => {
  const soup = new WeightAverage();
  const w = (v: number[]) => new Map([['w', Tensor.fromArray('w', DataType.FLOAT, [v.length], Float32Array.from(v))]]);
  soup.add(w([1, 10]));
  soup.add(w([2, 20]));
  soup.add(w([6, 60]));
  assert.deepEqual([...(soup.weights()?.get('w')?.data() as Float32Array)], [3, 30]);
  assert.throws(() => soup.add(w([1])), /weight average: 'w' has 1 values, earlier 2/);
});

test('recipe: average_runs goes with epochs and distill_value', () => {
  const ok = parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 2, distill_value: logits, average_runs: 3}\n', 'r.yaml').steps[0];
  assert.ok(ok.kind === 'cluster' && ok.training?.averageRuns === 3);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 2, average_runs: 2}\n', 'r.yaml'), /'average_runs' goes with 'epochs' and 'distill_value'/);
});

test('cluster distilling the MLP logits: average_runs 2 gives the mean of the centroids of seeds 0 and 1, trained alone', async () => {
  const books = (seed: number, averageRuns?: number) => clusterMlp({ epochs: 1, seed, averageRuns });
  const a = await books(0);
  const b = await books(1);
  const soup = await books(0, 2);
  assert.equal(soup.report.finetune?.runs, 2);
  assert.equal(soup.report.finetune?.run_losses?.length, 2);
  assert.equal(soup.books.length, 3);
  let moved = 0;
  soup.books.forEach((book, k) => {
    for (let i = 0; i < book.length; i++) {
      const mean = (a.books[k][i] + b.books[k][i]) / 2;
      assert.ok(Math.abs(book[i] - mean) <= 1e-6 * Math.max(1, Math.abs(mean)), `codebook ${k} slot ${i}: ${book[i]} vs the runs' mean ${mean}`);
      if (a.books[k][i] !== b.books[k][i]) moved++;
    }
  });
  assert.ok(moved > 0, 'the two seeds trained to different centroids');
});
