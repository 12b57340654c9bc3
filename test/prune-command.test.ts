// `shrink prune` end to end on the Fashion-MNIST MLP (models/fashion-mnist/mlp.onnx) and a CNN
// built in code, with real test images: magnitude per layer and global, N:M, channels with the
// report's groups and MACs, recovery by fine-tuning (masks keep zeros at zero) and by distillation
// without labels, and bad input: one line, exit 1 or 2, nothing written.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeNpy } from '../src/eval/npy.js';
import { DataType } from '../src/ir/dtype.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { cnnModel } from '../src/train/init-models.js';
import { runShrink } from './helpers/cli.js';
import { formatPruneReport } from '../src/pipeline/prune-report.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-prune-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const file = (name: string) => path.join(work, name);
const fashion = writeFashionFiles(work, 512);
const CNN = file('cnn.onnx');
saveModel(cnnModel({ classes: 10, seed: 5 }), CNN);

const weightOf = (model: string, name: string) => loadModel(model).graph.initializer(name)?.data() as Float32Array;
const zeros = (values: Float32Array) => values.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);

async function pruneJson(args: string[]) {
  const run = await runShrink(['prune', ...args, '--json']);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

test('magnitude per layer zeroes that share of every layer; global ranks all layers together; gzip shrinks, dense bytes do not', async () => {
  const layer = await pruneJson([MLP, '-o', file('layer.onnx'), '--method', 'magnitude', '--sparsity', '0.5', '--data', fashion.images, '--labels', fashion.labels]);
  assert.equal(layer.command, 'prune');
  assert.deepEqual(
    layer.tensors.map((t: { name: string; sparsity: number }) => [t.name, t.sparsity]),
    [
      ['fc1.weight', 0.5],
      ['fc2.weight', 0.5],
      ['fc3.weight', 0.5],
    ],
  );
  assert.equal(zeros(weightOf(file('layer.onnx'), 'fc1.weight')), 784 * 256 / 2);
  assert.match(layer.note, /no sparse kernels/);
  assert.ok(layer.gzip.ratio < 0.65, `gzip ${layer.gzip.ratio}`);
  assert.ok(layer.size.ratio > 0.99, 'the dense file keeps its size');
  assert.equal(layer.fidelity.samples, 256);
  assert.ok(layer.fidelity.accuracy.candidate > 0.7);

  const global = await pruneJson([MLP, '-o', file('global.onnx'), '--method', 'magnitude', '--sparsity', '0.8', '--scope', 'global', '--exclude', 'fc3']);
  const bySparsity = Object.fromEntries(global.tensors.map((t: { name: string; sparsity: number }) => [t.name, t.sparsity]));
  assert.equal(bySparsity['fc3.weight'], undefined, 'excluded');
  // Ranked together: the wide first layer loses more than the second; 80% of both together.
  const total = 784 * 256 + 256 * 128;
  assert.ok(Math.abs(bySparsity['fc1.weight'] * 784 * 256 + bySparsity['fc2.weight'] * 256 * 128 - 0.8 * total) < 1e-4 * total);
  assert.ok(bySparsity['fc1.weight'] > bySparsity['fc2.weight']);
  assert.deepEqual(global.skipped, [{ node: 'fc3', reason: "excluded by 'fc3'" }]);
});

test('N:M keeps N of every M along the reduction axis', async () => {
  const report = await pruneJson([MLP, '-o', file('nm.onnx'), '--method', 'nm', '--pattern', '2:4']);
  assert.deepEqual(report.settings, { pattern: '2:4' });
  // fc1.weight is [256, 784] (transB): K is axis 1.
  const w = weightOf(file('nm.onnx'), 'fc1.weight');
  for (let row = 0; row < 256; row++) {
    for (let k = 0; k < 784; k += 4) {
      let nonzero = 0;
      for (let j = 0; j < 4; j++) if (w[row * 784 + k + j] !== 0) nonzero++;
      assert.ok(nonzero <= 2, `row ${row} block ${k}`);
    }
  }
  assert.ok(report.tensors.every((t: { sparsity: number }) => Math.abs(t.sparsity - 0.5) < 0.01));
});

test('channels: a smaller graph with fewer MACs, groups named, the graph output kept', async () => {
  const report = await pruneJson([CNN, '-o', file('half.onnx'), '--method', 'channels', '--sparsity', '0.5', '--data', fashion.images, '--samples', '32', '--round-to', '8']);
  assert.equal(report.structured, true);
  assert.deepEqual(
    report.groups.map((g: { sources: string[]; channels_before: number; channels_after: number }) => [g.sources.join(), g.channels_before, g.channels_after]),
    [
      ['conv1', 32, 16],
      ['conv2', 64, 32],
      ['fc1', 128, 64],
      ['fc2', 10, 10],
    ],
  );
  assert.equal(report.groups[3].blocked.node, 'output');
  assert.ok(report.size.ratio < 0.3);
  assert.ok(report.macs.ratio < 0.35, `MACs ${report.macs.ratio}`);
  assert.deepEqual(report.macs.input_shapes, { input: [1, 1, 28, 28] });
  assert.deepEqual(loadModel(file('half.onnx')).graph.initializer('fc1.weight')?.dims, [64, 32 * 49]);
});

test('recovery: fine-tuning keeps pruned weights at zero; without labels the pruned CNN distils from the original', async () => {
  const tuned = await pruneJson([MLP, '-o', file('tuned.onnx'), '--method', 'magnitude', '--sparsity', '0.9', '--data', fashion.images, '--labels', fashion.labels, '--epochs', '1', '--lr', '0.01']);
  assert.equal(tuned.recovery.kind, 'fine-tune');
  assert.ok(tuned.recovery.accuracy.after > tuned.recovery.accuracy.before, JSON.stringify(tuned.recovery.accuracy));
  const w = weightOf(file('tuned.onnx'), 'fc1.weight');
  assert.ok(zeros(w) >= Math.round(0.9 * w.length), 'masked weights stayed zero');

  // Gradually: three rounds, the sparsity rising 0.63 -> 0.86 -> 0.9 (cubic), one epoch after each.
  const gradual = await pruneJson([MLP, '-o', file('gradual.onnx'), '--method', 'magnitude', '--sparsity', '0.9', '--data', fashion.images, '--labels', fashion.labels, '--epochs', '1', '--lr', '0.01', '--rounds', '3']);
  assert.equal(gradual.recovery.rounds, 3);
  assert.equal(gradual.recovery.epochs, 3);
  assert.deepEqual(gradual.tensors.map((t: { sparsity: number }) => t.sparsity), [0.9, 0.9, 0.9]);
  const g = weightOf(file('gradual.onnx'), 'fc1.weight');
  assert.equal(zeros(g), Math.round(0.9 * g.length), 'exactly the final sparsity, the zeros of earlier rounds among them');

  const distilled = await pruneJson([CNN, '-o', file('distilled.onnx'), '--method', 'channels', '--sparsity', '0.25', '--data', fashion.images, '--epochs', '1', '--batch-size', '32', '--samples', '64']);
  assert.deepEqual([distilled.recovery.kind, distilled.recovery.loss], ['distill', 'kl']);
  assert.equal(distilled.recovery.steps, 16);

  // --distill-value picks the value and --distill-loss the loss (MSE here, on the logits).
  const byValue = await pruneJson([CNN, '-o', file('by-value.onnx'), '--method', 'channels', '--sparsity', '0.25', '--data', fashion.images, '--epochs', '1', '--batch-size', '32', '--samples', '64', '--distill-value', 'logits', '--distill-loss', 'mse']);
  assert.deepEqual([byValue.recovery.kind, byValue.recovery.loss, byValue.recovery.steps], ['distill', 'mse', 16]);
});

test('channels: --layer-ratio sets the share of the groups it matches, the first match winning', async () => {
  const report = await pruneJson([CNN, '-o', file('ratios.onnx'), '--method', 'channels', '--sparsity', '0.5', '--layer-ratio', 'conv1=0', '--layer-ratio', 'Gemm=0.25', '--layer-ratio', 'fc1=0.9']);
  assert.deepEqual(
    report.groups.map((g: { sources: string[]; channels_after: number }) => [g.sources.join(), g.channels_after]),
    [
      ['conv1', 32],
      ['conv2', 32],
      ['fc1', 96],
      ['fc2', 10],
    ],
  );
  assert.equal(report.settings.layer_ratios, 'conv1=0 Gemm=0.25 fc1=0.9');
});

test('channels: --compensation lstsq folds least-squares fits into the conv reading a pruned group (the mean elsewhere); off folds nothing', async () => {
  const args = [CNN, '--method', 'channels', '--sparsity', '0.5', '--data', fashion.images, '--samples', '32'];
  const lstsq = await pruneJson([...args, '-o', file('lstsq.onnx'), '--compensation', 'lstsq']);
  assert.equal(lstsq.settings.compensation, 'lstsq');
  // conv2 reads conv1's 32 channels at 196 positions per sample: fitted; fc1 reads 3,136 flattened features and fc2 128 at one position per sample: means.
  assert.deepEqual([lstsq.compensation.layers, lstsq.compensation.fitted], [3, 1]);
  const mean = await pruneJson([...args, '-o', file('mean.onnx')]);
  assert.deepEqual([mean.compensation.layers, mean.compensation.fitted], [3, 0]);
  const off = await pruneJson([...args, '-o', file('off.onnx'), '--compensation', 'off']);
  assert.equal(off.compensation, undefined);
});

test('channels: --reconstruct refits every layer to the original after compensation, on --data samples, and says so', async () => {
  const args = [CNN, '--method', 'channels', '--sparsity', '0.5', '--data', fashion.images, '--samples', '32'];
  const report = await pruneJson([...args, '-o', file('reconstructed.onnx'), '--reconstruct']);
  assert.equal(report.settings.reconstruct, true);
  // conv1, conv2, fc1, fc2: every matrix layer, one round each (a chain).
  assert.deepEqual(report.reconstruction, { layers: 4, rounds: 4, samples: 32 });
  assert.match(formatPruneReport(report), /reconstructed 4 layers by least squares to the original's outputs of each, in 4 rounds by depth \(32 samples\)/);
});

test('bad input: one line, exit 1 or 2, nothing written', async () => {
  const out = file('bad.onnx');
  const cases: [string[], number, RegExp][] = [
    [[MLP, '--method', 'magnitude', '--sparsity', '1'], 2, /--sparsity must be a number with 0 <= s < 1, got '1'/],
    [[MLP, '--method', 'magnitude', '--sparsity', '-0.1'], 2, /--sparsity must be/],
    [[MLP, '--method', 'magnitude'], 2, /needs --sparsity/],
    [[MLP, '--method', 'nm', '--pattern', '4:2'], 2, /'4:2' is not an N:M pattern/],
    [[MLP, '--method', 'nm', '--pattern', '2:3'], 1, /reads 784 along axis 1 of 'fc1.weight' \[256,784\]; leave it out with --exclude 'fc1'/],
    [[MLP, '--method', 'nm', '--sparsity', '0.5'], 2, /--sparsity has no effect with --method nm/],
    [[MLP, '--method', 'magnitude', '--sparsity', '0.5', '--importance', 'bn'], 2, /--importance has no effect with --method magnitude/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--only', 'fc3'], 1, /the channels of 'fc3' \(fc3\) cannot be pruned: 'logits' is a graph output, at node 'fc3'/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--epochs', '1'], 2, /--epochs trains the pruned model on --data/],
    [[MLP, '--method', 'magnitude', '--sparsity', '0.5', '--exclude', '('], 2, /not a valid regular expression/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--layer-ratio', 'fc1=1'], 2, /--layer-ratio takes PATTERN=R with 0 <= R < 1, got 'fc1=1'/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--layer-ratio', '(=0.5'], 2, /--layer-ratio: '\(' is not a valid regular expression/],
    [[MLP, '--method', 'magnitude', '--sparsity', '0.5', '--layer-ratio', 'fc1=0.2'], 2, /--layer-ratio has no effect with --method magnitude/],
    [[MLP, '--method', 'magnitude', '--sparsity', '0.5', '--compensation', 'lstsq'], 2, /--compensation has no effect with --method magnitude/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--no-compensate', '--compensation', 'lstsq'], 2, /--no-compensate and --compensation lstsq contradict each other/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--reconstruct'], 2, /--reconstruct refits layers on real samples: give --calib FILE \(or --data\)/],
    [[MLP, '--method', 'magnitude', '--sparsity', '0.5', '--reconstruct', '--data', fashion.images], 2, /--reconstruct has no effect with --method magnitude/],
    [[MLP, '--method', 'magnitude', '--sparsity', '0.5', '--rounds', '3'], 2, /--rounds prunes gradually with training between rounds: give --epochs/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--distill-value', 'logits'], 2, /--distill-value and --distill-loss go with --epochs/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--data', fashion.images, '--epochs', '1', '--distill-loss', 'kl'], 2, /--distill-loss goes with --distill-value/],
    [[MLP, '--method', 'channels', '--sparsity', '0.5', '--data', fashion.images, '--labels', fashion.labels, '--epochs', '1', '--distill-value', 'logits'], 2, /--distill-value distils without labels/],
  ];
  const wrong = file('wrong.npy');
  fs.writeFileSync(wrong, writeNpy({ dataType: DataType.FLOAT, dims: [4, 1, 14, 14], data: new Uint8Array(4 * 196 * 4) }));
  cases.push([[CNN, '--method', 'channels', '--sparsity', '0.5', '--data', wrong], 1, /wrong\.npy\[input\]: shape \(4, 1, 14, 14\) does not stack samples of input 'input' \[N,1,28,28\]/]);
  for (const [args, code, message] of cases) {
    const run = await runShrink(['prune', ...args.slice(0, 1), '-o', out, ...args.slice(1)]);
    assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message, args.join(' '));
    assert.equal(run.stderr.trim().split('\n').length, 1, `one line: ${run.stderr}`);
    assert.equal(fs.existsSync(out), false, `nothing written for ${args.join(' ')}`);
  }
});

test("distillation's teacher values over SHRINK_TEACHER_MEMORY: one line naming the value and the limit, nothing written", async () => {
  const out = file('teacher-memory.onnx');
  process.env.SHRINK_TEACHER_MEMORY = '1000';
  try {
    const run = await runShrink(['prune', CNN, '-o', out, '--method', 'channels', '--sparsity', '0.25', '--data', fashion.images, '--epochs', '1', '--distill-value', 'logits']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^shrink: distill: teacher value 'logits' \(\[10\] per sample\) over 512 samples needs 20\.0 KiB \(10\.0 KiB in float16\), over the 1000 B limit: .*SHRINK_TEACHER_MEMORY/);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.equal(fs.existsSync(out), false);
  } finally {
    delete process.env.SHRINK_TEACHER_MEMORY;
  }
});
