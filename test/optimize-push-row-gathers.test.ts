// push-row-gathers: a Gather of rows moves above the per-row ops that make them. On spam-bert (the
// pooler reads token 0) the last layer then runs for one token: the logits stay those of the
// original in onnxruntime, exported ops and shrink's fused MultiHeadAttention alike. Small graphs
// built here check where the Gather must stop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { pushRowGathersPass } from '../src/optimize/push-row-gathers.js';
import { inferShapes } from '../src/optimize/shape-inference/index.js';
import { paddedTokenFeeds } from './helpers/bert-token-feeds.js';

const BERT = 'models/spam-bert/onnx/model.onnx';
type Feeds = Record<string, InstanceType<typeof nodeOrt.Tensor>>;

/** Three e-mails' worth of pseudo-random tokens, rows padded from the end by 0, 17, 34 tokens. */
const bertFeeds = () => paddedTokenFeeds(3, 64, 17, 11);

async function outputOf(model: Model, feeds: Feeds): Promise<Float32Array> {
  const session = await nodeOrt.InferenceSession.create(writeModel(model), { intraOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  try {
    const result = await session.run(feeds);
    return (result[session.outputNames[0]].data as Float32Array).slice();
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

test('spam-bert as exported: the pooler Gather climbs through layer 2 (FFN, LayerNorms, residuals, attention output) and the logits stay the same', async () => {
  const feeds = bertFeeds();
  const original = await outputOf(loadModel(BERT), feeds);
  const model = loadModel(BERT);
  const report = pushRowGathersPass.run(model, {}, {}) as { stats: Record<string, number> };
  assert.equal(report.stats.gathersMoved, 15);
  const shapes = inferShapes(model).main;
  // Layer 2's feed-forward block now runs on one row per e-mail; layer 1's still on every token.
  assert.deepEqual(shapes.get('/layers.1/intermediate/MatMul_output_0')?.shape, ['batch_size', 1, 256]);
  assert.deepEqual(shapes.get('/layers.0/intermediate/MatMul_output_0')?.shape, ['batch_size', 'sequence_length', 256]);
  assert.equal(model.graph.nodes.filter((n) => n.opType === 'Squeeze').length, 1, 'the scalar Gather keeps its output through a Squeeze');
  assert.ok(maxAbsDiff(original, await outputOf(model, feeds)) <= 1e-5);
});

test('spam-bert after shrink optimize: the Gather passes the fused MultiHeadAttention on its query side only', async () => {
  const feeds = bertFeeds();
  const original = await outputOf(loadModel(BERT), feeds);
  const model = loadModel(BERT);
  const reports = await optimizeModel(model, { level: 'full' });
  const moved = reports.find((r) => r.pass === 'push-row-gathers');
  // Fewer moves than as exported: the fused ops (Gelu, the attention) are single nodes.
  assert.equal(moved?.stats.gathersMoved, 12);
  const attention = model.graph.nodes.filter((n) => n.opType === 'MultiHeadAttention');
  assert.equal(attention.length, 2);
  const shapes = inferShapes(model).main;
  assert.equal(shapes.get(attention[1].inputs[0])?.shape?.[1], 1, "the last layer's queries: one row");
  assert.equal(shapes.get(attention[1].inputs[1])?.shape?.[1], 'sequence_length', 'its keys: every token');
  assert.equal(shapes.get(attention[0].inputs[0])?.shape?.[1], 'sequence_length');
  assert.ok(maxAbsDiff(original, await outputOf(model, feeds)) <= 1e-5);
});

/** x [2, 5, 4] -> LayerNorm -> Add(c [1, 5, 4]) -> Relu -> Gather(axis 1, rows) [-> y]; `alsoRead` adds a second output reading the Relu. */
function smallModel(options: { rows: number[] | number; alsoRead?: boolean; reshapeFirst?: boolean }): Model {
  const b = new GraphBuilder(new Graph('rows'));
  const x = b.input('x', DataType.FLOAT, [2, 5, 4]);
  const scale = b.initializer('scale', DataType.FLOAT, [4], new Float32Array([1, 2, 0.5, 1]));
  const c = b.initializer('c', DataType.FLOAT, [1, 5, 4], Float32Array.from({ length: 20 }, (_, i) => i / 7));
  let h = b.node('LayerNormalization', [x, scale], [attr.int('axis', -1)], { name: 'norm' });
  if (options.reshapeFirst === true) {
    const shape = b.initializer('shape', DataType.INT64, [3], BigInt64Array.from([2n, 5n, 4n]));
    h = b.node('Reshape', [h, shape], [], { name: 'reshape' });
  }
  const added = b.node('Add', [h, c], [], { name: 'shift' });
  const relu = b.node('Relu', [added], [], { name: 'relu' });
  const rows = Array.isArray(options.rows) ? b.initializer('rows', DataType.INT64, [options.rows.length], BigInt64Array.from(options.rows, BigInt)) : b.initializer('rows', DataType.INT64, [], BigInt64Array.from([BigInt(options.rows)]));
  b.node('Gather', [relu, rows], [attr.int('axis', 1)], { name: 'pick', outputs: ['y'] });
  b.output('y', DataType.FLOAT);
  if (options.alsoRead === true) {
    b.node('Identity', [relu], [], { name: 'whole', outputs: ['all'] });
    b.output('all', DataType.FLOAT);
  }
  return buildModel(b.graph);
}

const smallFeeds = (): Feeds => ({ x: new nodeOrt.Tensor('float32', Float32Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.3) * 3), [2, 5, 4]) });

test('a Gather of rows [3, 1] climbs to the input, gathering the [1, 5, 4] constant it is added to; values unchanged', async () => {
  const model = smallModel({ rows: [3, 1] });
  const before = await outputOf(model, smallFeeds());
  const report = pushRowGathersPass.run(model, {}, {}) as { stats: Record<string, number> };
  assert.equal(report.stats.gathersMoved, 3);
  const norm = model.graph.nodes.find((n) => n.name === 'norm');
  assert.equal(model.graph.producer(norm?.inputs[0] ?? '')?.opType, 'Gather', 'the LayerNorm reads the gathered input');
  const shift = model.graph.nodes.find((n) => n.name === 'shift');
  assert.equal(model.graph.producer(shift?.inputs[1] ?? '')?.opType, 'Gather', 'the broadcast constant is gathered too');
  assert.ok(maxAbsDiff(before, await outputOf(model, smallFeeds())) <= 1e-6);
});

test('a scalar-index Gather becomes rows + Squeeze and gives the same [2, 4] output', async () => {
  const model = smallModel({ rows: 4 });
  const before = await outputOf(model, smallFeeds());
  pushRowGathersPass.run(model, {}, {});
  assert.equal(model.graph.producer('y')?.opType, 'Squeeze');
  const after = await outputOf(model, smallFeeds());
  assert.equal(after.length, 8);
  assert.ok(maxAbsDiff(before, after) <= 1e-6);
});

test('the Gather stays where the full value is read elsewhere, and stops at a Reshape', async () => {
  const shared = smallModel({ rows: [0], alsoRead: true });
  assert.equal((pushRowGathersPass.run(shared, {}, {}) as { stats: Record<string, number> }).stats.gathersMoved, 0);
  assert.equal(shared.graph.producer('y')?.opType, 'Gather');
  const reshaped = smallModel({ rows: [2], reshapeFirst: true });
  const before = await outputOf(reshaped, smallFeeds());
  assert.equal((pushRowGathersPass.run(reshaped, {}, {}) as { stats: Record<string, number> }).stats.gathersMoved, 2);
  const reshape = reshaped.graph.nodes.find((n) => n.name === 'reshape');
  assert.equal(reshaped.graph.consumers(reshape?.outputs[0] ?? '')[0]?.opType, 'Gather', 'the rows are taken right after the Reshape');
  assert.ok(maxAbsDiff(before, await outputOf(reshaped, smallFeeds())) <= 1e-6);
});
