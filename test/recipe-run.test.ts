// Recipes: the file format (JSON and YAML alike, one-line errors naming the step and key), the
// library's runRecipe, and `shrink run` end to end on the Fashion-MNIST MLP with real test images
// and labels: a 3-step recipe writes a model whose accuracy the test counts itself; a gate that
// misses exits 3, names the figure and by how much, and leaves an existing output untouched.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { npySamples } from '../src/eval/sample-arrays.js';
import { parseLabels } from '../src/eval/labels.js';
import { memoryByteSource } from '../src/eval/byte-source.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runRecipe } from '../src/pipeline/run-recipe.js';
import { spawnShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';
import { runModel } from './helpers/run-model.js';
import { floats } from './helpers/tensors.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(tmpdir(), 'shrink-recipe-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
// Held-out images: the MLP was trained on the train set; these 2,000 test images tune nothing.
const fashion = writeFashionFiles(work, 2000, 3000);

const RECIPE_JSON = '{"steps": [{"optimize": {}}, {"quantize": {"method": "int4", "block_size": 32}}, {"gate": {"min_cosine": 0.99, "max_accuracy_drop": 1.5}}]}';
const RECIPE_YAML = `# the same recipe in YAML
steps:
  - optimize: {}
  - quantize:
      method: int4
      block_size: 32
  - gate: {min_cosine: 0.99, max_accuracy_drop: 1.5}
`;

test('recipe files: JSON and YAML of one shape give one recipe; mistakes are one line naming step and key', () => {
  assert.deepEqual(parseRecipe(RECIPE_YAML, 'r.yaml'), parseRecipe(RECIPE_JSON, 'r.json'));
  const recipe = parseRecipe(RECIPE_JSON, 'r.json');
  assert.deepEqual(recipe.steps.map((s) => s.kind), ['optimize', 'quantize', 'gate']);
  assert.deepEqual(recipe.steps[2], { kind: 'gate', gate: { minCosine: 0.99, minSqnrDb: undefined, minTop1Agreement: undefined, maxAccuracyDrop: 1.5, maxSizeRatio: undefined } });
  const fails = (text: string, pattern: RegExp) =>
    assert.throws(
      () => parseRecipe(text, 'r.yaml'),
      (error: Error) => {
        assert.equal(error.message.split('\n').length, 1);
        assert.match(error.message, pattern);
        return true;
      },
    );
  fails('steps:\n  - optimise: {}\n', /^r\.yaml: steps\.0: unknown step 'optimise' \(known: optimize, quantize, prune, cluster, lowrank, gate, pack\)$/);
  fails('steps:\n  - quantize: {method: int4, blocksize: 32}\n', /^r\.yaml: 'steps\.0\.quantize\.blocksize': Unrecognized key/);
  fails('steps:\n  - quantize: {method: int4, block_size: 7}\n', /^r\.yaml: 'steps\.0\.quantize\.block_size': must be 16, 32, 64, 128 or 256$/);
  fails('steps:\n  - quantize: {method: int3}\n', /^r\.yaml: 'steps\.0\.quantize\.method': Invalid option/);
  fails('steps:\n  - gate: {}\n', /^r\.yaml: 'steps\.0\.gate': a gate needs at least one figure/);
  fails('{"steps": []}', /^r\.yaml: 'steps': Too small/);
  fails('steps: [{optimize: {}, gate: {min_cosine: 1}}]', /^r\.yaml: steps\.0: a step is an object with one key/);
  fails('{"steps": [', /^r\.yaml: neither valid JSON nor YAML/);
});

test('shrink run: optimize, int4, gate on held-out Fashion-MNIST images; accuracy counted independently', async () => {
  const recipeFile = path.join(work, 'recipe.json');
  fs.writeFileSync(recipeFile, RECIPE_JSON);
  const output = path.join(work, 'mlp-int4.onnx');
  const run = spawnShrink(['run', recipeFile, MLP, '-o', output, '--data', fashion.images, '--labels', fashion.labels, '--json']);
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.command, 'run');
  assert.deepEqual(report.steps.map((s: { step: string }) => s.step), ['optimize', 'quantize', 'gate']);
  assert.equal(report.steps[2].report.passed, true);
  assert.equal(report.size.after, fs.statSync(output).size);
  assert.ok(report.size.ratio < 0.2, `size ratio ${report.size.ratio}`);
  assert.equal(report.verdict.status, 'close');
  // The accuracy the report gives is what onnxruntime gives for the written file.
  const accuracy = report.fidelity.accuracy;
  assert.equal(accuracy.total, 2000);
  const labels = parseLabels(new Uint8Array(fs.readFileSync(fashion.labels)), fashion.labels).ids;
  const images = new Float32Array(new Uint8Array(fs.readFileSync(fashion.images)).slice(-2000 * 784 * 4).buffer);
  let correct = 0;
  const written = loadModel(output);
  const batch = 500;
  for (let start = 0; start < 2000; start += batch) {
    const [logits] = await runModel(written, [tensorOf(images.subarray(start * 784, (start + batch) * 784), batch)]);
    const scores = logits.data() as Float32Array;
    for (let i = 0; i < batch; i++) {
      const row = scores.subarray(i * 10, i * 10 + 10);
      if (row.indexOf(Math.max(...row)) === Number(labels[start + i])) correct++;
    }
  }
  assert.equal(accuracy.correct_candidate, correct);
  assert.ok(accuracy.original - accuracy.candidate <= 0.015, `accuracy ${accuracy.original} -> ${accuracy.candidate}`);
  console.log(`# shrink run (optimize, int4, gate) on 2,000 held-out images: accuracy ${(accuracy.original * 100).toFixed(2)}% -> ${(accuracy.candidate * 100).toFixed(2)}%, size ${report.size.before} -> ${report.size.after} B`);
});

test('shrink run: a gate that misses exits 3, says which figure and by how much, and writes nothing', () => {
  const recipeFile = path.join(work, 'strict.yaml');
  fs.writeFileSync(recipeFile, 'steps:\n  - quantize: {method: int2}\n  - gate: {min_cosine: 0.999, max_accuracy_drop: 0.5}\n');
  const output = path.join(work, 'existing.onnx');
  fs.writeFileSync(output, 'an earlier result');
  const run = spawnShrink(['run', recipeFile, MLP, '-o', output, '--data', fashion.images, '--labels', fashion.labels, '--no-progress']);
  assert.equal(run.status, 3, run.stderr);
  assert.equal(run.stdout, '');
  assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
  assert.match(run.stderr.trimEnd(), /^shrink: recipe step 2 \(gate\) failed: min_cosine 0\.999: output 'logits' is 0\.\d+ \([\d.e-]+ short\); max_accuracy_drop 0\.5 points: is [\d.]+ points \([\d.]+ points over\); nothing was written$/);
  assert.equal(fs.readFileSync(output, 'utf8'), 'an earlier result');
  assert.deepEqual(fs.readdirSync(work).filter((f) => f.startsWith('.')), []);
});

test('shrink run refuses before any work: no data for a gate, an output that is the input, a missing folder', () => {
  const recipeFile = path.join(work, 'recipe-gate.json');
  fs.writeFileSync(recipeFile, RECIPE_JSON);
  const noData = spawnShrink(['run', recipeFile, MLP, '-o', path.join(work, 'x.onnx')]);
  assert.equal(noData.status, 2);
  assert.match(noData.stderr, /gates compare with the input on real samples: give --data/);
  const copy = path.join(work, 'mlp-copy.onnx');
  fs.copyFileSync(MLP, copy);
  const before = fs.readFileSync(copy);
  const overInput = spawnShrink(['run', recipeFile, copy, '-o', copy, '--data', fashion.images]);
  assert.equal(overInput.status, 2);
  assert.match(overInput.stderr, /-o .*mlp-copy\.onnx is the input .*writing it would destroy the input/);
  assert.deepEqual(fs.readFileSync(copy), before);
  const missing = spawnShrink(['run', recipeFile, MLP, '-o', path.join(work, 'no-such-folder', 'x.onnx'), '--data', fashion.images]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /folder '.*no-such-folder' does not exist/);
});

test('runRecipe in the library gives the model the CLI writes, byte for byte', async () => {
  const recipeFile = path.join(work, 'recipe-bytes.json');
  fs.writeFileSync(recipeFile, '{"steps": [{"optimize": {}}, {"quantize": {"method": "int4"}}, {"gate": {"min_cosine": 0.99}}]}');
  const output = path.join(work, 'mlp-cli.onnx');
  const run = spawnShrink(['run', recipeFile, MLP, '-o', output, '--data', fashion.images]);
  assert.equal(run.status, 0, run.stderr);
  const model = loadModel(MLP);
  const data = await npySamples(memoryByteSource(new Uint8Array(fs.readFileSync(fashion.images))), 'images.npy', modelSignature(model).inputs);
  const result = await runRecipe(model, parseRecipe(fs.readFileSync(recipeFile, 'utf8'), recipeFile), { data }, { ort: nodeOrt, threads: 1 });
  assert.deepEqual(writeModel(result.model), new Uint8Array(fs.readFileSync(output)));
});

function tensorOf(pixels: Float32Array, count: number) {
  const input = floats('image', [count, 1, 28, 28], 0);
  (input.data() as Float32Array).set(pixels);
  return input;
}
