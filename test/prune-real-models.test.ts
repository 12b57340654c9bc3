// Structured pruning on the real models (Constant-node weights, HardSwish, squeeze-and-excitation,
// residuals, attention blocks, If bodies) and the Fashion-MNIST CNN: 30% of each prunable group's
// channels chosen by the channels pass's own ranking are removed, and the pruned model must equal
// the original with the same channels set to zero (max difference <= 1e-5) in onnxruntime-node;
// the pruned file must load and give the same outputs in onnxruntime-web.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Model } from '../src/ir/model.js';
import type { Tensor } from '../src/ir/tensor.js';
import { analyzeChannels } from '../src/graph-edit/channel-groups.js';
import { removeChannels, zeroChannels } from '../src/graph-edit/channel-rewrite.js';
import { planChannels } from '../src/methods/prune/channels.js';
import { countMacs } from '../src/methods/prune/macs.js';
import { loadModel } from '../src/node/model-files.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { writeModel } from '../src/onnx/model-io.js';
import { cnnModel } from '../src/train/init-models.js';
import { realModel, type RealModelKey } from './helpers/real-models.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { floats } from './helpers/tensors.js';

const TOLERANCE = 1e-5;

interface Case {
  name: string;
  model: () => Model;
  feeds: () => Tensor[];
  /** Groups the analysis must find prunable, at least. */
  minPrunable: number;
}

const real = (key: RealModelKey, minPrunable: number): Case => {
  const m = realModel(key);
  return { name: m.name, model: () => loadModel(m.file), feeds: m.feeds, minPrunable };
};

const CASES: Case[] = [
  { name: 'Fashion-MNIST CNN', model: () => cnnModel({ classes: 10, seed: 5 }), feeds: () => [floats('input', [2, 1, 28, 28], 9, 0, 1)], minPrunable: 3 },
  real('det', 30),
  real('rec', 20),
  real('cls', 20),
  real('vadV5', 6),
];

for (const c of CASES) {
  test(`${c.name}: 30% of the channels removed equals them zeroed, and the file runs in onnxruntime-web`, async () => {
    const original = c.model();
    const feeds = c.feeds();
    const shapes = Object.fromEntries(feeds.map((t) => [t.name, [...t.dims]]));
    const pruned = original.clone();
    const analysis = analyzeChannels(pruned, { inputShapes: shapes });
    const plan = planChannels(analysis, { sparsity: 0.3 });
    const prunable = plan.groups.filter((g) => g.channelsAfter < g.channelsBefore);
    assert.ok(prunable.length >= c.minPrunable, `${prunable.length} groups pruned`);
    removeChannels(pruned, analysis, plan.removed);
    const zeroed = original.clone();
    zeroChannels(zeroed, analyzeChannels(zeroed, { inputShapes: shapes }), plan.removed);

    const bytes = writeModel(pruned);
    assert.ok(bytes.byteLength < writeModel(original).byteLength * 0.85, `smaller file: ${bytes.byteLength}`);
    const [before, after] = [countMacs(original, shapes).macs, countMacs(pruned, shapes).macs];
    assert.ok(after < before * 0.85, `fewer MACs: ${before} -> ${after}`);

    const outNode = await runModel(bytes, feeds);
    const outZeroed = await runModel(zeroed, feeds);
    const outOriginal = await runModel(original, feeds);
    outNode.forEach((out, i) => {
      assert.deepEqual(out.dims, outOriginal[i].dims);
      const difference = maxAbsDifference(out, outZeroed[i]);
      assert.ok(difference <= TOLERANCE, `output ${i}: pruned vs zeroed differ by ${difference}`);
    });
    const web = await loadWebOrt();
    const outWeb = await runModel(bytes, feeds, { threads: 1, executionProviders: WASM_EXECUTION_PROVIDERS }, web);
    for (const [i, out] of outWeb.entries()) assert.ok(maxAbsDifference(out, outNode[i]) <= 1e-4, `web output ${i}`);
  });
}
