// Choosing channels: importance aggregated over a group's layers (checked against a direct count on
// a model with planted weak channels), per-layer and global scope, the ratio cap, layer ratios, --round-to,
// --exclude/--only, BatchNorm importance and its fallback, Taylor importance from gradients, and
// mean compensation of removed channels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { analyzeChannels } from '../src/graph-edit/channel-groups.js';
import { channelsPass, planChannels } from '../src/methods/prune/channels.js';
import { groupImportance } from '../src/methods/prune/importance.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { arrayTrainingData } from '../src/train/array-data.js';
import { cnnModel } from '../src/train/init-models.js';
import { taylorGradients } from '../src/methods/prune/taylor.js';
import { LABEL_INPUT } from '../src/train/training-graph.js';
import { tensorSamples } from '../src/eval/samples.js';
import { Tensor } from '../src/ir/tensor.js';
import { runPass } from '../src/pipeline/pass.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { pseudoRandom } from './helpers/tensors.js';

/** stem conv (8 channels) -> BN -> relu -> head conv; channels 2 and 5 of the stem are made weak in both convs. */
function plantedModel(weakBn = false) {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 3, 6, 6]);
  const stem = pseudoRandom(8 * 27, 1, 0.5, 1);
  const head = pseudoRandom(4 * 8 * 9, 2, 0.5, 1);
  for (const weak of [2, 5]) {
    stem.fill(0.01, weak * 27, (weak + 1) * 27);
    for (let o = 0; o < 4; o++) head.fill(0.01, (o * 8 + weak) * 9, (o * 8 + weak + 1) * 9);
  }
  const scale = new Float32Array(8).fill(1);
  if (weakBn) scale[6] = 0.001;
  const y = b.node('Conv', [x, b.initializer('stem.w', DataType.FLOAT, [8, 3, 3, 3], stem)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'stem' });
  const bn = b.node('BatchNormalization', [y, ...['scale', 'bias', 'mean', 'var'].map((n, i) => b.initializer(`bn.${n}`, DataType.FLOAT, [8], i === 0 ? scale : i === 3 ? new Float32Array(8).fill(1) : new Float32Array(8)))], [], { name: 'bn' });
  const out = b.node('Conv', [b.node('Relu', [bn]), b.initializer('head.w', DataType.FLOAT, [4, 8, 3, 3], head)], [], { name: 'head' });
  b.output(out, DataType.FLOAT);
  return buildModel(b.graph);
}

test('l1/l2 importance aggregates the producing and the reading layer: the planted weak channels go first', () => {
  const analysis = analyzeChannels(plantedModel());
  const group = analysis.groups[0];
  for (const kind of ['l1', 'l2'] as const) {
    const { scores, used } = groupImportance(analysis, group, { kind });
    assert.equal(used, kind);
    const order = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b]);
    assert.deepEqual(order.slice(0, 2).sort(), [2, 5], kind);
  }
  const plan = planChannels(analysis, { sparsity: 0.25 });
  assert.deepEqual([...plan.removed].map((c) => group.channels.indexOf(c)).sort(), [2, 5]);
  assert.deepEqual(plan.groups.map((g) => [g.channelsBefore, g.channelsAfter]), [
    [8, 6],
    [4, 4],
  ]);
});

test('bn importance ranks by |scale|; a group without BatchNormalization falls back to l2 with a warning', () => {
  const analysis = analyzeChannels(plantedModel(true));
  const plan = planChannels(analysis, { sparsity: 0.125, importance: 'bn' });
  assert.deepEqual([...plan.removed].map((c) => analysis.groups[0].channels.indexOf(c)), [6]);
  const cnn = analyzeChannels(cnnModel({ classes: 10 }));
  const fallback = planChannels(cnn, { sparsity: 0.5, importance: 'bn' });
  assert.equal(fallback.warnings[0]?.code, 'importance-fallback', 'fc1 has no BatchNormalization');
});

test('scope, ratio cap, round-to, exclude and only on the CNN', () => {
  const cnn = () => analyzeChannels(cnnModel({ classes: 10, seed: 2 }), { inputShapes: { input: [1, 1, 28, 28] } });
  const widths = (plan: ReturnType<typeof planChannels>) => plan.groups.map((g) => g.channelsAfter);
  assert.deepEqual(widths(planChannels(cnn(), { sparsity: 0.5 })), [16, 32, 64, 10]);
  // 30% of 32 is 9.6 -> 10 removed, 22 kept -> 24; of 64: 45 -> 48; of 128: 90 -> 96.
  assert.deepEqual(widths(planChannels(cnn(), { sparsity: 0.3, roundTo: 8 })), [24, 48, 96, 10]);
  const global = planChannels(cnn(), { sparsity: 0.5, scope: 'global', maxRatio: 0.6 });
  const removed = global.groups.slice(0, 3).reduce((n, g) => n + g.channelsBefore - g.channelsAfter, 0);
  assert.equal(removed, 112, 'half of 224 channels');
  for (const g of global.groups.slice(0, 3)) assert.ok(g.channelsAfter >= Math.ceil(g.channelsBefore * 0.4), `cap: ${g.channelsAfter}`);
  const excluded = planChannels(cnn(), { sparsity: 0.5, exclude: ['conv2'] });
  assert.deepEqual(widths(excluded), [16, 64, 64, 10]);
  assert.equal(excluded.groups[1].kept, "excluded by 'conv2'");
  assert.deepEqual(widths(planChannels(cnn(), { sparsity: 0.5, only: ['Conv'] })), [16, 32, 128, 10]);
});

test('layer ratios: the first matching pattern sets a group\'s share; under global scope the ranking fills the rest of the total', () => {
  const cnn = () => analyzeChannels(cnnModel({ classes: 10, seed: 2 }), { inputShapes: { input: [1, 1, 28, 28] } });
  const widths = (plan: ReturnType<typeof planChannels>) => plan.groups.map((g) => g.channelsAfter);
  // conv2 by name (16 of 64), conv1 by op type (10%: 3 of 32), the Gemm (no pattern) at --sparsity (64 of 128).
  assert.deepEqual(widths(planChannels(cnn(), { sparsity: 0.5, layerRatios: [{ pattern: 'conv2', ratio: 0.25 }, { pattern: 'Conv', ratio: 0.1 }] })), [29, 48, 64, 10]);
  const global = planChannels(cnn(), { sparsity: 0.5, scope: 'global', layerRatios: [{ pattern: 'conv1', ratio: 0 }] });
  assert.equal(global.groups[0].channelsAfter, 32, 'conv1 protected');
  assert.equal(global.groups.slice(0, 3).reduce((n, g) => n + g.channelsBefore - g.channelsAfter, 0), 112, 'half of all 224 channels, from conv2 and the Gemm');
  assert.throws(() => planChannels(cnn(), { sparsity: 0.5, layerRatios: [{ pattern: '(', ratio: 0.1 }] }), /--layer-ratio: '\(' is not a valid regular expression/);
});

test('taylor importance reads summed gradients of the labelled loss', async () => {
  const model = cnnModel({ classes: 10, seed: 4 });
  const count = 64;
  const data = arrayTrainingData({
    input: { data: pseudoRandom(count * 784, 5, 0, 1), sampleDims: [1, 28, 28], dataType: DataType.FLOAT },
    [LABEL_INPUT]: { data: Int32Array.from({ length: count }, (_, i) => i % 10), sampleDims: [], dataType: DataType.INT64 },
  });
  const gradients = await taylorGradients(nodeOrt, model, data, { batches: 2, batchSize: 32, threads: 1 });
  assert.deepEqual([...gradients.keys()].filter((n) => n.endsWith('weight')).sort(), ['bn1.weight', 'bn2.weight', 'conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight']);
  const g = gradients.get('fc2.weight') as Float32Array;
  assert.ok(g.some((v) => v !== 0) && g.every(Number.isFinite));
  const analysis = analyzeChannels(model, { inputShapes: { input: [1, 1, 28, 28] } });
  const plan = planChannels(analysis, { sparsity: 0.5, importance: 'taylor', gradients });
  assert.equal(plan.warnings.length, 0);
  assert.deepEqual(plan.groups.map((x) => x.channelsAfter), [16, 32, 64, 10]);
});

test('mean compensation: a removed channel that carries a constant is folded into the next layer, exactly', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 3, 6, 6]);
  const stem = pseudoRandom(8 * 27, 1, 0.5, 1);
  stem.fill(0, 2 * 27, 3 * 27);
  const bias = new Float32Array(8);
  bias[2] = 3;
  const y = b.node('Relu', [b.node('Conv', [x, b.initializer('stem.w', DataType.FLOAT, [8, 3, 3, 3], stem), b.initializer('stem.b', DataType.FLOAT, [8], bias)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'stem' })]);
  const flat = b.node('Flatten', [b.node('Conv', [y, b.initializer('head.w', DataType.FLOAT, [4, 8, 1, 1], pseudoRandom(32, 2))], [], { name: 'head' })], [attr.int('axis', 1)]);
  b.output(b.node('MatMul', [flat, b.initializer('fc.w', DataType.FLOAT, [144, 5], pseudoRandom(720, 3))], [], { name: 'fc' }), DataType.FLOAT);
  const model = buildModel(b.graph);
  const feeds = [Tensor.fromArray('x', DataType.FLOAT, [1, 3, 6, 6], pseudoRandom(108, 4))];
  const samples = tensorSamples([{ x: feeds[0] }]);
  const [original] = await runModel(model, feeds);
  const outputs: Record<string, number> = {};
  for (const compensate of [false, true]) {
    const pruned = model.clone();
    const report = await runPass(channelsPass, pruned, { sparsity: 0.125, only: ['stem'], calibration: samples, compensate }, { ort: nodeOrt });
    assert.equal(report.stats.removedChannels, 1);
    assert.deepEqual(pruned.graph.initializer('stem.w')?.dims, [7, 3, 3, 3]);
    const [out] = await runModel(pruned, feeds);
    outputs[String(compensate)] = maxAbsDifference(out, original);
  }
  assert.ok(outputs.false > 0.1, `uncompensated differs: ${outputs.false}`);
  assert.ok(outputs.true < 1e-4, `compensated: ${outputs.true}`);
});
