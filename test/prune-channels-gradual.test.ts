// Gradual channel pruning (pipeline/prune.ts rounds, pipeline/prune-rounds.ts): each round plans on
// the model the last round trained, its shares cumulative of the widths before the first round.
// Checked per round on a small CNN with real Fashion-MNIST images: the channels each group has
// left (linear schedule, scope layer), the total under scope global with a protected layer, the
// file smaller than the round's input, and the removed model equal to that input with the same
// channels zeroed (the exactness contract holds round after round, training in between).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { analyzeChannels } from '../src/graph-edit/channel-groups.js';
import { zeroChannels } from '../src/graph-edit/channel-rewrite.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { planChannels } from '../src/methods/prune/channels.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { saveModel } from '../src/node/model-files.js';
import { modelBytes } from '../src/onnx/model-size.js';
import { type PruneOptions, type PruneRound, prune } from '../src/pipeline/prune.js';
import { recipeFromData } from '../src/pipeline/recipe.js';
import { recoverByTraining } from '../src/pipeline/recovery.js';
import { cnnModel } from '../src/train/init-models.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';

const COUNT = 64;
const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
const pixels = Float32Array.from(set.images.subarray(0, COUNT * 784), (v) => v / 255);
const data = { inputs: { input: { data: pixels, sampleDims: [1, 28, 28], dataType: DataType.FLOAT } } };
const feeds = [Tensor.fromArray('input', DataType.FLOAT, [8, 1, 28, 28], pixels.slice(0, 8 * 784))];
// conv1 8, conv2 16, fc1 32 channels (fc2 makes the graph output: kept).
const model = () => cnnModel({ classes: 10, channels: [8, 16], hidden: 32, seed: 5 });
const recovery = { epochs: 1, batchSize: 16, schedule: { kind: 'constant' as const, rate: 0.01 }, optimizer: { kind: 'sgd' as const, momentum: 0.9 }, seed: 0, maxSteps: 2 };

/** Prunes in rounds, keeping what each round saw. */
async function gradually(options: Omit<PruneOptions, 'method' | 'data' | 'onRound'>) {
  const rounds: PruneRound[] = [];
  const result = await prune(model(), { method: 'channels', data, ...options, onRound: (r) => void rounds.push(r) }, { ort: nodeOrt, threads: 1 });
  return { ...result, rounds };
}

const widths = (r: PruneRound) => (r.pass.details.groups ?? []).filter((g) => g.kept === undefined).map((g) => g.channelsAfter);

test('channels in 3 linear rounds: each group reaches its cumulative share, each round smaller and equal to its input zeroed', async () => {
  const { rounds, report } = await gradually({ sparsity: 0.5, recovery: { ...recovery, rounds: 3, roundSchedule: 'linear' } });
  assert.equal(rounds.length, 3);
  // Shares of 1/6, 1/3, 1/2 of 8, 16, 32 channels (rounded), counted against the widths before round 1.
  assert.deepEqual(rounds.map(widths), [
    [7, 13, 27],
    [5, 11, 21],
    [4, 8, 16],
  ]);
  assert.deepEqual(
    rounds.map((r) => r.sparsity?.toFixed(4)),
    ['0.1667', '0.3333', '0.5000'],
  );
  for (const r of rounds) {
    assert.ok(modelBytes(r.pruned) < modelBytes(r.before), `round ${r.round}: ${modelBytes(r.pruned)} bytes, ${modelBytes(r.before)} before`);
    assert.notEqual(r.trained, r.pruned, `round ${r.round} was trained`);
    // The same plan on the round's input, zeroed instead of removed, gives the same outputs.
    const analysis = analyzeChannels(r.before);
    const plan = planChannels(analysis, { ...r.settings, sparsity: r.settings.sparsity ?? 0 });
    const removedNow = (r.pass.details.groups ?? []).reduce((n, g) => n + g.channelsBefore - g.channelsAfter, 0);
    assert.equal(plan.removed.size, removedNow, `round ${r.round}: the plan removes what the pass removed`);
    const zeroed = r.before.clone();
    zeroChannels(zeroed, analyzeChannels(zeroed), plan.removed);
    const [pruned, reference, input] = await Promise.all([runModel(r.pruned, feeds), runModel(zeroed, feeds), runModel(r.before, feeds)]);
    assert.ok(maxAbsDifference(pruned[0], reference[0]) <= 1e-5, `round ${r.round}: pruned vs zeroed ${maxAbsDifference(pruned[0], reference[0])}`);
    assert.ok(maxAbsDifference(input[0], reference[0]) > 1e-4, `round ${r.round}: removing channels changes the outputs`);
  }
  // The report joins the rounds: widths before the first, after the last.
  assert.deepEqual(
    report.groups?.filter((g) => g.kept === undefined).map((g) => [g.channels_before, g.channels_after]),
    [
      [8, 4],
      [16, 8],
      [32, 16],
    ],
  );
  assert.equal(report.recovery?.rounds, 3);
  assert.equal(report.recovery?.round_schedule, 'linear');
});

test('channels in rounds, scope global: the total follows the cubic schedule, a protected layer keeps its channels', async () => {
  const { rounds } = await gradually({ sparsity: 0.3, scope: 'global', layerRatios: [{ pattern: 'conv1', ratio: 0 }], recovery: { ...recovery, rounds: 3 } });
  const removed = rounds.map((r) => 56 - widths(r).reduce((a, b) => a + b, 0));
  // Of 56 channels: 0.3 x (1 - (2/3)^3, 1 - (1/3)^3, 1) = 21.1%, 28.9%, 30% -> 11.8, 16.2, 16.8 -> 12, 16, 17.
  assert.deepEqual(removed, [12, 16, 17]);
  for (const r of rounds) assert.equal(widths(r)[0], 8, `round ${r.round}: conv1 whole`);
});

test('training a clone leaves the original alone (onnxruntime wrote BatchNormalization statistics into the buffers it was fed)', async () => {
  const original = model();
  const [before] = await runModel(original, feeds);
  const { model: trained } = await recoverByTraining(original, original.clone(), data, recovery, 'logits', { ort: nodeOrt, threads: 1 });
  const [[after], [student]] = await Promise.all([runModel(original, feeds), runModel(trained, feeds)]);
  assert.equal(maxAbsDifference(before, after), 0);
  assert.ok(maxAbsDifference(before, student) > 1e-4, 'the student was trained');
});

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-prune-gradual-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('shrink prune --method channels --rounds 2 --round-schedule linear; --round-schedule needs --rounds', async () => {
  const cnn = path.join(work, 'cnn.onnx');
  saveModel(model(), cnn);
  const fashion = writeFashionFiles(work, 64);
  const run = await runShrink(['prune', cnn, '-o', path.join(work, 'gradual.onnx'), '--method', 'channels', '--sparsity', '0.5', '--data', fashion.images, '--epochs', '1', '--batch-size', '32', '--samples', '16', '--rounds', '2', '--round-schedule', 'linear', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.deepEqual(
    report.groups.filter((g: { kept?: string }) => g.kept === undefined).map((g: { channels_before: number; channels_after: number }) => [g.channels_before, g.channels_after]),
    [
      [8, 4],
      [16, 8],
      [32, 16],
    ],
  );
  assert.equal(report.recovery.rounds, 2);
  assert.match(run.stderr + run.stdout, /"round_schedule": "linear"/);
  const bad = await runShrink(['prune', cnn, '-o', path.join(work, 'bad.onnx'), '--method', 'channels', '--sparsity', '0.5', '--data', fashion.images, '--epochs', '1', '--round-schedule', 'linear']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--round-schedule says how the sparsity rises over --rounds: give --rounds N/);
  assert.equal(fs.existsSync(path.join(work, 'bad.onnx')), false);
});

test("recipe prune step: 'rounds' with 'round_schedule' for channels; 'round_schedule' alone is refused", () => {
  const recipe = recipeFromData({ steps: [{ prune: { method: 'channels', sparsity: 0.3, epochs: 1, rounds: 6, round_schedule: 'linear' } }] });
  const step = recipe.steps[0];
  assert.equal(step.kind, 'prune');
  assert.deepEqual(step.kind === 'prune' ? [step.training?.rounds, step.training?.roundSchedule] : [], [6, 'linear']);
  assert.throws(() => recipeFromData({ steps: [{ prune: { method: 'channels', sparsity: 0.3, epochs: 1, round_schedule: 'linear' } }] }), /steps\.0\.prune: 'round_schedule' goes with 'rounds' \(gradual pruning\)/);
});
