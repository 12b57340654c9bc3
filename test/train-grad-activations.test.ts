// Gradient checks (float64 finite differences) for activations, Softmax/LogSoftmax (every axis
// form, opset 11 coercion to 2-D), Clip (bounds as inputs, each optional), Where with
// broadcasting, Cast round trips and Dropout (inference by gradient check, training by its formula
// against the mask onnxruntime drew). Ops onnxruntime runs only in float32 (Erf, Gelu,
// HardSigmoid, HardSwish, Softplus, ...) are differenced on a float64 reference written here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { addGradients } from '../src/train/autodiff.js';
import { GradientContext } from '../src/train/gradient-context.js';
import { activationGradients } from '../src/train/gradients/activations.js';
import { checkGradient } from './helpers/gradient-check.js';
import { runModel } from './helpers/run-model.js';

/** `count` values spread evenly over [low, high) in a scrambled order, none within 0.05 of a kink. */
function spread(count: number, low: number, high: number, kinks: number[] = []): number[] {
  return Array.from({ length: count }, (_, i) => {
    let v = low + ((high - low) * (((i * 37) % count) + 0.5)) / count;
    for (const k of kinks) if (Math.abs(v - k) < 0.05) v = k + (v < k ? -0.05 : 0.05);
    return v;
  });
}

/** A float64 reference of a unary op applied to input `x`. */
const elementwise = (f: (v: number) => number) => (inputs: Record<string, Float64Array>) => Float64Array.from(inputs.x, f);

/**
 * erf in float64 from its everywhere-convergent series erf(x) = 2/sqrt(pi) e^(-x^2) sum (2x^2)^n x / (2n+1)!!,
 * whose terms are all positive (no cancellation): accurate to a few ulps for |x| <= 5.
 */
function erf(x: number): number {
  if (Math.abs(x) > 5) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

test('the float64 erf of the references agrees with known values to 1e-15', () => {
  // erf(0.5), erf(1), erf(2), erf(-3) (Abramowitz & Stegun table 7.1 / high-precision values).
  const known: [number, number][] = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [-3, -0.9999779095030014]];
  for (const [x, value] of known) assert.ok(Math.abs(erf(x) - value) < 1e-15, `erf(${x}) = ${erf(x)}, expected ${value}`);
});

test('Relu, LeakyRelu (default and given alpha), Sigmoid, Tanh', async () => {
  const x = { dims: [3, 4], data: spread(12, -2, 2, [0]) };
  await checkGradient({ build: (b) => b.node('Relu', ['x']), inputs: { x }, wrt: ['x'] });
  await checkGradient({ build: (b) => b.node('LeakyRelu', ['x']), inputs: { x }, wrt: ['x'] });
  await checkGradient({ build: (b) => b.node('LeakyRelu', ['x'], [attr.float('alpha', 0.3)]), inputs: { x }, wrt: ['x'] });
  // Float32 too (the brief's fallback where a runtime lacks double LeakyRelu), on a float64 reference.
  await checkGradient({ build: (b) => b.node('LeakyRelu', ['x'], [attr.float('alpha', 0.3)]), inputs: { x }, wrt: ['x'], dtype: 'float', reference: elementwise((v) => (v > 0 ? v : 0.3 * v)) });
  await checkGradient({ build: (b) => b.node('Sigmoid', ['x']), inputs: { x: { dims: [3, 4], low: -3, high: 3 } }, wrt: ['x'] });
  await checkGradient({ build: (b) => b.node('Tanh', ['x']), inputs: { x: { dims: [3, 4], low: -2, high: 2 } }, wrt: ['x'] });
});

test('PRelu: slope broadcast over trailing axes, gradients to x and slope', async () => {
  const x = { dims: [2, 3, 4], data: spread(24, -2, 2, [0]) };
  for (const slope of [[3, 1], [4], [1]]) {
    await checkGradient({ build: (b) => b.node('PRelu', ['x', 'slope']), inputs: { x, slope: { dims: slope, low: 0.1, high: 0.5 } }, wrt: ['x', 'slope'] });
  }
});

test('Erf and Gelu (opset 20, approximate none and tanh) on float64 references', async () => {
  const x = { dims: [4, 5], low: -3, high: 3 };
  await checkGradient({ build: (b) => b.node('Erf', ['x']), inputs: { x }, wrt: ['x'], dtype: 'float', reference: elementwise(erf) });
  const exact = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
  const tanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  await checkGradient({ build: (b) => b.node('Gelu', ['x']), inputs: { x }, wrt: ['x'], dtype: 'float', opset: 20, reference: elementwise(exact) });
  await checkGradient({ build: (b) => b.node('Gelu', ['x'], [attr.string('approximate', 'none')]), inputs: { x }, wrt: ['x'], dtype: 'float', opset: 20, reference: elementwise(exact) });
  await checkGradient({ build: (b) => b.node('Gelu', ['x'], [attr.string('approximate', 'tanh')]), inputs: { x }, wrt: ['x'], dtype: 'float', opset: 20, reference: elementwise(tanh) });
});

test('HardSigmoid (default and given alpha, beta) and HardSwish, away from their kinks', async () => {
  const hardSigmoid = (alpha: number, beta: number) => (v: number) => Math.max(0, Math.min(1, alpha * v + beta));
  // Defaults alpha 0.2, beta 0.5: kinks at -2.5 and 2.5.
  await checkGradient({ build: (b) => b.node('HardSigmoid', ['x']), inputs: { x: { dims: [4, 5], data: spread(20, -4, 4, [-2.5, 2.5]) } }, wrt: ['x'], dtype: 'float', reference: elementwise(hardSigmoid(0.2, 0.5)) });
  // alpha 0.4, beta 0.6: kinks at -1.5 and 1.
  await checkGradient({
    build: (b) => b.node('HardSigmoid', ['x'], [attr.float('alpha', 0.4), attr.float('beta', 0.6)]),
    inputs: { x: { dims: [4, 5], data: spread(20, -3, 3, [-1.5, 1]) } },
    wrt: ['x'],
    dtype: 'float',
    reference: elementwise(hardSigmoid(0.4, 0.6)),
  });
  await checkGradient({ build: (b) => b.node('HardSwish', ['x']), inputs: { x: { dims: [4, 5], data: spread(20, -5, 5, [-3, 3]) } }, wrt: ['x'], dtype: 'float', reference: elementwise((v) => v * hardSigmoid(1 / 6, 0.5)(v)) });
});

test('Softplus, Softsign, Elu, Selu, Celu (attributes given) on float64 references', async () => {
  const x = { dims: [3, 5], data: spread(15, -3, 3, [0]) };
  const f = (op: string, reference: (v: number) => number, attributes = [] as ReturnType<typeof attr.float>[]) =>
    checkGradient({ build: (b) => b.node(op, ['x'], attributes), inputs: { x }, wrt: ['x'], dtype: 'float', reference: elementwise(reference) });
  await f('Softplus', (v) => Math.log1p(Math.exp(v)));
  await f('Softsign', (v) => v / (1 + Math.abs(v)));
  await f('Elu', (v) => (v > 0 ? v : Math.expm1(v)));
  await f('Elu', (v) => (v > 0 ? v : 0.7 * Math.expm1(v)), [attr.float('alpha', 0.7)]);
  const [alpha, gamma] = [1.6732631921768188, 1.0507010221481323];
  await f('Selu', (v) => gamma * (v > 0 ? v : alpha * Math.expm1(v)));
  await f('Selu', (v) => 1.2 * (v > 0 ? v : 1.5 * Math.expm1(v)), [attr.float('alpha', 1.5), attr.float('gamma', 1.2)]);
  await f('Celu', (v) => Math.max(0, v) + Math.min(0, 2 * Math.expm1(v / 2)), [attr.float('alpha', 2)]);
});

test('Clip: min and max as inputs (each optional), gradients to x and to each bound', async () => {
  const x = { dims: [4, 6], data: spread(24, -1, 1, [-0.4, 0.5]) };
  const min = { dims: [], data: [-0.4] };
  const max = { dims: [], data: [0.5] };
  await checkGradient({ build: (b) => b.node('Clip', ['x', 'min', 'max']), inputs: { x, min, max }, wrt: ['x', 'min', 'max'] });
  await checkGradient({ build: (b) => b.node('Clip', ['x', 'min']), inputs: { x, min }, wrt: ['x', 'min'] });
  await checkGradient({ build: (b) => b.node('Clip', ['x', '', 'max']), inputs: { x, max }, wrt: ['x', 'max'] });
  await checkGradient({ build: (b) => b.node('Clip', ['x']), inputs: { x }, wrt: ['x'] });
  // Constant bounds (initializers), as exporters write them; only x is differentiated.
  await checkGradient({
    build: (b, dtype) => b.node('Clip', ['x', b.initializer('lo', dtype, [], Float64Array.of(-0.4)), b.initializer('hi', dtype, [], Float64Array.of(0.5))]),
    inputs: { x },
    wrt: ['x'],
  });
});

test('Clip with min > max takes max everywhere, so all of the gradient goes to max', async () => {
  // x's own gradient is zero here, which the check refuses to compare; max gets sum(R).
  const inputs = { x: { dims: [2, 3], data: spread(6, -1, 1) }, min: { dims: [], data: [0.3] }, max: { dims: [], data: [-0.2] } };
  await checkGradient({ build: (b) => b.node('Clip', ['x', 'min', 'max']), inputs, wrt: ['max'] });
});

test('Softmax and LogSoftmax: default, positive, negative and non-last axes (opsets 13 and 17)', async () => {
  for (const op of ['Softmax', 'LogSoftmax']) {
    for (const opset of [13, 17]) {
      for (const axis of [undefined, 0, 1, -2, 2, -1]) {
        await checkGradient({
          build: (b) => b.node(op, ['x'], axis === undefined ? [] : [attr.int('axis', axis)]),
          inputs: { x: { dims: [2, 3, 4], low: -2, high: 2 } },
          wrt: ['x'],
          opset,
        });
      }
    }
  }
});

/**
 * Softmax/LogSoftmax before opset 13: rows are the input flattened to 2-D at `axis`. The training
 * graph is opset 13 or newer, so this drives the rule directly with an opset-11 context, runs the
 * backward nodes it emits for dy = R in onnxruntime and compares with differences of this reference.
 */
function softmax11(op: string, x: Float64Array, dims: number[], axis: number): Float64Array {
  const row = dims.slice(axis).reduce((a, b) => a * b, 1);
  const out = new Float64Array(x.length);
  for (let start = 0; start < x.length; start += row) {
    const slice = x.subarray(start, start + row);
    const top = Math.max(...slice);
    const logSum = Math.log(slice.reduce((s, v) => s + Math.exp(v - top), 0)) + top;
    for (let i = 0; i < row; i++) out[start + i] = op === 'LogSoftmax' ? slice[i] - logSum : Math.exp(slice[i] - logSum);
  }
  return out;
}

async function checkOpset11(op: string, axis: number | undefined, dims: number[]): Promise<number> {
  const count = dims.reduce((a, b) => a * b, 1);
  const x = Float64Array.from({ length: count }, (_, i) => Math.sin(1.7 * i + 0.3) * 1.5);
  const r = Float64Array.from({ length: count }, (_, i) => Math.cos(2.3 * i + 0.1));
  const b = new GraphBuilder(new Graph('opset11'));
  b.input('x', DataType.DOUBLE, dims);
  b.input('dy', DataType.DOUBLE, dims);
  const node = b.addNode(op, ['x'], axis === undefined ? [] : [attr.int('axis', axis)]);
  const scope = {
    builder: b,
    opset: 11,
    type: (v: string) => (['x', 'dy', node.outputs[0]].includes(v) ? { elemType: DataType.DOUBLE, shape: dims } : undefined),
    constant: () => undefined,
    constants: new Map<string, string>(),
  };
  const [dx] = activationGradients[op](new GradientContext(node, scope, ['dy'], [true]));
  b.output(node.outputs[0]);
  b.output(dx as string);
  const model = buildModel(b.graph, [{ domain: '', version: 11 }]);
  const [y, analytic] = await runModel(model, [Tensor.fromArray('x', DataType.DOUBLE, dims, x), Tensor.fromArray('dy', DataType.DOUBLE, dims, r)]);
  const reference = softmax11(op, x, dims, axis ?? 1);
  const forward = y.data() as Float64Array;
  for (let i = 0; i < count; i++) assert.ok(Math.abs(forward[i] - reference[i]) < 1e-12, `the opset-11 reference disagrees with onnxruntime at ${i}`);
  const loss = (v: Float64Array) => softmax11(op, v, dims, axis ?? 1).reduce((s, o, i) => s + o * r[i], 0);
  const got = analytic.data() as Float64Array;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < count; i++) {
    const keep = x[i];
    x[i] = keep + 1e-6;
    const up = loss(x);
    x[i] = keep - 1e-6;
    const down = loss(x);
    x[i] = keep;
    const numeric = (up - down) / 2e-6;
    diff += (got[i] - numeric) ** 2;
    norm += numeric ** 2;
  }
  return Math.sqrt(diff) / Math.sqrt(norm);
}

test('Softmax and LogSoftmax at opset 11: coerced to 2-D at axis (default 1, negative, 0)', async () => {
  for (const op of ['Softmax', 'LogSoftmax']) {
    for (const axis of [undefined, 0, 2, -2]) {
      const error = await checkOpset11(op, axis, [2, 3, 4]);
      assert.ok(error < 1e-6, `${op} axis ${axis}: relative error ${error}`);
    }
  }
});

test('Where: broadcast X and Y, condition from an int64 input and from a Greater node', async () => {
  const flags = { dims: [2, 1, 4], int64: true, data: [1, 0, 0, 1, 0, 1, 1, 0] };
  await checkGradient({
    build: (b) => b.node('Where', [b.node('Cast', ['c'], [attr.int('to', DataType.BOOL)]), 'x', 'y']),
    inputs: { c: flags, x: { dims: [3, 1] }, y: { dims: [2, 3, 4] } },
    wrt: ['x', 'y'],
  });
  await checkGradient({
    build: (b, dtype) => b.node('Where', [b.node('Greater', ['s', b.initializer('zero', dtype, [], Float64Array.of(0))]), 'x', 'y']),
    inputs: { s: { dims: [2, 3], data: [1, -1, -1, 1, 1, -1] }, x: { dims: [2, 3] }, y: { dims: [] } },
    wrt: ['x', 'y'],
  });
});

test('Cast: float -> double -> float and double -> float -> double round trips, and CastLike', async () => {
  await checkGradient({
    build: (b) => b.node('Cast', [b.node('Sigmoid', [b.node('Cast', ['x'], [attr.int('to', DataType.DOUBLE)])])], [attr.int('to', DataType.FLOAT)]),
    inputs: { x: { dims: [3, 4], low: -2, high: 2 } },
    wrt: ['x'],
    dtype: 'float',
    reference: elementwise(sigmoid),
  });
  await checkGradient({
    build: (b) => b.node('Cast', [b.node('Cast', ['x'], [attr.int('to', DataType.FLOAT)])], [attr.int('to', DataType.DOUBLE)]),
    inputs: { x: { dims: [3, 4] } },
    wrt: ['x'],
    linear: true,
  });
  // x + CastLike(float(x), x): the type-lending input gets a zero gradient, the cast path dy.
  await checkGradient({
    build: (b) => b.node('Add', ['x', b.node('CastLike', [b.node('Cast', ['x'], [attr.int('to', DataType.FLOAT)]), 'x'])]),
    inputs: { x: { dims: [3, 4] } },
    wrt: ['x'],
    linear: true,
  });
});

test('Cast to an integer type passes no gradient: d(x + double(int64(x)))/dx = 1', async () => {
  // Values strictly between integers, so the truncation is locally constant.
  const x = { dims: [2, 5], data: spread(10, 0.1, 2.9, [1, 2]) };
  const { errors } = await checkGradient({
    build: (b) => b.node('Add', ['x', b.node('Cast', [b.node('Cast', ['x'], [attr.int('to', DataType.INT64)])], [attr.int('to', DataType.DOUBLE)])]),
    inputs: { x },
    wrt: ['x'],
  });
  assert.ok(errors.x < 1e-6);
});

test('Dropout in inference form (no training_mode, constant false) and training with ratio 0 is the identity', async () => {
  const x = { dims: [3, 4] };
  await checkGradient({ build: (b) => b.node('Dropout', ['x']), inputs: { x }, wrt: ['x'] });
  const bool = (b: GraphBuilder, name: string, value: boolean) => b.initializer(name, DataType.BOOL, [], Uint8Array.of(value ? 1 : 0));
  await checkGradient({ build: (b, dtype) => b.node('Dropout', ['x', b.initializer('ratio', dtype, [], Float64Array.of(0.3)), bool(b, 'training', false)]), inputs: { x }, wrt: ['x'] });
  // Training with ratio 0 keeps everything: deterministic, so finite differences apply.
  await checkGradient({
    build: (b, dtype) => b.node('Dropout', ['x', b.initializer('ratio', dtype, [], Float64Array.of(0)), bool(b, 'training', true)], [], { outputs: 2 })[0],
    inputs: { x },
    wrt: ['x'],
  });
});

/**
 * One run of Dropout(x, ratio, training_mode) with loss = sum(y * R) and its backward graph;
 * returns x, R, y, the mask (when the forward node has one after differentiation) and dx.
 */
async function dropoutRun(options: { ratio: number; training: boolean; trainingAsInput: boolean; maskOutput: boolean }) {
  const count = 64;
  const b = new GraphBuilder(new Graph('dropout'));
  b.input('x', DataType.DOUBLE, [count]);
  const training = options.trainingAsInput ? b.input('training', DataType.BOOL, []) : b.initializer('training', DataType.BOOL, [], Uint8Array.of(options.training ? 1 : 0));
  const ratio = b.initializer('ratio', DataType.FLOAT, [], Float32Array.of(options.ratio));
  const y = b.addNode('Dropout', ['x', ratio, training], [attr.int('seed', 7)], { outputs: options.maskOutput ? 2 : 1 }).outputs[0];
  const r = Float64Array.from({ length: count }, (_, i) => Math.cos(1.3 * i) + 2);
  b.node('ReduceSum', [b.node('Mul', [y, b.initializer('r', DataType.DOUBLE, [count], r)])], [attr.int('keepdims', 0)], { outputs: ['loss'] });
  b.output('loss');
  const model = buildModel(b.graph, [{ domain: '', version: 17 }]);
  const { gradients } = addGradients(model, { loss: 'loss', wrt: ['x'] });
  const dropout = model.graph.nodes.find((n) => n.opType === 'Dropout');
  const mask = dropout?.outputs[1] ?? '';
  model.graph.outputs = [];
  for (const name of [y, gradients.get('x') as string, ...(mask === '' ? [] : [mask])]) model.graph.addOutput(name);
  model.graph.changed();
  const x = Float64Array.from({ length: count }, (_, i) => Math.sin(0.7 * i) + 1.5);
  const feeds = [Tensor.fromArray('x', DataType.DOUBLE, [count], x)];
  if (options.trainingAsInput) feeds.push(Tensor.fromArray('training', DataType.BOOL, [], Uint8Array.of(options.training ? 1 : 0)));
  const [yOut, dxOut, maskOut] = await runModel(model, feeds);
  return { x, r, y: yOut.data() as Float64Array, dx: dxOut.data() as Float64Array, mask: maskOut === undefined ? undefined : (maskOut.data() as Uint8Array) };
}

test('Dropout in training: dx = dy * mask / (1 - ratio), with the mask onnxruntime drew', async () => {
  for (const trainingAsInput of [false, true]) {
    for (const maskOutput of [true, false]) {
      const ratio = 0.25;
      const run = await dropoutRun({ ratio, training: true, trainingAsInput, maskOutput });
      // The rule adds a mask output to a Dropout that had none: the backward pass needs it.
      assert.ok(run.mask !== undefined, 'the forward Dropout exposes its mask');
      const kept = run.mask.reduce((s, m) => s + m, 0);
      assert.ok(kept > 0 && kept < run.mask.length, `the mask keeps ${kept} of ${run.mask.length}: the case checks nothing`);
      for (let i = 0; i < run.x.length; i++) {
        // y confirms which mask the forward pass used; dx must use the same one.
        const expectedY = run.mask[i] === 1 ? run.x[i] / (1 - ratio) : 0;
        assert.ok(Math.abs(run.y[i] - expectedY) < 1e-6, `y[${i}] = ${run.y[i]}, expected ${expectedY}`);
        const expected = run.mask[i] === 1 ? run.r[i] / (1 - ratio) : 0;
        assert.ok(Math.abs(run.dx[i] - expected) < 1e-12, `dx[${i}] = ${run.dx[i]}, expected ${expected}`);
      }
    }
  }
});

test('Dropout with a run-time training_mode of false passes dy through unscaled', async () => {
  const run = await dropoutRun({ ratio: 0.25, training: false, trainingAsInput: true, maskOutput: true });
  for (let i = 0; i < run.x.length; i++) {
    assert.equal(run.y[i], run.x[i]);
    assert.ok(Math.abs(run.dx[i] - run.r[i]) < 1e-12, `dx[${i}] = ${run.dx[i]}, expected ${run.r[i]}`);
  }
});
