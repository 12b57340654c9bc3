// The prune step of recipe files: keys checked like the command line's (one line naming the step
// and key), and `shrink run` with prune (channels) then quantize on a CNN built in code, with the
// step's report and a model that really has fewer channels.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { REC_COMPENSATION, REC_PLANS, REC_RECOVERY, REC_ROUNDS, REC_SCHEDULE } from '../bench/prune-ocr-rec.js';
import { cnnModel } from '../src/train/init-models.js';
import { spawnShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'shrink-prune-recipe-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('prune steps parse with their options, and wrong keys are one line naming step and key', () => {
  const recipe = parseRecipe('steps:\n  - prune: {method: channels, sparsity: 0.5, round_to: 8, exclude: [conv1]}\n  - prune: {method: nm, pattern: "4:8"}\n', 'r.yaml');
  assert.deepEqual(recipe.steps[0], { kind: 'prune', options: { method: 'channels', sparsity: 0.5, pattern: undefined, scope: undefined, importance: undefined, roundTo: 8, maxRatio: undefined, exclude: ['conv1'], only: undefined, calibrationSamples: undefined } });
  assert.deepEqual(recipe.steps[1].kind === 'prune' && recipe.steps[1].options.pattern, { n: 4, m: 8 });
  const layers = parseRecipe('steps:\n  - prune: {method: layers, drop_layers: [block, act]}\n  - prune: {method: channels, sparsity: 0.3, importance: activation}\n', 'r.yaml');
  assert.deepEqual(layers.steps[0], { kind: 'prune', options: { method: 'layers', dropLayers: ['block', 'act'] } });
  assert.equal(layers.steps[1].kind === 'prune' && layers.steps[1].options.importance, 'activation');
  const compensation = parseRecipe('steps:\n  - prune: {method: channels, sparsity: 0.3, compensation: lstsq}\n  - prune: {method: channels, sparsity: 0.3, compensation: "off"}\n', 'r.yaml');
  assert.equal(compensation.steps[0].kind === 'prune' && compensation.steps[0].options.compensation, 'lstsq');
  assert.equal(compensation.steps[1].kind === 'prune' && compensation.steps[1].options.compensate, false);
  const reconstruct = parseRecipe('steps:\n  - prune: {method: channels, sparsity: 0.3, reconstruct: true}\n', 'r.yaml');
  assert.equal(reconstruct.steps[0].kind === 'prune' && reconstruct.steps[0].options.reconstruct, true);
  const bad: [string, RegExp][] = [
    ['{"steps": [{"prune": {"method": "channels", "sparsity": 1}}]}', /'steps\.0\.prune\.sparsity': Too big/],
    ['{"steps": [{"prune": {"method": "channels"}}]}', /steps\.0\.prune: method channels needs 'sparsity'/],
    ['{"steps": [{"prune": {"method": "magnitude", "sparsity": 0.5, "round_to": 8}}]}', /steps\.0\.prune: 'round_to' has no effect with method magnitude/],
    ['{"steps": [{"prune": {"method": "nm", "pattern": "4:2"}}]}', /steps\.0\.prune\.pattern: '4:2' is not an N:M pattern/],
    ['{"steps": [{"prune": {"method": "channels", "sparsity": 0.5, "importance": "taylor"}}]}', /'steps\.0\.prune\.importance'/],
    ['{"steps": [{"pruning": {}}]}', /unknown step 'pruning' \(known: optimize, quantize, prune, cluster, lowrank, gate, pack\)/],
    ['{"steps": [{"prune": {"method": "sparsegpt", "sparsity": 0.5, "pattern": "2:4"}}]}', /steps\.0\.prune: method sparsegpt takes 'sparsity' or 'pattern', not both/],
    ['{"steps": [{"prune": {"method": "wanda"}}]}', /steps\.0\.prune: method wanda needs 'sparsity' \(0 <= s < 1\) or 'pattern'/],
    ['{"steps": [{"prune": {"method": "magnitude", "sparsity": 0.5, "calibration_samples": 8}}]}', /'calibration_samples' has no effect with method magnitude/],
    ['{"steps": [{"prune": {"method": "layers"}}]}', /steps\.0\.prune: method layers needs 'drop_layers'/],
    ['{"steps": [{"prune": {"method": "channels", "sparsity": 0.3, "warmup": 10}}]}', /steps\.0\.prune: 'warmup' goes with 'epochs'/],
    ['{"steps": [{"prune": {"method": "channels", "sparsity": 0.3, "epochs": 1, "distill_value": "y", "distill_blank": 0}}]}', /steps\.0\.prune: 'distill_blank' goes with 'distill_loss: kl'/],
    ['{"steps": [{"prune": {"method": "channels", "sparsity": 0.3, "epochs": 1, "distill_value": "y", "distill_loss": "kl", "distill_blank_weight": 0.2}}]}', /steps\.0\.prune: 'distill_blank_weight' goes with 'distill_blank'/],
    ['{"steps": [{"prune": {"method": "layers", "drop_layers": ["a"], "sparsity": 0.5}}]}', /steps\.0\.prune: 'sparsity' has no effect with method layers/],
    ['{"steps": [{"prune": {"method": "layers", "drop_layers": ["a"], "exclude": ["b"]}}]}', /steps\.0\.prune: 'exclude' has no effect with method layers/],
    ['{"steps": [{"prune": {"method": "channels", "sparsity": 0.5, "drop_layers": ["a"]}}]}', /'drop_layers' has no effect with method channels/],
    ['{"steps": [{"prune": {"method": "magnitude", "sparsity": 0.5, "compensation": "lstsq"}}]}', /'compensation' has no effect with method magnitude/],
    ['{"steps": [{"prune": {"method": "wanda", "sparsity": 0.5, "reconstruct": true}}]}', /'reconstruct' has no effect with method wanda/],
  ];
  for (const [text, message] of bad) assert.throws(() => parseRecipe(text, 'r.json'), message, text);
});

test('shrink run: sparsegpt 2:4 calibrated on --calib, checked on --data', () => {
  const fashion = writeFashionFiles(work, 128);
  const calib = writeFashionFiles(work, 32, 6000);
  const recipe = path.join(work, 'sparsegpt.yaml');
  fs.writeFileSync(recipe, 'steps:\n  - prune: {method: sparsegpt, pattern: "2:4"}\n  - gate: {min_top1_agreement: 0.9}\n');
  const out = path.join(work, 'sparsegpt.onnx');
  const run = spawnShrink(['run', recipe, 'models/fashion-mnist/mlp.onnx', '-o', out, '--data', fashion.images, '--calib', calib.images, '--json'], { timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.steps[0].report.method, 'sparsegpt');
  assert.equal(report.steps[0].report.stats.calibration_samples, 32);
  assert.equal(report.steps[0].report.sparsity.pruned_weights, 0.5);
  assert.equal(report.steps[1].report.passed, true);
});

test('shrink run: prune channels then int8 weights on a CNN', () => {
  const model = path.join(work, 'cnn.onnx');
  saveModel(cnnModel({ classes: 10, seed: 3 }), model);
  const fashion = writeFashionFiles(work, 64);
  const recipe = path.join(work, 'recipe.json');
  fs.writeFileSync(recipe, JSON.stringify({ steps: [{ prune: { method: 'channels', sparsity: 0.5 } }, { quantize: { method: 'int8-weight' } }] }));
  const out = path.join(work, 'out.onnx');
  const run = spawnShrink(['run', recipe, model, '-o', out, '--data', fashion.images, '--json'], { timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.deepEqual(report.steps.map((s: { step: string }) => s.step), ['prune', 'quantize']);
  assert.equal(report.steps[0].report.groups[0].channels_after, 16);
  assert.ok(report.steps[0].report.macs.ratio < 0.35);
  assert.equal(loadModel(out).graph.nodes.filter((n) => n.opType === 'Conv').length, 2);
  assert.ok(report.size.ratio < 0.1, `size ${report.size.ratio}`);
});

test('bench/recipes/prune-rec.yaml states the settings of the prune-ocr-rec bench (its plan, compensation, rounds and recovery)', () => {
  const [step] = parseRecipe(fs.readFileSync('bench/recipes/prune-rec.yaml', 'utf8'), 'prune-rec.yaml').steps;
  assert.ok(step.kind === 'prune' && step.training !== undefined);
  const plan = REC_PLANS['protected-global-activation'].options;
  const { options, training } = step;
  assert.deepEqual(
    { sparsity: options.sparsity, scope: options.scope, maxRatio: options.maxRatio, importance: options.importance, layerRatios: options.layerRatios, compensation: options.compensation },
    { ...plan, compensation: REC_COMPENSATION },
  );
  const schedule = REC_RECOVERY.schedule as { kind: string; rate: number; warmup?: number };
  assert.equal(schedule.kind, 'cosine', 'recipes train on a cosine schedule');
  assert.deepEqual(
    { ...training, optimizer: { kind: training.optimizer } },
    {
      epochs: REC_RECOVERY.epochs,
      lr: schedule.rate,
      batchSize: REC_RECOVERY.batchSize,
      warmup: schedule.warmup,
      rounds: REC_ROUNDS,
      roundSchedule: REC_SCHEDULE,
      distillBlank: REC_RECOVERY.distillBlank,
      distillBlankWeight: REC_RECOVERY.distillBlankWeight,
      optimizer: REC_RECOVERY.optimizer,
      distillValue: REC_RECOVERY.distillValue,
      distillLoss: REC_RECOVERY.distillLoss,
      batchNorm: REC_RECOVERY.batchNorm,
    },
  );
  assert.equal(REC_RECOVERY.temperature, 1, "the recipe's KL runs at temperature 1, its default");
});
