// Activation importance for channel pruning: on a model whose channel with the largest weights
// reads an input channel that is nearly silent in the samples, l2 keeps it and activation removes
// it; the pass measures the activations on its calibration samples and refuses without them (the
// CLI too: one line, exit 2).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { tensorSamples } from '../src/eval/samples.js';
import { analyzeChannels } from '../src/graph-edit/channel-groups.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { activationScores } from '../src/methods/prune/activation-importance.js';
import { channelsPass, planChannels } from '../src/methods/prune/channels.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { runPass } from '../src/pipeline/pass.js';
import { runShrink } from './helpers/cli.js';
import { pseudoRandom } from './helpers/tensors.js';

/** 1x1 stem: channel 0 reads input channel 0 with weight 2, channels 1-3 read input channel 1 with 1, 0.9, 0.8; a 1x1 head reads all four with 1. */
function silentChannelModel() {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 2, 4, 4]);
  const stem = new Float32Array([2, 0, 0, 1, 0, 0.9, 0, 0.8]);
  const y = b.node('Conv', [x, b.initializer('stem.w', DataType.FLOAT, [4, 2, 1, 1], stem)], [], { name: 'stem' });
  const out = b.node('Conv', [b.node('Relu', [y]), b.initializer('head.w', DataType.FLOAT, [1, 4, 1, 1], new Float32Array(4).fill(1))], [], { name: 'head' });
  b.output(out, DataType.FLOAT);
  return buildModel(b.graph);
}

/** Input channel 0 near zero, channel 1 around 1. */
function samples(count: number) {
  return tensorSamples(
    Array.from({ length: count }, (_, s) => {
      const noise = pseudoRandom(32, 10 + s, -1, 1);
      const data = noise.map((v, i) => (i < 16 ? v * 1e-3 : 1 + 0.1 * v));
      return { x: Tensor.fromArray('x', DataType.FLOAT, [1, 2, 4, 4], data) };
    }),
  );
}

test('activation importance removes the silent channel that l2 keeps', async () => {
  const model = silentChannelModel();
  const analysis = analyzeChannels(model);
  const group = analysis.groups.find((g) => g.channels.length === 4);
  assert.ok(group !== undefined);
  const removedIndex = (plan: ReturnType<typeof planChannels>) => [...plan.removed].map((c) => group.channels.indexOf(c));
  assert.deepEqual(removedIndex(planChannels(analysis, { sparsity: 0.25 })), [3], 'l2: the smallest weights');
  const activations = await activationScores(nodeOrt, model, analysis, samples(4));
  // The group's channels are measured at the stem's output and the head's input.
  const measured = [...activations.keys()].filter((m) => analysis.groupOf(m.atoms[0]) === group);
  assert.deepEqual(measured.map((m) => `${m.node.name}:${m.role}`).sort(), ['head:weight-in', 'stem:weight']);
  const plan = planChannels(analysis, { sparsity: 0.25, importance: 'activation', activations });
  assert.deepEqual(removedIndex(plan), [0], 'activation: the channel that does not fire');
  assert.equal(plan.warnings.length, 0);

  const pruned = silentChannelModel();
  await runPass(channelsPass, pruned, { sparsity: 0.25, importance: 'activation', calibration: samples(4), compensate: false }, { ort: nodeOrt });
  const stem = pruned.graph.initializer('stem.w');
  assert.ok(stem !== undefined);
  assert.deepEqual([...(stem.data() as Float32Array)], [0, 1, 0, 0.9, 0, 0.8].map(Math.fround), 'channel 0 gone');
  await assert.rejects(runPass(channelsPass, silentChannelModel(), { sparsity: 0.25, importance: 'activation' }, { ort: nodeOrt }), /activation importance needs samples to measure: give --calib/);
});

test('shrink prune --importance activation without samples: one line, exit 2, nothing written', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-activation-'));
  try {
    const out = path.join(work, 'out.onnx');
    const run = await runShrink(['prune', 'models/fashion-mnist/mlp.onnx', '-o', out, '--method', 'channels', '--sparsity', '0.5', '--importance', 'activation']);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--importance activation needs samples to measure: give --calib FILE \(or --data\)/);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.equal(fs.existsSync(out), false);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
