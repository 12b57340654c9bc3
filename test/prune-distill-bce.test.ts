// Distillation of the logits before a sigmoid map by binary cross-entropy (`distillLoss: 'bce'`,
// the Bernoulli KL of the two sigmoids): 0 when the student is the original (rate 0: exactly the
// teacher's map), and after pruning half the hidden channels it brings the pruned map back
// towards the original's on held-out inputs (mean Bernoulli KL of the maps, measured here).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { prune } from '../src/pipeline/prune.js';
import { recoverByTraining } from '../src/pipeline/recovery.js';
import { runModel } from './helpers/run-model.js';

const [F, H, P] = [8, 16, 12];

/** x [N, 8] -> MatMul [8, 16] -> Relu -> MatMul [16, 12] = logits -> Sigmoid = map [N, 12]. */
function mapModel(): Model {
  const next = mulberry32(7);
  const b = new GraphBuilder(new Graph('map'));
  b.input('x', DataType.FLOAT, ['N', F]);
  const w1 = b.initializer('w1', DataType.FLOAT, [F, H], Float32Array.from({ length: F * H }, () => next() * 2 - 1));
  const w2 = b.initializer('w2', DataType.FLOAT, [H, P], Float32Array.from({ length: H * P }, () => (next() * 2 - 1) * 3));
  const [hidden] = b.node('Relu', [b.node('MatMul', ['x', w1])], [], { outputs: ['hidden'] });
  b.node('MatMul', [hidden, w2], [], { outputs: ['logits'] });
  b.node('Sigmoid', ['logits'], [], { outputs: ['map'] });
  b.output('map');
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

const inputs = (count: number, seed: number) => {
  const next = mulberry32(seed);
  return Float32Array.from({ length: count * F }, () => next() * 2 - 1);
};

async function meanBernoulliKl(original: Model, candidate: Model, x: Float32Array): Promise<number> {
  const feed = [Tensor.fromArray('x', DataType.FLOAT, [x.length / F, F], x)];
  const p = (await runModel(original, feed))[0].data() as Float32Array;
  const q = (await runModel(candidate, feed))[0].data() as Float32Array;
  let kl = 0;
  const eps = 1e-7;
  for (let i = 0; i < p.length; i++) kl += p[i] * Math.log((p[i] + eps) / (q[i] + eps)) + (1 - p[i]) * Math.log((1 - p[i] + eps) / (1 - q[i] + eps));
  return kl / p.length;
}

test('bce distillation of logits: zero loss against itself, and the pruned map moves back towards the original', async () => {
  const model = mapModel();
  const data = { inputs: { x: { data: inputs(256, 5), sampleDims: [F], dataType: DataType.FLOAT } } };
  const settings = { epochs: 1, batchSize: 16, optimizer: { kind: 'adamw' as const }, seed: 0, distillValue: 'logits', distillLoss: 'bce' as const };
  const itself = await recoverByTraining(model, model, data, { ...settings, schedule: { kind: 'constant', rate: 0 } }, 'map', { ort: nodeOrt, threads: 1 });
  assert.equal(itself.report.loss, 'bce');
  assert.ok(Math.abs(itself.report.mean_loss[0]) < 1e-6, `loss against itself ${itself.report.mean_loss[0]}`);

  const shapes = { x: [1, F] };
  const { model: pruned } = await prune(model, { method: 'channels', sparsity: 0.5, inputShapes: shapes }, { ort: nodeOrt, threads: 1 });
  const { model: recovered, report } = await prune(model, { method: 'channels', sparsity: 0.5, inputShapes: shapes, data, recovery: { ...settings, epochs: 6, schedule: { kind: 'constant', rate: 0.01 } } }, { ort: nodeOrt, threads: 1 });
  assert.equal(report.recovery?.loss, 'bce');
  assert.deepEqual(recovered.graph.outputs.map((o) => o.name), ['map']);
  const heldOut = inputs(64, 6);
  const before = await meanBernoulliKl(model, pruned, heldOut);
  const after = await meanBernoulliKl(model, recovered, heldOut);
  assert.ok(before > 0.01, `pruning should change the map (KL ${before})`);
  assert.ok(after < 0.5 * before, `held-out Bernoulli KL to the original ${before.toFixed(4)} -> ${after.toFixed(4)}`);
});
