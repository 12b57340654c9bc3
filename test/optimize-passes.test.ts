// Layer (a) tests of the optimizer passes: for each pass a tiny model built in code, a check of
// the structural change it must make (and of what it must leave alone), and onnxruntime run on
// the model before and after: outputs must agree within 1e-5 and the result must validate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { validateGraph } from '../src/ir/validate.js';
import { writeModel } from '../src/onnx/model-io.js';
import { runPass, type Pass, type PassReport } from '../src/pipeline/pass.js';
import { commonSubexpressionPass } from '../src/optimize/common-subexpression.js';
import { constantsToInitializersPass, initializersToConstantsPass } from '../src/optimize/constants-to-initializers.js';
import { dedupeInitializersPass } from '../src/optimize/dedupe-initializers.js';
import { eliminateDeadNodesPass } from '../src/optimize/eliminate-dead-nodes.js';
import { eliminateIdentityPass } from '../src/optimize/eliminate-identity.js';
import { eliminateNoopPass } from '../src/optimize/eliminate-noop.js';
import { eliminateUnusedInitializersPass } from '../src/optimize/eliminate-unused-initializers.js';
import { foldAffineIntoConvPass } from '../src/optimize/fold-affine-into-conv.js';
import { foldBatchNormPass } from '../src/optimize/fold-batchnorm.js';
import { mergeReshapesPass } from '../src/optimize/merge-reshapes.js';
import { mergeTransposesPass } from '../src/optimize/merge-transposes.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { OPTIMIZER_PASSES } from '../src/optimize/passes.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { elementCount, floats, ints, pseudoRandom } from './helpers/tensors.js';

const positive = (name: string, dims: number[], seed: number) =>
  Tensor.fromArray(name, DataType.FLOAT, dims, pseudoRandom(elementCount(dims), seed).map((v) => 0.5 + Math.abs(v)));

/**
 * Runs `pass` on `model` and checks the result: it validates without errors, runs in
 * onnxruntime, and gives the outputs of the model as it was (same names, within 1e-5).
 */
async function applyAndCompare(pass: Pass, model: Model, feeds: Tensor[]): Promise<PassReport> {
  const before = writeModel(model);
  const expected = await runModel(before, feeds);
  const report = await runPass(pass, model, {});
  const errors = validateGraph(model).filter((i) => i.severity === 'error');
  assert.deepEqual(errors, [], `${pass.name} left an invalid graph`);
  const actual = await runModel(writeModel(model), feeds);
  assert.deepEqual(actual.map((t) => t.name), expected.map((t) => t.name), `${pass.name} changed the output names`);
  expected.forEach((e, i) => assert.ok(maxAbsDifference(actual[i], e) <= 1e-5, `${pass.name}: output '${e.name}' moved by ${maxAbsDifference(actual[i], e)}`));
  return report;
}

const ops = (model: Model) => model.graph.nodes.map((n) => n.opType);

test('eliminate-identity removes Identity and inference Dropout, keeps an Identity that passes an outer value out of a branch', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  const cond = b.input('cond', DataType.BOOL, []);
  const a = b.node('Identity', [x]);
  const r = b.node('Relu', [a]);
  const [d] = b.node('Dropout', [r], [], { outputs: ['dropped', 'mask'] });
  b.node('Identity', [d], [], { outputs: ['y'] })[0];
  const thenBranch = b.subgraph('then', (s) => s.output(s.node('Identity', [r]), DataType.FLOAT));
  const elseBranch = b.subgraph('else', (s) => s.output(s.node('Neg', [r]), DataType.FLOAT));
  b.node('If', [cond], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)], { outputs: ['z'] })[0];
  b.output('y', DataType.FLOAT);
  b.output('z', DataType.FLOAT);
  const model = buildModel(b.graph, [{ domain: '', version: 13 }]);

  const report = await applyAndCompare(eliminateIdentityPass, model, [floats('x', [2, 3], 1), Tensor.fromArray('cond', DataType.BOOL, [], new Uint8Array([1]))]);
  assert.deepEqual(ops(model), ['Relu', 'If']);
  assert.equal(model.graph.nodes[0].outputs[0], 'y', 'the Relu now writes the graph output itself');
  assert.equal(thenBranch.nodes[0].opType, 'Identity', 'the branch still needs its Identity');
  assert.equal(report.stats.identitiesRemoved, 2);
  assert.equal(report.stats.dropoutsRemoved, 1);
  assert.ok(report.warnings.some((w) => w.code === 'identity-kept' && w.message.includes('enclosing graph')));
});

test('eliminate-dead-nodes removes unread nodes in every scope and keeps what subgraphs read', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [4]);
  const cond = b.input('cond', DataType.BOOL, []);
  const outerRead = b.node('Abs', [x], [], { outputs: ['abs'] })[0];
  b.node('Neg', [b.node('Sigmoid', [x])]);
  const thenBranch = b.subgraph('then', (s) => {
    s.node('Exp', [x]);
    s.output(s.node('Relu', [outerRead]), DataType.FLOAT);
  });
  const elseBranch = b.subgraph('else', (s) => s.output(s.node('Neg', [x]), DataType.FLOAT));
  b.node('If', [cond], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)], { outputs: ['y'] })[0];
  b.output('y', DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(eliminateDeadNodesPass, model, [floats('x', [4], 2), Tensor.fromArray('cond', DataType.BOOL, [], new Uint8Array([1]))]);
  assert.deepEqual(ops(model), ['Abs', 'If']);
  assert.deepEqual(thenBranch.nodes.map((n) => n.opType), ['Relu']);
  assert.equal(report.stats.nodesRemoved, 3);
});

test('eliminate-unused-initializers drops unread initializers and keeps graph-input defaults', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [3]);
  const w = b.tensor(floats('w', [3], 3));
  b.tensor(floats('unused', [64], 4));
  b.input('default_in', DataType.FLOAT, [3]);
  b.graph.addInitializer(floats('default_in', [3], 5));
  b.output(b.node('Mul', [x, w], [], { outputs: ['y'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(eliminateUnusedInitializersPass, model, [floats('x', [3], 6)]);
  assert.deepEqual(model.graph.initializers.map((t) => t.name), ['w', 'default_in']);
  assert.equal(report.stats.bytesSaved, 256);
});

test('eliminate-noop removes provable no-ops and keeps a Cast that changes the type', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  let v = b.node('Cast', [x], [attr.int('to', DataType.FLOAT)]);
  v = b.node('Transpose', [v], [attr.ints('perm', [0, 1])]);
  v = b.node('Pad', [v, b.tensor(ints('pads', [0, 0, 0, 0]))]);
  v = b.node('Slice', [v, b.tensor(ints('starts', [0, 0])), b.tensor(ints('ends', [2, 2 ** 40])), b.tensor(ints('axes', [0, -1]))]);
  v = b.node('Reshape', [v, b.tensor(ints('shape', [0, -1]))]);
  v = b.node('Relu', [v]);
  b.node('Cast', [v], [attr.int('to', DataType.DOUBLE)], { outputs: ['y'] })[0];
  b.output('y', DataType.DOUBLE);
  b.output(b.node('Slice', [x, b.tensor(ints('s1', [1])), b.tensor(ints('e1', [2])), b.tensor(ints('a1', [0]))], [], { outputs: ['part'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(eliminateNoopPass, model, [floats('x', [2, 3], 7)]);
  assert.deepEqual(ops(model), ['Relu', 'Cast', 'Slice']);
  assert.equal(model.graph.nodes[0].inputs[0], 'x');
  assert.equal(report.stats.nodesRemoved, 5);
});

test('constants-to-initializers moves Constant nodes into initializers in every scope, and back', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [3]);
  const cond = b.input('cond', DataType.BOOL, []);
  const k = b.constant(floats('k', [3], 8));
  const scaled = b.node('Mul', [x, k]);
  const thenBranch = b.subgraph('then', (s) => s.output(s.node('Add', [scaled, s.constant(floats('bias', [3], 9))]), DataType.FLOAT));
  const elseBranch = b.subgraph('else', (s) => s.output(s.node('Neg', [scaled]), DataType.FLOAT));
  b.node('If', [cond], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)], { outputs: ['y'] })[0];
  b.output('y', DataType.FLOAT);
  const model = buildModel(b.graph);
  const feeds = [floats('x', [3], 10), Tensor.fromArray('cond', DataType.BOOL, [], new Uint8Array([1]))];

  const report = await applyAndCompare(constantsToInitializersPass, model, feeds);
  assert.deepEqual(ops(model), ['Mul', 'If']);
  assert.deepEqual(model.graph.initializers.map((t) => t.name), [k]);
  assert.equal(thenBranch.initializers.length, 1, 'the branch keeps its constant as its own initializer');
  assert.equal(report.stats.nodesRemoved, 2);

  const back = await applyAndCompare(initializersToConstantsPass, model, feeds);
  assert.deepEqual(ops(model), ['Constant', 'Mul', 'If']);
  assert.equal(thenBranch.initializers.length, 0);
  assert.equal(back.stats.nodesAdded, 2);
});

test('dedupe-initializers keeps one copy of identical tensors, hoisting twins of two branches', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [4]);
  const cond = b.input('cond', DataType.BOOL, []);
  const w1 = b.tensor(floats('w1', [4], 11));
  const w2 = b.tensor(floats('w2', [4], 11));
  const other = b.tensor(floats('other', [4], 12));
  const sum = b.node('Add', [b.node('Mul', [x, w1]), b.node('Mul', [x, w2])]);
  const thenBranch = b.subgraph('then', (s) => s.output(s.node('Mul', [sum, s.tensor(floats('t', [4], 13))]), DataType.FLOAT));
  const elseBranch = b.subgraph('else', (s) => s.output(s.node('Add', [sum, s.tensor(floats('e', [4], 13))]), DataType.FLOAT));
  b.node('If', [cond], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)], { outputs: ['y'] })[0];
  b.output(b.node('Sub', [x, other], [], { outputs: ['z'] })[0], DataType.FLOAT);
  b.output('y', DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(dedupeInitializersPass, model, [floats('x', [4], 14), Tensor.fromArray('cond', DataType.BOOL, [], new Uint8Array([0]))]);
  assert.deepEqual(model.graph.initializers.map((t) => t.name).sort(), [w1, other, 't'].sort());
  assert.equal(thenBranch.initializers.length + elseBranch.initializers.length, 0);
  assert.equal(report.stats.initializersRemoved, 2);
  assert.equal(report.stats.initializersHoisted, 1);
  assert.equal(report.stats.bytesSaved, 32);
});

test('common-subexpression merges identical nodes and constants', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  const k1 = b.constant(floats('k', [3], 15));
  const k2 = b.constant(floats('k', [3], 15));
  const a1 = b.node('Mul', [b.node('Relu', [x]), k1]);
  const a2 = b.node('Mul', [b.node('Relu', [x]), k2]);
  b.output(b.node('Add', [a1, a2], [], { outputs: ['y'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(commonSubexpressionPass, model, [floats('x', [2, 3], 16)]);
  assert.deepEqual(ops(model), ['Constant', 'Relu', 'Mul', 'Add']);
  assert.deepEqual(model.graph.nodes[3].inputs, [a1, a1]);
  assert.equal(report.stats.nodesRemoved, 3);
});

test('common-subexpression leaves random ops apart', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  const r1 = b.node('RandomUniformLike', [x], [attr.int('seed', 1)]);
  const r2 = b.node('RandomUniformLike', [x], [attr.int('seed', 1)]);
  b.output(b.node('Sub', [r1, r2], [], { outputs: ['noise'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);
  const report = await runPass(commonSubexpressionPass, model, {});
  assert.equal(report.stats.nodesRemoved, 0);
  assert.deepEqual(ops(model), ['RandomUniformLike', 'RandomUniformLike', 'Sub']);
});

/** BatchNormalization after `producerOutput` with C channels, parameters as Constant nodes. */
function batchNorm(b: GraphBuilder, input: string, channels: number, seed: number, output = 'y'): string {
  const params = [floats('scale', [channels], seed), floats('B', [channels], seed + 1), floats('mean', [channels], seed + 2), positive('var', [channels], seed + 3)];
  return b.node('BatchNormalization', [input, ...params.map((t) => b.constant(t))], [attr.float('epsilon', 1e-3)], { outputs: [output] })[0];
}

const convCases = [
  { name: 'Conv', op: 'Conv', weight: [4, 3, 3, 3], group: 1, channels: 4, bias: true },
  { name: 'depthwise Conv (group = channels)', op: 'Conv', weight: [3, 1, 3, 3], group: 3, channels: 3, bias: false },
  { name: 'ConvTranspose', op: 'ConvTranspose', weight: [3, 4, 2, 2], group: 1, channels: 4, bias: true },
  { name: 'grouped ConvTranspose', op: 'ConvTranspose', weight: [4, 3, 2, 2], group: 2, channels: 6, bias: false },
];

for (const spec of convCases) {
  test(`fold-batchnorm folds BatchNormalization into a ${spec.name}`, async () => {
    const b = new GraphBuilder();
    const inChannels = spec.op === 'Conv' ? spec.weight[1] * spec.group : spec.weight[0];
    const x = b.input('x', DataType.FLOAT, [1, inChannels, 6, 6]);
    const inputs = [x, b.constant(floats('w', spec.weight, 20))];
    if (spec.bias) inputs.push(b.tensor(floats('bias', [spec.channels], 21)));
    const attributes = [attr.int('group', spec.group), attr.ints('strides', spec.op === 'Conv' ? [1, 1] : [2, 2])];
    const conv = b.node(spec.op, inputs, attributes);
    b.output(batchNorm(b, conv, spec.channels, 22), DataType.FLOAT);
    const model = buildModel(b.graph);

    const report = await applyAndCompare(foldBatchNormPass, model, [floats('x', [1, inChannels, 6, 6], 23)]);
    assert.equal(report.stats.batchNormsFolded, 1);
    assert.deepEqual(ops(model).filter((o) => o !== 'Constant'), [spec.op]);
    assert.equal(model.graph.nodes.find((n) => n.opType === spec.op)?.outputs[0], 'y');
  });
}

test('fold-batchnorm folds into a Gemm (transB, broadcast C) and a 2-D MatMul, and keeps a shared producer', async () => {
  const b = new GraphBuilder();
  const a = b.input('a', DataType.FLOAT, [5, 4]);
  const gemm = b.node('Gemm', [a, b.tensor(floats('wt', [6, 4], 30)), b.tensor(floats('c', [1, 6], 31))], [attr.int('transB', 1), attr.float('alpha', 0.5), attr.float('beta', 2)]);
  b.output(batchNorm(b, gemm, 6, 32, 'g'), DataType.FLOAT);
  const mm = b.node('MatMul', [a, b.tensor(floats('wm', [4, 3], 33))]);
  b.output(batchNorm(b, mm, 3, 34, 'm'), DataType.FLOAT);
  const shared = b.node('MatMul', [a, b.tensor(floats('ws', [4, 3], 35))], [], { outputs: ['shared'] })[0];
  b.output(shared, DataType.FLOAT);
  b.output(batchNorm(b, shared, 3, 36, 's'), DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(foldBatchNormPass, model, [floats('a', [5, 4], 37)]);
  assert.equal(report.stats.batchNormsFolded, 2);
  assert.deepEqual(ops(model).filter((o) => o !== 'Constant'), ['Gemm', 'Gemm', 'MatMul', 'BatchNormalization']);
  assert.ok(report.warnings.some((w) => w.message.includes("'shared' has other readers")));
});

test('fold-affine-into-conv folds Mul, Add, Sub and Div by per-channel constants into Conv and Gemm', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 2, 5, 5]);
  let v = b.node('Conv', [x, b.tensor(floats('w', [3, 2, 3, 3], 40))]);
  v = b.node('Mul', [v, b.tensor(floats('k', [3, 1, 1], 41))]);
  v = b.node('Add', [b.tensor(floats('add', [1, 3, 1, 1], 42)), v]);
  v = b.node('Sub', [b.tensor(floats('from', [], 43)), v]);
  v = b.node('Div', [v, b.tensor(positive('div', [3, 1, 1], 44))]);
  b.output(b.node('Relu', [v], [], { outputs: ['y'] })[0], DataType.FLOAT);
  const a = b.input('a', DataType.FLOAT, [2, 4]);
  const g = b.node('Gemm', [a, b.tensor(floats('wg', [4, 5], 45))]);
  b.output(b.node('Add', [g, b.tensor(floats('bg', [5], 46))], [], { outputs: ['z'] })[0], DataType.FLOAT);
  // Varies along the spatial axes: not one value per channel, so it stays.
  const c = b.node('Conv', [x, b.tensor(floats('w2', [3, 2, 3, 3], 47))]);
  b.output(b.node('Mul', [c, b.tensor(floats('spatial', [3, 3], 48))], [], { outputs: ['kept'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);

  const feeds = [floats('x', [1, 2, 5, 5], 49), floats('a', [2, 4], 50)];
  let report = await applyAndCompare(foldAffineIntoConvPass, model, feeds);
  let folded = report.stats.nodesRemoved;
  // Each sweep folds the first op after each producer; the optimizer repeats until nothing is left.
  while (report.stats.nodesRemoved > 0) {
    report = await applyAndCompare(foldAffineIntoConvPass, model, feeds);
    folded += report.stats.nodesRemoved;
  }
  assert.equal(folded, 5);
  assert.deepEqual(ops(model), ['Conv', 'Relu', 'Gemm', 'Conv', 'Mul']);
  assert.ok(report.warnings.some((w) => w.message.includes('not one value per output channel')));
});

test('merge-transposes composes pairs and removes pairs that cancel', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3, 4]);
  const t1 = b.node('Transpose', [x], [attr.ints('perm', [0, 2, 1])]);
  const t2 = b.node('Transpose', [t1], [attr.ints('perm', [0, 2, 1])]);
  b.output(b.node('Relu', [t2], [], { outputs: ['y'] })[0], DataType.FLOAT);
  const t3 = b.node('Transpose', [x], [attr.ints('perm', [1, 0, 2])]);
  b.output(b.node('Transpose', [t3], [attr.ints('perm', [2, 0, 1])], { outputs: ['z'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(mergeTransposesPass, model, [floats('x', [2, 3, 4], 51)]);
  assert.deepEqual(ops(model), ['Relu', 'Transpose']);
  assert.deepEqual(model.graph.nodes[0].inputs, ['x']);
  assert.deepEqual(model.graph.nodes[1].attrInts('perm'), [2, 1, 0]);
  assert.equal(report.stats.nodesRemoved, 3);
});

test('merge-reshapes replaces a Reshape of a Reshape, unless the second copies a dim with 0', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3, 4]);
  const r1 = b.node('Reshape', [x, b.tensor(ints('s1', [6, 4]))]);
  b.output(b.node('Reshape', [r1, b.tensor(ints('s2', [4, -1]))], [], { outputs: ['y'] })[0], DataType.FLOAT);
  const r3 = b.node('Reshape', [x, b.tensor(ints('s3', [4, 6]))]);
  b.output(b.node('Reshape', [r3, b.tensor(ints('s4', [0, 3, 2]))], [], { outputs: ['z'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph);

  const report = await applyAndCompare(mergeReshapesPass, model, [floats('x', [2, 3, 4], 52)]);
  assert.deepEqual(ops(model), ['Reshape', 'Reshape', 'Reshape']);
  assert.deepEqual(model.graph.nodes[0].inputs, ['x', 's2']);
  assert.equal(report.stats.reshapesMerged, 1);
  assert.ok(report.warnings.some((w) => w.message.includes('copies a dim')));
});

test('optimizeModel runs the registry by level, repeats to a fixed point, and rejects unknown passes', async () => {
  const build = () => {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, [1, 2, 4, 4]);
    let v = b.node('Identity', [x]);
    v = b.node('Conv', [v, b.constant(floats('w', [3, 2, 1, 1], 60))]);
    v = b.node('Mul', [v, b.constant(floats('k', [3, 1, 1], 61))]);
    v = b.node('Add', [v, b.constant(floats('k2', [3, 1, 1], 62))]);
    b.output(batchNorm(b, v, 3, 63), DataType.FLOAT);
    return buildModel(b.graph);
  };
  const basic = build();
  await optimizeModel(basic, { level: 'basic' });
  assert.deepEqual(ops(basic), ['Conv', 'Mul', 'Add', 'BatchNormalization']);

  const full = build();
  const feeds = [floats('x', [1, 2, 4, 4], 64)];
  const expected = await runModel(writeModel(full), feeds);
  const reports = await optimizeModel(full, { level: 'full' });
  assert.deepEqual(ops(full), ['Conv']);
  assert.deepEqual(reports.map((r) => r.pass), OPTIMIZER_PASSES.filter((e) => !e.optIn).map((e) => e.pass.name));
  assert.ok(maxAbsDifference((await runModel(full, feeds))[0], expected[0]) <= 1e-5);
  assert.deepEqual(validateGraph(full).filter((i) => i.severity === 'error'), []);

  const skipped = build();
  await optimizeModel(skipped, { skip: ['fold-batchnorm'] });
  assert.deepEqual(ops(skipped), ['Conv', 'BatchNormalization']);
  await assert.rejects(optimizeModel(build(), { passes: ['fold-everything'] }), /unknown optimizer pass 'fold-everything'/);
});
