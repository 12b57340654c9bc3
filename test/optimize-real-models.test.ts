// Layer (c) tests of the optimizer: the real models of REAL_MODELS.md (PP-OCRv4 det/rec/cls, Silero
// VAD v5/v6/legacy) through optimizeModel at level 'full'. The node count must drop, BatchNorm must
// be gone from det and cls, the result must validate and must not be larger on disk, and
// onnxruntime must give the original's outputs within 1e-5 on fixed pseudo-random inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Model } from '../src/ir/model.js';
import type { Tensor } from '../src/ir/tensor.js';
import { validateGraph } from '../src/ir/validate.js';
import { loadModel } from '../src/node/model-files.js';
import { writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { totalNodes } from '../src/optimize/util/graph-queries.js';
import { type RealModel, realModel, sileroFeeds, sileroLegacyFeeds } from './helpers/real-models.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';

interface Spec extends RealModel {
  /** BatchNormalization must be folded away entirely. */
  foldsAllBatchNorms: boolean;
  /** More inputs for models whose If branches are chosen by an input (Silero's sample rate). */
  moreFeeds?: () => Tensor[];
}

const MODELS: Spec[] = [
  { ...realModel('rec'), foldsAllBatchNorms: true },
  { ...realModel('det'), foldsAllBatchNorms: true },
  { ...realModel('cls'), foldsAllBatchNorms: true },
  {
    ...realModel('vadV5'),
    feeds: () => sileroFeeds(512, 4, { stateSeed: 7 }),
    foldsAllBatchNorms: false,
    // At 8 kHz the other If branch runs, whose weights were shared with the 16 kHz branch.
    moreFeeds: () => sileroFeeds(256, 9, { stateSeed: 10, rate: 8000n }),
  },
  { ...realModel('vadV6'), feeds: () => sileroFeeds(576, 5, { stateSeed: 8 }), foldsAllBatchNorms: false },
  { ...realModel('vadLegacy'), foldsAllBatchNorms: false, moreFeeds: () => sileroLegacyFeeds(256, 11, 8000n) },
];

function countOp(model: Model, opType: string): number {
  let n = 0;
  for (const { node } of model.graph.allNodes()) if (node.opType === opType) n++;
  return n;
}

for (const spec of MODELS) {
  test(`${spec.name}: optimizeModel at level full shrinks the model and keeps its outputs within 1e-5`, async (t) => {
    const model = loadModel(spec.file);
    const original = writeModel(model);
    const nodesBefore = totalNodes(model.graph);
    const batchNormsBefore = countOp(model, 'BatchNormalization');

    const reports = await optimizeModel(model, { level: 'full' });
    const optimized = writeModel(model);
    const nodesAfter = totalNodes(model.graph);
    const batchNormsAfter = countOp(model, 'BatchNormalization');
    const folded = reports.find((r) => r.pass === 'fold-batchnorm')?.stats.batchNormsFolded ?? 0;
    t.diagnostic(
      `${spec.name}: nodes ${nodesBefore} -> ${nodesAfter}, bytes ${original.byteLength} -> ${optimized.byteLength}, BatchNormalization ${batchNormsBefore} -> ${batchNormsAfter} (${folded} folded)`,
    );
    for (const report of reports) {
      const changed = Object.entries(report.stats).filter(([, v]) => v > 0);
      if (changed.length > 0) t.diagnostic(`  ${report.pass}: ${changed.map(([k, v]) => `${k} ${v}`).join(', ')}; ${report.warnings.length} warnings`);
    }

    assert.deepEqual(validateGraph(model).filter((i) => i.severity === 'error'), [], `${spec.name}: the optimized model does not validate`);
    assert.ok(nodesAfter < nodesBefore, `${spec.name}: node count did not drop (${nodesBefore} -> ${nodesAfter})`);
    assert.ok(optimized.byteLength <= original.byteLength, `${spec.name}: file grew (${original.byteLength} -> ${optimized.byteLength})`);
    if (spec.foldsAllBatchNorms) {
      assert.equal(batchNormsAfter, 0, `${spec.name}: BatchNormalization left`);
      assert.equal(folded, batchNormsBefore);
    }

    for (const feeds of [spec.feeds(), ...(spec.moreFeeds === undefined ? [] : [spec.moreFeeds()])]) {
      const expected = await runModel(original, feeds);
      const actual = await runModel(optimized, feeds);
      assert.deepEqual(actual.map((o) => o.name), expected.map((o) => o.name));
      expected.forEach((output, i) => {
        const error = maxAbsDifference(actual[i], output);
        t.diagnostic(`  output '${output.name}' [${output.dims.join(',')}]: max abs difference ${error.toExponential(2)}`);
        assert.ok(error <= 1e-5, `${spec.name}: output '${output.name}' moved by ${error}`);
      });
    }
  });
}
