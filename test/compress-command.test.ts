// `shrink compress` end to end on the Fashion-MNIST MLP (Deep Compression: prune + recovery,
// cluster + centroid fine-tuning, pack), trained on 2,000 test-set images (the recipe's 2 + 1
// epochs) so the run stays short: the pack decodes (unpack) to an ONNX model whose accuracy on
// 2,000 held-out images (--test-data) this test counts itself and finds in the stage table of
// --json, at >= 20x smaller than the float32 file.
// Recipe mistakes (pack not last, epochs without training arrays, ONNX output for a pack) are one
// line, exit 1 or 2, and write nothing.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { unpack } from '../src/onnx/pack-decode.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-compress-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const file = (name: string) => path.join(work, name);
const train = writeFashionFiles(work, 2000);

const HELD_OUT = { from: 5000, count: 2000 };
const test_ = writeFashionFiles(work, HELD_OUT.count, HELD_OUT.from);

/** The held-out images as classifierAccuracy reads them. */
function heldOut() {
  const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const { from, count } = HELD_OUT;
  return { images: set.images.subarray(from * 784, (from + count) * 784), labels: set.labels.subarray(from, from + count), imageDims: set.imageDims, count };
}

test('shrink compress --recipe deep-compression: a pack >= 20x smaller that unpacks to a model as accurate as the table says', async () => {
  const out = file('mlp.shrink');
  const run = await runShrink(['compress', MLP, '-o', out, '--data', train.images, '--labels', train.labels, '--test-data', test_.images, '--test-labels', test_.labels, '--threads', '1', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.command, 'compress');
  assert.equal(report.recipe, 'deep-compression');
  assert.deepEqual(report.steps.map((s: { step: string }) => s.step), ['prune', 'cluster', 'pack']);
  // Three rounds of pruning, two epochs after each.
  assert.equal(report.steps[0].report.recovery.rounds, 3);
  assert.equal(report.steps[0].report.recovery.epochs, 6);
  assert.equal(report.steps[1].report.finetune.epochs, 1);
  assert.equal(report.steps[0].report.sparsity.pruned_weights, 0.9);
  assert.equal(report.steps[1].report.settings.bits, 5);

  const packBytes = fs.statSync(out).size;
  const floatBytes = fs.statSync(MLP).size;
  assert.deepEqual(report.stages.map((s: { label: string }) => s.label), ['original', 'P', 'P+Q', 'P+Q+H']);
  const [input, pruned, clustered, packed] = report.stages;
  assert.equal(input.bytes, floatBytes);
  assert.equal(packed.pack_bytes, packBytes);
  assert.equal(packed.compression, Number((floatBytes / packBytes).toFixed(2)));
  assert.ok(packed.compression >= 20, `pack ${packBytes} B is ${packed.compression}x smaller than the float file`);
  assert.ok(clustered.bytes < pruned.bytes / 3, 'clustering shrinks the ONNX file');
  for (const stage of report.stages) assert.ok(stage.accuracy > 0.6 && stage.accuracy <= 1, JSON.stringify(stage));
  assert.equal(packed.accuracy, clustered.accuracy, 'the pack is lossless');
  assert.equal(report.size.after, packBytes);

  const onnx = unpack(fs.readFileSync(out));
  assert.equal(onnx.length, packed.bytes);
  const set = heldOut();
  const floatAccuracy = await classifierAccuracy(nodeOrt, fs.readFileSync(MLP), set, { threads: 1 });
  const accuracy = await classifierAccuracy(nodeOrt, onnx, set, { threads: 1 });
  // The table measured the same images: the same counts.
  assert.equal(report.fidelity.samples, HELD_OUT.count);
  assert.equal(Number((floatAccuracy / 100).toFixed(6)), input.accuracy);
  assert.equal(Number((accuracy / 100).toFixed(6)), packed.accuracy);
  // Six epochs on 2,000 images: within 6 points of the float model on unseen images.
  assert.ok(accuracy > floatAccuracy - 6, `held-out accuracy ${accuracy}% vs float ${floatAccuracy}%`);
});

test('shrink compress --recipe FILE: a recipe file ending with pack, the stage table as text', async () => {
  const recipe = file('mine.yaml');
  fs.writeFileSync(recipe, 'steps:\n  - prune: {method: magnitude, sparsity: 0.5, epochs: 1}\n  - cluster: {bits: 6}\n  - pack: {}\n');
  const out = file('mine.shrink');
  const run = await runShrink(['compress', MLP, '-o', out, '--recipe', recipe, '--data', train.images, '--labels', train.labels, '--samples', '200', '--threads', '1', '--no-progress']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^recipe {5}.*mine\.yaml \(3 steps\)$/m);
  assert.match(run.stdout, /^step 3 {2}pack {6}[\d,]+ B ONNX -> [\d,]+ B pack \([\d.]+x smaller\)$/m);
  assert.match(run.stdout, /stages \(against the input\):\n {2}stage +step +accuracy +cosine +top-1 +ONNX +pack +vs input\n/);
  for (const label of ['original', 'P', 'P\\+Q', 'P\\+Q\\+H']) assert.match(run.stdout, new RegExp(`^  ${label} +`, 'm'));
  assert.equal(unpack(fs.readFileSync(out)).length > 0, true);
});

test('shrink compress and shrink run refuse recipe mistakes with one line and write nothing', async () => {
  const folder = file('bad');
  fs.mkdirSync(folder);
  const out = path.join(folder, 'bad.shrink');
  const recipe = (name: string, steps: unknown[]) => {
    const p = path.join(folder, name);
    fs.writeFileSync(p, JSON.stringify({ steps }));
    return p;
  };
  const notLast = recipe('not-last.json', [{ prune: { method: 'magnitude', sparsity: 0.5 } }, { pack: {} }, { cluster: { bits: 4 } }]);
  const noPack = recipe('no-pack.json', [{ cluster: { bits: 4 } }]);
  const trains = recipe('trains.json', [{ prune: { method: 'magnitude', sparsity: 0.5, epochs: 1 } }, { pack: {} }]);
  const cases: [string[], number, RegExp][] = [
    [['compress', MLP, '-o', out, '--recipe', notLast, '--data', train.images], 1, /not-last\.json: steps\.1: 'pack' must be the last step/],
    [['run', notLast, MLP, '-o', out], 1, /not-last\.json: steps\.1: 'pack' must be the last step/],
    [['compress', MLP, '-o', out, '--recipe', noPack, '--data', train.images], 2, /no-pack\.json: shrink compress writes a pack: end the recipe with \{"pack": \{\}\}/],
    [['run', trains, MLP, '-o', out], 2, /trains\.json: step 1 \(prune\) has 'epochs': it fine-tunes on training arrays: give --data as an \.npz or \.npy$/],
    [['run', trains, MLP, '-o', out, '--data', 'test/data/does-not-matter.json'], 2, /step 1 \(prune\) has 'epochs'.*\(not test\/data\/does-not-matter\.json\)/],
    [['run', trains, MLP, '-o', path.join(folder, 'x.onnx'), '--data', train.images], 2, /x\.onnx: .*ends with a pack step, which writes a \.shrink pack, not ONNX/],
    [['compress', MLP, '-o', out, '--data', train.images, '--test-labels', train.labels], 2, /--test-labels go with --test-data/],
    [['compress', MLP, '-o', out, '--data', train.images, '--sparsity', '1.5'], 2, /--sparsity must be a number with 0 <= s < 1/],
    [['compress', MLP, '-o', out, '--recipe', noPack, '--data', train.images, '--bits', '4'], 2, /--bits sets the deep-compression recipe/],
  ];
  for (const [args, code, message] of cases) {
    const run = await runShrink(args);
    assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr.trim(), message, args.join(' '));
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  }
  assert.deepEqual(fs.readdirSync(folder).filter((f) => f.endsWith('.shrink') || f.endsWith('.onnx') || f.endsWith('.tmp')), []);
});
