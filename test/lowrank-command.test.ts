// `shrink lowrank` end to end. Acceptance of issue 13's low-rank piece: the Fashion-MNIST MLP
// (models/fashion-mnist, 89.21%) factored to at most half its parameters and fine-tuned one epoch
// on the 60,000 training images stays within 0.5 points of the original on the 10,000 test
// images, counted here with onnxruntime on the written file. Also: the JSON report (per layer
// rank, parameters, energy, own SQNR and cosine), --energy on a model without data (generated
// inputs), and bad input: one line, exit 1 or 2, nothing written.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeNpy } from '../src/eval/npy.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { floatParameters } from '../src/methods/lowrank/lowrank.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { runShrink } from './helpers/cli.js';
import { runModel } from './helpers/run-model.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-lowrank-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const file = (name: string) => path.join(work, name);

/** A Fashion-MNIST split as the .npy files the CLI reads (images in [0, 1], int64 labels). */
function writeSplit(split: 'train' | 't10k'): { images: string; labels: string; pixels: Float32Array; ids: Uint8Array } {
  const set = readIdxImageSet(FASHION_MNIST_DIR, split);
  const n = set.labels.length;
  const pixels = Float32Array.from(set.images, (v) => v / 255);
  const images = file(`${split}-images.npy`);
  const labels = file(`${split}-labels.npy`);
  fs.writeFileSync(images, writeNpy({ dataType: DataType.FLOAT, dims: [n, 1, 28, 28], data: new Uint8Array(pixels.buffer) }));
  fs.writeFileSync(labels, writeNpy({ dataType: DataType.INT64, dims: [n], data: new Uint8Array(BigInt64Array.from(set.labels, (v) => BigInt(v)).buffer) }));
  return { images, labels, pixels, ids: set.labels };
}

/** Top-1 accuracy (percent) of the model file on the test images, by onnxruntime. */
async function accuracy(model: string, pixels: Float32Array, ids: Uint8Array): Promise<number> {
  const [logits] = await runModel(model, [Tensor.fromArray('image', DataType.FLOAT, [ids.length, 1, 28, 28], pixels)]);
  const scores = logits.data() as Float32Array;
  let right = 0;
  for (let i = 0; i < ids.length; i++) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (scores[i * 10 + c] > scores[i * 10 + best]) best = c;
    if (best === ids[i]) right++;
  }
  return (100 * right) / ids.length;
}

test('acceptance: the Fashion-MNIST MLP at half its parameters, fine-tuned one epoch, within 0.5 points on the 10k test images', async () => {
  const train = writeSplit('train');
  const testSet = writeSplit('t10k');
  const out = file('mlp-half.onnx');
  const run = await runShrink(['lowrank', MLP, '-o', out, '--ratio', '0.5', '--data', train.images, '--labels', train.labels, '--epochs', '1', '--threads', '1', '--json', '--no-progress']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.command, 'lowrank');
  assert.ok(report.parameters.after <= 0.5 * report.parameters.before, `${report.parameters.after} of ${report.parameters.before}`);
  assert.equal(floatParameters(loadModel(out)), report.parameters.after);
  for (const layer of report.layers) {
    assert.ok(layer.parameters_after < layer.parameters_before);
    assert.ok(layer.rank <= layer.saving_rank);
    assert.ok(layer.energy_kept > 0 && layer.energy_kept < 1);
    assert.ok(typeof layer.isolated_sqnr_db === 'number' && typeof layer.cosine === 'number', JSON.stringify(layer));
  }
  assert.equal(report.recovery.kind, 'fine-tune');
  assert.equal(report.recovery.samples, 60000);
  const original = await accuracy(MLP, testSet.pixels, testSet.ids);
  const factored = await accuracy(out, testSet.pixels, testSet.ids);
  console.log(`Fashion-MNIST MLP: ${original.toFixed(2)}% -> ${factored.toFixed(2)}% at ${report.parameters.after}/${report.parameters.before} parameters (${report.layers.map((l: { weight: string; rank: number }) => `${l.weight} rank ${l.rank}`).join(', ')}), fine-tuned ${report.recovery.seconds.toFixed(1)} s`);
  assert.ok(Math.abs(original - 89.21) < 0.01, `original ${original}`);
  assert.ok(original - factored <= 0.5, `${factored}% vs ${original}%`);
});

test('--energy with generated inputs: the terminal report lists each layer; --rank too high for every layer writes an unchanged model with the reasons', async () => {
  const out = file('energy.onnx');
  const run = await runShrink(['lowrank', MLP, '-o', out, '--energy', '0.9', '--dims', 'N=2', '--no-progress']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /method {5}lowrank \(energy 0\.9;/);
  assert.match(run.stdout, /fc1 +Gemm +\[256, 784\] +\d+ \/ 256 +200,704 -> [\d,]+ +9\d\.\d\d%/);
  assert.match(run.stdout, /fidelity on 4 samples/);
  const none = await runShrink(['lowrank', MLP, '-o', file('none.onnx'), '--rank', '250', '--json', '--no-progress']);
  assert.equal(none.code, 0, none.stderr);
  const report = JSON.parse(none.stdout);
  assert.equal(report.layers.length, 0);
  assert.deepEqual(report.skipped.map((s: { node: string }) => s.node), ['fc1', 'fc2', 'fc3']);
  assert.match(report.skipped[0].reason, /rank 250 saves no parameters: factors of \[256, 784\] hold 260000 >= 200704 \(ranks up to 192 save\)/);
});

test('bad input: one line, exit 1 or 2, nothing written', async () => {
  const out = file('bad.onnx');
  const cases: [string[], number, RegExp][] = [
    [[MLP], 2, /lowrank needs one of --energy E \(0 < E <= 1\), --rank R \(R >= 1\), --ratio P \(0 < P < 1\)/],
    [[MLP, '--energy', '0.9', '--rank', '4'], 2, /give only one of --energy, --rank, --ratio/],
    [[MLP, '--energy', '0'], 2, /--energy must be a number with 0 < e <= 1, got '0'/],
    [[MLP, '--energy', '1.01'], 2, /--energy must be a number with 0 < e <= 1, got '1.01'/],
    [[MLP, '--rank', '0'], 2, /--rank/],
    [[MLP, '--rank', '2.5'], 2, /--rank/],
    [[MLP, '--ratio', '1'], 2, /--ratio must be a number with 0 < p < 1, got '1'/],
    [[MLP, '--ratio', 'half'], 2, /--ratio must be a number/],
    [[MLP, '--ratio', '0.5', '--epochs', '1'], 2, /--epochs trains the factored model on --data/],
    [[MLP, '--ratio', '0.5', '--exclude', '('], 2, /not a valid regular expression/],
    [['missing.onnx', '--ratio', '0.5'], 1, /missing\.onnx/],
  ];
  for (const [args, code, message] of cases) {
    const run = await runShrink(['lowrank', ...args.slice(0, 1), '-o', out, ...args.slice(1)]);
    assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message, args.join(' '));
    assert.equal(run.stderr.trim().split('\n').length, 1, `one line: ${run.stderr}`);
    assert.equal(fs.existsSync(out), false, `nothing written for ${args.join(' ')}`);
  }
});
