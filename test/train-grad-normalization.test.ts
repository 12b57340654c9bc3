// Gradient checks (float64 finite differences) for BatchNormalization in both forms,
// LayerNormalization and InstanceNormalization (float32 against a float64 reference: ORT has no
// float64 kernel for it). QuantizeLinear/DequantizeLinear round, so finite differences do not
// apply: the fake-quantization pair is checked against the clipped straight-through estimator
// and the LSQ scale gradient computed here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr, type Attribute } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { inferShapes } from '../src/optimize/shape-inference/index.js';
import { GradientContext, GradientError, type GradientScope } from '../src/train/gradient-context.js';
import { GRADIENT_RULES } from '../src/train/gradient-rules.js';
import { checkGradient } from './helpers/gradient-check.js';
import { maxAbsDiff, runModel } from './helpers/run-model.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { Trainer } from '../src/train/trainer.js';

const bnInputs = (x: number[]) => {
  const c = [x[1]];
  return { x: { dims: x }, scale: { dims: c, low: 0.5, high: 1.5 }, bias: { dims: c }, mean: { dims: c }, variance: { dims: c, low: 0.5, high: 1.5 } };
};

test('BatchNormalization, inference form: X, scale, B, mean and var at ranks 2, 3 and 4', async () => {
  for (const dims of [[4, 3], [2, 3, 4], [2, 3, 2, 2]]) {
    await checkGradient({
      build: (b) => b.node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'variance'], [attr.float('epsilon', 0.0625)]),
      inputs: bnInputs(dims),
      wrt: ['x', 'scale', 'bias', 'mean', 'variance'],
    });
  }
  // Opset 13 (BatchNormalization-9, no training_mode attribute).
  await checkGradient({
    build: (b) => b.node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'variance']),
    inputs: bnInputs([2, 3, 4]),
    wrt: ['x', 'scale', 'bias', 'mean', 'variance'],
    opset: 13,
  });
});

test('BatchNormalization, training_mode=1: batch statistics at opsets 14 and 15, ranks 2 to 4; momentum 0 (the rule reads the running outputs)', async () => {
  for (const momentum of [0.9, 0]) {
    for (const [opset, dims] of [[14, [2, 3, 4]], [15, [5, 3]], [15, [2, 3, 2, 2]]] as [number, number[]][]) {
      await checkGradient({
        build: (b) => b.node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'variance'], [attr.int('training_mode', 1), attr.float('epsilon', 0.0625), attr.float('momentum', momentum)], { outputs: 3 })[0],
        inputs: bnInputs(dims),
        wrt: ['x', 'scale', 'bias'],
        opset,
      });
    }
  }
});

test('training step: BatchNormalization updates its running statistics as onnxruntime does, and the backward reads the batch statistics (no reduction over x recomputes them)', async () => {
  const [mean0, var0] = [Float32Array.of(0.5, -1, 2), Float32Array.of(1.5, 0.25, 3)];
  const b = new GraphBuilder(new Graph('bn'));
  b.input('input', DataType.FLOAT, ['N', 3, 2, 2]);
  const bnAttrs = [attr.int('training_mode', 0), attr.float('momentum', 0.75)];
  const params = [b.initializer('bn.weight', DataType.FLOAT, [3], Float32Array.of(1, 0.5, 2)), b.initializer('bn.bias', DataType.FLOAT, [3], Float32Array.of(0, 0.1, -0.2)), b.initializer('bn.running_mean', DataType.FLOAT, [3], mean0), b.initializer('bn.running_var', DataType.FLOAT, [3], var0)];
  const normalized = b.node('BatchNormalization', ['input', ...params], bnAttrs, { name: 'bn' });
  const flat = b.node('Flatten', [normalized], [attr.int('axis', 1)]);
  const weights = b.initializer('fc.weight', DataType.FLOAT, [5, 12], Float32Array.from({ length: 60 }, (_, i) => Math.sin(i) * 0.3));
  b.node('Gemm', [flat, weights], [attr.int('transB', 1)], { outputs: ['logits'] });
  b.output('logits', DataType.FLOAT, ['N', 5]);
  const model = buildModel(b.graph, [{ domain: '', version: 17 }]);
  const x = Tensor.fromArray('input', DataType.FLOAT, [4, 3, 2, 2], Float32Array.from({ length: 48 }, (_, i) => Math.cos(i * 1.3) * 2 + (i % 3)));
  const trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd' } }, { threads: 1 });
  try {
    await trainer.step({ input: x, 'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [4], BigInt64Array.of(0n, 1n, 2n, 4n)) }, 0.1);
    // onnxruntime's own training-mode BatchNormalization with the model's momentum, on the same batch.
    const r = new GraphBuilder(new Graph('reference'));
    for (const [name, dims] of [['input', [4, 3, 2, 2]], ['scale', [3]], ['bias', [3]], ['mean', [3]], ['variance', [3]]] as const) r.input(name, DataType.FLOAT, [...dims]);
    r.node('BatchNormalization', ['input', 'scale', 'bias', 'mean', 'variance'], [attr.int('training_mode', 1), attr.float('momentum', 0.75)], { outputs: ['y', 'running_mean', 'running_var'] });
    for (const name of ['y', 'running_mean', 'running_var']) r.output(name, DataType.FLOAT);
    const channel = (name: string, data: Float32Array) => Tensor.fromArray(name, DataType.FLOAT, [3], data);
    const [, mean, variance] = await runModel(buildModel(r.graph, [{ domain: '', version: 17 }]), [x, channel('scale', Float32Array.of(1, 0.5, 2)), channel('bias', Float32Array.of(0, 0.1, -0.2)), channel('mean', mean0), channel('variance', var0)]);
    const state = trainer.state().tensors;
    for (const [name, reference] of [['bn.running_mean', mean], ['bn.running_var', variance]] as const) {
      const difference = maxAbsDiff(state.get(name)?.data() as Float32Array, reference.data() as Float32Array);
      assert.ok(difference < 1e-6, `${name} differs by ${difference}`);
    }
    // x is read by the node and by the backward's x - mean, by no reduction recomputing the statistics.
    const readers = trainer.training.model.graph.consumers('input').map((n) => n.opType).filter((op) => op !== 'Size' && op !== 'Shape');
    assert.deepEqual(readers.sort(), ['BatchNormalization', 'Sub']);
  } finally {
    await trainer.release();
  }
});

test('BatchNormalization, training_mode=1: running_mean and running_var reaching the loss (momentum 0.75 and 0)', async () => {
  for (const momentum of [0.75, 0]) await checkGradient({
    build: (b) => {
      const [y, runningMean, runningVar] = b.node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'variance'], [attr.int('training_mode', 1), attr.float('momentum', momentum)], { outputs: 3 });
      // y + running_mean (as (C, 1)) * running_var (as (C, 1)): both running outputs matter.
      const column = (v: string) => b.node('Unsqueeze', [v, b.initializer(`axes_${v}`, DataType.INT64, [1], BigInt64Array.of(1n))]);
      return b.node('Add', [y, b.node('Mul', [column(runningMean), column(runningVar)])]);
    },
    inputs: bnInputs([2, 3, 4]),
    // With momentum 0 the running inputs reach nothing.
    wrt: momentum === 0 ? ['x', 'scale', 'bias'] : ['x', 'scale', 'bias', 'mean', 'variance'],
    opset: 15,
  });
});

test('LayerNormalization: axis -1, 1, 0 and -2, with and without B, epsilon', async () => {
  const cases: [number, number[]][] = [
    [-1, [3, 5]],
    [-1, [2, 3, 4]],
    [1, [2, 3, 4]],
    [0, [2, 3, 4]],
    [-2, [2, 3, 4]],
  ];
  for (const [axis, dims] of cases) {
    const first = axis < 0 ? axis + dims.length : axis;
    const normalized = dims.slice(first);
    const attributes = [attr.int('axis', axis), attr.float('epsilon', 0.03125)];
    await checkGradient({
      build: (b) => b.node('LayerNormalization', ['x', 'scale', 'bias'], attributes),
      inputs: { x: { dims }, scale: { dims: normalized, low: 0.5, high: 1.5 }, bias: { dims: normalized } },
      wrt: ['x', 'scale', 'bias'],
    });
  }
  await checkGradient({
    build: (b) => b.node('LayerNormalization', ['x', 'scale']),
    inputs: { x: { dims: [4, 6] }, scale: { dims: [6], low: 0.5, high: 1.5 } },
    wrt: ['x', 'scale'],
  });
  // Scale and B of lower rank than the normalized dims broadcast against them.
  await checkGradient({
    build: (b) => b.node('LayerNormalization', ['x', 'scale', 'bias'], [attr.int('axis', 1)]),
    inputs: { x: { dims: [2, 3, 4] }, scale: { dims: [4], low: 0.5, high: 1.5 }, bias: { dims: [1, 4] } },
    wrt: ['x', 'scale', 'bias'],
  });
});

/** Row-major layer normalization over the last `inner` elements of each row, in float64. */
function layerNormReference(x: Float64Array, scale: Float64Array, inner: number, epsilon: number) {
  const rows = x.length / inner;
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const invStdDev = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * inner, (r + 1) * inner);
    mean[r] = row.reduce((a, v) => a + v, 0) / inner;
    const variance = row.reduce((a, v) => a + (v - mean[r]) ** 2, 0) / inner;
    invStdDev[r] = 1 / Math.sqrt(variance + epsilon);
    for (let i = 0; i < inner; i++) y[r * inner + i] = (row[i] - mean[r]) * invStdDev[r] * scale[i];
  }
  return { y, mean, invStdDev };
}

test('LayerNormalization: the Mean and InvStdDev outputs reaching the loss (float32, float64 reference)', async () => {
  await checkGradient({
    dtype: 'float',
    build: (b) => {
      const [y, mean, invStdDev] = b.node('LayerNormalization', ['x', 'scale'], [attr.int('axis', 1), attr.float('epsilon', 0.0625)], { outputs: 3 });
      return b.node('Add', [b.node('Add', [y, mean]), invStdDev]);
    },
    inputs: { x: { dims: [3, 2, 3] }, scale: { dims: [2, 3], low: 0.5, high: 1.5 } },
    wrt: ['x', 'scale'],
    reference: ({ x, scale }) => {
      const { y, mean, invStdDev } = layerNormReference(x, scale, 6, 0.0625);
      return y.map((v, i) => v + mean[Math.floor(i / 6)] + invStdDev[Math.floor(i / 6)]);
    },
    tolerance: 1e-5,
  });
});

test('InstanceNormalization: ranks 3 and 4 (float32, float64 reference)', async () => {
  for (const dims of [[2, 3, 4], [2, 2, 2, 3]]) {
    const [n, c] = dims;
    const spatial = dims.slice(2).reduce((a, d) => a * d, 1);
    await checkGradient({
      dtype: 'float',
      build: (b) => b.node('InstanceNormalization', ['x', 'scale', 'bias'], [attr.float('epsilon', 0.0625)]),
      inputs: { x: { dims }, scale: { dims: [c], low: 0.5, high: 1.5 }, bias: { dims: [c] } },
      wrt: ['x', 'scale', 'bias'],
      reference: ({ x, scale, bias }) => {
        const y = new Float64Array(x.length);
        for (let k = 0; k < n * c; k++) {
          const ch = k % c;
          const { y: normalized } = layerNormReference(x.subarray(k * spatial, (k + 1) * spatial), Float64Array.of(...Array(spatial).fill(scale[ch])), spatial, 0.0625);
          for (let i = 0; i < spatial; i++) y[k * spatial + i] = normalized[i] + bias[ch];
        }
        return y;
      },
      tolerance: 1e-5,
    });
  }
});

interface FakeQuantCase {
  dims: number[];
  x: number[];
  scale: { dims: number[]; values: number[] };
  /** Absent: no zero point input (uint8, or `output_dtype` at opset 21). */
  zeroPoint?: { type: DataType; values: number[] };
  attributes?: Attribute[];
  opset?: number;
  /** The incoming gradient dL/dy. */
  dy: number[];
}

/**
 * y = DequantizeLinear(QuantizeLinear(x)) in float32, and the gradients the two rules give x and
 * the scale for an incoming dy, chained the way autodiff chains them through the integer value.
 */
async function fakeQuantGradients(c: FakeQuantCase, wanted = { x: true, scale: true }) {
  const opset = c.opset ?? 13;
  const b = new GraphBuilder(new Graph('fake_quant'));
  b.input('x', DataType.FLOAT, c.dims);
  b.input('scale', DataType.FLOAT, c.scale.dims);
  b.input('dy', DataType.FLOAT, c.dims);
  const operands = ['scale'];
  if (c.zeroPoint !== undefined) {
    const data = c.zeroPoint.type === DataType.INT8 ? Int8Array.from(c.zeroPoint.values) : Uint8Array.from(c.zeroPoint.values);
    operands.push(b.initializer('zero_point', c.zeroPoint.type, c.scale.dims, data));
  }
  const q = b.node('QuantizeLinear', ['x', ...operands], c.attributes ?? []);
  // DequantizeLinear takes no output_dtype (QuantizeLinear-21's attribute).
  const dequantizeAttributes = (c.attributes ?? []).filter((a) => a.name !== 'output_dtype');
  const y = b.node('DequantizeLinear', [q, ...operands], dequantizeAttributes);
  const model = buildModel(b.graph, [{ domain: '', version: opset }], 8);
  const inferred = inferShapes(model).main;
  const scope: GradientScope = {
    builder: b,
    opset,
    type: (v) => {
      const t = inferred.get(v);
      return t === undefined ? undefined : { elemType: t.elemType as DataType, shape: t.shape };
    },
    constant: (v) => constantValue(b.graph, v),
    constants: new Map(),
  };
  const apply = (output: string, incoming: string, wants: boolean[]) => {
    const node = b.graph.producer(output);
    assert.ok(node !== undefined);
    const rule = GRADIENT_RULES.get(node.opType);
    assert.ok(rule !== undefined, `a gradient rule for ${node.opType}`);
    return rule(new GradientContext(node, scope, [incoming], wants));
  };
  const [dq, dsDequantize] = apply(y, 'dy', [true, wanted.scale, false]);
  const [dx, dsQuantize] = apply(q, dq as string, [wanted.x, wanted.scale, false]);
  const outputs = [y];
  if (wanted.x) outputs.push(dx as string);
  if (wanted.scale) outputs.push(b.node('Add', [dsDequantize as string, dsQuantize as string]));
  for (const o of outputs) b.output(o);
  b.graph.changed();
  const feeds = [
    Tensor.fromArray('x', DataType.FLOAT, c.dims, Float32Array.from(c.x)),
    Tensor.fromArray('scale', DataType.FLOAT, c.scale.dims, Float32Array.from(c.scale.values)),
    Tensor.fromArray('dy', DataType.FLOAT, c.dims, Float32Array.from(c.dy)),
  ];
  const results = (await runModel(model, feeds)).map((t) => Array.from(t.data() as Float32Array));
  return { y: results[0], dx: wanted.x ? results[1] : undefined, dScale: wanted.scale ? results[results.length - 1] : undefined };
}

/** Fake quantization, the clipped STE and the LSQ scale gradient, in float64. */
function straightThrough(c: FakeQuantCase, range: [number, number], channelOf: (i: number) => number) {
  const [qmin, qmax] = range;
  const y = new Float64Array(c.x.length);
  const dx = new Float64Array(c.x.length);
  const dScale = new Float64Array(c.scale.values.length);
  c.x.forEach((x, i) => {
    const k = channelOf(i);
    const s = Math.fround(c.scale.values[k]);
    const zp = c.zeroPoint?.values[k] ?? 0;
    const unrounded = x / s + zp;
    const inside = unrounded >= qmin && unrounded <= qmax;
    const q = Math.min(qmax, Math.max(qmin, Math.round(unrounded)));
    y[i] = (q - zp) * s;
    dx[i] = inside ? c.dy[i] : 0;
    dScale[k] += c.dy[i] * (q - zp - (inside ? x / s : 0));
  });
  return { y, dx, dScale };
}

/**
 * x = s * (k - zp + f) for integers k spread over and beyond [qmin, qmax] and fractions f away
 * from 0.5: no value sits on a rounding tie or on the edge of the representable range.
 */
function quantGrid(count: number, range: [number, number], scaleOf: (i: number) => number, zeroPointOf: (i: number) => number, seed: number) {
  const fractions = [0.2, 0.3, 0.7, 0.8];
  const span = range[1] - range[0];
  return Array.from({ length: count }, (_, i) => {
    const k = range[0] - 0.25 * span + ((i * 37 + seed * 11) % Math.ceil(1.5 * span + 1));
    return Math.fround(scaleOf(i) * (k - zeroPointOf(i) + fractions[(i + seed) % 4]));
  });
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tolerance: number, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    diff += (got[i] - want[i]) ** 2;
    norm += want[i] ** 2;
  }
  assert.ok(norm > 0, `${what}: the expected values are all zero`);
  assert.ok(Math.sqrt(diff / norm) < tolerance, `${what}: relative error ${Math.sqrt(diff / norm).toExponential(2)}`);
}

async function checkFakeQuant(c: FakeQuantCase, range: [number, number], channelOf: (i: number) => number) {
  const got = await fakeQuantGradients(c);
  const want = straightThrough(c, range, channelOf);
  // The mask must both pass and block: some values saturate, most do not.
  const passed = want.dx.filter((v, i) => v !== 0 || c.dy[i] === 0).length;
  assert.ok(passed > 0 && passed < c.x.length, 'the case covers values inside and outside the range');
  // The forward agrees too: no value of the case sits on a rounding tie.
  assertClose(got.y, want.y, 1e-6, 'y');
  assertClose(got.dx as number[], want.dx, 1e-6, 'dx');
  assertClose(got.dScale as number[], want.dScale, 1e-5, 'dScale');
}

const randomDy = (count: number) => Array.from({ length: count }, (_, i) => Math.fround(Math.sin(i * 1.7 + 0.3)));

test('QuantizeLinear -> DequantizeLinear: clipped STE for x and LSQ gradient for a per-tensor scale', async () => {
  // int8 with a zero point.
  const dims = [4, 10];
  let c: FakeQuantCase = {
    dims,
    x: quantGrid(40, [-128, 127], () => 0.05, () => 3, 1),
    scale: { dims: [], values: [0.05] },
    zeroPoint: { type: DataType.INT8, values: [3] },
    dy: randomDy(40),
  };
  await checkFakeQuant(c, [-128, 127], () => 0);
  // uint8 without a zero point input (zero point 0, so negative values saturate at 0).
  c = { dims, x: quantGrid(40, [0, 255], () => 0.02, () => 0, 2), scale: { dims: [1], values: [0.02] }, dy: randomDy(40) };
  await checkFakeQuant(c, [0, 255], () => 0);
});

test('QuantizeLinear -> DequantizeLinear: per-axis scales on axis 1 and axis -1', async () => {
  const dims = [2, 3, 8];
  const scales = [0.03, 0.1, 0.25];
  const zeroPoints = [-5, 0, 7];
  const channel1 = (i: number) => Math.floor(i / 8) % 3;
  let c: FakeQuantCase = {
    dims,
    x: quantGrid(48, [-128, 127], (i) => scales[channel1(i)], (i) => zeroPoints[channel1(i)], 3),
    scale: { dims: [3], values: scales },
    zeroPoint: { type: DataType.INT8, values: zeroPoints },
    attributes: [attr.int('axis', 1)],
    dy: randomDy(48),
  };
  await checkFakeQuant(c, [-128, 127], channel1);
  const lastScales = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28];
  const lastZeroPoints = [0, 10, 20, 128, 200, 255, 1, 90];
  const last = (i: number) => i % 8;
  c = {
    dims,
    x: quantGrid(48, [0, 255], (i) => lastScales[last(i)], (i) => lastZeroPoints[last(i)], 4),
    scale: { dims: [8], values: lastScales },
    zeroPoint: { type: DataType.UINT8, values: lastZeroPoints },
    attributes: [attr.int('axis', -1)],
    dy: randomDy(48),
  };
  await checkFakeQuant(c, [0, 255], last);
});

test('QuantizeLinear -> DequantizeLinear: int4 through output_dtype (opset 21)', async () => {
  const c: FakeQuantCase = {
    dims: [3, 8],
    x: quantGrid(24, [-8, 7], () => 0.5, () => 0, 5),
    scale: { dims: [], values: [0.5] },
    attributes: [attr.int('output_dtype', DataType.INT4)],
    opset: 21,
    dy: randomDy(24),
  };
  await checkFakeQuant(c, [-8, 7], () => 0);
});

test('QuantizeLinear: only the wanted gradients; blocked scales fail with a clear message', async () => {
  const c: FakeQuantCase = { dims: [2, 4], x: quantGrid(8, [0, 255], () => 0.1, () => 0, 6), scale: { dims: [], values: [0.1] }, dy: randomDy(8) };
  const onlyX = await fakeQuantGradients(c, { x: true, scale: false });
  assert.equal(onlyX.dScale, undefined);
  assertClose(onlyX.dx as number[], straightThrough(c, [0, 255], () => 0).dx, 1e-6, 'dx');
  const blocked: FakeQuantCase = {
    dims: [2, 4],
    x: quantGrid(8, [-128, 127], () => 0.1, () => 0, 7),
    scale: { dims: [2, 2], values: [0.1, 0.1, 0.1, 0.1] },
    zeroPoint: { type: DataType.INT8, values: [0, 0, 0, 0] },
    attributes: [attr.int('axis', 1), attr.int('block_size', 2)],
    opset: 21,
    dy: randomDy(8),
  };
  await assert.rejects(fakeQuantGradients(blocked), (e: unknown) => e instanceof GradientError && /block_size/.test(e.message));
});

test('DequantizeLinear: gradient of a learnable per-axis scale over fixed int8 weights (through addGradients)', async () => {
  const codes = Int8Array.from({ length: 12 }, (_, i) => ((i * 53) % 255) - 127);
  await checkGradient({
    dtype: 'float',
    linear: true,
    build: (b) => {
      const weights = b.initializer('weights', DataType.INT8, [3, 4], codes);
      const zeroPoint = b.initializer('weights_zero_point', DataType.INT8, [3], Int8Array.of(1, -2, 0));
      return b.node('MatMul', ['x', b.node('DequantizeLinear', [weights, 'scale', zeroPoint], [attr.int('axis', 0)])]);
    },
    inputs: { x: { dims: [2, 3] }, scale: { dims: [3], low: 0.01, high: 0.1 } },
    wrt: ['scale'],
  });
});
