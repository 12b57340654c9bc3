// The lowrank step of recipe files: keys checked (exactly one of energy, rank, ratio; ranges), and
// `shrink run` with lowrank then a gate on the Fashion-MNIST MLP: the step's report and a model
// with half the parameters; with `epochs`, training after factoring on the recipe's arrays.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { floatParameters } from '../src/methods/lowrank/lowrank.js';
import { loadModel } from '../src/node/model-files.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { spawnShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(tmpdir(), 'shrink-lowrank-recipe-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('lowrank steps parse with their options; wrong keys are one line naming step and key', () => {
  const recipe = parseRecipe('steps:\n  - lowrank: {energy: 0.99, exclude: [fc3]}\n  - lowrank: {ratio: 0.5, only: [Gemm]}\n', 'r.yaml');
  assert.deepEqual(recipe.steps[0], { kind: 'lowrank', options: { energy: 0.99, rank: undefined, ratio: undefined, exclude: ['fc3'], only: undefined } });
  assert.deepEqual(recipe.steps[1].kind === 'lowrank' && recipe.steps[1].options.ratio, 0.5);
  const bad: [string, RegExp][] = [
    ['{"steps": [{"lowrank": {}}]}', /steps\.0\.lowrank.*give exactly one of 'energy', 'rank', 'ratio'/],
    ['{"steps": [{"lowrank": {"energy": 0.9, "rank": 4}}]}', /give exactly one of 'energy', 'rank', 'ratio'/],
    ['{"steps": [{"lowrank": {"energy": 1.5}}]}', /'steps\.0\.lowrank\.energy': Too big/],
    ['{"steps": [{"lowrank": {"rank": 0}}]}', /'steps\.0\.lowrank\.rank': Too small/],
    ['{"steps": [{"lowrank": {"ratio": 1}}]}', /'steps\.0\.lowrank\.ratio': Too big/],
    ['{"steps": [{"lowrank": {"ratio": 0.5, "lr": 0.01}}]}', /steps\.0\.lowrank: 'lr' goes with 'epochs'/],
    ['{"steps": [{"low_rank": {}}]}', /unknown step 'low_rank' \(known: optimize, quantize, prune, cluster, lowrank, gate, pack\)/],
  ];
  for (const [text, message] of bad) assert.throws(() => parseRecipe(text, 'r.json'), message, text);
});

test('shrink run: lowrank at half the parameters, then a gate', () => {
  const fashion = writeFashionFiles(work, 256);
  const recipe = path.join(work, 'lowrank.yaml');
  fs.writeFileSync(recipe, 'steps:\n  - lowrank: {ratio: 0.5}\n  - gate: {min_top1_agreement: 0.9}\n');
  const output = path.join(work, 'mlp-lowrank.onnx');
  const run = spawnShrink(['run', recipe, MLP, '-o', output, '--data', fashion.images, '--labels', fashion.labels, '--json', '--no-progress']);
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  const step = report.steps[0];
  assert.equal(step.step, 'lowrank');
  assert.deepEqual(step.report.settings, { ratio: 0.5 });
  assert.ok(step.report.parameters.after <= 0.5 * step.report.parameters.before);
  assert.equal(step.report.layers[0].weight, 'fc1.weight');
  assert.equal(report.steps[1].report.passed, true);
  assert.equal(floatParameters(loadModel(output)), step.report.parameters.after);
});

test('shrink run: lowrank with epochs trains the factored model on --data', () => {
  const fashion = writeFashionFiles(work, 512, 1000);
  const recipe = path.join(work, 'lowrank-train.yaml');
  fs.writeFileSync(recipe, 'steps:\n  - lowrank: {ratio: 0.5, epochs: 1}\n');
  const output = path.join(work, 'mlp-lowrank-trained.onnx');
  const run = spawnShrink(['run', recipe, MLP, '-o', output, '--data', fashion.images, '--labels', fashion.labels, '--json', '--no-progress']);
  assert.equal(run.status, 0, run.stderr);
  const step = JSON.parse(run.stdout).steps[0];
  assert.equal(step.report.recovery.kind, 'fine-tune');
  assert.equal(step.report.recovery.epochs, 1);
  assert.equal(step.report.recovery.steps, 8);
  assert.equal(floatParameters(loadModel(output)), step.report.parameters.after);
});
