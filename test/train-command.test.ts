// `shrink train` end to end, in-process: trains an MLP on MNIST digits from an .npz, reports
// accuracy before and after on held-out data, writes checkpoints and resumes from one; bad input
// gets one line and the right exit code, and no output file.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { TrainReport } from '../src/cli/train-command.js';
import { writeNpy } from '../src/eval/npy.js';
import { writeNpz } from '../src/eval/npz.js';
import { DataType } from '../src/ir/dtype.js';
import { loadCheckpointState } from '../src/node/checkpoint.js';
import { type ImageSet, mnistDigitsSplit } from '../src/node/image-datasets.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { mlpModel } from '../src/train/init-models.js';
import { runShrink } from './helpers/cli.js';

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-train-cli-'));
after(() => fs.rmSync(temp, { recursive: true, force: true }));

/** The first `count` digits as bytes 0-255 (so --scale 1/255 applies) with int64 labels. */
function npz(set: ImageSet, count: number, file: string, labels = true): string {
  const images = Uint8Array.from(set.images.subarray(0, count * 784), (v) => Math.round(v * 255));
  const arrays: Parameters<typeof writeNpz>[0] = { input: { dataType: DataType.UINT8, dims: [count, 1, 28, 28], data: images } };
  if (labels) arrays.labels = { dataType: DataType.INT64, dims: [count], data: new Uint8Array(BigInt64Array.from(set.labels.subarray(0, count), BigInt).buffer) };
  fs.writeFileSync(file, writeNpz(arrays));
  return file;
}

test('shrink train: accuracy rises on held-out digits, the output is the model with new weights, checkpoints resume', async () => {
  const { train, test: held } = mnistDigitsSplit(8000, 0);
  const model = path.join(temp, 'mlp.onnx');
  saveModel(mlpModel({ imageDims: [1, 28, 28], hidden: [64], classes: 10, seed: 3 }), model);
  const data = npz(train, 2000, path.join(temp, 'train.npz'));
  const evalData = npz(held, 1000, path.join(temp, 'eval.npz'));
  const output = path.join(temp, 'trained.onnx');
  const checkpoint = path.join(temp, 'ckpt');
  const common = ['--data', data, '--eval-data', evalData, '--scale', '1/255', '--batch-size', '50', '--threads', '1', '--json', '--no-progress'];
  const run = await runShrink(['train', model, '-o', output, '--epochs', '2', '--checkpoint', checkpoint, ...common]);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as TrainReport;
  // The common envelope: what ran, on which files, the size as before/after/ratio.
  assert.equal(report.command, 'train');
  assert.equal(report.input, model);
  assert.equal(report.output, output);
  assert.deepEqual(report.size, { before: fs.statSync(model).size, after: fs.statSync(output).size, ratio: Number((fs.statSync(output).size / fs.statSync(model).size).toFixed(4)) });
  assert.deepEqual(report.warnings, []);
  assert.equal(report.environment.host, `node ${process.version}`);
  assert.equal(report.samples, 2000);
  assert.equal(report.steps, 80);
  assert.equal(report.trained_weights, 4);
  assert.equal(report.parameters, 784 * 64 + 64 + 64 * 10 + 10);
  assert.ok(report.accuracy.before < 25 && report.accuracy.after > 85, JSON.stringify(report.accuracy));
  const trained = loadModel(output);
  assert.deepEqual(trained.graph.nodes.map((n) => n.opType), loadModel(model).graph.nodes.map((n) => n.opType));
  assert.ok(fs.existsSync(path.join(checkpoint, 'model.onnx')));
  const state = await loadCheckpointState(checkpoint);
  assert.equal(state.step, 80);
  assert.equal(state.epoch, 2);
  // Resume for a third epoch: 40 more steps, from the checkpoint's weights.
  const resumed = await runShrink(['train', model, '-o', path.join(temp, 'resumed.onnx'), '--epochs', '3', '--resume', checkpoint, ...common]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const third = JSON.parse(resumed.stdout) as TrainReport;
  assert.equal(third.steps, 120);
  assert.deepEqual(third.epochs.map((e) => e.epoch), [3]);
  assert.ok(third.accuracy.before < 25, 'before = the untrained input model');
  assert.ok(third.accuracy.after >= report.accuracy.after - 1, `${third.accuracy.after} after the third epoch`);
});

test('shrink train: bad input is one line, exit 1 or 2, and writes nothing', async () => {
  const { train } = mnistDigitsSplit(8000, 0);
  const model = path.join(temp, 'mlp-bad.onnx');
  saveModel(mlpModel({ imageDims: [1, 28, 28], hidden: [16], classes: 10, seed: 3 }), model);
  const noLabels = npz(train, 100, path.join(temp, 'nolabels.npz'), false);
  const good = npz(train, 100, path.join(temp, 'good.npz'));
  const output = path.join(temp, 'never.onnx');
  const cases: [string[], number, RegExp][] = [
    [['--data', noLabels], 1, new RegExp(`^shrink: ${noLabels.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: no 'labels' array of class ids; add one or give --labels FILE\\.npy\\n$`)],
    [['--data', good, '--lr', '-1'], 2, /^shrink: --lr must be a positive number, got '-1'\n$/],
    [['--data', good, '--batch-size', '500'], 2, /larger than the 100 samples/],
    [['--data', good, '--logits', 'nope'], 1, /no output 'nope' \(outputs: logits\)/],
  ];
  for (const [args, code, message] of cases) {
    const run = await runShrink(['train', model, '-o', output, '--no-progress', ...args]);
    assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.ok(!fs.existsSync(output));
  }
  // A failure once training has run (the checkpoint folder is a file) leaves an existing output as it was.
  const existing = path.join(temp, 'existing.onnx');
  fs.writeFileSync(existing, 'an earlier result');
  const blocked = path.join(temp, 'blocked-checkpoint');
  fs.writeFileSync(blocked, '');
  const late = await runShrink(['train', model, '-o', existing, '--data', good, '--batch-size', '50', '--checkpoint', blocked, '--no-progress']);
  assert.equal(late.code, 1, late.stderr);
  assert.equal(late.stderr.trim().split('\n').length, 1, late.stderr);
  assert.match(late.stderr, /blocked-checkpoint/);
  assert.equal(fs.readFileSync(existing, 'utf8'), 'an earlier result');
  assert.deepEqual(fs.readdirSync(temp).filter((f) => f.startsWith('existing') && f !== 'existing.onnx'), [], 'no temporary files left');

  fs.writeFileSync(path.join(temp, 'wrong.npy'), writeNpy({ dataType: DataType.FLOAT, dims: [100, 2], data: new Uint8Array(800) }));
  const wrong = await runShrink(['train', model, '-o', output, '--data', path.join(temp, 'wrong.npy'), '--labels', path.join(temp, 'wrong.npy'), '--no-progress']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /shape \(100, 2\) does not stack samples of input 'input' \[N,1,28,28\] along axis 0/);
});
