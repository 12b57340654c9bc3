// Static int8 keeps a 1-channel first Conv and its MaxPool float (src/methods/quantize/float-stem.ts):
// Conv -> Relu -> MaxPool is reordered to Conv -> MaxPool -> Relu (exact), the next Conv's input
// is quantized after that Relu, and onnxruntime then runs the stem as float Conv + MaxPool and the
// rest as QLinearConv, with no uint8 MaxPool in NCHW.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { tensorSamples } from '../src/eval/samples.js';
import { floatStems } from '../src/methods/quantize/float-stem.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { floats } from './helpers/tensors.js';
import { runModel } from './helpers/run-model.js';

const work = mkdtempSync(join(tmpdir(), 'shrink-float-stem-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** x [2, 1, 12, 12] -> Conv 3x3 (8) -> Relu -> MaxPool 2 -> Conv 3x3 (8) -> Relu -> MaxPool 2 -> Flatten -> Gemm (4) -> y. */
function smallCnn(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 1, 12, 12]);
  const w = (name: string, dims: number[], seed: number, scale: number) => b.tensor(floats(name, dims, seed, -scale, scale));
  const pool = [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])];
  const c1 = b.node('Conv', [x, w('W1', [8, 1, 3, 3], 41, 0.6), w('B1', [8], 42, 0.1)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv1' });
  const p1 = b.node('MaxPool', [b.node('Relu', [c1], [], { name: 'relu1' })], pool, { name: 'pool1' });
  const c2 = b.node('Conv', [p1, w('W2', [8, 8, 3, 3], 43, 0.3), w('B2', [8], 44, 0.1)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv2' });
  const p2 = b.node('MaxPool', [b.node('Relu', [c2], [], { name: 'relu2' })], pool, { name: 'pool2' });
  const flat = b.node('Flatten', [p2], [attr.int('axis', 1)], {
    name: 'flatten',
  });
  const [y] = b.node('Gemm', [flat, w('W3', [4, 72], 45, 0.2), w('B3', [4], 46, 0.1)], [attr.int('transB', 1)], { name: 'fc', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 13 }]);
}

const input = floats('x', [2, 1, 12, 12], 777, 0, 1);
const calibration = tensorSamples(
  Array.from({ length: 4 }, (_, i) => ({
    x: floats('x', [2, 1, 12, 12], 500 + i, 0, 1),
  })),
);

test('the stem reorder (Relu after the MaxPool) leaves every float output bit identical', async () => {
  const model = smallCnn();
  const kept = floatStems(model.graph);
  assert.deepEqual(
    kept.map((n) => n.name),
    ['conv1', 'pool1'],
  );
  const order = model.graph.nodes.map((n) => n.name);
  assert.ok(order.indexOf('pool1') < order.indexOf('relu1'), order.join(' '));
  const [a] = await runModel(model, [input]);
  const [b] = await runModel(smallCnn(), [input]);
  assert.deepEqual(Array.from(a.data() as Float32Array), Array.from(b.data() as Float32Array));
});

test("default static int8 keeps conv1 and pool1 float; onnxruntime runs one QLinearConv and no uint8 NCHW MaxPool at 'all'", async () => {
  const model = smallCnn();
  const report = await quantizeStaticInt8(model, { calibration }, { ort: nodeOrt });
  assert.equal(report.stats.floatStemNodes, 2);
  assert.equal(report.stats.inputChannelsPadded, 0);
  const conv1 = model.graph.nodes.find((n) => n.name === 'conv1');
  assert.equal(model.graph.producer(conv1?.inputs[1] ?? '')?.opType, undefined, 'conv1 reads its float weight directly');
  const decision = report.details?.nodes.find((d) => d.node === 'conv1');
  assert.match(decision?.reason ?? '', /float stem/);
  const file = join(work, 'stem.onnx');
  const [fused] = await runModel(model, [input], {
    threads: 1,
    graphOptimization: 'all',
    optimizedModelFilePath: file,
  });
  const optimized = loadModel(file).graph;
  const ops = optimized.nodes.map((n) => n.opType);
  assert.equal(ops.filter((op) => op === 'QLinearConv').length, 1, ops.join(' '));
  // Had the QuantizeLinear moved above pool1 (QDQ propagation), pool1 would read its uint8 codes.
  const pools = optimized.nodes.filter((n) => n.opType === 'MaxPool');
  assert.equal(pools.length, 1, ops.join(' '));
  assert.notEqual(optimized.producer(pools[0].inputs[0])?.opType, 'QuantizeLinear', `pool1 in float: ${ops.join(' ')}`);
  assert.equal(ops.filter((op) => op === 'NhwcMaxPool').length, 1, ops.join(' '));
  // Close to float (8-bit activations after the stem).
  const [reference] = await runModel(smallCnn(), [input]);
  const f = fused.data() as Float32Array;
  const e = reference.data() as Float32Array;
  let worst = 0;
  let largest = 0;
  for (let i = 0; i < f.length; i++) {
    worst = Math.max(worst, Math.abs(f[i] - e[i]));
    largest = Math.max(largest, Math.abs(e[i]));
  }
  assert.ok(worst < 0.05 * largest, `int8 vs float: ${worst} (largest output ${largest})`);
});

test('floatStem: false quantizes the stem as before (padded to 4 channels, two QLinearConv)', async () => {
  const model = smallCnn();
  const report = await quantizeStaticInt8(model, { calibration, floatStem: false }, { ort: nodeOrt });
  assert.equal(report.stats.floatStemNodes, undefined);
  assert.equal(report.stats.inputChannelsPadded, 1);
  const file = join(work, 'no-stem.onnx');
  await runModel(model, [input], {
    threads: 1,
    graphOptimization: 'all',
    optimizedModelFilePath: file,
  });
  const ops = loadModel(file).graph.nodes.map((n) => n.opType);
  assert.equal(ops.filter((op) => op === 'QLinearConv').length, 2, ops.join(' '));
});
