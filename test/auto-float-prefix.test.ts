// `shrink auto`'s float-prefix candidates (src/pipeline/auto-float-prefix.ts) on an 8-layer MLP, on
// real onnxruntime: when static int8 misses the budget, the search tries static int8 with the first
// N layers in float32, up the ladder until one holds on the tuning samples, then bisects below it;
// the float graph's calibration statistics are collected once for the ladder (no value twice); the
// candidate is a recipe with `float_prefix` whose model `runRecipe` rebuilds byte for byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectStatistics } from '../src/eval/activation-stats.js';
import { DataType } from '../src/ir/dtype.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { autoSearch, type AutoHooks, evaluateCandidate } from '../src/pipeline/auto.js';
import { FLOAT_PREFIX_LADDER, floatPrefixCandidate, floatPrefixLadder } from '../src/pipeline/auto-float-prefix.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { recipeFromData } from '../src/pipeline/recipe.js';
import { type RecipeData, runRecipe } from '../src/pipeline/run-recipe.js';
import { mlpModel } from '../src/train/init-models.js';

test('auto float prefix: static int8 misses, a prefix on the ladder holds, statistics are collected once, the recipe reproduces it', async () => {
  const model = mlpModel({ imageDims: [1, 8, 8], hidden: [16, 16, 16, 16, 16, 16, 16], classes: 10, seed: 5 });
  assert.deepEqual(floatPrefixLadder(8), [3, 6]);
  assert.deepEqual(floatPrefixLadder(3), [1, 2]);
  assert.deepEqual(floatPrefixLadder(100), [...FLOAT_PREFIX_LADDER]);
  // Above the default's own prefix (det: 10 layers of 64), not below it.
  assert.deepEqual(floatPrefixLadder(64, 10), [13, 16, 19, 22]);
  assert.deepEqual(floatPrefixLadder(8, 6), [7]);
  // Smooth inputs: 16 calibrate, 16 tune.
  const n = 32;
  const pixels = new Float32Array(n * 64);
  for (let s = 0; s < n; s++) for (let i = 0; i < 64; i++) pixels[s * 64 + i] = Math.sin((i % 8) * (0.3 + 0.07 * s)) * Math.cos(Math.floor(i / 8) * (0.2 + 0.05 * s)) * (1 + (s % 5));
  const field = { data: pixels, sampleDims: [1, 8, 8], dataType: DataType.FLOAT };
  const data: RecipeData = { data: arraySamples({ input: field }, 'tuning', n / 2, n / 2), calibration: arraySamples({ input: field }, 'calibration', n / 2) };
  const latency = async () => ({ original_ms: 2, candidate_ms: 1 });
  // The budget between all-int8's cosine and the last ladder step's, so static int8 misses and the ladder finds a prefix that holds.
  const base = { name: 'static-int8', recipe: { description: 'static int8', steps: [{ optimize: {} }, { quantize: { method: 'static-int8' } }] } };
  const plain = cosineOf(await evaluateCandidate(model, base, data, { minCosine: 0 }, { ort: nodeOrt, threads: 1 }, latency));
  const top = cosineOf(await evaluateCandidate(model, floatPrefixCandidate(base, 6), data, { minCosine: 0 }, { ort: nodeOrt, threads: 1 }, latency));
  assert.ok(top > plain, `prefix 6 cosine ${top} not above all-int8 ${plain}`);
  const minCosine = (plain + top) / 2;

  // Which candidate asked for which values, through the collector every static int8 build calls.
  let running = '';
  const collected = new Map<string, string[]>();
  const ctx = {
    ort: nodeOrt,
    threads: 1,
    collectStatistics: ((m, values, samples, o) => {
      collected.set(running, [...(collected.get(running) ?? []), ...values]);
      return collectStatistics(nodeOrt, m, values, samples, o);
    }) satisfies NonNullable<Parameters<typeof autoSearch>[3]['collectStatistics']>,
  };
  const logs: string[] = [];
  const hooks: AutoHooks = {
    latency,
    cached: () => undefined,
    store: () => {},
    timeLeft: () => 600_000,
    log: (line) => {
      logs.push(line);
      const m = /^auto: (\S+): running/.exec(line);
      if (m) running = m[1];
    },
  };
  const result = await autoSearch(model, data, { budget: { minCosine }, target: 'size', canTrain: false }, ctx, hooks);
  const byName = new Map(result.candidates.map((c) => [c.name, c]));
  assert.equal(byName.get('static-int8')?.feasible, false, logs.join('\n'));
  // The MLP's first layer does most of its work: static int8's default prefix keeps none, so the ladder starts at 0.
  assert.equal(byName.get('static-int8')?.float_prefix_layers, 0);
  const ladder = result.candidates.filter((c) => c.name.startsWith('static-int8-float-prefix-'));
  const layersOf = (name: string) => Number(name.slice('static-int8-float-prefix-'.length));
  const feasible = ladder.filter((c) => c.feasible).map((c) => layersOf(c.name));
  assert.ok(feasible.length > 0, logs.join('\n'));
  const smallest = Math.min(...feasible);
  // The ladder stopped at its first hit: nothing above it was built.
  const firstHit = [3, 6].find((l) => l >= smallest) as number;
  assert.ok(ladder.every((c) => layersOf(c.name) <= firstHit), ladder.map((c) => c.name).join(', '));
  // Below the smallest hit, the prefix one shorter was measured and missed (the bisection closed the gap), unless that is all-int8.
  if (smallest > 1) assert.equal(byName.get(`static-int8-float-prefix-${smallest - 1}`)?.feasible, false, ladder.map((c) => `${c.name} ${c.cosine}`).join(', '));

  // The ladder's builds asked the collector for no value twice: the float graph's statistics are reused between prefix lengths.
  const ladderValues = [...collected.entries()].filter(([name]) => name.startsWith('static-int8-float-prefix-')).flatMap(([, values]) => values);
  assert.ok(ladderValues.length > 0);
  assert.equal(new Set(ladderValues).size, ladderValues.length, 'a value collected twice across the ladder');

  const chosen = byName.get(`static-int8-float-prefix-${smallest}`);
  assert.ok(chosen !== undefined);
  assert.deepEqual(chosen.recipe.steps[1], { quantize: { method: 'static-int8', float_prefix: smallest } });
  const again = await runRecipe(model, recipeFromData(chosen.recipe, chosen.name), data, { ort: nodeOrt, threads: 1 });
  const built = result.models.get(chosen.name);
  assert.ok(built !== undefined);
  assert.deepEqual(writeModel(again.model), writeModel(built));
  // The prefix is float: the first `smallest` Gemms read no dequantized weights.
  const gemms = again.model.graph.nodes.filter((node) => node.opType === 'Gemm' || node.opType === 'MatMul');
  assert.equal(gemms.length, 8);
  const quantizedWeights = new Set(again.model.graph.nodes.filter((node) => node.opType === 'DequantizeLinear').map((node) => node.outputs[0]));
  const floatLayers = gemms.filter((g) => !quantizedWeights.has(g.inputs[1]));
  assert.equal(floatLayers.length, smallest, floatLayers.map((g) => g.name).join(', '));
});

/** The lowest output cosine of an evaluated candidate. */
function cosineOf(evaluated: Awaited<ReturnType<typeof evaluateCandidate>>): number {
  const cosine = evaluated.outcome.cosine;
  assert.ok(cosine !== undefined, JSON.stringify(evaluated.outcome));
  return cosine;
}
