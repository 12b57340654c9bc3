// Static int8 with a float prefix (src/methods/quantize/float-prefix.ts): the first N weighted
// layers and every node before the next one stay float32, activations included, so the model
// computes exactly the float prefix and quantizes only from the (N+1)-th layer's input on.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { tensorToNpy, writeNpy } from '../src/eval/npy.js';
import { tensorSamples } from '../src/eval/samples.js';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { floatPrefixByMacShare, floatPrefixNodes } from '../src/methods/quantize/float-prefix.js';
import { macsPerLayer } from '../src/methods/prune/macs.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { QuantizeCommandReport } from '../src/pipeline/quantize-report.js';
import { quantize } from '../src/pipeline/quantize.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runShrink } from './helpers/cli.js';
import { runModel } from './helpers/run-model.js';
import { floats } from './helpers/tensors.js';

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-float-prefix-'));
after(() => fs.rmSync(temp, { recursive: true, force: true }));

/** x [batch, channels, 12, 12] -> conv1 -> relu1 -> conv2 -> relu2 -> conv3 -> relu3 -> gap -> flatten -> fc -> y. */
function smallCnn(batch = 2, channels = 4, width = 8): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [batch, channels, 12, 12]);
  const w = (name: string, dims: number[], seed: number, scale: number) => b.tensor(floats(name, dims, seed, -scale, scale));
  const pads = [attr.ints('pads', [1, 1, 1, 1])];
  const r1 = b.node('Relu', [b.node('Conv', [x, w('W1', [width, channels, 3, 3], 41, 0.5), w('B1', [width], 42, 0.1)], pads, { name: 'conv1' })], [], { name: 'relu1' });
  const r2 = b.node('Relu', [b.node('Conv', [r1, w('W2', [width, width, 3, 3], 43, 0.3), w('B2', [width], 44, 0.1)], pads, { name: 'conv2' })], [], { name: 'relu2' });
  const r3 = b.node('Relu', [b.node('Conv', [r2, w('W3', [width, width, 3, 3], 45, 0.3), w('B3', [width], 46, 0.1)], pads, { name: 'conv3' })], [], { name: 'relu3' });
  const flat = b.node('Flatten', [b.node('GlobalAveragePool', [r3], [], { name: 'gap' })], [attr.int('axis', 1)], { name: 'flatten' });
  const [y] = b.node('Gemm', [flat, w('W4', [4, width], 47, 0.3), w('B4', [4], 48, 0.1)], [attr.int('transB', 1)], { name: 'fc', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 13 }]);
}

const calibration = tensorSamples(Array.from({ length: 4 }, (_, i) => ({ x: floats('x', [2, 4, 12, 12], 500 + i, 0, 1) })));
const input = floats('x', [2, 4, 12, 12], 777, 0, 1);
const ctx = { ort: nodeOrt, threads: 1 };

test('floatPrefixNodes: the first N layers and what lies before the next, everything past the last, errors', () => {
  const model = smallCnn();
  const names = (n: number) => floatPrefixNodes(model.graph, n).map((node) => node.name);
  assert.deepEqual(names(0), []);
  assert.deepEqual(names(1), ['conv1', 'relu1']);
  assert.deepEqual(names(2), ['conv1', 'relu1', 'conv2', 'relu2']);
  assert.deepEqual(names(4), ['conv1', 'relu1', 'conv2', 'relu2', 'conv3', 'relu3', 'gap', 'flatten', 'fc']);
  assert.deepEqual(names(9), names(4));
  assert.throws(() => floatPrefixNodes(model.graph, -1), /float prefix must be a whole number of layers >= 0, got -1/);
  assert.throws(() => floatPrefixNodes(model.graph, 1.5), /got 1.5/);
});

test('static int8 with a float prefix: the prefix computes in float32 (its output equals the float model), the rest is int8', async () => {
  const float = smallCnn();
  const { model, report } = await quantize(float, { method: 'static-int8', calibration, floatPrefix: 2 }, ctx);
  const decisions = new Map(report.nodes.list.map((n) => [n.node, n]));
  for (const name of ['conv1', 'conv2']) {
    assert.equal(decisions.get(name)?.quantized, false, name);
    assert.match(decisions.get(name)?.reason ?? '', /float prefix: the first 2 weighted layers/);
  }
  assert.equal(decisions.get('conv3')?.quantized, true);
  assert.equal(decisions.get('fc')?.quantized, true);
  // No Q/DQ reads the input or sits inside the prefix: the first QuantizeLinear reads relu2's output.
  const quantizers = model.graph.nodes.filter((n) => n.opType === 'QuantizeLinear');
  const prefixValues = new Set(['x', ...floatPrefixNodes(float.graph, 1).flatMap((n) => n.outputs)]);
  assert.ok(quantizers.length > 0);
  assert.ok(quantizers.every((q) => !prefixValues.has(q.inputs[0])), quantizers.map((q) => q.inputs[0]).join(' '));
  const relu2 = float.graph.nodes.find((n) => n.name === 'relu2')?.outputs[0] as string;
  assert.ok(quantizers.some((q) => q.inputs[0] === relu2), `relu2's output '${relu2}' is quantized for conv3`);
  // The prefix's output in the quantized model equals the float model's, bit for bit.
  const exposed = (m: Model) => {
    const copy = m.clone();
    copy.graph.addOutput(relu2, { elemType: DataType.FLOAT, shape: [2, 8, 12, 12] });
    return copy;
  };
  const [, floatPrefix] = await runModel(exposed(float), [input]);
  const [, int8Prefix] = await runModel(exposed(model), [input]);
  assert.deepEqual(int8Prefix.data(), floatPrefix.data());
  // Without the prefix every conv is int8, and the prefix's output differs from float.
  const plain = (await quantize(float, { method: 'static-int8', calibration, floatPrefix: 0 }, ctx)).model;
  assert.equal(plain.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').some((q) => q.inputs[0] === 'x'), true);
  assert.ok(writeModel(model).length > writeModel(plain).length, 'two conv weights stay float32');
});

test('floatPrefixByMacShare: the longest prefix within the share of multiply-accumulates, never the last layer', () => {
  const model = smallCnn(1);
  const macs = macsPerLayer(model, { x: [1, 4, 12, 12] });
  // Per image: conv1 8 x 144 outputs x 36 products, conv2 and conv3 8 x 144 x 72, fc 4 x 8.
  const conv1 = 8 * 144 * 36;
  const conv = 8 * 144 * 72;
  const total = conv1 + 2 * conv + 32;
  assert.deepEqual(floatPrefixByMacShare(model.graph, macs, 0.12), { layers: 0, macShare: 0 });
  assert.deepEqual(floatPrefixByMacShare(model.graph, macs, 0.2), { layers: 1, macShare: conv1 / total });
  assert.deepEqual(floatPrefixByMacShare(model.graph, macs, 0.6), { layers: 2, macShare: (conv1 + conv) / total });
  assert.deepEqual(floatPrefixByMacShare(model.graph, macs, 1), { layers: 3, macShare: (conv1 + 2 * conv) / total });
  assert.deepEqual(floatPrefixByMacShare(model.graph, new Map(), 0.5), { layers: 0, macShare: 0 });
  // A layer of unknown size ends the prefix: its cost cannot be bounded.
  const conv2 = model.graph.nodes.find((n) => n.name === 'conv2');
  const unknown = new Map([...macs].map(([node, m]) => [node, node === conv2 ? undefined : m]));
  assert.deepEqual(floatPrefixByMacShare(model.graph, unknown, 1), { layers: 1, macShare: conv1 / (total - conv) });
});

test("the quantize step's default float prefix: the first layers within 12% of the work stay float32", async () => {
  // 3 input channels, 16 wide: conv1 is 16 x 144 x 27 of 725,824 multiply-accumulates (8.6%), conv2 would make it 54%.
  const float = smallCnn(2, 3, 16);
  const calib = tensorSamples(Array.from({ length: 4 }, (_, i) => ({ x: floats('x', [2, 3, 12, 12], 800 + i, 0, 1) })));
  const { report } = await quantize(float, { method: 'static-int8', calibration: calib }, ctx);
  const kept = report.nodes.list.filter((n) => !n.quantized && /float prefix/.test(n.reason ?? ''));
  assert.deepEqual(kept.map((n) => n.node), ['conv1']);
  assert.match(kept[0].reason ?? '', /the first 1 weighted layer \(8\.6% of the multiply-accumulates\).*--float-prefix auto, the default/);
  assert.equal(report.nodes.list.find((n) => n.node === 'conv2')?.quantized, true);
  // 0 turns it off; a number is taken as given.
  const off = await quantize(float, { method: 'static-int8', calibration: calib, floatPrefix: 0 }, ctx);
  assert.equal(off.report.nodes.list.find((n) => n.node === 'conv1')?.quantized, true);
});

test('float prefix from the recipe key and the CLI flag; a bad value is one line, exit 2', async () => {
  const recipe = parseRecipe('steps:\n  - quantize: { method: static-int8, float_prefix: 3 }\n', 'r.yaml');
  const step = recipe.steps[0] as { kind: string; options: { floatPrefix?: number } };
  assert.equal(step.options.floatPrefix, 3);
  const auto = parseRecipe('steps:\n  - quantize: { method: static-int8, float_prefix: auto }\n', 'r.yaml').steps[0] as { options: { floatPrefix?: number | 'auto' } };
  assert.equal(auto.options.floatPrefix, 'auto');
  assert.throws(() => parseRecipe('steps:\n  - quantize: { method: dynamic-int8, float_prefix: 3 }\n', 'r.yaml'), /float_prefix/);
  const file = path.join(temp, 'cnn.onnx');
  fs.writeFileSync(file, writeModel(smallCnn(1)));
  const calib = path.join(temp, 'calib.npy');
  fs.writeFileSync(calib, writeNpy(tensorToNpy(floats('x', [8, 4, 12, 12], 600, 0, 1))));
  const out = path.join(temp, 'out.onnx');
  const ok = await runShrink(['quantize', file, '-o', out, '--method', 'static-int8', '--calib', calib, '--float-prefix', '1', '--json', '--no-bench']);
  assert.equal(ok.code, 0, ok.stderr);
  const report = JSON.parse(ok.stdout) as QuantizeCommandReport;
  assert.deepEqual(report.nodes.list.filter((n) => !n.quantized && /float prefix/.test(n.reason ?? '')).map((n) => n.node), ['conv1']);
  assert.ok(fs.existsSync(out));
  // By default the text report says what the prefix is: here conv1 alone is 20% of the work, so none.
  const byDefault = await runShrink(['quantize', file, '-o', path.join(temp, 'default.onnx'), '--method', 'static-int8', '--calib', calib, '--no-bench']);
  assert.equal(byDefault.code, 0, byDefault.stderr);
  assert.match(byDefault.stdout, /\nprefix +none: the first weighted layer alone holds more than 12% of the multiply-accumulates/);
  const bad = await runShrink(['quantize', file, '-o', path.join(temp, 'bad.onnx'), '--method', 'static-int8', '--calib', calib, '--float-prefix', 'two']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--float-prefix must be 'auto' or a whole number >= 0, got 'two'/);
  const wrongMethod = await runShrink(['quantize', file, '-o', path.join(temp, 'wrong.onnx'), '--method', 'dynamic-int8', '--float-prefix', '1']);
  assert.equal(wrongMethod.code, 2);
  assert.match(wrongMethod.stderr, /--float-prefix/);
  assert.equal(fs.existsSync(path.join(temp, 'bad.onnx')), false);
});
