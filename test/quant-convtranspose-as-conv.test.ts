// A ConvTranspose whose kernel equals its stride is a 1x1 Conv + DepthToSpace (CRD)
// (src/methods/quantize/convtranspose-as-conv.ts): the same float outputs, and static int8 then runs
// it as QLinearConv in onnxruntime instead of a float ConvTranspose behind a DequantizeLinear.
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
import { convTransposesAsConv } from '../src/methods/quantize/convtranspose-as-conv.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { floats } from './helpers/tensors.js';
import { maxAbsDiff, runModel } from './helpers/run-model.js';

const work = mkdtempSync(join(tmpdir(), 'shrink-convtranspose-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** x [2, 6, 5, 7] -> Conv 3x3 (8) -> Relu -> ConvTranspose (kernel = stride = k, `outputs` channels) -> Sigmoid -> y. */
function upsampler(k: number, outputs: number, bias: boolean, extra: Parameters<typeof attr.ints>[] = []): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 6, 5, 7]);
  const w = (name: string, dims: number[], seed: number, scale: number) => b.tensor(floats(name, dims, seed, -scale, scale));
  const c = b.node('Conv', [x, w('W1', [8, 6, 3, 3], 61, 0.4), w('B1', [8], 62, 0.1)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv' });
  const r = b.node('Relu', [c], [], { name: 'relu' });
  const inputs = [r, w('WT', [8, outputs, k, k], 63, 0.5), ...(bias ? [w('BT', [outputs], 64, 0.2)] : [])];
  const up = b.node('ConvTranspose', inputs, [attr.ints('kernel_shape', [k, k]), attr.ints('strides', [k, k]), ...extra.map(([n, v]) => attr.ints(n, v))], { name: 'up' });
  const [y] = b.node('Sigmoid', [up], [], { name: 'sigmoid', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 13 }]);
}

const input = floats('x', [2, 6, 5, 7], 901, -1, 1);

for (const [k, outputs, bias] of [
  [2, 4, true],
  [2, 1, false],
  [3, 5, true],
] as const) {
  test(`kernel = stride = ${k}, ${outputs} output channels${bias ? ', bias' : ''}: Conv 1x1 + DepthToSpace gives the same float outputs (max diff <= 1e-5)`, async () => {
    const model = upsampler(k, outputs, bias);
    assert.deepEqual(convTransposesAsConv(model, model.graph), ['up']);
    const ops = model.graph.nodes.map((n) => n.opType);
    assert.ok(!ops.includes('ConvTranspose') && ops.includes('DepthToSpace'), ops.join(' '));
    assert.equal(model.graph.initializer('WT'), undefined, 'the old weight is dropped');
    const [a] = await runModel(model, [input]);
    const [e] = await runModel(upsampler(k, outputs, bias), [input]);
    assert.deepEqual(a.dims, e.dims);
    const worst = maxAbsDiff(a.data() as Float32Array, e.data() as Float32Array);
    assert.ok(worst <= 1e-5, `max diff ${worst}`);
  });
}

test('a Relu after the ConvTranspose moves before the DepthToSpace; outputs unchanged', async () => {
  const build = () => {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, [2, 6, 5, 7]);
    const up = b.node(
      'ConvTranspose',
      [x, b.tensor(floats('WT', [6, 3, 2, 2], 71, -1, 1)), b.tensor(floats('BT', [3], 72, -0.5, 0.5))],
      [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])],
      { name: 'up' },
    );
    const [y] = b.node('Relu', [up], [], { name: 'relu', outputs: ['y'] });
    b.output(y, DataType.FLOAT);
    return buildModel(b.graph, [{ domain: '', version: 13 }]);
  };
  const model = build();
  convTransposesAsConv(model, model.graph);
  assert.deepEqual(
    model.graph.nodes.map((n) => n.opType),
    ['Conv', 'Relu', 'DepthToSpace'],
  );
  const [a] = await runModel(model, [input]);
  const [e] = await runModel(build(), [input]);
  const got = a.data() as Float32Array;
  const want = e.data() as Float32Array;
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  assert.ok(worst <= 1e-5, `max diff ${worst}`);
});

for (const [k1, k2] of [
  [2, 2],
  [2, 3],
] as const) {
  test(`two upsamplers in a row (k ${k1} then ${k2}, a Relu between): one Conv each, one DepthToSpace of block ${k1 * k2}, same float outputs`, async () => {
    const build = () => {
      const b = new GraphBuilder();
      const x = b.input('x', DataType.FLOAT, [2, 6, 5, 7]);
      const w = (name: string, dims: number[], seed: number) => b.tensor(floats(name, dims, seed, -0.7, 0.7));
      const up1 = b.node('ConvTranspose', [x, w('W1', [6, 5, k1, k1], 81), w('B1', [5], 82)], [attr.ints('strides', [k1, k1])], { name: 'up1' });
      const r = b.node('Relu', [up1], [], { name: 'relu' });
      const up2 = b.node('ConvTranspose', [r, w('W2', [5, 3, k2, k2], 83), w('B2', [3], 84)], [attr.ints('strides', [k2, k2])], { name: 'up2' });
      const [y] = b.node('Sigmoid', [up2], [], { name: 'sigmoid', outputs: ['y'] });
      b.output(y, DataType.FLOAT);
      return buildModel(b.graph, [{ domain: '', version: 13 }]);
    };
    const model = build();
    assert.deepEqual(convTransposesAsConv(model, model.graph), ['up1', 'up2']);
    assert.deepEqual(
      model.graph.nodes.map((n) => n.opType),
      ['Conv', 'Relu', 'Conv', 'DepthToSpace', 'Sigmoid'],
    );
    assert.equal(model.graph.nodes[3].attrInt('blocksize', 0), k1 * k2);
    const [a] = await runModel(model, [input]);
    const [e] = await runModel(build(), [input]);
    assert.deepEqual(a.dims, e.dims);
    const worst = maxAbsDiff(a.data() as Float32Array, e.data() as Float32Array);
    assert.ok(worst <= 1e-5, `max diff ${worst}`);
  });
}

test('pads, output_padding or a kernel other than the stride: left as ConvTranspose', () => {
  for (const extra of [[['pads', [1, 1, 1, 1]]], [['output_padding', [1, 1]]], [['dilations', [2, 2]]]] as Parameters<typeof attr.ints>[][]) {
    const model = upsampler(2, 4, true, extra);
    assert.deepEqual(convTransposesAsConv(model, model.graph), [], JSON.stringify(extra));
  }
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 4, 5, 5]);
  const [y] = b.node('ConvTranspose', [x, b.tensor(floats('W', [4, 2, 3, 3], 7, -1, 1))], [attr.ints('strides', [2, 2])], { name: 'overlap', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  const model = buildModel(b.graph, [{ domain: '', version: 13 }]);
  assert.deepEqual(convTransposesAsConv(model, model.graph), []);
});

test('an excluded ConvTranspose stays a float ConvTranspose', async () => {
  const model = upsampler(2, 4, true);
  const calibration = tensorSamples(Array.from({ length: 2 }, (_, i) => ({ x: floats('x', [2, 6, 5, 7], 310 + i, -1, 1) })));
  const report = await quantizeStaticInt8(model, { calibration, exclude: (node) => node.opType === 'ConvTranspose' }, { ort: nodeOrt });
  assert.equal(report.stats.convTransposesAsConv, undefined);
  assert.ok(model.graph.nodes.some((n) => n.opType === 'ConvTranspose' && n.name === 'up'));
});

test("static int8 runs the rewritten upsampler as QLinearConv at 'all' (no ConvTranspose left)", async () => {
  const model = upsampler(2, 4, true);
  const calibration = tensorSamples(
    Array.from({ length: 4 }, (_, i) => ({
      x: floats('x', [2, 6, 5, 7], 300 + i, -1, 1),
    })),
  );
  const report = await quantizeStaticInt8(model, { calibration }, { ort: nodeOrt });
  assert.equal(report.stats.convTransposesAsConv, 1);
  const file = join(work, 'int8.onnx');
  const [fused] = await runModel(model, [input], {
    threads: 1,
    graphOptimization: 'all',
    optimizedModelFilePath: file,
  });
  const ops = loadModel(file).graph.nodes.map((n) => n.opType);
  assert.equal(ops.filter((op) => op === 'QLinearConv').length, 2, ops.join(' '));
  assert.ok(!ops.includes('ConvTranspose'), ops.join(' '));
  const [reference] = await runModel(upsampler(2, 4, true), [input]);
  const f = fused.data() as Float32Array;
  const e = reference.data() as Float32Array;
  let worst = 0;
  for (let i = 0; i < f.length; i++) worst = Math.max(worst, Math.abs(f[i] - e[i]));
  assert.ok(worst < 0.03, `int8 vs float after the sigmoid: ${worst}`);
});
