// Static int8 pads a graph-input Conv's 1 or 3 input channels to 4 (src/methods/quantize/pad-input-channels.ts)
// so that onnxruntime's QLinearConv takes its fast symmetric kernel. The padding must not change a
// single output value, and onnxruntime must still fuse the padded Conv into QLinearConv.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { tensorSamples } from '../src/eval/samples.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { floats } from './helpers/tensors.js';
import { runModel } from './helpers/run-model.js';

const work = mkdtempSync(join(tmpdir(), 'shrink-pad-channels-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** x [1, C, 12, 12] -> Conv 3x3 (16 outputs) -> Relu -> Conv 3x3 (16) -> y; the second Conv reads 16 channels and is not padded. */
function twoConvs(channels: number, opset: number): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, channels, 12, 12]);
  const w = (name: string, dims: number[], seed: number, scale: number) => b.tensor(floats(name, dims, seed, -scale, scale));
  const c = b.node('Conv', [x, w('W1', [16, channels, 3, 3], 31, 0.5), w('B1', [16], 32, 0.1)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv1' });
  const r = b.node('Relu', [c], [], { name: 'relu1' });
  const [y] = b.node('Conv', [r, w('W2', [16, 16, 3, 3], 33, 0.2), w('B2', [16], 34, 0.1)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv2', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: opset }]);
}

for (const [channels, opset] of [
  [1, 13],
  [3, 13],
  [3, 10],
] as const) {
  test(`${channels}-channel input (opset ${opset}): padded to 4 channels of zeros, outputs identical to the unpadded int8 model, fused into QLinearConv at 'all'`, async () => {
    const calibration = tensorSamples(Array.from({ length: 6 }, (_, i) => ({ x: floats('x', [1, channels, 12, 12], 400 + i, -1, 1) })));
    const input = floats('x', [1, channels, 12, 12], 999, -1, 1);
    const padded = twoConvs(channels, opset);
    const plain = twoConvs(channels, opset);
    // A 1-channel first Conv stays float by default (float-stem.ts); here its padding is what is tested.
    const report = await quantizeStaticInt8(padded, { calibration, perChannel: opset >= 13, floatStem: false }, { ort: nodeOrt });
    const reportPlain = await quantizeStaticInt8(plain, { calibration, perChannel: opset >= 13, padInputChannels: false, floatStem: false }, { ort: nodeOrt });
    assert.equal(report.stats.inputChannelsPadded, 1);
    assert.equal(reportPlain.stats.inputChannelsPadded, undefined);
    const conv1 = padded.graph.nodes.find((n) => n.name === 'conv1');
    assert.ok(conv1 !== undefined);
    // The Conv now reads a Pad's output (quantized) and a 4-channel weight.
    const weightDq = padded.graph.producer(conv1.inputs[1]);
    assert.equal(weightDq?.opType, 'DequantizeLinear');
    assert.deepEqual(constantValue(padded.graph, weightDq.inputs[0])?.dims, [16, 4, 3, 3]);
    assert.ok(padded.graph.nodes.some((n) => n.opType === 'Pad' && n.inputs[0] === 'x'));
    const [a] = await runModel(padded, [input]);
    const [b] = await runModel(plain, [input]);
    assert.deepEqual(Array.from(a.data() as Float32Array), Array.from(b.data() as Float32Array));
    const file = join(work, `c${channels}-o${opset}.onnx`);
    const [fused] = await runModel(padded, [input], { threads: 1, graphOptimization: 'all', optimizedModelFilePath: file });
    const ops = loadModel(file).graph.nodes.map((n) => n.opType);
    // conv1 (padded) fuses; conv2 writes the float graph output, so it stays DequantizeLinear -> Conv.
    assert.equal(ops.filter((op) => op === 'QLinearConv').length, 1, ops.join(' '));
    assert.ok(ops.indexOf('Pad') < ops.indexOf('QLinearConv'), ops.join(' '));
    const f = fused.data() as Float32Array;
    const e = b.data() as Float32Array;
    let worst = 0;
    for (let i = 0; i < f.length; i++) worst = Math.max(worst, Math.abs(f[i] - e[i]));
    // The fused kernels requantize in float; one output code at most.
    assert.ok(worst < 0.05, `fused vs QDQ at basic: ${worst}`);
  });
}
