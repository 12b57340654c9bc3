// Gradient checks for Resize in nearest mode with whole-number scales (the block sum of dY), by
// finite differences: onnxruntime has no float64 Resize, so the cases run in float32 and are
// linear in x (a step of 1 gives exact differences). Scales from the `scales` input (opsets 13
// and 18: the backward graph needs 13; older models are upgraded first) and from `sizes`;
// symbolic spatial dims as PP-OCR det has them; and the mappings that are not whole blocks, which
// must fail with the reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { addGradients } from '../src/train/autodiff.js';
import { checkGradient } from './helpers/gradient-check.js';
import { runModel } from './helpers/run-model.js';

function floats(b: GraphBuilder, name: string, values: number[]): string {
  return b.initializer(name, DataType.FLOAT, [values.length], Float32Array.from(values));
}

/** Resize of 'x' by constant scales (opset 11+ input order: X, roi, scales). */
function resize(scales: number[], attributes: ReturnType<typeof attr.string>[] = []) {
  return (b: GraphBuilder) => b.node('Resize', ['x', floats(b, 'roi', []), floats(b, 'scales', scales)], attributes);
}

const PP_OCR = [attr.string('mode', 'nearest'), attr.string('coordinate_transformation_mode', 'asymmetric'), attr.string('nearest_mode', 'floor')];

test('Resize nearest, asymmetric + floor (PP-OCR det): scales 2x2, 4x4, 2x3, 1x2 and 3-D input', async () => {
  for (const opset of [13, 18]) {
    await checkGradient({ build: resize([1, 1, 2, 2], PP_OCR), inputs: { x: { dims: [2, 3, 3, 4] } }, wrt: ['x'], dtype: 'float', linear: true, opset });
  }
  for (const scales of [[1, 1, 4, 4], [1, 1, 2, 3], [1, 1, 1, 2]]) {
    await checkGradient({ build: resize(scales, PP_OCR), inputs: { x: { dims: [1, 2, 3, 2] } }, wrt: ['x'], dtype: 'float', linear: true, opset: 13 });
  }
  await checkGradient({ build: resize([1, 1, 3], PP_OCR), inputs: { x: { dims: [2, 2, 5] } }, wrt: ['x'], dtype: 'float', linear: true, opset: 13 });
});

test('Resize nearest, the defaults (half_pixel + round_prefer_floor) and pytorch_half_pixel + round_prefer_ceil also copy whole blocks', async () => {
  await checkGradient({ build: resize([1, 1, 2, 2], [attr.string('mode', 'nearest')]), inputs: { x: { dims: [1, 2, 3, 3] } }, wrt: ['x'], dtype: 'float', linear: true, opset: 13 });
  await checkGradient({ build: resize([1, 1, 3, 3], [attr.string('coordinate_transformation_mode', 'pytorch_half_pixel'), attr.string('nearest_mode', 'round_prefer_ceil')]), inputs: { x: { dims: [1, 1, 3, 2] } }, wrt: ['x'], dtype: 'float', linear: true, opset: 13 });
});

test('Resize from sizes (no scales)', async () => {
  await checkGradient({
    build: (b) => b.node('Resize', ['x', '', '', b.initializer('sizes', DataType.INT64, [4], BigInt64Array.of(1n, 2n, 6n, 4n))], PP_OCR),
    inputs: { x: { dims: [1, 2, 3, 2] } },
    wrt: ['x'],
    dtype: 'float',
    linear: true,
    opset: 13,
  });
});

test('Resize over symbolic spatial dims: the gradient is the exact block sum of dY', async () => {
  const b = new GraphBuilder(new Graph('symbolic'));
  b.input('x', DataType.FLOAT, [1, 2, 'H', 'W']);
  b.input('w', DataType.FLOAT, [1, 2, 'H2', 'W2']);
  const y = b.node('Resize', ['x', floats(b, 'roi', []), floats(b, 'scales', [1, 1, 2, 2])], PP_OCR);
  b.node('ReduceSum', [b.node('Mul', [y, 'w'])], [attr.int('keepdims', 0)], { outputs: ['loss'] });
  b.output('loss');
  const model = buildModel(b.graph, [{ domain: '', version: 13 }], 8);
  const { gradients } = addGradients(model, { loss: 'loss', wrt: ['x'] });
  model.graph.outputs = [];
  model.graph.addNode({ opType: 'Identity', inputs: [gradients.get('x') as string], outputs: ['dx'], name: 'dx' });
  model.graph.addOutput('dx');
  model.graph.changed();
  // dL/dy = w, so dx[c, i, j] = w[c, 2i, 2j] + w[c, 2i, 2j+1] + w[c, 2i+1, 2j] + w[c, 2i+1, 2j+1].
  const [H, W] = [3, 5];
  const w = Float32Array.from({ length: 2 * 4 * H * W }, (_, i) => (i % 7) - 3 + i / 64);
  const [dx] = await runModel(model, [Tensor.fromArray('x', DataType.FLOAT, [1, 2, H, W], new Float32Array(2 * H * W)), Tensor.fromArray('w', DataType.FLOAT, [1, 2, 2 * H, 2 * W], w)]);
  assert.deepEqual(dx.dims, [1, 2, H, W]);
  const got = dx.data() as Float32Array;
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const at = (r: number, q: number) => w[(c * 2 * H + r) * 2 * W + q];
        const want = at(2 * i, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j) + at(2 * i + 1, 2 * j + 1);
        assert.ok(Math.abs(got[(c * H + i) * W + j] - want) < 1e-5, `dx[${c}, ${i}, ${j}] = ${got[(c * H + i) * W + j]}, want ${want}`);
      }
    }
  }
});

test('Resize that is not a whole-block copy fails naming the node and the reason', async () => {
  const cases: { scales: number[]; attributes: ReturnType<typeof attr.string>[]; reason: RegExp }[] = [
    { scales: [1, 1, 2, 2], attributes: [attr.string('mode', 'linear')], reason: /mode 'linear' has no gradient rule/ },
    { scales: [1, 1, 1.5, 2], attributes: PP_OCR, reason: /not all whole numbers/ },
    { scales: [1, 1, 2, 2], attributes: [attr.string('coordinate_transformation_mode', 'align_corners')], reason: /'align_corners'.*does not copy whole 2-blocks/ },
    { scales: [1, 1, 2, 2], attributes: [attr.string('coordinate_transformation_mode', 'half_pixel'), attr.string('nearest_mode', 'floor')], reason: /'half_pixel' with nearest_mode 'floor'/ },
    { scales: [1, 2, 2, 2], attributes: PP_OCR, reason: /only the spatial axes/ },
  ];
  for (const c of cases) {
    const b = new GraphBuilder(new Graph('bad'));
    b.input('x', DataType.FLOAT, [1, 2, 3, 3]);
    const y = resize(c.scales, c.attributes)(b);
    b.node('ReduceSum', [y], [attr.int('keepdims', 0)], { outputs: ['loss'] });
    b.output('loss');
    const model = buildModel(b.graph, [{ domain: '', version: 13 }], 8);
    assert.throws(() => addGradients(model, { loss: 'loss', wrt: ['x'] }), (e: Error) => /Resize/.test(e.message) && c.reason.test(e.message), `scales ${c.scales} ${c.attributes.map((a) => a.name).join(',')}`);
  }
});
