// Attention heads as channels: a Reshape that splits a projection's features into [.., heads,
// head_dim] (or [.., 3, heads, head_dim] for a fused QKV) makes each head one channel (its q, k
// and v columns together), so removing heads shrinks the projections, the output projection's
// rows and every shape constant that names the head count. On spam-bert (separate Q/K/V MatMuls,
// shapes from Concat, opset 14) and PP-OCRv4 rec (one fused QKV MatMul, opset 9 Slices) the pruned
// model must equal the original with those heads' weights zeroed, and load in onnxruntime.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeChannels, type ChannelGroup } from '../src/graph-edit/channel-groups.js';
import { removeChannels, zeroChannels } from '../src/graph-edit/channel-rewrite.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel } from '../src/node/model-files.js';
import { realModel } from './helpers/real-models.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';

const TOLERANCE = 1e-5;

function bertFeeds(): Tensor[] {
  const [batch, length] = [2, 24];
  const ids = BigInt64Array.from({ length: batch * length }, (_, i) => BigInt(1 + ((i * 7919) % 4000)));
  const ones = new BigInt64Array(batch * length).fill(1n);
  return [
    Tensor.fromArray('input_ids', DataType.INT64, [batch, length], ids),
    Tensor.fromArray('attention_mask', DataType.INT64, [batch, length], ones),
    Tensor.fromArray('token_type_ids', DataType.INT64, [batch, length], new BigInt64Array(batch * length)),
  ];
}

/** The groups whose channels are heads: created by the attention projections, as many as the heads. */
function headGroups(model: Model, heads: number, shapes: Record<string, number[]>): ChannelGroup[] {
  const analysis = analyzeChannels(model, { inputShapes: shapes });
  const groups = analysis.groups.filter((g) => g.heads === true);
  for (const g of groups) assert.ok(g.channels.length === heads && g.sources.every((n) => n.opType === 'MatMul') && g.blocked === undefined, `group ${g.id}: ${g.channels.length} channels from ${g.sources.map((n) => n.label)}, ${g.blocked?.reason ?? 'prunable'}`);
  return groups;
}

const CASES = [
  { name: 'spam-bert', file: 'models/spam-bert/onnx/model.onnx', feeds: bertFeeds, heads: 4, layers: 2, projection: 128 },
  { name: 'PP-OCRv4 rec', file: realModel('rec').file, feeds: realModel('rec').feeds, heads: 8, layers: 2, projection: 360 },
];

for (const c of CASES) {
  test(`${c.name}: removing attention heads equals zeroing them, in a smaller model`, async () => {
    const original = loadModel(c.file);
    const feeds = c.feeds();
    const shapes = Object.fromEntries(feeds.map((t) => [t.name, [...t.dims]]));
    const groups = headGroups(original, c.heads, shapes);
    assert.equal(groups.length, c.layers, 'one head group per attention layer');

    // Remove the first and the last head of every layer.
    const pruned = original.clone();
    const analysis = analyzeChannels(pruned, { inputShapes: shapes });
    const heads = analysis.groups.filter((g) => groups.some((h) => h.id === g.id));
    const removed = new Set(heads.flatMap((g) => [g.channels[0], g.channels[c.heads - 1]]));
    const rewritten = removeChannels(pruned, analysis, removed);
    // The QKV projections lose 2 of every `heads` columns, the output projections as many rows.
    const projections = rewritten.filter((t) => t.dimsBefore.includes(c.projection));
    assert.ok(projections.length >= c.layers, `${projections.length} projection weights rewritten`);
    const kept = (c.projection * (c.heads - 2)) / c.heads;
    for (const t of projections) {
      const changed = t.dimsBefore.map((d, axis) => [d, t.dimsAfter[axis]]).filter(([d, after]) => d !== after);
      assert.deepEqual(changed, [[c.projection, kept]], `${t.name}: [${t.dimsBefore}] -> [${t.dimsAfter}]`);
    }
    const zeroed = original.clone();
    zeroChannels(zeroed, analyzeChannels(zeroed, { inputShapes: shapes }), removed);

    const [outPruned, outZeroed, outOriginal] = [await runModel(pruned, feeds), await runModel(zeroed, feeds), await runModel(original, feeds)];
    outPruned.forEach((out, i) => {
      assert.deepEqual(out.dims, outOriginal[i].dims);
      const difference = maxAbsDifference(out, outZeroed[i]);
      assert.ok(difference <= TOLERANCE, `output ${i}: pruned vs zeroed differ by ${difference}`);
      // Removing heads changes the result: the check above compares something real.
      assert.ok(maxAbsDifference(out, outOriginal[i]) > 1e-4);
    });
  });
}
