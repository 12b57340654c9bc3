// --drop-layers: a residual block dropped by naming its Add equals the original with the branch's
// last layer zeroed (exact: x + 0); a shape-preserving layer dropped equals the model built
// without it; the graph stays valid and loses the branch's weights; names that match nothing,
// Adds of parallel branches and layers that change shapes are one-line errors; the CLI drops and
// distils (--method layers implied).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { writeNpy } from '../src/eval/npy.js';
import { dropLayers } from '../src/graph-edit/drop-layers.js';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { saveModel } from '../src/node/model-files.js';
import { runShrink } from './helpers/cli.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { pseudoRandom } from './helpers/tensors.js';

/** stem conv -> residual block (conv, relu, conv, Add 'block') -> relu 'act' -> Add 'parallel' of two convs of it -> strided conv 'down' -> output. */
function residualModel(zeroBranch = false) {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 3, 8, 8]);
  const conv = (input: string, name: string, cin: number, cout: number, seed: number, stride = 1, zero = false) =>
    b.node('Conv', [input, b.initializer(`${name}.w`, DataType.FLOAT, [cout, cin, 3, 3], zero ? new Float32Array(cout * cin * 9) : pseudoRandom(cout * cin * 9, seed, -0.3, 0.3)), b.initializer(`${name}.b`, DataType.FLOAT, [cout], zero ? new Float32Array(cout) : pseudoRandom(cout, seed + 50, -0.1, 0.1))], [attr.ints('pads', [1, 1, 1, 1]), attr.ints('strides', [stride, stride])], { name });
  const h = conv(x, 'stem', 3, 4, 1);
  const branch = conv(b.node('Relu', [conv(h, 'b1', 4, 4, 2)], [], { name: 'b1_relu' }), 'b2', 4, 4, 3, 1, zeroBranch);
  const block = b.node('Add', [h, branch], [], { name: 'block' });
  const act = b.node('Relu', [block], [], { name: 'act' });
  const parallel = b.node('Add', [conv(act, 'p1', 4, 4, 4), conv(act, 'p2', 4, 4, 5)], [], { name: 'parallel' });
  b.output(conv(parallel, 'down', 4, 2, 6, 2), DataType.FLOAT);
  return buildModel(b.graph);
}

const input = [Tensor.fromArray('x', DataType.FLOAT, [1, 3, 8, 8], pseudoRandom(192, 9))];
const outputOf = async (model: ReturnType<typeof residualModel>) => (await runModel(model, input))[0];

test('dropping a residual block equals the original with its branch zeroed; the branch and its weights go', async () => {
  const model = residualModel();
  const result = dropLayers(model, ['block']);
  const stem = residualModel().graph.nodes.find((n) => n.name === 'stem')?.outputs[0];
  assert.deepEqual(result.dropped, [{ node: 'block', op: 'Add', kind: 'residual', kept: stem }]);
  assert.equal(model.graph.nodes.find((n) => n.name === 'act')?.inputs[0], stem, 'act reads the skip value');
  assert.equal(result.nodesRemoved, 4, 'b1, its relu, b2 and the Add');
  assert.deepEqual(['b1.w', 'b2.w', 'b2.b'].filter((n) => model.graph.initializer(n) !== undefined), []);
  const diff = maxAbsDifference(await outputOf(model), await outputOf(residualModel(true)));
  assert.ok(diff <= 1e-6, `max abs difference ${diff}`);
});

test('dropping a shape-preserving layer equals the model without it; bad names are one-line errors', async () => {
  const model = residualModel();
  dropLayers(model, ['act']);
  const reference = residualModel();
  const act = reference.graph.nodes.find((n) => n.name === 'act');
  assert.ok(act !== undefined);
  reference.graph.replaceAllUses(act.outputs[0], act.inputs[0]);
  reference.graph.removeNode(act);
  reference.graph.changed();
  assert.equal(maxAbsDifference(await outputOf(model), await outputOf(reference)), 0);
  const cases: [string, RegExp][] = [
    ['nope', /--drop-layers 'nope': the main graph has no node of that name \(names look like 'stem', /],
    ['parallel', /--drop-layers 'parallel' \(Add\): not a residual block: neither input '.+' nor '.+' is on the other's path/],
    ['down', /--drop-layers 'down' \(Conv\): its input '.+' is \[N,4,8,8\] and its output '.+' \[N,2,4,4\]: dropping it would change shapes/],
  ];
  for (const [name, message] of cases) {
    const fresh = residualModel();
    const nodes = fresh.graph.nodes.length;
    assert.throws(() => dropLayers(fresh, ['block', name]), message);
    assert.equal(fresh.graph.nodes.length, nodes, 'nothing changed');
  }
});

test('shrink prune --drop-layers drops the block and distils the student from the original', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-drop-'));
  try {
    const model = path.join(work, 'res.onnx');
    saveModel(residualModel(), model);
    const data = path.join(work, 'x.npy');
    fs.writeFileSync(data, writeNpy({ dataType: DataType.FLOAT, dims: [16, 3, 8, 8], data: new Uint8Array(pseudoRandom(16 * 192, 11).buffer) }));
    const out = path.join(work, 'out.onnx');
    const run = await runShrink(['prune', model, '-o', out, '--drop-layers', 'block', '--data', data, '--epochs', '2', '--batch-size', '4', '--samples', '8', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.method, 'layers');
    assert.deepEqual(report.dropped.map((d: { node: string; kind: string }) => [d.node, d.kind]), [['block', 'residual']]);
    assert.equal(report.recovery.kind, 'distill');
    assert.ok(report.parameters.after < report.parameters.before);
    assert.ok(fs.existsSync(out));
    // The same from a recipe file (shrink run), with distillation on --data.
    const recipe = path.join(work, 'drop.yaml');
    fs.writeFileSync(recipe, 'steps:\n  - prune: {method: layers, drop_layers: [block], epochs: 1, batch_size: 4}\n');
    const fromRecipe = await runShrink(['run', recipe, model, '-o', path.join(work, 'recipe.onnx'), '--data', data, '--samples', '8', '--json']);
    assert.equal(fromRecipe.code, 0, fromRecipe.stderr);
    const step = JSON.parse(fromRecipe.stdout).steps[0].report;
    assert.deepEqual(step.dropped.map((d: { node: string }) => d.node), ['block']);
    assert.ok(step.parameters.after < step.parameters.before);
    assert.equal(step.recovery.kind, 'distill');
    const bad = await runShrink(['prune', model, '-o', path.join(work, 'bad.onnx'), '--method', 'channels', '--sparsity', '0.5', '--drop-layers', 'block']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--drop-layers has no effect with --method channels \(it applies to layers\)/);
    const missing = await runShrink(['prune', model, '-o', path.join(work, 'bad.onnx'), '--method', 'layers']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--method layers needs --drop-layers NAME/);
    assert.equal(fs.existsSync(path.join(work, 'bad.onnx')), false);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
