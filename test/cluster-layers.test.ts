// Mixed precision in weight sharing and distillation of an inner value, on the Fashion-MNIST MLP
// with real test images: --layer-bits / --layer-group (recipe `layers`) give each matching layer
// its own bits and channels per codebook, the rest keeps --bits and the grouping; --distill-value
// (recipe `distill_value`) trains the centroids on the mean squared error of an inner value of the
// original (PP-OCRv4 rec's logits before its softmax output) and leaves the outputs as they were.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { constantValue } from '../src/ir/constants.js';
import { roundMantissa, roundToHalf } from '../src/methods/cluster/codebook.js';
import { findClusters } from '../src/methods/cluster/decode-graph.js';
import { packOnnx } from '../src/methods/pack/pack.js';
import { loadModel } from '../src/node/model-files.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-cluster-layers-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const file = (name: string) => path.join(work, name);
const fashion = writeFashionFiles(work, 512);

test('--layer-bits and --layer-group: matching layers get their bits and codebooks per group, the others --bits per tensor', async () => {
  const out = file('mixed.onnx');
  const run = await runShrink(['cluster', MLP, '-o', out, '--bits', '3', '--layer-bits', '^fc3$=6', '--layer-bits', 'Gemm=5', '--layer-group', 'fc1=16', '--samples', '0', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  // fc3 matches two bit settings: the first wins; fc1 and fc2 take 'Gemm=5'; only fc1 is grouped.
  assert.deepEqual(
    report.tensors.map((t: { name: string; bits: number; codebooks: number }) => [t.name, t.bits, t.codebooks]),
    [
      ['fc1.weight', 5, 256 / 16],
      ['fc2.weight', 5, 1],
      ['fc3.weight', 6, 1],
    ],
  );
  assert.equal(report.settings.layers, '^fc3$ bits 6; Gemm bits 5; fc1 group 16');
  // The written codebooks have 2^bits slots per group.
  const model = loadModel(out);
  const slots = new Map(findClusters(model).map((f) => [f.codebook, constantValue(f.graph, f.codebook)?.dims[0]]));
  assert.deepEqual([slots.get('fc1.weight_codebook'), slots.get('fc2.weight_codebook'), slots.get('fc3.weight_codebook')], [16 * 32, 32, 64]);

  const text = await runShrink(['cluster', MLP, '-o', file('mixed2.onnx'), '--bits', '3', '--layer-bits', 'fc3=6', '--samples', '0']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /with codes at 3-6 bits/);
});

test('--distill-value: the centroids learn an inner value of the original by MSE; the outputs stay the model\'s own', async () => {
  const out = file('distilled.onnx');
  const args = [MLP, '-o', out, '--bits', '2', '--data', fashion.images, '--epochs', '2', '--batch-size', '32', '--distill-value', 'fc2', '--json'];
  const run = await runShrink(['cluster', ...args]);
  assert.equal(run.code, 0, run.stderr);
  const f = JSON.parse(run.stdout).finetune;
  assert.equal(f.kind, 'distill');
  assert.equal(f.loss, 'mse');
  assert.equal(f.value, 'fc2');
  assert.equal(f.epochs, 2);
  assert.ok(f.mean_loss[1] < f.mean_loss[0], `mean loss ${f.mean_loss}`);
  assert.deepEqual(loadModel(out).graph.outputs.map((o) => o.name), ['logits']);
});

test('--half-codebooks: every centroid is a float16 value, also after fine-tuning; the pack is smaller', async () => {
  const plain = file('full.onnx');
  const half = file('half.onnx');
  const common = ['--bits', '4', '--per-channel', '--data', fashion.images, '--samples', '64'];
  for (const [out, extra] of [[plain, []], [half, ['--half-codebooks', '--epochs', '1', '--batch-size', '64']]] as const) {
    const run = await runShrink(['cluster', MLP, '-o', out, ...common, ...extra]);
    assert.equal(run.code, 0, run.stderr);
  }
  const model = loadModel(half);
  const books = findClusters(model).map((f) => constantValue(f.graph, f.codebook)?.data() as Float32Array);
  assert.equal(books.length, 3);
  for (const book of books) {
    const exact = book.slice();
    roundToHalf(exact);
    assert.deepEqual(exact, book, 'each centroid is its own float16 rounding');
  }
  // 256 + 128 + 10 channels of 16 centroids: the low mantissa bits of ~6,300 float32 values cost nothing.
  const packed = (f: string) => packOnnx(new Uint8Array(fs.readFileSync(f))).pack.length;
  assert.ok(packed(half) < packed(plain) - 6000, `pack ${packed(half)} vs ${packed(plain)}`);
});

test('--codebook-mantissa-bits: centroids keep n mantissa bits (a layer its own), also after fine-tuning; the pack is smaller still', async () => {
  const half = file('half-only.onnx');
  const short = file('mantissa.onnx');
  const common = ['--bits', '4', '--per-channel', '--data', fashion.images, '--samples', '64', '--half-codebooks', '--epochs', '1', '--batch-size', '64'];
  for (const [out, extra] of [[half, []], [short, ['--codebook-mantissa-bits', '5', '--layer-mantissa-bits', 'fc3=8', '--json']]] as const) {
    const run = await runShrink(['cluster', MLP, '-o', out, ...common, ...extra]);
    assert.equal(run.code, 0, run.stderr);
    if (out === short) {
      const report = JSON.parse(run.stdout);
      assert.equal(report.settings.codebook_mantissa_bits, 5);
      assert.equal(report.settings.layers, 'fc3 mantissa 8');
    }
  }
  const model = loadModel(short);
  const books = new Map(findClusters(model).map((f) => [f.codebook, constantValue(f.graph, f.codebook)?.data() as Float32Array]));
  assert.equal(books.size, 3);
  for (const [name, book] of books) {
    const bits = name.startsWith('fc3') ? 8 : 5;
    // On the grid of its own mantissa bits, and not on a coarser one: fine-tuning moved the centroids and they were put back.
    for (const [m, onGrid] of [[bits, true], [bits - 2, false]] as const) {
      const exact = book.slice();
      roundMantissa(exact, m);
      assert.equal(exact.every((v, i) => v === book[i]), onGrid, `${name} at ${m} mantissa bits`);
    }
    const halfValues = book.slice();
    roundToHalf(halfValues);
    assert.deepEqual(halfValues, book, `${name}: still float16 values`);
  }
  // ~6,300 centroids, each 5 mantissa bits shorter than float16's 10.
  const packed = (f: string) => packOnnx(new Uint8Array(fs.readFileSync(f))).pack.length;
  assert.ok(packed(short) < packed(half) - 2000, `pack ${packed(short)} vs ${packed(half)}`);
});

test('roundMantissa: to nearest, ties to even, order kept, infinities and bad bit counts', () => {
  const values = Float32Array.from([1 + 2 ** -6, 1 + 3 * 2 ** -6, 1.1, -1.1, 0, 3.4e38, Number.POSITIVE_INFINITY, 1 + 2 ** -5 + 2 ** -20]);
  roundMantissa(values, 4);
  // At 4 mantissa bits the step in [1, 2) is 2^-4: 2^-6 is under half a step, 3 * 2^-6 over it.
  assert.deepEqual(Array.from(values.subarray(0, 5)), [1, 1 + 2 ** -4, 1.125, -1.125, 0]);
  assert.equal(values[5], Math.fround(3.4e38), 'rounding up would pass float32\'s largest: kept');
  assert.equal(values[6], Number.POSITIVE_INFINITY);
  assert.equal(values[7], 1 + 2 ** -4, 'just over half a step rounds up');
  const ties = Float32Array.from([1 + 2 ** -5, 1 + 3 * 2 ** -5]);
  roundMantissa(ties, 4);
  assert.deepEqual(Array.from(ties), [1, 1 + 2 ** -3], 'ties go to the even mantissa');
  const sorted = Float32Array.from({ length: 1000 }, (_, i) => Math.sinh((i - 500) / 50));
  roundMantissa(sorted, 3);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i] >= sorted[i - 1]);
  assert.throws(() => roundMantissa(new Float32Array(1), 0), /mantissa bits must be a whole number from 1 to 23, got 0/);
});

test('recipes: `layers`, `batch_size` and `distill_value` of a cluster step; wrong ones are one line', () => {
  const recipe = parseRecipe('steps:\n  - cluster: {bits: 4, group: 8, half_codebooks: true, layers: [{pattern: head, bits: 6, group: 64}, {pattern: dw, group: 1}], epochs: 2, batch_size: 8, distill_value: logits}\n', 'r.yaml');
  const step = recipe.steps[0];
  assert.equal(step.kind, 'cluster');
  if (step.kind !== 'cluster') return;
  assert.deepEqual(step.options.layers, [
    { pattern: 'head', bits: 6, group: 64 },
    { pattern: 'dw', group: 1 },
  ]);
  assert.equal(step.options.halfCodebooks, true);
  assert.deepEqual(step.training, { epochs: 2, batchSize: 8, distillValue: 'logits' });
  for (const [text, message] of [
    ['{"steps": [{"cluster": {"bits": 4, "layers": [{"pattern": "x"}]}}]}', /each entry of 'layers' sets 'bits', 'step', 'group' or 'mantissa_bits'/],
    ['{"steps": [{"cluster": {"bits": 4, "layers": [{"pattern": "x", "bits": 9}]}}]}', /layers\.0\.bits/],
    ['{"steps": [{"cluster": {"bits": 4, "distill_value": "logits"}}]}', /'distill_value' goes with 'epochs'/],
    ['{"steps": [{"cluster": {"bits": 4, "batch_size": 8}}]}', /'batch_size' goes with 'epochs'/],
  ] as const) assert.throws(() => parseRecipe(text, 'r.json'), message, text);
});

test('bad per-layer settings: one line, exit 2, nothing written', async () => {
  const out = file('never.onnx');
  const cases: [string[], RegExp][] = [
    [['--layer-bits', 'fc3'], /--layer-bits takes PATTERN=BITS, got 'fc3'/],
    [['--layer-bits', 'fc3=9'], /bits of 'fc3' must be a whole number from 2 to 8, got 9/],
    [['--layer-group', 'fc1=0'], /group of 'fc1' must be a whole number of channels >= 1, got 0/],
    [['--layer-group', '(=4'], /--layer-group: '\(' is not a valid regular expression/],
    [['--distill-value', 'fc2'], /--distill-value goes with --epochs/],
    [['--codebook-mantissa-bits', '24'], /codebook mantissa bits must be a whole number from 1 to 23, got 24/],
    [['--layer-mantissa-bits', 'fc1=0'], /mantissa bits of 'fc1' must be a whole number from 1 to 23, got 0/],
  ];
  for (const [extra, message] of cases) {
    const run = await runShrink(['cluster', MLP, '-o', out, '--bits', '4', ...extra]);
    assert.equal(run.code, 2, `${extra.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split('\n').filter((l) => !l.includes('dist/ is older')).length, 1, run.stderr);
    assert.equal(fs.existsSync(out), false);
  }
});
