// The lowrank pass on the six real models of REAL_MODELS.md (weights in Constant nodes, If
// subgraphs in Silero v5/v6, opsets 9 to 16): factored at full rank, every MatMul/Gemm/group-1
// Conv becomes two layers and the outputs stay those of the original (max diff <= 1e-4) in
// onnxruntime; depthwise and grouped convolutions and ConvTranspose (det) are the only layers left
// alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type LowRankDetails, lowRankPass } from '../src/methods/lowrank/lowrank.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { runPass } from '../src/pipeline/pass.js';
import { REAL_MODELS } from './helpers/real-models.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';

for (const real of REAL_MODELS) {
  test(`${real.name}: factored at full rank, outputs unchanged`, async () => {
    const model = loadModel(real.file);
    const report = await runPass(lowRankPass, model, { rank: 1_000_000, onlyWhenSmaller: false, threads: 1 }, { ort: nodeOrt });
    const details = (report as typeof report & { details: LowRankDetails }).details;
    assert.ok(details.layers.length > 0);
    for (const s of details.skipped) assert.match(s.reason, /depthwise|grouped|ConvTranspose is not factored/, `${s.node}: ${s.reason}`);
    for (const l of details.layers) assert.ok(l.energyKept > 1 - 1e-9, `${l.weight} keeps ${l.energyKept}`);
    const before = await runModel(real.file, real.feeds());
    const after = await runModel(model, real.feeds());
    const worst = Math.max(...before.map((t, i) => maxAbsDifference(t, after[i])));
    console.log(`${real.name}: ${details.layers.length} weights factored, ${details.skipped.length} left alone, max diff ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4, `max diff ${worst}`);
  });
}
