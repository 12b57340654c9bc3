// Bad input to the optimizer, and passes that are wrong. Models with a cycle, a dangling input, or
// an op nothing knows (Frobnicate in the default domain, Blend in com.example) go through the real
// CLI: exit 1, exactly one stderr line naming the node or value, no output file. An op onnxruntime
// runs but shape inference does not know (com.microsoft Gelu) is optimized with a warning naming
// it. Then deliberately broken passes (one scales a Conv weight by 1.01, one swaps Sub's inputs,
// one deletes the node computing the output) are put into a registry: blamePass must name exactly
// that pass, with the error it measured (0.01 and 2 relative, worked out below, or the load
// error), and the CLI must refuse the result and name the pass. The CLI has no hook for extra
// passes, so that test puts the broken pass into the shipped registry array of its own process.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../src/cli/main.js';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { blamePass, compareOnSamples } from '../src/optimize/blame-pass.js';
import { optimizeModel, selectPasses } from '../src/optimize/optimize.js';
import { OPTIMIZER_PASSES, type OptimizerPassEntry } from '../src/optimize/passes.js';
import { writeNodeConstant } from '../src/optimize/util/write-constant.js';
import type { Pass } from '../src/pipeline/pass.js';
import { spawnShrink } from './helpers/cli.js';
import { floats } from './helpers/tensors.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-optimize-bad-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

function save(model: Model, name: string): string {
  const file = path.join(work, name);
  saveModel(model, file);
  return file;
}

/** x -> Add(w) -> `op` -> Relu -> y, the op named 'weird'. */
function modelWithOp(opType: string, domain = '', opsets = [{ domain: '', version: 17 }]): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 4]);
  const w = b.initializer('w', DataType.FLOAT, [1, 4], new Float32Array([1, 2, 3, 4]));
  b.node('Add', [x, w], [], { name: 'add', outputs: ['a'] });
  b.node(opType, ['a'], [], { name: 'weird', outputs: ['f'], domain });
  b.node('Relu', ['f'], [], { name: 'relu', outputs: ['y'] });
  b.output('y', DataType.FLOAT, [1, 4]);
  return buildModel(b.graph, opsets);
}

/** add_a reads c, neg_c computes c from b, relu_b computes b from a: a loop of three. */
function cyclicModel(): Model {
  const b = new GraphBuilder();
  b.input('x', DataType.FLOAT, [1, 4]);
  b.node('Add', ['x', 'c'], [], { name: 'add_a', outputs: ['a'] });
  b.node('Relu', ['a'], [], { name: 'relu_b', outputs: ['b'] });
  b.node('Neg', ['b'], [], { name: 'neg_c', outputs: ['c'] });
  b.node('Sigmoid', ['b'], [], { name: 'sigmoid', outputs: ['y'] });
  b.output('y', DataType.FLOAT, [1, 4]);
  return buildModel(b.graph);
}

/** add_bias reads 'bias', which is neither an input, an initializer nor any node's output. */
function danglingModel(): Model {
  const b = new GraphBuilder();
  b.input('x', DataType.FLOAT, [1, 4]);
  b.node('Add', ['x', 'bias'], [], { name: 'add_bias', outputs: ['a'] });
  b.node('Relu', ['a'], [], { name: 'relu', outputs: ['y'] });
  b.output('y', DataType.FLOAT, [1, 4]);
  return buildModel(b.graph);
}

test('bad input through the CLI: a cycle, a dangling input, unknown ops: one line naming the node, exit 1, nothing written', () => {
  const cases = [
    { file: save(cyclicModel(), 'cycle.onnx'), message: /^shrink: .*cycle\.onnx: not a valid graph: graph 'main': cycle among nodes 'relu_b', 'neg_c', 'add_a'\n$/ },
    { file: save(danglingModel(), 'dangling.onnx'), message: /^shrink: .*dangling\.onnx: not a valid graph: graph 'main': node 'add_bias' reads 'bias', which nothing defines\n$/ },
    {
      file: save(modelWithOp('Frobnicate'), 'frobnicate.onnx'),
      message:
        /^shrink: .*frobnicate\.onnx: node 'weird' uses op 'Frobnicate' of the default domain ai\.onnx \(opset 17\), which onnxruntime does not implement and shape inference does not know \(onnxruntime: No Op registered for Frobnicate with domain_version of 17\); to optimize it without running it, use --no-validate\n$/,
    },
    {
      file: save(modelWithOp('Blend', 'com.example', [{ domain: '', version: 17 }, { domain: 'com.example', version: 1 }]), 'example.onnx'),
      message: /^shrink: .*example\.onnx: node 'weird' uses op 'Blend' of domain 'com\.example' \(opset 1\), which onnxruntime does not implement and shape inference does not know \(onnxruntime: com\.example:Blend\(-1\) is not a registered function\/op\);/,
    },
  ];
  for (const { file, message } of cases) {
    const output = path.join(work, 'out.onnx');
    const run = spawnShrink(['optimize', file, '-o', output, '--threads', '1']);
    const name = path.basename(file);
    assert.equal(run.status, 1, `${name}: exit code (stderr: ${run.stderr})`);
    assert.equal(run.stdout, '', `${name}: stdout`);
    assert.equal(run.stderr.split('\n').length, 2, `${name}: one stderr line: ${run.stderr}`);
    assert.match(run.stderr, message, name);
    assert.equal(fs.existsSync(output), false, `${name}: output written`);
    assert.deepEqual(fs.readdirSync(work).filter((f) => f.startsWith('out') || f.startsWith('.')), [], `${name}: left files behind`);
  }
});

test('the library refuses the same broken graphs before any pass runs', async () => {
  let ran = 0;
  const onPass = () => void ran++;
  await assert.rejects(optimizeModel(cyclicModel(), { onPass }), /^Error: not a valid graph: graph 'main': cycle among nodes 'relu_b', 'neg_c', 'add_a'$/);
  await assert.rejects(optimizeModel(danglingModel(), { onPass }), /node 'add_bias' reads 'bias', which nothing defines/);
  assert.equal(ran, 0);
});

test('an op onnxruntime runs but shape inference does not know: optimized, with one warning naming the node', () => {
  const file = save(modelWithOp('Gelu', 'com.microsoft', [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }]), 'gelu.onnx');
  const output = path.join(work, 'gelu-out.onnx');
  const run = spawnShrink(['optimize', file, '-o', output, '--threads', '1', '--samples', '2', '--json']);
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.filter((l) => l.includes("op 'Gelu'")).length, 1, run.stderr);
  assert.match(run.stderr, /^shrink: warning: shape inference does not know op 'Gelu' \(domain com\.microsoft\) of node 'weird': its output shapes stay unknown, and passes that need them leave it alone$/m);
  const summary = JSON.parse(run.stdout);
  assert.equal(summary.fidelity.max_abs, 0);
  assert.ok(summary.warnings.some((w: { message: string }) => w.message.includes("node 'weird'")));
  // The node is still there, untouched.
  const gelu = [...loadModel(output).graph.allNodes()].map(({ node }) => node).filter((n) => n.opType === 'Gelu');
  assert.deepEqual(gelu.map((n) => [n.name, n.domain]), [['weird', 'com.microsoft']]);
});

// ---- passes that change outputs -------------------------------------------------------------

/** Multiplies the first Conv's weight by 1.01: every output of that Conv moves by exactly 1%. */
const scaleConvWeight: Pass = {
  name: 'scale-conv-weight',
  description: 'deliberately wrong: scales a Conv weight by 1.01',
  run(model) {
    const conv = model.graph.nodes.find((n) => n.opType === 'Conv');
    const weight = conv === undefined ? undefined : constantValue(model.graph, conv.inputs[1]);
    if (conv === undefined || weight === undefined) return { stats: { scaled: 0 }, warnings: [] };
    const scaled = (weight.data() as Float32Array).map((v) => v * 1.01);
    writeNodeConstant(model, model.graph, conv, 1, Tensor.fromArray(weight.name, DataType.FLOAT, weight.dims, scaled), `${weight.name}_scaled`);
    return { stats: { scaled: 1 }, warnings: [] };
  },
};

/** Swaps the inputs of every Sub: x - c becomes c - x. */
const swapSubInputs: Pass = {
  name: 'swap-sub-inputs',
  description: 'deliberately wrong: swaps the inputs of Sub',
  run(model) {
    let swapped = 0;
    for (const node of model.graph.nodes) {
      if (node.opType !== 'Sub') continue;
      node.inputs = [node.inputs[1], node.inputs[0]];
      swapped++;
    }
    model.graph.changed();
    return { stats: { swapped }, warnings: [] };
  },
};

/** The registry with `pass` inserted right after the entry named `after`. */
function registryWith(pass: Pass, afterName: string): OptimizerPassEntry[] {
  const at = OPTIMIZER_PASSES.findIndex((e) => e.pass.name === afterName) + 1;
  assert.ok(at > 0, afterName);
  return [...OPTIMIZER_PASSES.slice(0, at), { pass, level: 'full' }, ...OPTIMIZER_PASSES.slice(at)];
}

/**
 * x[1,3,8,8] -> Identity -> Conv(W, no bias) -> BatchNormalization(B = 0, mean = 0) -> y. Once
 * fold-batchnorm has folded the BatchNorm, y = W'x with a zero bias, so scaling W' by 1.01 moves
 * y by exactly 1% (relative L2 error 0.01).
 */
function convModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
  const id = b.node('Identity', [x], [], { name: 'identity' });
  const w = b.tensor(floats('W', [4, 3, 3, 3], 1));
  const conv = b.node('Conv', [id, w], [attr.ints('pads', [1n, 1n, 1n, 1n])], { name: 'conv' });
  const scale = b.tensor(floats('bn_scale', [4], 2, 0.5, 2));
  const bias = b.initializer('bn_bias', DataType.FLOAT, [4], new Float32Array(4));
  const mean = b.initializer('bn_mean', DataType.FLOAT, [4], new Float32Array(4));
  const variance = b.tensor(floats('bn_var', [4], 3, 0.5, 2));
  b.node('BatchNormalization', [conv, scale, bias, mean, variance], [], { name: 'bn', outputs: ['y'] });
  b.output('y', DataType.FLOAT, [1, 4, 8, 8]);
  return buildModel(b.graph);
}

/** y = x - c; swapped, the model computes c - x = -y, which is off by exactly 2 |y| (relative error 2). */
function subModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 16]);
  const c = b.tensor(floats('c', [16], 4));
  b.node('Sub', [x, c], [], { name: 'sub', outputs: ['y'] });
  b.output('y', DataType.FLOAT, [2, 16]);
  return buildModel(b.graph);
}

test('blamePass names exactly the broken pass, with the error it measured', async () => {
  const cases = [
    { model: convModel(), pass: scaleConvWeight, after: 'fold-batchnorm', relative: 0.01 },
    { model: subModel(), pass: swapSubInputs, after: 'common-subexpression', relative: 2 },
  ];
  for (const { model, pass, after: afterName, relative } of cases) {
    const registry = registryWith(pass, afterName);
    const samples = generatedSamples(modelSignature(model).inputs, { count: 2 });
    const compare = compareOnSamples(nodeOrt, samples, { threads: 1 });

    // The optimization as a whole moves the outputs (the scaling pass runs again in round 2: 1.01^2).
    const optimized = buildCopy(model);
    await optimizeModel(optimized, { registry }, { ort: nodeOrt });
    const [whole] = await compare(model, optimized);
    assert.ok(whole.relative > 0.9 * relative, `${pass.name}: whole optimization moved y by ${whole.relative}`);

    const blame = await blamePass(model, compare, { optimize: { registry }, ctx: { ort: nodeOrt } });
    assert.ok(blame !== undefined, `${pass.name}: no pass blamed`);
    assert.equal(blame.pass, pass.name);
    // It was caught on its first run, in round 1, at its place in the registry.
    const position = selectPasses({ registry }).findIndex((e) => e.pass === pass) + 1;
    assert.equal(blame.run, position);
    assert.equal(blame.round, 1);
    assert.equal(blame.failure, undefined);
    assert.deepEqual(blame.changed.map((d) => d.output), ['y']);
    assert.ok(Math.abs(blame.changed[0].relative - relative) < 1e-5 * relative, `${pass.name}: relative error ${blame.changed[0].relative}, expected ${relative}`);
    assert.ok(blame.changed[0].maxAbs > 0);

    // The registry as shipped moves nothing on the same model: no pass to blame.
    assert.equal(await blamePass(model, compare, { ctx: { ort: nodeOrt } }), undefined, `${pass.name}: the real registry was blamed`);
  }
});

/** Removes the Sub that computes the graph output: 'y' is then computed by nothing. */
const dropSub: Pass = {
  name: 'drop-sub',
  description: 'deliberately wrong: removes Sub nodes',
  run(model) {
    for (const node of model.graph.nodes.filter((n) => n.opType === 'Sub')) model.graph.removeNode(node);
    return { stats: {}, warnings: [] };
  },
};

test('blamePass names a pass that leaves a model onnxruntime cannot load, with the load error', async () => {
  const model = subModel();
  const registry = registryWith(dropSub, 'eliminate-identity');
  const compare = compareOnSamples(nodeOrt, generatedSamples(modelSignature(model).inputs, { count: 1 }), { threads: 1 });
  const blame = await blamePass(model, compare, { optimize: { registry } });
  assert.equal(blame?.pass, 'drop-sub');
  assert.equal(blame.run, 2);
  assert.deepEqual(blame.changed, []);
  assert.match(blame.failure ?? '', /^candidate model: onnxruntime cannot load it \(.*\by\b/);
});

/**
 * `shrink optimize file` in this process, with `pass` put into the shipped registry after the
 * entry named `afterName` (the CLI reads OPTIMIZER_PASSES; each test file runs in a process of
 * its own, and the entry is taken out again). Returns the exit code, what was printed, and the
 * pass's place among the passes of level full (from 1): the run that must be blamed.
 */
async function cliWith(pass: Pass, afterName: string, file: string, output: string) {
  const registry = OPTIMIZER_PASSES as OptimizerPassEntry[];
  const at = registry.findIndex((e) => e.pass.name === afterName) + 1;
  registry.splice(at, 0, { pass, level: 'full' });
  let stdout = '';
  let stderr = '';
  try {
    const run = selectPasses({}).findIndex((e) => e.pass === pass) + 1;
    const io = { stdout: (text: string) => void (stdout += text), stderr: (text: string) => void (stderr += text) };
    const code = await main(['optimize', file, '-o', output, '--threads', '1', '--samples', '2'], io);
    return { code, stdout, stderr, run };
  } finally {
    registry.splice(at, 1);
  }
}

test('the CLI refuses a result a broken pass moved or broke, and names the pass with its error', async () => {
  const output = path.join(work, 'broken-out.onnx');
  const moved = await cliWith(scaleConvWeight, 'fold-batchnorm', save(convModel(), 'conv.onnx'), output);
  assert.equal(moved.code, 1, moved.stderr);
  assert.equal(moved.stdout, '');
  assert.equal(moved.stderr.split('\n').length, 2, `one line: ${moved.stderr}`);
  assert.ok(moved.run > 1);
  assert.match(
    moved.stderr,
    new RegExp(
      `^shrink: .*conv\\.onnx: optimized model's outputs changed \\('y': relative error 2\\.01e-2, max abs [0-9.e+-]+\\); ` +
        `pass 'scale-conv-weight' did it \\(run ${moved.run}, round 1; after it on 1 sample: 'y': relative error 1\\.00e-2, max abs [0-9.e+-]+\\); ` +
        `nothing was written \\(use --skip scale-conv-weight to leave that pass out\\)\\n$`,
    ),
  );
  assert.equal(fs.existsSync(output), false);

  const broke = await cliWith(dropSub, 'eliminate-identity', save(subModel(), 'sub.onnx'), output);
  assert.equal(broke.code, 1, broke.stderr);
  assert.equal(broke.stderr.split('\n').length, 2, `one line: ${broke.stderr}`);
  assert.match(
    broke.stderr,
    /^shrink: .*sub\.onnx: onnxruntime cannot run the optimized model \(candidate model: onnxruntime cannot load it \(Graph output \(y\) does not exist in the graph\.\)\); pass 'drop-sub' did it \(run 2, round 1; after it the model no longer runs\); nothing was written \(use --skip drop-sub to leave that pass out\)\n$/,
  );
  assert.equal(fs.existsSync(output), false);
});

function buildCopy(model: Model): Model {
  return readModel(writeModel(model));
}
