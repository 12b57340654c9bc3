// Static int8's `rangeSamples`: activation ranges from the first N calibration samples while bias
// correction measures on its own count (an experiment of issue 15 on PP-OCRv4 det; NOTES.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { tensorSamples } from '../src/eval/samples.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { nodeOrt } from '../src/node/ort-node.js';

test('rangeSamples: ranges from the first samples only (a later, larger sample does not widen them); bias correction still on all', async () => {
  // Sample k holds values up to k + 1: minmax over 2 samples gives x the range [0, 2], over 8 [0, 8].
  const samples = tensorSamples(Array.from({ length: 8 }, (_, k) => ({ x: Tensor.fromArray('x', DataType.FLOAT, [1, 4, 2, 2], Float32Array.from({ length: 16 }, (_, i) => ((k + 1) * i) / 15)) })));
  const scales: number[] = [];
  for (const rangeSamples of [undefined, 2]) {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, [1, 4, 2, 2]);
    const w = b.tensor(Tensor.fromArray('w', DataType.FLOAT, [3, 4, 1, 1], Float32Array.from({ length: 12 }, (_, i) => 0.1 * (i % 5) - 0.2)));
    const bias = b.tensor(Tensor.fromArray('b', DataType.FLOAT, [3], new Float32Array(3)));
    const [y] = b.node('Conv', [x, w, bias], [], { name: 'conv', outputs: ['y'] });
    b.output(y, DataType.FLOAT);
    const model = buildModel(b.graph, [{ domain: '', version: 13 }]);
    const result = await quantizeStaticInt8(model, { calibration: samples, rangeSamples, biasCorrection: true, padInputChannels: false, floatStem: false }, { ort: nodeOrt });
    assert.equal(result.stats.calibrationSamples, rangeSamples ?? 8);
    assert.equal(result.stats.biasCorrectionSamples, 8);
    const q = model.graph.nodes.find((n) => n.opType === 'QuantizeLinear' && n.inputs[0] === 'x');
    scales.push((constantValue(model.graph, q?.inputs[1] ?? '')?.data() as Float32Array)[0]);
  }
  assert.ok(Math.abs(scales[0] / scales[1] - 4) < 0.01, `x's scale over 8 samples / over 2: ${scales[0] / scales[1]}`);
});
