// Recovery of a channel-pruned sequence model by distilling an inner value (the logits before a
// softmax output, as PP-OCR rec has them): `distillValue` with MSE or with KL per position over
// the last axis. Built in code: x [N, 6, 8] -> MatMul [8, 16] -> Relu -> MatMul [16, 5] = logits
// [N, 6, 5] -> Softmax -> probs. Half the hidden channels go; distillation from the original
// without labels must bring the pruned model's per-position distributions closer to the
// original's (KL measured here, on held-out inputs), and the written model keeps only its own
// output.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { prune } from '../src/pipeline/prune.js';
import { runModel } from './helpers/run-model.js';

const [T, F, H, C] = [6, 8, 16, 5];

function sequenceModel(): Model {
  const next = mulberry32(3);
  const b = new GraphBuilder(new Graph('sequence'));
  b.input('x', DataType.FLOAT, ['N', T, F]);
  const w1 = b.initializer('w1', DataType.FLOAT, [F, H], Float32Array.from({ length: F * H }, () => next() * 2 - 1));
  const w2 = b.initializer('w2', DataType.FLOAT, [H, C], Float32Array.from({ length: H * C }, () => (next() * 2 - 1) * 2));
  const [hidden] = b.node('Relu', [b.node('MatMul', ['x', w1])], [], { outputs: ['hidden'] });
  b.node('MatMul', [hidden, w2], [], { outputs: ['logits'] });
  b.node('Softmax', ['logits'], [attr.int('axis', -1)], { outputs: ['probs'] });
  b.output('probs');
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

function inputs(count: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: count * T * F }, () => next() * 2 - 1);
}

/** Mean over positions of KL(original || candidate) of the softmax outputs. */
async function meanKl(original: Model, candidate: Model, x: Float32Array): Promise<number> {
  const feed = [Tensor.fromArray('x', DataType.FLOAT, [x.length / (T * F), T, F], x)];
  const [p] = await runModel(original, feed);
  const [q] = await runModel(candidate, feed);
  const pd = p.data() as Float32Array;
  const qd = q.data() as Float32Array;
  let kl = 0;
  for (let i = 0; i < pd.length; i++) kl += pd[i] * Math.log(pd[i] / qd[i]);
  return kl / (pd.length / C);
}

for (const loss of ['kl', 'mse'] as const) {
  test(`channels 0.5 then distillation of 'logits' by ${loss}: the pruned model moves towards the original, the output stays its own`, async () => {
    const model = sequenceModel();
    const train = inputs(256, 5);
    const heldOut = inputs(64, 6);
    const settings = { method: 'channels' as const, sparsity: 0.5, inputShapes: { x: [1, T, F] } };
    const { model: pruned } = await prune(model, settings, { ort: nodeOrt, threads: 1 });
    const { model: recovered, report } = await prune(
      model,
      {
        ...settings,
        data: { inputs: { x: { data: train, sampleDims: [T, F], dataType: DataType.FLOAT } } },
        recovery: { epochs: 6, batchSize: 16, schedule: { kind: 'constant', rate: 0.01 }, optimizer: { kind: 'adamw' }, seed: 0, distillValue: 'logits', distillLoss: loss },
      },
      { ort: nodeOrt, threads: 1 },
    );
    assert.equal(report.recovery?.kind, 'distill');
    assert.equal(report.recovery?.loss, loss);
    assert.equal(report.recovery?.value, 'logits');
    assert.deepEqual(recovered.graph.outputs.map((o) => o.name), ['probs']);
    assert.deepEqual(recovered.graph.inputs[0].type?.value?.case === 'tensorType' ? recovered.graph.inputs[0].type.value.value.shape?.dim.map((d) => (d.value.case === 'dimParam' ? d.value.value : Number(d.value.value))) : undefined, ['N', T, F], 'the input keeps its symbolic batch dim');
    const losses = report.recovery?.mean_loss ?? [];
    assert.ok(losses[losses.length - 1] < 0.6 * losses[0], `training loss ${losses.join(', ')}`);
    const before = await meanKl(model, pruned, heldOut);
    const after = await meanKl(model, recovered, heldOut);
    assert.ok(before > 0.01, `pruning should change the distributions (KL ${before})`);
    assert.ok(after < 0.5 * before, `held-out KL to the original ${before.toFixed(4)} -> ${after.toFixed(4)}`);
  });
}

test('distillValue naming no value of the model, or a value pruning shrank, fails with one line naming it', async () => {
  const model = sequenceModel();
  const data = { inputs: { x: { data: inputs(32, 5), sampleDims: [T, F], dataType: DataType.FLOAT } } };
  const run = (distillValue: string) => prune(model, { method: 'channels', sparsity: 0.5, inputShapes: { x: [1, T, F] }, data, recovery: { epochs: 1, batchSize: 16, schedule: { kind: 'constant', rate: 0.01 }, optimizer: { kind: 'adamw' }, distillValue } }, { ort: nodeOrt, threads: 1 });
  await assert.rejects(run('no_such_value'), /recovery: the model has no value 'no_such_value' to distil/);
  await assert.rejects(run('hidden'), /recovery: 'hidden' is \[6, 8\] per sample in the trained model but \[6, 16\] in the original/);
});
