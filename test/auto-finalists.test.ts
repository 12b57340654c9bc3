// `shrink auto` chooses for speed on one timing of its finalists (src/pipeline/auto-finalists.ts):
// the fastest feasible candidates by their own timings are timed again together, and that timing
// decides. Real candidates of a small MLP (real onnxruntime); the two timings are scripted so that
// they disagree: alone, the smaller file looks faster; together, the larger one is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { AUTO_FINALISTS } from '../src/pipeline/auto-finalists.js';
import { autoSearch, type AutoHooks } from '../src/pipeline/auto.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import type { RecipeData } from '../src/pipeline/run-recipe.js';
import { mlpModel } from '../src/train/init-models.js';

test('auto times its fastest feasible candidates together and chooses on that timing', async () => {
  const model = mlpModel({ imageDims: [1, 8, 8], hidden: [16, 16], classes: 10, seed: 7 });
  const n = 16;
  const pixels = new Float32Array(n * 64);
  for (let s = 0; s < n; s++) for (let i = 0; i < 64; i++) pixels[s * 64 + i] = Math.sin(i * (0.2 + 0.05 * s));
  const field = { data: pixels, sampleDims: [1, 8, 8], dataType: DataType.FLOAT };
  const data: RecipeData = { data: arraySamples({ input: field }, 'tuning', n / 2, n / 2), calibration: arraySamples({ input: field }, 'calibration', n / 2) };
  const together: number[][] = [];
  const logs: string[] = [];
  const hooks: AutoHooks = {
    // Alone: time grows with the file. Together: it falls with it.
    latency: async (bytes) => ({ original_ms: 10, candidate_ms: bytes.byteLength / 10_000 }),
    latencyTogether: async (list) => {
      together.push(list.map((b) => b.byteLength));
      return { original_ms: 10, candidate_ms: list.map((b) => 100_000 / b.byteLength) };
    },
    cached: () => undefined,
    store: () => {},
    timeLeft: () => 600_000,
    log: (line) => logs.push(line),
  };
  const result = await autoSearch(model, data, { budget: { minCosine: 0 }, target: 'latency', canTrain: false }, { ort: nodeOrt, threads: 1 }, hooks);
  assert.equal(together.length, 1, 'one timing of the finalists');
  const contenders = result.candidates.filter((c) => c.feasible && c.bytes > 0 && c.superseded === undefined && c.latency_predicted !== true);
  assert.ok(contenders.length > AUTO_FINALISTS, `${contenders.length} contenders`);
  // The finalists are the fastest alone: the smallest files.
  const smallest = contenders.map((c) => c.bytes).sort((a, b) => a - b).slice(0, AUTO_FINALISTS);
  assert.deepEqual([...together[0]].sort((a, b) => a - b), smallest);
  const retimed = result.candidates.filter((c) => c.retimed === true);
  assert.equal(retimed.length, AUTO_FINALISTS);
  // Chosen on the timing together: the largest finalist, with that timing's speed-up.
  const best = result.best;
  assert.ok(best !== undefined);
  assert.equal(best.retimed, true);
  assert.equal(best.bytes, Math.max(...smallest));
  assert.ok(Math.abs((best.latency?.speedup ?? 0) - 10 / (100_000 / best.bytes)) < 1e-9);
  assert.ok(logs.some((l) => /timed together with the input: /.test(l)), logs.join('\n'));
});
