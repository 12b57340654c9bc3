// Gradient checks for Conv, ConvTranspose and pooling. onnxruntime has no float64 Conv,
// ConvTranspose or AveragePool, so those run in float32 and are checked one input at a time, where
// the output is linear in that input (step-1 differences are exact). MaxPool runs in float64 on
// inputs without ties.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr, type Attribute } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Dim } from '../src/ir/value-info.js';
import { Tensor } from '../src/ir/tensor.js';
import { addGradients } from '../src/train/autodiff.js';
import { GradientError } from '../src/train/gradient-context.js';
import { checkGradient } from './helpers/gradient-check.js';
import { maxAbsDiff, runModel } from './helpers/run-model.js';

interface ConvCase {
  x: number[];
  w: number[];
  bias?: boolean;
  attrs?: Attribute[];
  opset?: number;
}

/** Checks X, W and (when present) B of one Conv or ConvTranspose, each on its own. */
async function checkConv(op: 'Conv' | 'ConvTranspose', c: ConvCase): Promise<void> {
  const groups = Number(c.attrs?.find((a) => a.name === 'group')?.value ?? 1);
  // Conv's W is (M, C/group, k...); ConvTranspose's is (C, M/group, k...).
  const biasSize = op === 'Conv' ? c.w[0] : c.w[1] * groups;
  const inputs = { x: { dims: c.x }, w: { dims: c.w }, ...(c.bias === true ? { b: { dims: [biasSize] } } : {}) };
  const names = c.bias === true ? ['x', 'w', 'b'] : ['x', 'w'];
  for (const wrt of names) {
    await checkGradient({ build: (b) => b.node(op, names, c.attrs ?? []), inputs, wrt: [wrt], dtype: 'float', linear: true, opset: c.opset });
  }
}

const ints = attr.ints;
const group = (g: number) => attr.int('group', g);

test('Conv 2-D: plain with bias, strides with pads, asymmetric pads with dilations', async () => {
  await checkConv('Conv', { x: [2, 2, 5, 5], w: [3, 2, 3, 3], bias: true });
  // 6 + 2 - 3 = 5 is odd: stride 2 leaves the last row and column out of every window.
  await checkConv('Conv', { x: [2, 2, 6, 6], w: [3, 2, 3, 3], bias: true, attrs: [ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])] });
  await checkConv('Conv', { x: [2, 2, 7, 6], w: [2, 2, 3, 2], attrs: [ints('strides', [2, 1]), ints('pads', [0, 1, 2, 0]), ints('dilations', [1, 2])] });
  await checkConv('Conv', { x: [1, 2, 7, 7], w: [2, 2, 3, 3], attrs: [ints('dilations', [2, 2]), ints('strides', [2, 3]), ints('kernel_shape', [3, 3])] });
  // 16 input channels: the weight gradient runs one product per kernel tap (conv.ts, PER_TAP_MIN_CHANNELS).
  await checkConv('Conv', { x: [2, 16, 5, 4], w: [2, 16, 2, 2], attrs: [ints('strides', [2, 1]), ints('pads', [1, 0, 0, 1]), ints('dilations', [1, 2])] });
});

test('Conv groups: 2 groups, depthwise, depthwise with channel multiplier', async () => {
  await checkConv('Conv', { x: [2, 4, 5, 5], w: [4, 2, 3, 3], bias: true, attrs: [group(2), ints('strides', [2, 2]), ints('pads', [1, 0, 1, 1])] });
  await checkConv('Conv', { x: [2, 3, 5, 5], w: [3, 1, 3, 3], bias: true, attrs: [group(3), ints('pads', [1, 1, 1, 1])] });
  await checkConv('Conv', { x: [2, 3, 6, 5], w: [6, 1, 2, 3], attrs: [group(3), ints('strides', [2, 2]), ints('dilations', [2, 1])] });
});

test('Conv 1-D and 3-D', async () => {
  await checkConv('Conv', { x: [2, 3, 9], w: [4, 3, 3], bias: true, attrs: [ints('strides', [2]), ints('pads', [1, 2]), ints('dilations', [2])] });
  await checkConv('Conv', { x: [2, 4, 8], w: [4, 2, 2], attrs: [group(2), ints('strides', [3])] });
  await checkConv('Conv', { x: [1, 2, 4, 4, 4], w: [2, 2, 2, 2, 2], attrs: [ints('strides', [2, 1, 2]), ints('pads', [1, 0, 0, 0, 1, 1])] });
});

test('Conv auto_pad SAME_UPPER, SAME_LOWER and VALID', async () => {
  for (const autoPad of ['SAME_UPPER', 'SAME_LOWER']) {
    await checkConv('Conv', { x: [2, 2, 6, 5], w: [2, 2, 3, 2], attrs: [attr.string('auto_pad', autoPad), ints('strides', [2, 2])] });
    // onnxruntime has no SAME padding with dilations; stride 1 pads by kernel - 1 whatever the size.
    await checkConv('Conv', { x: [1, 2, 5, 5], w: [2, 2, 2, 3], attrs: [attr.string('auto_pad', autoPad)] });
  }
  await checkConv('Conv', { x: [2, 2, 6, 6], w: [2, 2, 3, 3], attrs: [attr.string('auto_pad', 'VALID'), ints('strides', [2, 2])] });
});

test('ConvTranspose: strides, pads, output_padding, dilations, groups, bias, 1-D', async () => {
  await checkConv('ConvTranspose', { x: [2, 3, 4, 4], w: [3, 2, 3, 3], bias: true, attrs: [ints('strides', [2, 2]), ints('pads', [1, 0, 0, 1]), ints('output_padding', [1, 0])] });
  await checkConv('ConvTranspose', { x: [2, 4, 3, 3], w: [4, 1, 3, 2], bias: true, attrs: [group(2), ints('strides', [2, 1]), ints('dilations', [1, 2])] });
  await checkConv('ConvTranspose', { x: [2, 3, 4, 4], w: [3, 1, 3, 3], attrs: [group(3), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])] });
  await checkConv('ConvTranspose', { x: [2, 3, 5], w: [3, 2, 3], bias: true, attrs: [ints('strides', [3]), ints('pads', [2, 1]), ints('output_padding', [2])] });
});

test('ConvTranspose: output_shape and auto_pad', async () => {
  await checkConv('ConvTranspose', { x: [2, 2, 3, 3], w: [2, 2, 3, 3], attrs: [ints('strides', [2, 2]), ints('output_shape', [6, 5])] });
  for (const autoPad of ['SAME_UPPER', 'SAME_LOWER']) {
    await checkConv('ConvTranspose', { x: [2, 2, 3, 3], w: [2, 2, 3, 2], attrs: [ints('strides', [2, 2]), attr.string('auto_pad', autoPad), ints('output_shape', [5, 6])] });
    await checkConv('ConvTranspose', { x: [2, 2, 3, 3], w: [2, 2, 3, 2], attrs: [ints('strides', [2, 2]), attr.string('auto_pad', autoPad)] });
  }
  await checkConv('ConvTranspose', { x: [2, 2, 3, 3], w: [2, 2, 2, 2], attrs: [ints('strides', [2, 2]), attr.string('auto_pad', 'VALID')] });
});

/** n distinct values in [-0.5, 0.5), shuffled (37 is coprime with the sizes used), so no window ties. */
function distinct(n: number): number[] {
  return Array.from({ length: n }, (_, i) => ((i * 37) % n) / n - 0.5);
}

async function checkMaxPool(dims: number[], attrs: Attribute[], opset?: number): Promise<void> {
  const n = dims.reduce((p, d) => p * d, 1);
  await checkGradient({ build: (b) => b.node('MaxPool', ['x'], attrs), inputs: { x: { dims, data: distinct(n) } }, wrt: ['x'], opset });
}

test('MaxPool: disjoint and overlapping windows, pads, dilations, ceil_mode, auto_pad, 1-D', async () => {
  const kernel = (k: number[]) => ints('kernel_shape', k);
  await checkMaxPool([2, 2, 6, 6], [kernel([2, 2]), ints('strides', [2, 2])]);
  await checkMaxPool([2, 2, 5, 5], [kernel([3, 3]), ints('pads', [1, 1, 1, 1])]);
  await checkMaxPool([2, 2, 7, 6], [kernel([3, 2]), ints('strides', [2, 1]), ints('pads', [1, 0, 0, 1]), ints('dilations', [2, 2])]);
  await checkMaxPool([2, 3, 6, 5], [kernel([3, 3]), ints('strides', [2, 2]), attr.int('ceil_mode', 1)]);
  await checkMaxPool([2, 2, 5, 6], [kernel([3, 2]), ints('strides', [2, 2]), attr.string('auto_pad', 'SAME_UPPER')]);
  await checkMaxPool([2, 3, 11], [kernel([3]), ints('strides', [2]), ints('pads', [2, 1])]);
});

test('MaxPool: the forward Indices output is reused, storage_order 1 is recomputed', async () => {
  for (const order of [0, 1]) {
    await checkGradient({
      build: (b) => {
        const [y, indices] = b.node('MaxPool', ['x'], [ints('kernel_shape', [3, 3]), ints('strides', [1, 2]), attr.int('storage_order', order)], { outputs: 2 });
        // Indices feed the loss through a float cast, which carries no gradient of its own.
        return b.node('Add', [y, b.node('Mul', [b.node('Cast', [indices], [attr.int('to', DataType.DOUBLE)]), b.initializer(`zero_${order}`, DataType.DOUBLE, [], Float64Array.of(0))])]);
      },
      inputs: { x: { dims: [2, 2, 5, 5], data: distinct(100) } },
      wrt: ['x'],
    });
  }
});

/** float64 MaxPool over 2-D windows (no dilation; padding never wins), for float32 cases. */
function maxPoolReference(dims: number[], kernel: number[], strides: number[], pads: number[]): (inputs: Record<string, Float64Array>) => Float64Array {
  const [n, c, h, w] = dims;
  const oh = Math.floor((h + pads[0] + pads[2] - kernel[0]) / strides[0]) + 1;
  const ow = Math.floor((w + pads[1] + pads[3] - kernel[1]) / strides[1]) + 1;
  return ({ x }) => {
    const out = new Float64Array(n * c * oh * ow);
    for (let plane = 0; plane < n * c; plane++) {
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          let best = -Infinity;
          for (let a = 0; a < kernel[0]; a++) {
            for (let b = 0; b < kernel[1]; b++) {
              const [r, q] = [i * strides[0] - pads[0] + a, j * strides[1] - pads[1] + b];
              if (r >= 0 && r < h && q >= 0 && q < w) best = Math.max(best, x[plane * h * w + r * w + q]);
            }
          }
          out[plane * oh * ow + i * ow + j] = best;
        }
      }
    }
    return out;
  };
}

test("MaxPool in float32 with disjoint windows: MaxUnpool of dY at the forward node's own Indices", async () => {
  const cases: [number[], number[], number[], number[]][] = [
    [[2, 3, 6, 6], [2, 2], [2, 2], [0, 0, 0, 0]],
    [[2, 2, 5, 7], [2, 3], [3, 3], [1, 0, 0, 1]],
  ];
  for (const [dims, kernel, strides, pads] of cases) {
    const n = dims.reduce((p, d) => p * d, 1);
    const attrs = [ints('kernel_shape', kernel), ints('strides', strides), ints('pads', pads)];
    await checkGradient({ build: (b) => b.node('MaxPool', ['x'], attrs), inputs: { x: { dims, data: distinct(n) } }, wrt: ['x'], dtype: 'float', reference: maxPoolReference(dims, kernel, strides, pads) });
  }
  // The forward node computes the Indices once; no second MaxPool reads x again.
  const b = new GraphBuilder(new Graph('pool'));
  b.input('x', DataType.FLOAT, [2, 3, 6, 6]);
  const y = b.node('MaxPool', ['x'], [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])], { name: 'pool' });
  b.node('ReduceSum', [y], [attr.int('keepdims', 0)], { outputs: ['loss'] });
  b.output('loss', DataType.FLOAT, []);
  const model = buildModel(b.graph);
  addGradients(model, { loss: 'loss', wrt: ['x'] });
  const pools = model.graph.nodes.filter((node) => node.opType === 'MaxPool');
  assert.equal(pools.length, 1);
  assert.equal(pools[0].outputs.length, 2);
  assert.deepEqual(model.graph.nodes.filter((node) => node.opType === 'MaxUnpool').map((node) => node.inputs[1]), [pools[0].outputs[1]]);
});

test('MaxPool below opset 16: a plain scatter for disjoint windows, a clear error for overlapping ones', async () => {
  await checkMaxPool([2, 2, 6, 6], [ints('kernel_shape', [2, 2]), ints('strides', [3, 2])], 15);
  await assert.rejects(checkMaxPool([2, 2, 5, 5], [ints('kernel_shape', [3, 3])], 15), (e: Error) => e instanceof GradientError && /opset 16/.test(e.message));
});

async function checkAveragePool(dims: number[], attrs: Attribute[], opset = 19): Promise<void> {
  await checkGradient({ build: (b) => b.node('AveragePool', ['x'], attrs), inputs: { x: { dims } }, wrt: ['x'], dtype: 'float', linear: true, opset });
}

test('AveragePool: count_include_pad 0 and 1 with pads, strides, dilations, ceil_mode', async () => {
  const kernel = (k: number[]) => ints('kernel_shape', k);
  for (const include of [0, 1]) {
    const count = attr.int('count_include_pad', include);
    await checkAveragePool([2, 2, 5, 5], [kernel([3, 3]), ints('pads', [1, 1, 1, 1]), count]);
    await checkAveragePool([2, 2, 7, 6], [kernel([3, 2]), ints('strides', [2, 2]), ints('pads', [2, 0, 1, 1]), count]);
    // ceil_mode adds a partial last window on both axes (a window that would start in the end
    // padding is avoided: onnxruntime drops it at run time but not in its shape inference).
    await checkAveragePool([2, 2, 6, 7], [kernel([3, 3]), ints('strides', [2, 3]), ints('pads', [1, 0, 1, 1]), attr.int('ceil_mode', 1), count]);
    await checkAveragePool([1, 2, 7, 8], [kernel([3, 2]), ints('strides', [2, 1]), ints('pads', [1, 1, 2, 0]), ints('dilations', [2, 3]), attr.int('ceil_mode', 1), count]);
    await checkAveragePool([2, 3, 9], [kernel([2]), ints('strides', [2]), ints('pads', [1, 1]), count]);
  }
});

test('AveragePool: auto_pad SAME_UPPER and SAME_LOWER, opset 13', async () => {
  for (const autoPad of ['SAME_UPPER', 'SAME_LOWER']) {
    await checkAveragePool([2, 2, 5, 6], [ints('kernel_shape', [2, 3]), ints('strides', [2, 2]), attr.string('auto_pad', autoPad)]);
  }
  await checkAveragePool([2, 2, 6, 6], [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])], 13);
});

test('GlobalAveragePool and GlobalMaxPool', async () => {
  await checkGradient({ build: (b) => b.node('GlobalAveragePool', ['x']), inputs: { x: { dims: [2, 3, 4, 5] } }, wrt: ['x'], dtype: 'float', linear: true });
  await checkGradient({ build: (b) => b.node('GlobalAveragePool', ['x']), inputs: { x: { dims: [2, 3, 7] } }, wrt: ['x'], dtype: 'float', linear: true });
  // No float64 GlobalMaxPool in onnxruntime: float32 against a float64 maximum per (n, c).
  const reference = ({ x }: Record<string, Float64Array>) => Float64Array.from({ length: 6 }, (_, k) => Math.max(...x.subarray(k * 20, k * 20 + 20)));
  await checkGradient({ build: (b) => b.node('GlobalMaxPool', ['x']), inputs: { x: { dims: [2, 3, 4, 5], data: distinct(120) } }, wrt: ['x'], dtype: 'float', reference });
});

/** The gradients of sum(Conv(x, w)) for x and w, with the given declared shape of x. */
async function convGradients(xDims: Dim[], attrs: Attribute[], x: Float32Array, w: Float32Array, wDims: number[], concrete: number[]): Promise<Float32Array[]> {
  const b = new GraphBuilder(new Graph('case'));
  b.input('x', DataType.FLOAT, xDims);
  b.input('w', DataType.FLOAT, wDims);
  b.node('ReduceSum', [b.node('Conv', ['x', 'w'], attrs)], [attr.int('keepdims', 0)], { outputs: ['loss'] });
  b.output('loss');
  const model = buildModel(b.graph, [{ domain: '', version: 17 }], 8);
  const { gradients } = addGradients(model, { loss: 'loss', wrt: ['x', 'w'] });
  model.graph.outputs = [];
  model.graph.addOutput(gradients.get('x') as string);
  model.graph.addOutput(gradients.get('w') as string);
  model.graph.changed();
  const results = await runModel(model, [Tensor.fromArray('x', DataType.FLOAT, concrete, x), Tensor.fromArray('w', DataType.FLOAT, wDims, w)]);
  return results.map((t) => t.data() as Float32Array);
}

test('Conv with symbolic batch and spatial dims: stride 1 groups use run-time shapes, stride 2 fails clearly', async () => {
  const dims = [2, 4, 5, 6];
  const x = Float32Array.from({ length: 240 }, (_, i) => Math.sin(i));
  const w = Float32Array.from({ length: 72 }, (_, i) => Math.cos(i));
  const attrs = [group(2), ints('pads', [1, 0, 0, 1]), ints('dilations', [1, 2])];
  const known = await convGradients(dims, attrs, x, w, [4, 2, 3, 3], dims);
  const symbolic = await convGradients(['N', 4, 'H', 'W'], attrs, x, w, [4, 2, 3, 3], dims);
  assert.equal(symbolic[0].length, 240);
  assert.equal(symbolic[1].length, 72);
  assert.ok(maxAbsDiff(known[0], symbolic[0]) < 1e-5 && maxAbsDiff(known[1], symbolic[1]) < 1e-5);
  await assert.rejects(convGradients(['N', 4, 'H', 'W'], [group(2), ints('strides', [2, 2])], x, w, [4, 2, 3, 3], dims), (e: Error) => e instanceof GradientError && /not static/.test(e.message));
});
