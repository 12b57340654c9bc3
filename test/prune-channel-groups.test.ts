// The channel dependency graph on models built in code, one coupling pattern each: which groups
// it finds, which it blocks and with which node, and that removing channels gives exactly what
// the original computes with the same channels set to zero (max difference <= 1e-5), with
// onnxruntime as the oracle.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Dim } from '../src/ir/value-info.js';
import { analyzeChannels, type ChannelAnalysis } from '../src/graph-edit/channel-groups.js';
import { removeChannels, zeroChannels } from '../src/graph-edit/channel-rewrite.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { floats, pseudoRandom } from './helpers/tensors.js';

const TOLERANCE = 1e-5;

/** A builder with seeded weights and the layers the patterns are made of. */
function layers(opset = 17) {
  const b = new GraphBuilder();
  let seed = 100;
  const weight = (name: string, dims: number[], low = -0.5, high = 0.5) => b.initializer(name, DataType.FLOAT, dims, pseudoRandom(dims.reduce((x, y) => x * y, 1), seed++, low, high));
  return {
    b,
    opset,
    weight,
    conv(x: string, c: number, m: number, name: string, options: { k?: number; group?: number; bias?: boolean } = {}) {
      const k = options.k ?? 3;
      const group = options.group ?? 1;
      const inputs = [x, weight(`${name}.w`, [m, c / group, k, k])];
      if (options.bias !== false) inputs.push(weight(`${name}.b`, [m]));
      return b.node('Conv', inputs, [attr.ints('kernel_shape', [k, k]), attr.ints('pads', [(k - 1) / 2, (k - 1) / 2, (k - 1) / 2, (k - 1) / 2]), attr.int('group', group)], { name });
    },
    bn(x: string, c: number, name: string) {
      return b.node('BatchNormalization', [x, weight(`${name}.scale`, [c], 0.5, 1.5), weight(`${name}.bias`, [c]), weight(`${name}.mean`, [c]), weight(`${name}.var`, [c], 0.5, 1.5)], [], { name });
    },
    relu: (x: string, name?: string) => b.node('Relu', [x], [], name === undefined ? {} : { name }),
    model: (outputs: string[]) => {
      for (const o of outputs) b.output(o, DataType.FLOAT);
      return buildModel(b.graph, [{ domain: '', version: opset }]);
    },
  };
}

/** Removes every third channel (index 1, 4, 7...) of each prunable group. */
function everyThird(analysis: ChannelAnalysis): Set<number> {
  const removed = new Set<number>();
  for (const g of analysis.groups) if (g.blocked === undefined && g.channels.length > 1) g.channels.forEach((c, i) => {
      if (i % 3 === 1) removed.add(c);
    });
  return removed;
}

/** Prunes a copy, zeroes another, runs both and the original; returns the analysis and the pruned copy. */
async function checkRemoval(model: Model, feeds: Tensor[], shapes?: Record<string, Dim[]>): Promise<{ analysis: ChannelAnalysis; pruned: Model }> {
  const pruned = model.clone();
  const analysis = analyzeChannels(pruned, { inputShapes: shapes });
  const removed = everyThird(analysis);
  assert.ok(removed.size > 0, 'something to remove');
  removeChannels(pruned, analysis, removed);
  const zeroed = model.clone();
  zeroChannels(zeroed, analyzeChannels(zeroed, { inputShapes: shapes }), removed);
  const [a, b, original] = await Promise.all([runModel(pruned, feeds), runModel(zeroed, feeds), runModel(model, feeds)]);
  a.forEach((out, i) => {
    assert.deepEqual(out.dims, original[i].dims, `output ${i} keeps its shape`);
    assert.ok(maxAbsDifference(out, b[i]) <= TOLERANCE, `output ${i}: pruned vs zeroed ${maxAbsDifference(out, b[i])}`);
  });
  // Zeroing changed the result (the check is not vacuous).
  assert.ok(original.some((o, i) => maxAbsDifference(o, b[i]) > 1e-4), 'removing channels changes the outputs');
  return { analysis, pruned };
}

const sourcesOf = (analysis: ChannelAnalysis) => analysis.groups.map((g) => ({ sources: g.sources.map((n) => n.name), channels: g.channels.length, blocked: g.blocked?.node }));
const image = (b: GraphBuilder, c = 3, size = 8) => b.input('x', DataType.FLOAT, ['N', c, size, size]);
const imageFeed = (c = 3, size = 8) => [floats('x', [2, c, size, size], 1)];

test('residual Add ties the channels of both branches into one group', async () => {
  const l = layers();
  const x = l.relu(l.conv(image(l.b), 3, 8, 'stem'));
  const y = l.relu(l.bn(l.conv(x, 8, 8, 'body'), 8, 'bn'));
  const sum = l.b.node('Add', [x, y], [], { name: 'residual' });
  const model = l.model([l.conv(sum, 8, 4, 'head')]);
  const { analysis } = await checkRemoval(model, imageFeed());
  assert.deepEqual(sourcesOf(analysis), [
    { sources: ['stem', 'body'], channels: 8, blocked: undefined },
    { sources: ['head'], channels: 4, blocked: 'head' },
  ]);
  assert.match(analysis.groups[1].blocked?.reason ?? '', /graph output/);
});

test('Concat joins groups end to end; the reader of the concatenation loses the matching columns', async () => {
  const l = layers();
  const x = image(l.b);
  const a = l.relu(l.conv(x, 3, 6, 'a'));
  const c = l.relu(l.conv(x, 3, 4, 'c'));
  const joined = l.b.node('Concat', [a, c], [attr.int('axis', 1)], { name: 'join' });
  const model = l.model([l.conv(joined, 10, 5, 'head')]);
  const { analysis, pruned } = await checkRemoval(model, imageFeed());
  assert.deepEqual(
    sourcesOf(analysis).map((g) => [g.sources.join(), g.channels]),
    [
      ['a', 6],
      ['c', 4],
      ['head', 5],
    ],
  );
  // 6 -> 4 and 4 -> 3 channels: head reads 7.
  assert.deepEqual(pruned.graph.initializer('head.w')?.dims, [5, 7, 3, 3]);
});

test('depthwise Conv (with a channel multiplier) goes with its input channels and gets a new group count', async () => {
  const l = layers();
  const x = l.relu(l.conv(image(l.b), 3, 6, 'stem'));
  const dw = l.relu(l.conv(x, 6, 12, 'depthwise', { group: 6 }));
  const model = l.model([l.conv(dw, 12, 4, 'head', { k: 1 })]);
  const { analysis, pruned } = await checkRemoval(model, imageFeed());
  assert.deepEqual(analysis.groups[0].sources.map((n) => n.name), ['stem']);
  assert.equal(analysis.groups[0].channels.length, 6);
  const node = pruned.graph.nodes.find((n) => n.name === 'depthwise');
  assert.equal(node?.attrInt('group'), 4);
  assert.deepEqual(pruned.graph.initializer('depthwise.w')?.dims, [8, 1, 3, 3]);
});

test('grouped Conv keeps its groups equal: position j of every group goes together', async () => {
  const l = layers();
  const x = l.relu(l.conv(image(l.b), 3, 8, 'stem'));
  const grouped = l.relu(l.conv(x, 8, 12, 'grouped', { group: 2 }));
  const model = l.model([l.conv(grouped, 12, 4, 'head', { k: 1 })]);
  const { analysis, pruned } = await checkRemoval(model, imageFeed());
  // stem's 8 channels pair up across the two groups: 4 channels; grouped's 12 outputs: 6.
  assert.deepEqual(
    sourcesOf(analysis).slice(0, 2).map((g) => [g.sources.join(), g.channels]),
    [
      ['stem', 4],
      ['grouped', 6],
    ],
  );
  assert.deepEqual(pruned.graph.initializer('grouped.w')?.dims, [8, 3, 3, 3]);
  assert.equal(pruned.graph.nodes.find((n) => n.name === 'grouped')?.attrInt('group'), 2);
});

test('squeeze-and-excitation: the gate joins the feature map group; the squeeze width is a group of its own', async () => {
  const l = layers();
  const x = l.relu(l.conv(image(l.b), 3, 8, 'stem'));
  const pooled = l.b.node('GlobalAveragePool', [x], [], { name: 'pool' });
  const squeezed = l.relu(l.conv(pooled, 8, 4, 'squeeze', { k: 1 }));
  const gate = l.b.node('HardSigmoid', [l.conv(squeezed, 4, 8, 'excite', { k: 1 })], [attr.float('alpha', 0.2), attr.float('beta', 0.5)], { name: 'gate' });
  const scaled = l.b.node('Mul', [x, gate], [], { name: 'scale' });
  const hswish = l.b.node('HardSwish', [scaled], [], { name: 'hswish' });
  const model = l.model([l.conv(hswish, 8, 3, 'head', { k: 1 })]);
  const { analysis } = await checkRemoval(model, imageFeed());
  assert.deepEqual(
    sourcesOf(analysis).slice(0, 2).map((g) => [g.sources.join(), g.channels]),
    [
      ['stem,excite', 8],
      ['squeeze', 4],
    ],
  );
  assert.ok(analysis.groups[0].nodes.some((n) => n.name === 'excite'), 'the excitation conv is rewritten with the feature map');
});

test('Flatten and a constant Reshape into Gemm: columns go in blocks of H*W and the target shape is rewritten', async () => {
  for (const via of ['Flatten', 'Reshape'] as const) {
    const l = layers();
    const x = l.relu(l.conv(image(l.b, 3, 4), 3, 6, 'stem'));
    const flat =
      via === 'Flatten'
        ? l.b.node('Flatten', [x], [attr.int('axis', 1)], { name: 'flat' })
        : l.b.node('Reshape', [x, l.b.initializer('shape', DataType.INT64, [2], new BigInt64Array([-1n, 96n]))], [], { name: 'flat' });
    const hidden = l.relu(l.b.node('Gemm', [flat, l.weight('fc1.w', [5, 96]), l.weight('fc1.b', [5])], [attr.int('transB', 1)], { name: 'fc1' }));
    const model = l.model([l.b.node('Gemm', [hidden, l.weight('fc2.w', [5, 3]), l.weight('fc2.b', [3])], [], { name: 'fc2' })]);
    const { pruned } = await checkRemoval(model, imageFeed(3, 4));
    assert.deepEqual(pruned.graph.initializer('fc1.w')?.dims, [3, 64], via);
    if (via === 'Reshape') assert.deepEqual(Array.from(pruned.graph.initializer('shape')?.data() as BigInt64Array, Number), [-1, 64]);
  }
});

test('LayerNormalization passes channels on axes it does not normalize and blocks those it does, naming itself', async () => {
  const l = layers();
  const signal = l.b.input('x', DataType.FLOAT, ['N', 3, 10]);
  const conv1d = (x: string, c: number, m: number, name: string) => l.b.node('Conv', [x, l.weight(`${name}.w`, [m, c, 3]), l.weight(`${name}.b`, [m])], [attr.ints('pads', [1, 1])], { name });
  const features = conv1d(signal, 3, 6, 'conv1');
  const normed = l.b.node('LayerNormalization', [features, l.weight('ln.scale', [10], 0.5, 1.5), l.weight('ln.bias', [10])], [attr.int('axis', -1)], { name: 'ln_time' });
  const tokens = l.b.node('Transpose', [conv1d(normed, 6, 8, 'conv2')], [attr.ints('perm', [0, 2, 1])], { name: 'to_tokens' });
  const blocked = l.b.node('LayerNormalization', [tokens, l.weight('ln2.scale', [8], 0.5, 1.5), l.weight('ln2.bias', [8])], [attr.int('axis', -1)], { name: 'ln_features' });
  const model = l.model([l.b.node('MatMul', [blocked, l.weight('proj.w', [8, 4])], [], { name: 'proj' })]);
  const { analysis } = await checkRemoval(model, [floats('x', [2, 3, 10], 2)]);
  const groups = sourcesOf(analysis);
  assert.deepEqual(groups[0], { sources: ['conv1'], channels: 6, blocked: undefined });
  assert.deepEqual(groups[1], { sources: ['conv2'], channels: 8, blocked: 'ln_features' });
  assert.match(analysis.groups[1].blocked?.reason ?? '', /LayerNormalization normalizes over this axis/);
});

test('transformer MLP: the hidden width is prunable, the residual width blocked by the graph input it adds to', async () => {
  const l = layers();
  const x = l.b.input('x', DataType.FLOAT, ['N', 5, 8]);
  const up = l.b.node('Add', [l.b.node('MatMul', [x, l.weight('up.w', [8, 16])], [], { name: 'up' }), l.weight('up.b', [16])], [], { name: 'up_bias' });
  const act = l.b.node('Gelu', [up], [], { name: 'gelu', domain: '' });
  const down = l.b.node('Add', [l.b.node('MatMul', [act, l.weight('down.w', [16, 8])], [], { name: 'down' }), l.weight('down.b', [8])], [], { name: 'down_bias' });
  const model = l.model([l.b.node('Add', [x, down], [], { name: 'residual' })]);
  model.opsetImports = [{ domain: '', version: 20 }];
  const { analysis, pruned } = await checkRemoval(model, [floats('x', [2, 5, 8], 3)]);
  assert.deepEqual(sourcesOf(analysis), [
    { sources: ['up'], channels: 16, blocked: undefined },
    { sources: ['down'], channels: 8, blocked: 'residual' },
  ]);
  assert.deepEqual(pruned.graph.initializer('down.w')?.dims, [11, 8]);
});

test('Split and Slice over the channel axis: sizes and bounds are rewritten', async () => {
  for (const opset of [11, 17]) {
    const l = layers(opset);
    const x = l.relu(l.conv(image(l.b), 3, 9, 'stem'));
    const parts = opset < 13
      ? l.b.node('Split', [x], [attr.int('axis', 1), attr.ints('split', [4, 5])], { name: 'split', outputs: 2 })
      : l.b.node('Split', [x, l.b.initializer('sizes', DataType.INT64, [2], new BigInt64Array([4n, 5n]))], [attr.int('axis', 1)], { name: 'split', outputs: 2 });
    const sliced = l.b.node('Slice', [x, ...(['starts', 'ends', 'axes'] as const).map((n, i) => l.b.initializer(n, DataType.INT64, [1], new BigInt64Array([[2n, 7n, 1n][i]])))], [], { name: 'slice' });
    const model = l.model([l.conv(parts[0], 4, 2, 'left', { k: 1 }), l.conv(parts[1], 5, 2, 'right', { k: 1 }), l.conv(sliced, 5, 2, 'middle', { k: 1 })]);
    const { pruned } = await checkRemoval(model, imageFeed());
    // Removed: 1, 4, 7 -> sizes [3, 3]; positions 2..6 keep 2, 3, 5, 6.
    assert.deepEqual(pruned.graph.initializer('middle.w')?.dims, [2, 4, 1, 1]);
    const split = pruned.graph.nodes.find((n) => n.name === 'split');
    const sizes = opset < 13 ? split?.attrInts('split') : Array.from(pruned.graph.initializer(split?.inputs[1] ?? '')?.data() as BigInt64Array, Number);
    assert.deepEqual(sizes, [3, 3], `opset ${opset}`);
  }
});

test('ConvTranspose and a reshape to tokens feeding MatMul', async () => {
  const l = layers();
  const x = l.relu(l.conv(image(l.b, 3, 4), 3, 6, 'stem'));
  const up = l.b.node('ConvTranspose', [x, l.weight('up.w', [6, 5, 2, 2]), l.weight('up.b', [5])], [attr.ints('strides', [2, 2])], { name: 'up' });
  const bn = l.relu(l.bn(up, 5, 'bn'));
  const tokens = l.b.node('Transpose', [l.b.node('Reshape', [bn, l.b.initializer('to3d.shape', DataType.INT64, [3], new BigInt64Array([0n, 5n, -1n]))], [], { name: 'to3d' })], [attr.ints('perm', [0, 2, 1])], { name: 'tokens' });
  const model = l.model([l.b.node('MatMul', [tokens, l.weight('proj.w', [5, 4])], [], { name: 'proj' })]);
  const { analysis, pruned } = await checkRemoval(model, imageFeed(3, 4));
  assert.deepEqual(
    sourcesOf(analysis).map((g) => [g.sources.join(), g.channels, g.blocked]),
    [
      ['stem', 6, undefined],
      ['up', 5, undefined],
      ['proj', 4, 'proj'],
    ],
  );
  assert.deepEqual(Array.from(pruned.graph.initializer('to3d.shape')?.data() as BigInt64Array, Number), [0, 3, -1]);
});

test('a weight read by two layers ties their channels; an unknown op blocks what it reads, by name', async () => {
  const l = layers();
  const x = image(l.b);
  const shared = l.weight('shared.w', [6, 3, 3, 3]);
  const conv = (name: string) => l.b.node('Conv', [x, shared], [attr.ints('pads', [1, 1, 1, 1])], { name });
  const sum = l.b.node('Mul', [conv('left'), l.relu(conv('right'))], [], { name: 'product' });
  const custom = l.b.node('Relu', [l.conv(x, 3, 4, 'side')], [], { name: 'custom', domain: 'com.example' });
  const model = l.model([l.conv(sum, 6, 2, 'head', { k: 1 }), custom]);
  const analysis = analyzeChannels(model);
  assert.deepEqual(
    sourcesOf(analysis).map((g) => [g.sources.join(), g.channels, g.blocked]),
    [
      ['left,right', 6, undefined],
      ['side', 4, 'custom'],
      ['head', 2, 'head'],
    ],
  );
  assert.match(analysis.groups[1].blocked?.reason ?? '', /com\.example\.Relu is not followed/);
});

test('a layer inside an If branch forms a group of its own; values read from outside are blocked', async () => {
  const l = layers();
  const x = l.relu(l.conv(image(l.b), 3, 4, 'outer'));
  const flag = l.b.input('flag', DataType.BOOL, []);
  const branch = (name: string) =>
    l.b.subgraph(name, (sub) => {
      const w = sub.initializer(`${name}.w1`, DataType.FLOAT, [6, 4, 1, 1], pseudoRandom(24, name.length));
      const w2 = sub.initializer(`${name}.w2`, DataType.FLOAT, [2, 6, 1, 1], pseudoRandom(12, name.length + 1));
      const y = sub.node('Relu', [sub.node('Conv', [x, w], [], { name: `${name}.conv1` })]);
      sub.output(sub.node('Conv', [y, w2], [], { name: `${name}.conv2` }), DataType.FLOAT);
    });
  const out = l.b.node('If', [flag], [attr.graph('then_branch', branch('then')), attr.graph('else_branch', branch('else'))], { name: 'if' });
  const model = l.model([out]);
  const pruned = model.clone();
  const analysis = analyzeChannels(pruned);
  const groups = sourcesOf(analysis);
  assert.deepEqual(groups[0], { sources: ['outer'], channels: 4, blocked: 'if' });
  assert.deepEqual(groups.find((g) => g.sources[0] === 'then.conv1'), { sources: ['then.conv1'], channels: 6, blocked: undefined });
  const removed = everyThird(analysis);
  removeChannels(pruned, analysis, removed);
  const zeroed = model.clone();
  zeroChannels(zeroed, analyzeChannels(zeroed), removed);
  const feeds = [floats('x', [1, 3, 8, 8], 4), Tensor.fromArray('flag', DataType.BOOL, [], new Uint8Array([1]))];
  const [a] = await runModel(pruned, feeds);
  const [b] = await runModel(zeroed, feeds);
  assert.ok(maxAbsDifference(a, b) <= TOLERANCE);
});
