// HardSigmoid / HardSwish in static int8 (src/methods/quantize/qdq-hardsigmoid.ts): rewritten as an
// Add whose QuantizeLinear range does the clip, so onnxruntime runs QLinearAdd (+ QLinearMul)
// instead of a float round trip. Checked against the spec's formula on the dequantized values, and
// in onnxruntime's optimized model at 'all'.
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
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { floats } from './helpers/tensors.js';
import { runModel } from './helpers/run-model.js';

const work = mkdtempSync(join(tmpdir(), 'shrink-hardsigmoid-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** x -> Conv 'c' -> c * HardSigmoid(c) (alpha 1/6) -> Conv -> y: PP-OCR's hard-swish block. */
function hardSwishBlock(opset: number): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 4, 8, 8]);
  const w = (name: string, dims: number[], seed: number, scale: number) => b.tensor(floats(name, dims, seed, -scale, scale));
  const [c] = b.node('Conv', [x, w('W1', [8, 4, 3, 3], 21, 1), w('B1', [8], 22, 1)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv1', outputs: ['c'] });
  const [h] = b.node('HardSigmoid', [c], [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)], { name: 'hsig', outputs: ['h'] });
  const m = b.node('Mul', [c, h], [], { name: 'swish' });
  const [y] = b.node('Conv', [m, w('W2', [4, 8, 1, 1], 23, 0.5), w('B2', [4], 24, 0.1)], [], { name: 'conv2', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: opset }]);
}

const calibration = tensorSamples(Array.from({ length: 8 }, (_, i) => ({ x: floats('x', [1, 4, 8, 8], 300 + i, -2, 2) })));
const input = floats('x', [1, 4, 8, 8], 999, -2, 2);

test('HardSigmoid between quantized values: its dequantized output is clip(x / 6 + 1/2, 0, 1) of the dequantized input, to within one code', async () => {
  const model = hardSwishBlock(13);
  const report = await quantizeStaticInt8(model, { calibration }, { ort: nodeOrt });
  assert.equal(report.stats.hardSigmoidsInt8, 1);
  assert.ok(!model.graph.nodes.some((n) => n.opType === 'HardSigmoid'));
  // 'h' is gone rather than naming x + 3 (per-layer comparison matches values by name).
  assert.ok(!model.graph.nodes.some((n) => n.outputs.includes('h')));
  // The conv output as the Mul reads it, and the (rewritten) HardSigmoid's value as the Mul reads it.
  const mul = model.graph.nodes.find((n) => n.opType === 'Mul' && n.name === 'swish');
  assert.ok(mul !== undefined);
  const [, cValue, hValue] = await runModel(model, [input], { threads: 1, extraOutputs: mul.inputs });
  const cs = cValue.data() as Float32Array;
  const hs = hValue.data() as Float32Array;
  let worst = 0;
  let clippedLow = 0;
  let clippedHigh = 0;
  for (let i = 0; i < cs.length; i++) {
    const expected = Math.max(0, Math.min(1, cs[i] / 6 + 0.5));
    worst = Math.max(worst, Math.abs(hs[i] - expected));
    if (expected === 0) clippedLow++;
    if (expected === 1) clippedHigh++;
    if (expected === 0 || expected === 1) assert.equal(hs[i], expected, `clipped value ${i}`);
  }
  // One code of [0, 1] (1/255) plus the rounding of the shift (exact here: 3 is code 255 of [0, 3]).
  assert.ok(worst <= 1 / 255 + 1e-6, `largest error ${worst}`);
  assert.ok(clippedLow > 0 && clippedHigh > 0, `inputs reach both clips (${clippedLow} low, ${clippedHigh} high)`);
});

test('onnxruntime at all: the hard-swish runs as QLinearAdd + QLinearMul, no float HardSigmoid/HardSwish; output as close as the float round trip', async () => {
  for (const opset of [13, 14]) {
    const original = hardSwishBlock(opset);
    const [reference] = await runModel(original, [input]);
    const results: Record<string, { ops: string[]; error: number }> = {};
    for (const int8HardSigmoid of [true, false]) {
      const model = hardSwishBlock(opset);
      await quantizeStaticInt8(model, { calibration, int8HardSigmoid }, { ort: nodeOrt });
      const file = join(work, `opset${opset}-${int8HardSigmoid}.onnx`);
      const [fused] = await runModel(model, [input], { threads: 1, graphOptimization: 'all', optimizedModelFilePath: file });
      const a = reference.data() as Float32Array;
      const b = fused.data() as Float32Array;
      let error = 0;
      for (let i = 0; i < a.length; i++) error = Math.max(error, Math.abs(a[i] - b[i]));
      results[String(int8HardSigmoid)] = { ops: loadModel(file).graph.nodes.map((n) => n.opType), error };
    }
    const fast = results.true;
    const slow = results.false;
    assert.ok(!fast.ops.includes('HardSigmoid') && !fast.ops.includes('HardSwish'), `opset ${opset}: ${fast.ops.join(' ')}`);
    assert.ok(fast.ops.includes('QLinearAdd') && fast.ops.includes('QLinearMul'), `opset ${opset}: ${fast.ops.join(' ')}`);
    assert.ok(slow.ops.includes('HardSigmoid') || slow.ops.includes('HardSwish'), `opset ${opset} float round trip: ${slow.ops.join(' ')}`);
    assert.ok(fast.error <= Math.max(0.05, 2 * slow.error), `opset ${opset}: max error ${fast.error} vs ${slow.error} with the float round trip`);
  }
});
