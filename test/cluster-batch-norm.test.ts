// Centroid distillation with BatchNormalization frozen (ClusterFinetune.batchNorm, recipe key
// `batch_norm`): only the codebooks train, so the running statistics are the deployed model's own
// normalization; with batch statistics the student is trained through a normalization it never
// runs with. On a small CNN whose running statistics (mean 0, variance 1) are far from its batch
// statistics on real Fashion-MNIST images, the frozen run ends closer to the original's logits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { cluster } from '../src/pipeline/cluster.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { cnnModel } from '../src/train/init-models.js';
import { runModel } from './helpers/run-model.js';

const COUNT = 128;
const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
const pixels = Float32Array.from(set.images.subarray(0, COUNT * 784), (v) => v / 255);
const data = { inputs: { input: { data: pixels, sampleDims: [1, 28, 28], dataType: DataType.FLOAT } } };
const feeds = [Tensor.fromArray('input', DataType.FLOAT, [COUNT, 1, 28, 28], pixels)];
const ctx = { ort: nodeOrt, threads: 1 };

const meanSquaredError = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / a.length;

test('cluster fine-tuning with batch_norm frozen: the deployed model ends closer to the original than with batch statistics', async () => {
  const original = cnnModel({ classes: 10, channels: [8, 16], hidden: 32, seed: 5 });
  const [reference] = await runModel(original, feeds);
  const errorAfter = async (batchNorm: 'batch' | 'frozen') => {
    const finetune = { epochs: 2, batchSize: 16, schedule: { kind: 'constant' as const, rate: 0.01 }, optimizer: { kind: 'adamw' as const }, seed: 0, distillValue: 'logits', batchNorm };
    const { model } = await cluster(original, { bits: 2, grouping: 'tensor', data, finetune }, ctx);
    const [logits] = await runModel(model, feeds);
    return meanSquaredError(reference.data() as Float32Array, logits.data() as Float32Array);
  };
  const frozen = await errorAfter('frozen');
  const batch = await errorAfter('batch');
  assert.ok(frozen < batch, `frozen ${frozen} vs batch ${batch}`);
});

test('recipes: `batch_norm` of a cluster step goes with epochs; wrong ones are one line', () => {
  const recipe = parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 1, distill_value: logits, batch_norm: frozen}\n', 'r.yaml');
  const step = recipe.steps[0];
  assert.ok(step.kind === 'cluster');
  assert.equal(step.training?.batchNorm, 'frozen');
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, batch_norm: frozen}\n', 'r.yaml'), /'batch_norm' goes with 'epochs'/);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 1, batch_norm: running}\n', 'r.yaml'), /batch_norm/);
});
