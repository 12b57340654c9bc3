// The opset upgrade (src/optimize/upgrade-opset.ts) against onnxruntime: the real PP-OCR models
// (rec and cls at opset 9, det at 11) upgraded to 13 give the same outputs as the originals, and a
// tiny model per rewritten op (built at the old opset) computes the same after the rewrite. Ops the
// pass does not know are refused with one line, and the model is left as it was.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel } from '../src/node/model-files.js';
import { writeModel } from '../src/onnx/model-io.js';
import { upgradeOpset } from '../src/optimize/upgrade-opset.js';
import { realModel } from './helpers/real-models.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { floats, ints } from './helpers/tensors.js';

/** Runs `model` before and after upgrading to `to`; every output must agree within 1e-6. */
async function assertSameAfterUpgrade(model: Model, feeds: Tensor[], to = 13): Promise<{ before: Tensor[]; stats: Record<string, number> }> {
  const before = await runModel(writeModel(model), feeds);
  const stats = upgradeOpset(model, { to }).stats;
  assert.equal(model.opset(''), to);
  const after = await runModel(writeModel(model), feeds);
  assert.equal(after.length, before.length);
  for (const [i, b] of before.entries()) {
    assert.equal(after[i].dataType, b.dataType, `output ${b.name} type`);
    if (b.dataType === DataType.FLOAT) assert.ok(maxAbsDifference(b, after[i]) <= 1e-6, `${b.name}: ${maxAbsDifference(b, after[i])}`);
    else assert.deepEqual(Array.from(after[i].data() as ArrayLike<number | bigint>), Array.from(b.data() as ArrayLike<number | bigint>), b.name);
  }
  return { before, stats };
}

for (const key of ['rec', 'cls', 'det'] as const) {
  test(`${realModel(key).name} upgraded to opset 13 gives the original outputs within 1e-6`, { timeout: 60_000 }, async () => {
    const real = realModel(key);
    const model = loadModel(real.file);
    const from = model.opset('');
    const { stats } = await assertSameAfterUpgrade(model, real.feeds());
    assert.equal(model.irVersion >= 7, true);
    console.log(`# ${real.name}: opset ${from} -> 13, ${JSON.stringify(stats)}`);
    if (key === 'rec') assert.ok(stats.nodesRewritten >= 48, JSON.stringify(stats)); // 28 Clip, 10 Slice, 7 Squeeze, 3 Softmax
  });
}

/** A one-node model at `opset`: x (float [2,3,4,5] unless given) -> op -> y. */
function oneNode(opset: number, opType: string, attributes: ReturnType<typeof attr.int>[], options: { dims?: number[]; extraInputs?: (b: GraphBuilder) => string[]; outputs?: number } = {}): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, options.dims ?? [2, 3, 4, 5]);
  const extra = options.extraInputs?.(b) ?? [];
  const outs = b.node(opType, [x, ...extra], attributes, { name: opType.toLowerCase(), outputs: options.outputs ?? 1 });
  for (const o of typeof outs === 'string' ? [outs] : outs) b.output(o);
  return buildModel(b.graph, [{ domain: '', version: opset }], 4);
}

const x = (dims = [2, 3, 4, 5]) => floats('x', dims, 7, -8, 8);

const TINY: Array<{ what: string; model: () => Model; feeds?: () => Tensor[]; to?: number; rewritten?: number }> = [
  { what: 'Slice-1 attributes (negative and huge ends, axes)', model: () => oneNode(9, 'Slice', [attr.ints('starts', [1, -3]), attr.ints('ends', [1000, -1]), attr.ints('axes', [1, 3])]) },
  { what: 'Slice-1 without axes', model: () => oneNode(9, 'Slice', [attr.ints('starts', [0, 1]), attr.ints('ends', [1, 3])]) },
  { what: 'Clip-6 min/max', model: () => oneNode(9, 'Clip', [attr.float('min', -1.5), attr.float('max', 6)]) },
  { what: 'Clip-6 max only', model: () => oneNode(9, 'Clip', [attr.float('max', 0.5)]) },
  { what: 'Pad-2 constant value', model: () => oneNode(9, 'Pad', [attr.ints('pads', [0, 1, 2, 0, 0, 0, 1, 3]), attr.float('value', 2.5)]) },
  { what: 'Pad-2 reflect', model: () => oneNode(9, 'Pad', [attr.ints('pads', [0, 0, 1, 2, 0, 0, 2, 1]), attr.string('mode', 'reflect')]) },
  { what: 'TopK-1 k attribute', model: () => oneNode(9, 'TopK', [attr.int('k', 3)], { outputs: 2 }) },
  { what: 'Squeeze-1 axes', model: () => oneNode(9, 'Squeeze', [attr.ints('axes', [0, 2])], { dims: [1, 3, 1, 5] }), feeds: () => [x([1, 3, 1, 5])] },
  { what: 'Unsqueeze-1 axes', model: () => oneNode(9, 'Unsqueeze', [attr.ints('axes', [0, 3])]) },
  { what: 'ReduceSum axes keepdims 0', model: () => oneNode(9, 'ReduceSum', [attr.ints('axes', [1, 3]), attr.int('keepdims', 0)]) },
  { what: 'ReduceSum over everything', model: () => oneNode(9, 'ReduceSum', []) },
  { what: 'Split-2 split attribute', model: () => oneNode(9, 'Split', [attr.int('axis', 3), attr.ints('split', [1, 4])], { outputs: 2 }) },
  { what: 'Split-2 equal parts', model: () => oneNode(9, 'Split', [attr.int('axis', 1)], { outputs: 3 }) },
  { what: 'Dropout-7 ratio (inference: identity)', model: () => oneNode(9, 'Dropout', [attr.float('ratio', 0.3)]) },
  { what: 'Softmax last axis', model: () => oneNode(9, 'Softmax', [attr.int('axis', 3)]) },
  { what: 'Softmax default axis 1 (flattened: Flatten/Reshape)', model: () => oneNode(9, 'Softmax', []), rewritten: 1 },
  { what: 'LogSoftmax axis 2 of 4', model: () => oneNode(9, 'LogSoftmax', [attr.int('axis', 2)]) },
  { what: 'Hardmax axis 1', model: () => oneNode(9, 'Hardmax', [attr.int('axis', 1)]) },
  { what: 'Softmax rank unknown', model: () => oneNode(9, 'Softmax', [attr.int('axis', -1)], { dims: undefined }) },
  {
    what: 'Upsample-9 nearest -> Resize',
    model: () => oneNode(9, 'Upsample', [attr.string('mode', 'nearest')], { extraInputs: (b) => [b.tensor(Tensor.fromArray('scales', DataType.FLOAT, [4], new Float32Array([1, 1, 2, 3])))] }),
  },
  {
    what: 'Upsample-9 linear -> Resize',
    model: () => oneNode(9, 'Upsample', [attr.string('mode', 'linear')], { extraInputs: (b) => [b.tensor(Tensor.fromArray('scales', DataType.FLOAT, [4], new Float32Array([1, 1, 2, 2])))] }),
  },
  {
    what: 'Resize-10 nearest -> Resize-13',
    model: () => oneNode(10, 'Resize', [attr.string('mode', 'nearest')], { extraInputs: (b) => [b.tensor(Tensor.fromArray('scales', DataType.FLOAT, [4], new Float32Array([1, 1, 2, 2])))] }),
  },
  {
    what: 'Upsample-9 -> Resize-11 (target 11: roi as an empty tensor)',
    model: () => oneNode(9, 'Upsample', [], { extraInputs: (b) => [b.tensor(Tensor.fromArray('scales', DataType.FLOAT, [4], new Float32Array([1, 1, 2, 2])))] }),
    to: 11,
  },
];

for (const c of TINY) {
  test(`tiny: ${c.what}`, async () => {
    const model = c.model();
    const { stats } = await assertSameAfterUpgrade(model, c.feeds?.() ?? [x()], c.to);
    assert.equal(stats.nodesRewritten, 1);
    if (c.rewritten !== undefined) assert.equal(stats.softmaxFlattened, c.rewritten);
    // No attribute of the old signature is left behind.
    const node = model.graph.nodes.find((n) => !['Flatten', 'Shape', 'Reshape'].includes(n.opType));
    for (const gone of ['starts', 'ends', 'axes', 'min', 'max', 'pads', 'value', 'split', 'k', 'ratio']) {
      if (node?.opType === 'ReduceSum' && gone === 'axes') continue;
      assert.equal(node?.attribute(gone), undefined, `${node?.opType} still has '${gone}'`);
    }
  });
}

test('an op the pass does not know is refused with one line naming it and its node; the model is untouched', () => {
  const b = new GraphBuilder();
  const input = b.input('x', DataType.FLOAT, [2, 3]);
  const clip = b.node('Clip', [input], [attr.float('min', 0)], { name: 'clip' });
  const y = b.node('Scatter', [clip, b.tensor(ints('idx', [0, 1])), b.tensor(floats('upd', [2], 1))], [], { name: 'old_scatter' });
  b.output(y);
  const model = buildModel(b.graph, [{ domain: '', version: 9 }], 4);
  assert.throws(
    () => upgradeOpset(model),
    (error: Error) => {
      assert.equal(error.message.split('\n').length, 1);
      assert.match(error.message, /^upgrade-opset: cannot upgrade ai\.onnx opset 9 to 13: Scatter node 'old_scatter' in graph 'main': the op is not known/);
      return true;
    },
  );
  assert.equal(model.opset(''), 9);
  assert.ok(model.graph.nodes[0].attribute('min') !== undefined);
  assert.throws(() => upgradeOpset(loadModel(realModel('rec').file), { to: 14 }), /target ai\.onnx opset 14 is not supported/);
});
