// Static int8: a Mul or Add by a scalar constant takes its output grid from its input's
// (src/methods/quantize/scalar-op-params.ts), so it adds no rounding: y = c * x keeps x's codes on
// a grid c times as wide, y = x + c shifts the zero point. Checked on the QuantizeLinear
// parameters written and on onnxruntime's fused output.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { tensorSamples } from '../src/eval/samples.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { floats } from './helpers/tensors.js';

/** x -> Conv -> Tanh -> Mul 0.37 -> Add -0.2 -> Conv -> y (an affine block after an activation, which the optimizer cannot fold into the Conv). */
function affineModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 4, 8, 8]);
  const [c1] = b.node('Conv', [x, b.tensor(floats('W1', [8, 4, 3, 3], 1, -0.5, 0.5)), b.tensor(floats('B1', [8], 2, -0.1, 0.1))], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv1', outputs: ['c1'] });
  const [t] = b.node('Tanh', [c1], [], { name: 'tanh', outputs: ['t'] });
  const [m] = b.node('Mul', [t, b.tensor(Tensor.fromArray('s', DataType.FLOAT, [1], Float32Array.of(0.37)))], [], { name: 'scale', outputs: ['m'] });
  const [a] = b.node('Add', [m, b.tensor(Tensor.fromArray('k', DataType.FLOAT, [1], Float32Array.of(-0.2)))], [], { name: 'shift', outputs: ['a'] });
  const [y] = b.node('Conv', [a, b.tensor(floats('W2', [4, 8, 1, 1], 3, -0.5, 0.5))], [], { name: 'conv2', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 13 }]);
}

const calibration = tensorSamples(Array.from({ length: 8 }, (_, i) => ({ x: floats('x', [1, 4, 8, 8], 40 + i) })));

/** Scale and zero point of the QuantizeLinear that quantizes `value`. */
function qParams(model: Model, value: string): { scale: number; zeroPoint: number } {
  const q = model.graph.nodes.find((n) => n.opType === 'QuantizeLinear' && n.inputs[0] === value);
  assert.ok(q !== undefined, `no QuantizeLinear on '${value}'`);
  const scale = constantValue(model.graph, q.inputs[1]);
  const zero = constantValue(model.graph, q.inputs[2]);
  assert.ok(scale !== undefined && zero !== undefined);
  return { scale: (scale.data() as Float32Array)[0], zeroPoint: Number((zero.data() as Uint8Array)[0]) };
}

test('static int8: Mul/Add by a scalar derive their output grids from their input (no rounding of their own)', async () => {
  const model = affineModel();
  const report = await quantizeStaticInt8(model, { calibration }, { ort: nodeOrt });
  assert.equal(report.stats.scalarOpsExact, 2);
  const [t, m, a] = ['t', 'm', 'a'].map((v) => qParams(model, v));
  assert.ok(Math.abs(m.scale - t.scale * 0.37) < 1e-7 * t.scale, JSON.stringify({ t, m }));
  assert.equal(m.zeroPoint, t.zeroPoint);
  assert.ok(Math.abs(a.scale - m.scale) < 1e-9, JSON.stringify({ m, a }));
  assert.equal(a.zeroPoint, m.zeroPoint - Math.round(-0.2 / m.scale));
  // Off: calibrated grids, as before.
  const off = await quantizeStaticInt8(affineModel(), { calibration, exactScalarOps: false }, { ort: nodeOrt });
  assert.equal(off.stats.scalarOpsExact, 0);
});
