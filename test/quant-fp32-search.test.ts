// Per-layer-driven mixed precision on static int8 PP-OCRv4 det (issue 4, "Per-layer"): the
// per-layer report names where error starts; keeping that layer and everything before it in
// float32, round after round, lifts the probability map's fidelity measurably.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tensorSamples } from '../src/eval/samples.js';
import { searchFp32Layers } from '../src/pipeline/fp32-search.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { cropImage, detInput, loadOcrFixtures } from './helpers/ocr-lines.js';
import { DET } from './helpers/real-models.js';

test('PP-OCRv4 det static int8: keeping the layers up to where per-layer error starts in fp32 lifts output SQNR by 6 dB or more', { timeout: 600_000 }, async () => {
  const { page } = await loadOcrFixtures();
  const full = detInput(page);
  const quadrants = [cropImage(full, 0, 0, 320, 320), cropImage(full, 0, 320, 320, 320), cropImage(full, 320, 0, 320, 320), cropImage(full, 320, 320, 320, 320)];
  const calibration = tensorSamples(quadrants.map((x) => ({ x })), 'page crops');
  const result = await searchFp32Layers(nodeOrt, loadModel(DET), {
    quantize: async (keep) => {
      const model = loadModel(DET);
      await quantizeStaticInt8(model, { calibration, calibrator: 'percentile', perChannel: true, threads: 2, exclude: (node) => keep.has(node.name) }, { ort: nodeOrt });
      return model;
    },
    samples: tensorSamples([{ x: full }], 'the page'),
    toleranceDb: 20,
    maxRounds: 5,
    threads: 2,
  });
  for (const [i, r] of result.rounds.entries()) {
    console.log(`# round ${i}: ${r.kept} nodes in fp32, output SQNR ${r.outputSqnrDb.toFixed(2)} dB, cosine ${r.outputCosine.toFixed(4)}${r.boundary ? `; error starts at ${r.boundary.value} (${r.boundary.op}, ${r.boundary.sqnrDb.toFixed(1)} dB)` : ''}`);
  }
  const [first] = result.rounds;
  const best = Math.max(...result.rounds.map((r) => r.outputSqnrDb));
  assert.equal(first.kept, 0);
  assert.ok(first.boundary !== undefined, 'the all-int8 model has layers below 20 dB');
  assert.ok(best >= first.outputSqnrDb + 6, `best ${best} dB vs ${first.outputSqnrDb} dB with everything in int8`);
  // The chosen model keeps a minority of the network in float32.
  const quantizedNodes = result.model.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').length;
  assert.ok(quantizedNodes > 50, `${quantizedNodes} QuantizeLinear left`);
  assert.ok(result.kept.length > 0 && result.kept.length < 100, `${result.kept.length} nodes kept`);
});
