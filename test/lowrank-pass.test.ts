// The lowrank pass on small models built in code, onnxruntime as the oracle: at full rank the
// factored model computes what the original did (max diff <= 1e-4) for MatMul, every Gemm form
// (transA, transB, alpha, beta, bias; opset 9 with its zero C), Conv with strides/pads/dilations
// and bias, a weight in a Constant node inside an If branch, and a weight shared by two MatMuls;
// a weight of exact rank r factored at r is exact with fewer parameters; grouped and depthwise
// convolutions, shared weights and excluded layers are left alone with the reason; the energy,
// rank and ratio choices; bad settings are one-line errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { gaussian, matmul } from '../src/kernels/svd.js';
import { type LowRankDetails, type LowRankOptions, floatParameters, lowRankPass } from '../src/methods/lowrank/lowrank.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { runPass } from '../src/pipeline/pass.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { floats } from './helpers/tensors.js';

async function factor(model: Model, options: LowRankOptions): Promise<LowRankDetails> {
  const report = await runPass(lowRankPass, model, options, { ort: nodeOrt });
  return (report as typeof report & { details: LowRankDetails }).details;
}

/** Runs both models on `feeds` and returns the largest output difference. */
async function difference(original: Model, factored: Model, feeds: Tensor[]): Promise<number> {
  const a = await runModel(original, feeds);
  const b = await runModel(factored, feeds);
  return Math.max(...a.map((t, i) => maxAbsDifference(t, b[i])));
}

const weight = (name: string, dims: number[], seed: number) => Tensor.fromArray(name, DataType.FLOAT, dims, Float32Array.from(gaussian(dims.reduce((a, b) => a * b, 1), seed), (x) => x * 0.3));

function matmulModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3, 24]);
  const w = b.tensor(weight('W', [24, 16], 1));
  b.output(b.node('MatMul', [x, w], [], { name: 'mm', outputs: ['y'] })[0], DataType.FLOAT);
  return buildModel(b.graph);
}

test('MatMul at full rank: same outputs; an exactly rank-3 weight at rank 3: same outputs, fewer parameters', async () => {
  const x = floats('x', [2, 3, 24], 1);
  const model = matmulModel();
  const factored = model.clone();
  const details = await factor(factored, { rank: 100, onlyWhenSmaller: false });
  assert.equal(details.layers.length, 1);
  assert.equal(details.layers[0].rank, 16);
  assert.deepEqual(factored.graph.nodes.map((n) => n.opType), ['MatMul', 'MatMul']);
  assert.equal(factored.graph.nodes[1].name, 'mm', 'the second node keeps the layer name and output');
  assert.equal(factored.graph.initializer('W'), undefined, 'the original weight is gone');
  assert.ok((await difference(model, factored, [x])) <= 1e-4);

  const b = new GraphBuilder();
  const input = b.input('x', DataType.FLOAT, [2, 3, 24]);
  const low = Float32Array.from(matmul(gaussian(24 * 3, 5), 24, 3, gaussian(3 * 16, 6), 16));
  b.output(b.node('MatMul', [input, b.initializer('W', DataType.FLOAT, [24, 16], low)], [], { outputs: ['y'] })[0], DataType.FLOAT);
  const rank3 = buildModel(b.graph);
  const out = rank3.clone();
  const d = await factor(out, { energy: 1 });
  assert.equal(d.layers[0].rank, 3);
  assert.equal(d.layers[0].parametersAfter, 3 * (24 + 16));
  assert.ok(d.layers[0].energyKept > 1 - 1e-9);
  assert.equal(floatParameters(out), 120);
  assert.ok((await difference(rank3, out, [x])) <= 1e-4);
});

test('Gemm: transA, transB, alpha, beta and bias kept exactly at full rank (opset 17 and opset 9)', async () => {
  for (const opset of [17, 9]) {
    for (const transA of [0, 1]) {
      for (const transB of [0, 1]) {
        const b = new GraphBuilder();
        const x = b.input('x', DataType.FLOAT, transA ? [20, 5] : [5, 20]);
        const w = b.tensor(weight('W', transB ? [12, 20] : [20, 12], 2));
        const c = b.tensor(weight('C', [12], 3));
        b.output(b.node('Gemm', [x, w, c], [attr.int('transA', transA), attr.int('transB', transB), attr.float('alpha', 0.7), attr.float('beta', 1.3)], { outputs: ['y'] })[0], DataType.FLOAT);
        const model = buildModel(b.graph, [{ domain: '', version: opset }]);
        const factored = model.clone();
        const details = await factor(factored, { rank: 12, onlyWhenSmaller: false });
        assert.equal(details.layers.length, 1);
        assert.equal(factored.graph.nodes.filter((n) => n.opType === 'Gemm').length, 2);
        const feeds = [floats('x', transA ? [20, 5] : [5, 20], 4)];
        const diff = await difference(model, factored, feeds);
        assert.ok(diff <= 1e-4, `opset ${opset} transA ${transA} transB ${transB}: ${diff}`);
        // Below full rank the layer is the rank-r approximation, with the same bias and scales.
        const low = model.clone();
        const d = await factor(low, { rank: 4 });
        assert.equal(d.layers[0].parametersAfter, 4 * 32);
        assert.ok((await difference(model, low, feeds)) > 1e-3);
      }
    }
  }
});

test('Conv (group 1, strides, pads, dilations, bias) at full rank; grouped and depthwise convs left alone with the reason', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 6, 13, 11]);
  const w = b.tensor(weight('W', [10, 6, 3, 3], 7));
  const bias = b.tensor(weight('B', [10], 8));
  const y = b.node('Conv', [x, w, bias], [attr.ints('kernel_shape', [3, 3]), attr.ints('strides', [2, 1]), attr.ints('pads', [1, 0, 1, 2]), attr.ints('dilations', [1, 2])], { name: 'conv' });
  const g = b.node('Conv', [y, b.tensor(weight('G', [10, 5, 1, 1], 9))], [attr.int('group', 2)], { name: 'grouped' });
  b.output(b.node('Conv', [g, b.tensor(weight('D', [10, 1, 3, 3], 10))], [attr.int('group', 10), attr.ints('pads', [1, 1, 1, 1])], { name: 'depthwise', outputs: ['out'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);
  const factored = model.clone();
  const details = await factor(factored, { rank: 10, onlyWhenSmaller: false });
  assert.deepEqual(details.layers.map((l) => [l.nodes[0], l.matrix, l.rank]), [['conv', [10, 54], 10]]);
  assert.deepEqual(details.skipped.map((s) => s.node), ['grouped', 'depthwise']);
  assert.match(details.skipped[0].reason, /grouped convolution \(group 2\)/);
  assert.match(details.skipped[1].reason, /depthwise/);
  const first = factored.graph.nodes.find((n) => n.name === 'conv_lowrank_in');
  assert.deepEqual(first?.attribute('strides')?.value, [2n, 1n]);
  assert.deepEqual(factored.graph.nodes.find((n) => n.name === 'conv')?.attribute('kernel_shape')?.value, [1n, 1n]);
  assert.ok((await difference(model, factored, [floats('x', [1, 6, 13, 11], 11)])) <= 1e-4);
});

test('a Constant-node weight inside an If branch is factored there (as Constant nodes); a weight shared by two MatMuls is factored once', async () => {
  const b = new GraphBuilder();
  const cond = b.input('cond', DataType.BOOL, []);
  const x = b.input('x', DataType.FLOAT, [4, 30]);
  const shared = b.tensor(weight('S', [30, 30], 12));
  const thenBranch = b.subgraph('then', (s) => {
    const w = s.constant(weight('Wt', [30, 8], 13));
    s.output(s.node('MatMul', [x, w], [], { name: 'inner', outputs: ['then_out'] })[0], DataType.FLOAT);
  });
  const elseBranch = b.subgraph('else', (s) => {
    s.output(s.node('MatMul', [x, b.tensor(weight('We', [30, 8], 14))], [], { name: 'other', outputs: ['else_out'] })[0], DataType.FLOAT);
  });
  const branch = b.node('If', [cond], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)]);
  const h = b.node('MatMul', [x, shared], [], { name: 'first' });
  b.output(b.node('MatMul', [h, shared], [], { name: 'second', outputs: ['twice'] })[0], DataType.FLOAT);
  b.output(branch, DataType.FLOAT);
  const model = buildModel(b.graph);
  const factored = model.clone();
  const details = await factor(factored, { rank: 100, onlyWhenSmaller: false, exclude: ['other'] });
  assert.deepEqual(details.layers.map((l) => [l.weight, l.nodes]).sort(), [['S', ['first', 'second']], ['Wt', ['inner']]]);
  assert.deepEqual(details.skipped, [{ node: 'other', reason: "excluded by 'other'" }]);
  const then = factored.graph.nodes.find((n) => n.opType === 'If')?.attribute('then_branch')?.value as unknown as { nodes: { opType: string }[] };
  assert.deepEqual(then.nodes.map((n) => n.opType).sort(), ['Constant', 'Constant', 'MatMul', 'MatMul']);
  for (const c of [true, false]) {
    const feeds = [Tensor.fromArray('cond', DataType.BOOL, [], new Uint8Array([c ? 1 : 0])), floats('x', [4, 30], 15)];
    assert.ok((await difference(model, factored, feeds)) <= 1e-4, `cond ${c}`);
  }
});

test('left alone: a weight also read by another node; ranks that save nothing; --only', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 16]);
  const w = b.tensor(weight('W', [16, 16], 20));
  const y = b.node('MatMul', [x, w], [], { name: 'mm' });
  b.output(b.node('Add', [y, b.node('ReduceSum', [w], [attr.int('keepdims', 0)])], [], { outputs: ['y'] })[0], DataType.FLOAT);
  b.output(b.node('MatMul', [x, b.tensor(weight('V', [16, 64], 21))], [], { name: 'wide', outputs: ['z'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);
  const details = await factor(model.clone(), { rank: 8 });
  assert.match(details.skipped.find((s) => s.node === 'mm')?.reason ?? '', /also read by .*ReduceSum/);
  assert.deepEqual(details.layers.map((l) => l.nodes[0]), ['wide']);
  const none = await factor(model.clone(), { rank: 15 });
  assert.match(none.skipped.find((s) => s.node === 'wide')?.reason ?? '', /rank 15 saves no parameters: factors of \[16, 64\] hold 1200 >= 1024 \(ranks up to 12 save\)/);
  const only = await factor(model.clone(), { rank: 4, only: ['nothing-here'] });
  assert.equal(only.layers.length, 0);
});

test('energy, rank and ratio choose ranks as specified; bad settings are one-line errors', async () => {
  // Weight with singular values 8, 4, 2, 1, 0.5, ... (energy shares 0.75, 0.9375, ...).
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [3, 40]);
  const s = Array.from({ length: 20 }, (_, i) => 8 / 2 ** i);
  const u = gaussian(40 * 20, 30);
  const { orthonormalize } = await import('../src/kernels/svd.js');
  const q = orthonormalize(u, 40, 20);
  const v = orthonormalize(gaussian(30 * 20, 31), 30, 20);
  const vt = new Float64Array(20 * 30);
  for (let i = 0; i < 30; i++) for (let j = 0; j < 20; j++) vt[j * 30 + i] = v[i * 20 + j] * s[j];
  b.output(b.node('MatMul', [x, b.initializer('W', DataType.FLOAT, [40, 30], Float32Array.from(matmul(q, 40, 20, vt, 30)))], [], { outputs: ['y'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);
  for (const [energy, rank] of [
    [0.7, 1],
    [0.74, 1],
    [0.76, 2],
    [0.9, 2],
    [0.99, 4],
  ] as const) {
    const d = await factor(model.clone(), { energy });
    assert.equal(d.layers[0].rank, rank, `energy ${energy}`);
  }
  const r = await factor(model.clone(), { rank: 3 });
  assert.ok(Math.abs(r.layers[0].energyKept - (64 + 16 + 4) / (s.reduce((a, x) => a + x * x, 0))) < 1e-6);
  assert.ok(Math.abs(r.layers[0].relativeError - Math.sqrt(1 - r.layers[0].energyKept)) < 1e-12);
  const half = await factor(model.clone(), { ratio: 0.5 });
  assert.ok(half.parameters.after <= 600, `${half.parameters.after}`);
  assert.equal(half.layers[0].rank, 8, 'the largest rank within the budget: 8 x 70 = 560 <= 600');
  for (const [options, message] of [
    [{}, /exactly one of energy, rank, ratio \(got 0\)/],
    [{ energy: 0.9, rank: 2 }, /exactly one/],
    [{ energy: 0 }, /energy must be in \(0, 1\], got 0/],
    [{ energy: 1.5 }, /energy must be in/],
    [{ rank: 0 }, /rank must be a whole number >= 1, got 0/],
    [{ ratio: 1 }, /ratio must be in \(0, 1\), got 1/],
  ] as const) {
    await assert.rejects(factor(model.clone(), options as LowRankOptions), message);
  }
});
