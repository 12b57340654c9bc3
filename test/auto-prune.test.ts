// `shrink auto`'s pruned + static int8 generator (src/pipeline/auto-prune.ts) on a small CNN, on real
// onnxruntime: the scan cuts each channel group by one round-to step and measures it on the tuning
// samples, the cheapest groups are cut within the budget's share, and the candidates (1 and 2 epochs
// of distillation, then static int8) are recipes whose model `runRecipe` reproduces byte for byte;
// the distillation length kept is the one with the better quality on the tuning samples.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { CandidateOutcome } from '../src/pipeline/auto.js';
import { chooseCuts, distillTarget, type GroupScan, searchPrunedInt8 } from '../src/pipeline/auto-prune.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { parseRecipe, recipeFromData } from '../src/pipeline/recipe.js';
import { type RecipeData, runRecipe } from '../src/pipeline/run-recipe.js';
import { cnnModel } from '../src/train/init-models.js';

test('auto pruned + int8: scans the channel groups, cuts the cheapest, and writes recipes that reproduce the model', async () => {
  const model = cnnModel({ classes: 10, channels: [24, 48], hidden: 32, seed: 3 });
  // Smooth images (a random CNN's outputs barely move on noise): 8 to train and calibrate, 8 to tune.
  const n = 16;
  const pixels = new Float32Array(n * 784);
  for (let s = 0; s < n; s++) for (let i = 0; i < 784; i++) pixels[s * 784 + i] = Math.sin((i % 28) * (0.2 + 0.05 * s)) * Math.cos(Math.floor(i / 28) * (0.1 + 0.03 * s));
  const field = { data: pixels, sampleDims: [1, 28, 28], dataType: DataType.FLOAT };
  const half = n / 2;
  const data: RecipeData = {
    data: arraySamples({ input: field }, 'tuning', half, half),
    calibration: arraySamples({ input: field }, 'calibration', half),
    training: { inputs: { input: { ...field, data: pixels.subarray(0, half * 784) } } },
  };
  const ctx = { ort: nodeOrt, threads: 1 };
  const budget = { minCosine: 0.9 };
  const logs: string[] = [];
  let scans = 0;
  const stored: CandidateOutcome[] = [];
  const result = await searchPrunedInt8({
    model,
    data,
    budget,
    ctx,
    hooks: {
      latency: async () => ({ original_ms: 2, candidate_ms: 1 }),
      cached: () => undefined,
      store: (o) => stored.push(o),
      timeLeft: () => 60_000,
      groupScan: async (measure) => {
        scans++;
        return measure();
      },
      log: (line) => logs.push(line),
    },
  });
  assert.equal(scans, 1);
  // No squashing activation at the CNN's output: the logits themselves are distilled.
  assert.equal(distillTarget(model), 'logits');
  const scan: GroupScan = result.scan;
  assert.ok(scan.groups.length >= 2, JSON.stringify(scan));
  for (const g of scan.groups) {
    assert.ok(g.kept < g.channels && g.kept % scan.round_to === 0, JSON.stringify(g));
    assert.ok(g.macs_saved >= 0.01 && g.quality <= scan.baseline + 1e-6, JSON.stringify(g));
  }
  const cuts = chooseCuts(scan, budget, false);
  assert.ok(cuts.length >= 1, `no cut within ${JSON.stringify(scan)}`);
  // Cheapest first, and the summed loss within half the slack.
  const cost = (g: (typeof cuts)[number]) => Math.max(0, g.loss) / g.macs_saved;
  for (let i = 1; i < cuts.length; i++) assert.ok(cost(cuts[i - 1]) <= cost(cuts[i]));
  assert.ok(cuts.reduce((a, g) => a + Math.max(0, g.loss), 0) <= 0.5 * (scan.baseline - 0.9) + 1e-9);
  // Nothing looser than the budget allows: a tight one cuts nothing.
  assert.deepEqual(chooseCuts(scan, { minCosine: scan.baseline }, false), []);

  assert.equal(result.outcomes.length, 2, logs.join('\n'));
  assert.equal(stored.length, 2);
  assert.equal(result.outcomes.filter((o) => o.superseded !== undefined).length, 1);
  const kept = result.outcomes.find((o) => o.superseded === undefined) as CandidateOutcome;
  assert.ok(kept.bytes > 0 && kept.cosine !== undefined, JSON.stringify(kept));
  const steps = kept.recipe.steps;
  assert.equal(Object.keys(steps[0])[0], 'prune');
  assert.deepEqual(steps[1], { quantize: { method: 'static-int8' } });
  // The recipe is what `shrink run` reads, and it rebuilds the same model.
  const again = await runRecipe(model, recipeFromData(kept.recipe, kept.name), data, ctx);
  const built = result.models.get(kept.name);
  assert.ok(built !== undefined);
  assert.deepEqual(writeModel(again.model), writeModel(built));
  const pruneReport = again.report.steps[0];
  assert.equal(pruneReport.step, 'prune');
  if (pruneReport.step === 'prune') assert.ok((pruneReport.report.macs?.ratio ?? 1) < 1, JSON.stringify(pruneReport.report.macs));
  assert.ok(again.model.graph.nodes.some((n) => n.opType === 'QuantizeLinear'));
});

test('prune recipe keys the generator writes: layer_ratio, optimizer and distillation, checked like the other keys', () => {
  const recipe = parseRecipe(
    'steps:\n  - prune: {method: channels, sparsity: 0, round_to: 16, round_mode: nearest, layer_ratio: [{pattern: "^conv2$", ratio: 0.25}], epochs: 2, lr: 0.0001, optimizer: adamw, distill_value: logits, distill_loss: mse, batch_norm: frozen}\n',
    'r.yaml',
  );
  const step = recipe.steps[0];
  assert.ok(step.kind === 'prune');
  assert.deepEqual(step.options.layerRatios, [{ pattern: '^conv2$', ratio: 0.25 }]);
  assert.deepEqual(step.training, { epochs: 2, lr: 0.0001, optimizer: 'adamw', distillValue: 'logits', distillLoss: 'mse', batchNorm: 'frozen' });
  assert.throws(() => parseRecipe('steps:\n  - prune: {method: magnitude, sparsity: 0.5, layer_ratio: [{pattern: conv2, ratio: 0.5}]}\n', 'r.yaml'), /'layer_ratio' has no effect with method magnitude/);
  assert.throws(() => parseRecipe('steps:\n  - prune: {method: channels, sparsity: 0.5, optimizer: adamw}\n', 'r.yaml'), /'optimizer' goes with 'epochs'/);
  assert.throws(() => parseRecipe('steps:\n  - prune: {method: channels, sparsity: 0.5, epochs: 1, distill_loss: kl}\n', 'r.yaml'), /'distill_loss' goes with 'distill_value'/);
});
