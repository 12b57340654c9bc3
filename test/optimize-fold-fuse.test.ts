// Constant folding and the fusion passes: tiny models built in code (structure and outputs before
// and after, in onnxruntime-node and -web), then the real models: PP-OCRv4 rec (five LayerNorm
// patterns, 28 hardswish patterns), det, cls and Silero VAD v5 (constants inside If subgraphs).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { validateGraph } from '../src/ir/validate.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt } from '../src/node/ort-web.js';
import { foldConstants } from '../src/optimize/fold-constants.js';
import { fuseGelu } from '../src/optimize/fuse-gelu.js';
import { fuseHardSwish } from '../src/optimize/fuse-hardswish.js';
import { fuseLayerNorm } from '../src/optimize/fuse-layernorm.js';
import { totalNodes } from '../src/optimize/util/graph-queries.js';
import { type Pass, type PassReport, runPass } from '../src/pipeline/pass.js';
import type { OrtModule, OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession } from '../src/runtime/session.js';
import { mulberry32 } from '../src/kernels/random.js';
import { writeModel } from '../src/onnx/model-io.js';
import { CLS, DET, REC, VAD_V5 } from './helpers/real-models.js';
import { maxAbsDiff } from './helpers/run-model.js';

const FUSION_TOLERANCE = 1e-5;

type Feeds = Record<string, OrtTensor>;

/** Every output of one run, as float64 numbers (int64 outputs converted). */
async function outputsOf(ort: OrtModule, model: Model, feeds: (ort: OrtModule) => Feeds): Promise<Record<string, Float64Array>> {
  const session = await ModelSession.create(ort, model, { threads: 1, ...(ort === nodeOrt ? {} : { executionProviders: ['wasm'] }) });
  try {
    const result = await session.run(feeds(ort));
    return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, Float64Array.from(v.data as ArrayLike<number | bigint>, Number)]));
  } finally {
    await session.release();
  }
}

/** Largest difference over every output of two runs (names must agree). */
function worstDiff(before: Record<string, ArrayLike<number>>, after: Record<string, ArrayLike<number>>, only?: string[]): number {
  const names = only ?? Object.keys(before);
  let worst = 0;
  for (const name of names) {
    assert.ok(after[name] !== undefined, `output '${name}' is missing after the pass`);
    worst = Math.max(worst, maxAbsDiff(before[name], after[name]));
  }
  return worst;
}

function randomFloats(count: number, seed: number, scale = 2): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: count }, () => (next() * 2 - 1) * scale);
}

function floatFeed(name: string, dims: number[], seed: number, scale = 2): (ort: OrtModule) => Feeds {
  const data = randomFloats(dims.reduce((a, b) => a * b, 1), seed, scale);
  return (ort) => ({ [name]: new ort.Tensor('float32', data, dims) });
}

function opTypes(model: Model): string[] {
  return [...model.graph.allNodes()].map(({ node }) => (node.domain === '' ? node.opType : `${node.domain}.${node.opType}`));
}

async function apply<O>(pass: Pass<O>, model: Model, options: O): Promise<PassReport> {
  const report = await runPass(pass, model, options, { ort: nodeOrt });
  const errors = validateGraph(model).filter((i) => i.severity === 'error');
  assert.deepEqual(errors, [], `${pass.name} left an invalid graph`);
  return report;
}

// ---------------------------------------------------------------------------------------------
// Constant folding on small graphs

function foldModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  const a = b.constant(Tensor.fromArray('A', DataType.FLOAT, [2, 3], new Float32Array([1, -2, 3, -4, 5, -6])));
  const bias = b.initializer('B', DataType.FLOAT, [3], new Float32Array([0.5, 0.25, -8]));
  const relu = b.node('Relu', [b.node('Add', [a, bias])]);
  const y1 = b.node('Mul', [x, relu]);
  // Shape -> Gather -> Unsqueeze -> Concat: a Reshape target from x's declared static shape.
  const dim = b.node('Gather', [b.node('Shape', [x]), b.initializer('one', DataType.INT64, [], new BigInt64Array([1n]))]);
  const unsqueezed = b.node('Unsqueeze', [dim, b.initializer('axes0', DataType.INT64, [1], new BigInt64Array([0n]))]);
  const target = b.node('Concat', [b.initializer('minus1', DataType.INT64, [1], new BigInt64Array([-1n])), unsqueezed], [attr.int('axis', 0)]);
  b.output(b.node('Reshape', [y1, target], [], { outputs: ['y'] })[0], DataType.FLOAT);
  // 2.4 MB of zeros from a 16-byte shape: over both caps, so it stays a ConstantOfShape.
  const big = b.node('ConstantOfShape', [b.initializer('bigShape', DataType.INT64, [2], new BigInt64Array([600n, 1000n]))], [], { outputs: ['big'] })[0];
  b.output(big, DataType.FLOAT);
  // ... while a small value computed from it folds.
  b.output(b.node('ReduceSum', [big], [attr.int('keepdims', 0)], { outputs: ['bigSum'] })[0], DataType.FLOAT);
  // Random values must be computed at run time.
  b.output(b.node('RandomNormalLike', [a], [], { outputs: ['noise'] })[0], DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

test('fold-constants: folds constant chains and Shape->Gather->Concat, keeps random ops and values over the cap', async () => {
  const feeds = floatFeed('x', [2, 3], 1);
  const before = await outputsOf(nodeOrt, foldModel(), feeds);
  const model = foldModel();
  const nodesBefore = totalNodes(model.graph);
  const report = await apply(foldConstants, model, {});
  const ops = opTypes(model);
  for (const op of ['Add', 'Relu', 'Shape', 'Gather', 'Unsqueeze', 'Concat', 'ReduceSum']) assert.ok(!ops.includes(op), `${op} should be folded: ${ops}`);
  // A stays for RandomNormalLike; bigSum, a graph output, becomes a Constant node.
  assert.deepEqual(ops.sort(), ['Constant', 'Constant', 'ConstantOfShape', 'Mul', 'RandomNormalLike', 'Reshape']);
  const initializers = model.graph.initializers.map((t) => t.name);
  assert.ok(initializers.includes('bigShape'));
  for (const gone of ['B', 'one', 'axes0', 'minus1']) assert.ok(!initializers.includes(gone), `'${gone}' is read by nothing now`);
  assert.equal(report.stats.ortRuns, 1, 'one onnxruntime run for the whole graph');
  assert.equal(report.stats.shapeValues, 2, 'Shape (static) and Gather folded without onnxruntime');
  assert.equal(report.stats.tooLarge, 1);
  assert.ok(report.warnings.some((w) => w.code === 'too-large' && w.tensor === 'big'));
  assert.ok(report.warnings.some((w) => w.code === 'not-foldable' && /nondeterministic/.test(w.message)));
  const after = await outputsOf(nodeOrt, model, feeds);
  assert.equal(worstDiff(before, after, ['y', 'big', 'bigSum']), 0);
  console.log(`fold tiny: ${nodesBefore} -> ${totalNodes(model.graph)} nodes, ${JSON.stringify(report.stats)}`);
});

test('fold-constants: respects maxBytes/maxGrowth and folds inside If branches as Constant nodes', async () => {
  const build = () => {
    const b = new GraphBuilder();
    const cond = b.input('cond', DataType.BOOL, []);
    const x = b.input('x', DataType.FLOAT, [4]);
    const w = b.initializer('W', DataType.FLOAT, [4], new Float32Array([1, 2, 3, 4]));
    const thenBranch = b.subgraph('then', (s) => {
      const c = s.constant(Tensor.fromArray('c', DataType.FLOAT, [4], new Float32Array([0.5, 0.5, 2, 2])));
      s.output(s.node('Mul', [s.node('Add', [c, w]), c], [], { outputs: ['then_out'] })[0], DataType.FLOAT);
    });
    const elseBranch = b.subgraph('else', (s) => {
      s.output(s.node('Neg', [w], [], { outputs: ['else_out'] })[0], DataType.FLOAT);
    });
    const chosen = b.node('If', [cond], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)]);
    b.output(b.node('Add', [x, chosen], [], { outputs: ['y'] })[0], DataType.FLOAT);
    // Tile doubles W2 (16 bytes, plus 8 of reps): folded only when the cap allows 2x growth.
    const w2 = b.initializer('W2', DataType.FLOAT, [4], new Float32Array([5, 6, 7, 8]));
    b.output(b.node('Tile', [w2, b.initializer('reps', DataType.INT64, [1], new BigInt64Array([2n]))], [], { outputs: ['tiled'] })[0], DataType.FLOAT);
    // W stays (the branches read it), so a 32-byte copy of it is never written.
    b.output(b.node('Concat', [w, w], [attr.int('axis', 0)], { outputs: ['WW'] })[0], DataType.FLOAT);
    return buildModel(b.graph, [{ domain: '', version: 17 }]);
  };
  const feeds = (c: boolean) => (ort: OrtModule) => ({ cond: new ort.Tensor('bool', new Uint8Array([c ? 1 : 0]), []), x: new ort.Tensor('float32', new Float32Array([1, 1, 1, 1]), [4]) });
  const model = build();
  const report = await apply(foldConstants, model, { maxBytes: 16, maxGrowth: 1 });
  assert.equal(report.stats.tooLarge, 2, 'Tile: 32 bytes, over 16 and over 1x its 24 source bytes; Concat: copies W');
  assert.ok(opTypes(model).includes('Tile') && opTypes(model).includes('Concat'));
  assert.ok(report.warnings.some((w) => w.tensor === 'WW' && /copy 'W'/.test(w.message)), JSON.stringify(report.warnings));
  const branchOps = model.graph.nodes.find((n) => n.opType === 'If')?.subgraphs().map((g) => g.nodes.map((n) => n.opType).join(','));
  assert.deepEqual(branchOps, ['Constant', 'Constant'], 'each branch is a single Constant node');
  assert.equal(report.stats.ortRuns, 2, 'one onnxruntime run per nesting level: the main graph, then both branches together');
  for (const c of [true, false]) assert.equal(worstDiff(await outputsOf(nodeOrt, build(), feeds(c)), await outputsOf(nodeOrt, model, feeds(c))), 0);

  const loose = build();
  const looseReport = await apply(foldConstants, loose, { maxBytes: 16, maxGrowth: 2 });
  assert.equal(looseReport.stats.tooLarge, 1);
  assert.ok(!opTypes(loose).includes('Tile') && opTypes(loose).includes('Concat'));
  assert.ok(loose.graph.initializer('W2') === undefined, 'W2 is replaced by the tiled value');
});

test('fold-constants: a value onnxruntime cannot compute is left as is, the rest still folds', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [6]);
  const c = b.initializer('C', DataType.FLOAT, [6], new Float32Array([1, 2, 3, 4, 5, 6]));
  b.output(b.node('Mul', [x, b.node('Add', [c, c])], [], { outputs: ['y'] })[0], DataType.FLOAT);
  // Six elements cannot take shape [4]: the model itself would fail here at run time.
  const badShape = b.initializer('badShape', DataType.INT64, [1], new BigInt64Array([4n]));
  b.output(b.node('Reshape', [c, badShape], [], { outputs: ['bad'] })[0], DataType.FLOAT);
  const model = buildModel(b.graph, [{ domain: '', version: 17 }]);
  const report = await apply(foldConstants, model, {});
  assert.deepEqual(opTypes(model).sort(), ['Mul', 'Reshape']);
  assert.equal(report.stats.valuesFolded, 1);
  assert.ok(report.warnings.some((w) => w.code === 'evaluation-failed' && w.tensor === 'bad'), JSON.stringify(report.warnings));
  assert.ok(report.stats.ortRuns >= 2, 'the batch failed, then each value was tried alone');
});

// ---------------------------------------------------------------------------------------------
// Fusions on small graphs

function layerNormModel(opset: number, affine: boolean, leak = false, reciprocal = false): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 5, 8]);
  const reduce = (v: string) => b.node('ReduceMean', [v], [attr.ints('axes', [-1n])]);
  const mean = reduce(x);
  const d = b.node('Sub', [x, mean]);
  const square = reciprocal ? b.node('Mul', [d, d]) : b.node('Pow', [d, b.constant(Tensor.fromArray('two', DataType.FLOAT, [], new Float32Array([2])))]);
  const std = b.node('Sqrt', [b.node('Add', [reduce(square), b.constant(Tensor.fromArray('eps', DataType.FLOAT, [], new Float32Array([1e-5])))])]);
  let y = reciprocal ? b.node('Mul', [b.node('Reciprocal', [std]), d]) : b.node('Div', [d, std]);
  if (affine) {
    y = b.node('Mul', [y, b.constant(Tensor.fromArray('gamma', DataType.FLOAT, [8], randomFloats(8, 7)))]);
    y = b.node('Add', [y, b.constant(Tensor.fromArray('beta', DataType.FLOAT, [1, 8], randomFloats(8, 8)))]);
  }
  b.output(b.node('Identity', [y], [], { outputs: ['y'] })[0], DataType.FLOAT);
  if (leak) b.output(d, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: opset }]);
}

test('fuse-layernorm: the elementwise pattern becomes one LayerNormalization (opset 17 and 9, with and without gamma/beta)', async () => {
  const web = await loadWebOrt();
  const feeds = floatFeed('x', [3, 5, 8], 2, 3);
  for (const [opset, affine, reciprocal] of [[17, true, false], [17, false, false], [9, true, false], [17, true, true]] as const) {
    const before = await outputsOf(nodeOrt, layerNormModel(opset, affine, false, reciprocal), feeds);
    const model = layerNormModel(opset, affine, false, reciprocal);
    const report = await apply(fuseLayerNorm, model, {});
    assert.equal(report.stats.fused, 1);
    assert.deepEqual(opTypes(model).filter((op) => op !== 'Constant'), ['LayerNormalization', 'Identity']);
    const constants = model.graph.nodes.filter((n) => n.opType === 'Constant').length + model.graph.initializers.length;
    assert.equal(constants, affine ? 2 : 1, 'eps and 2 are gone; gamma and beta (reshaped to [8]) or a scale of ones remain');
    const diff = worstDiff(before, await outputsOf(nodeOrt, model, feeds));
    assert.ok(diff <= FUSION_TOLERANCE, `opset ${opset}: max abs diff ${diff}`);
    const webDiff = worstDiff(before, await outputsOf(web, model, feeds));
    assert.ok(webDiff <= FUSION_TOLERANCE, `opset ${opset} in onnxruntime-web: max abs diff ${webDiff}`);
  }
  const leaky = layerNormModel(17, true, true);
  assert.equal((await apply(fuseLayerNorm, leaky, {})).stats.fused, 0, 'x - mean is also a graph output: not fused');
  const skipped = layerNormModel(9, true);
  const report = await apply(fuseLayerNorm, skipped, { belowOpset17: 'skip' });
  assert.equal(report.stats.fused, 0);
  assert.equal(report.warnings[0]?.code, 'opset-below-17');
});

function geluModel(opset: number, form: 'erf' | 'erf-half-first' | 'erf-mul' | 'tanh' | 'tanh-mul'): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 16]);
  const scalar = (name: string, v: number) => b.constant(Tensor.fromArray(name, DataType.FLOAT, [], new Float32Array([v])));
  let f: string;
  if (form.startsWith('erf')) {
    const scaled = form === 'erf-mul' ? b.node('Mul', [x, scalar('rsqrt2', Math.SQRT1_2)]) : b.node('Div', [x, scalar('sqrt2', Math.SQRT2)]);
    f = b.node('Erf', [scaled]);
  } else {
    const cube = form === 'tanh' ? b.node('Pow', [x, scalar('three', 3)]) : b.node('Mul', [x, b.node('Mul', [x, x])]);
    const inner = b.node('Add', [x, b.node('Mul', [cube, scalar('k', 0.044715)])]);
    f = b.node('Tanh', [b.node('Mul', [scalar('c', Math.sqrt(2 / Math.PI)), inner])]);
  }
  const t = b.node('Add', [f, scalar('one', 1)]);
  const y = form === 'erf-half-first' ? b.node('Mul', [b.node('Mul', [x, scalar('half', 0.5)]), t]) : b.node('Mul', [b.node('Mul', [x, t]), scalar('half', 0.5)]);
  b.output(b.node('Identity', [y], [], { outputs: ['y'] })[0], DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: opset }]);
}

test('fuse-gelu: Erf and Tanh forms become com.microsoft Gelu/FastGelu (opset < 20) or ai.onnx Gelu (opset 20)', async () => {
  const web = await loadWebOrt();
  const feeds = floatFeed('x', [2, 16], 3, 4);
  const cases = [
    [17, 'erf', 'com.microsoft.Gelu'],
    [17, 'erf-half-first', 'com.microsoft.Gelu'],
    [17, 'erf-mul', 'com.microsoft.Gelu'],
    [17, 'tanh', 'com.microsoft.FastGelu'],
    [17, 'tanh-mul', 'com.microsoft.FastGelu'],
    [20, 'erf', 'Gelu'],
    [20, 'tanh', 'Gelu'],
  ] as const;
  for (const [opset, form, fused] of cases) {
    const before = await outputsOf(nodeOrt, geluModel(opset, form), feeds);
    const model = geluModel(opset, form);
    const report = await apply(fuseGelu, model, {});
    assert.deepEqual(opTypes(model), [fused, 'Identity'], `${form} at opset ${opset}: constants and pattern replaced`);
    assert.equal(report.stats[form.startsWith('erf') ? 'erf' : 'tanh'], 1);
    for (const [runtime, ort] of [['node', nodeOrt], ['web', web]] as const) {
      const diff = worstDiff(before, await outputsOf(ort, model, feeds));
      assert.ok(diff <= FUSION_TOLERANCE, `${form} at opset ${opset} in onnxruntime-${runtime}: max abs diff ${diff}`);
    }
  }
});

function hardModel(opset: number, form: 'hardswish' | 'hardsigmoid' | 'gated'): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [4, 8]);
  const scalar = (name: string, v: number) => b.constant(Tensor.fromArray(name, DataType.FLOAT, [], new Float32Array([v])));
  let y: string;
  if (form === 'gated') {
    y = b.node('Mul', [x, b.node('HardSigmoid', [x], [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)])]);
  } else {
    const shifted = b.node('Add', [x, scalar('three', 3)]);
    const clip = opset < 11 ? b.node('Clip', [shifted], [attr.float('min', 0), attr.float('max', 6)]) : b.node('Clip', [shifted, scalar('lo', 0), scalar('hi', 6)]);
    y = form === 'hardswish' ? b.node('Div', [b.node('Mul', [x, clip]), scalar('six', 6)]) : b.node('Mul', [clip, scalar('sixth', 1 / 6)]);
  }
  b.output(b.node('Identity', [y], [], { outputs: ['y'] })[0], DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: opset }]);
}

test('fuse-hardswish: Relu6 forms become HardSigmoid / HardSwish (x*HardSigmoid before opset 14)', async () => {
  const web = await loadWebOrt();
  const feeds = floatFeed('x', [4, 8], 4, 5);
  const cases = [
    [14, 'hardswish', ['HardSwish', 'Identity']],
    [11, 'hardswish', ['HardSigmoid', 'Mul', 'Identity']],
    [9, 'hardswish', ['HardSigmoid', 'Mul', 'Identity']],
    [14, 'hardsigmoid', ['HardSigmoid', 'Identity']],
    [14, 'gated', ['HardSwish', 'Identity']],
    [11, 'gated', ['HardSigmoid', 'Mul', 'Identity']],
  ] as const;
  for (const [opset, form, expected] of cases) {
    const before = await outputsOf(nodeOrt, hardModel(opset, form), feeds);
    const model = hardModel(opset, form);
    await apply(fuseHardSwish, model, {});
    assert.deepEqual(opTypes(model), expected, `${form} at opset ${opset}`);
    for (const [runtime, ort] of [['node', nodeOrt], ['web', web]] as const) {
      const diff = worstDiff(before, await outputsOf(ort, model, feeds));
      assert.ok(diff <= FUSION_TOLERANCE, `${form} at opset ${opset} in onnxruntime-${runtime}: max abs diff ${diff}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Real models

async function foldAndFuse(model: Model): Promise<Record<string, PassReport>> {
  const reports: Record<string, PassReport> = {};
  reports.fold = await apply(foldConstants, model, {});
  reports.layerNorm = await apply(fuseLayerNorm, model, {});
  reports.gelu = await apply(fuseGelu, model, {});
  reports.hardSwish = await apply(fuseHardSwish, model, {});
  return reports;
}

test('PP-OCRv4 rec: five LayerNorms fused, outputs within 1e-5 in onnxruntime-node and -web', async () => {
  const file = REC;
  const feeds = floatFeed('x', [1, 3, 48, 320], 5, 1);
  const before = await outputsOf(nodeOrt, await loadModel(file), feeds);
  const model = await loadModel(file);
  const nodesBefore = totalNodes(model.graph);
  const bytesBefore = writeModel(model).byteLength;
  const reports = await foldAndFuse(model);
  const bytesAfter = writeModel(model).byteLength;
  assert.ok(bytesAfter <= bytesBefore, `file grew from ${bytesBefore} to ${bytesAfter} bytes`);
  assert.equal(reports.layerNorm.stats.fused, 5, 'PP-OCRv4 rec has exactly five LayerNorm patterns');
  assert.equal(opTypes(model).filter((op) => op === 'LayerNormalization').length, 5);
  assert.equal(opTypes(model).filter((op) => op === 'ReduceMean' || op === 'Pow' || op === 'Sqrt').length, 0);
  assert.equal(reports.hardSwish.stats.hardSwishAsHardSigmoid, 28);
  const after = await outputsOf(nodeOrt, model, feeds);
  const diff = worstDiff(before, after);
  assert.ok(diff <= FUSION_TOLERANCE, `max abs diff ${diff}`);
  const web = await outputsOf(await loadWebOrt(), model, feeds);
  const webDiff = worstDiff(after, web);
  assert.ok(webDiff <= FUSION_TOLERANCE, `onnxruntime-web vs -node: max abs diff ${webDiff}`);
  console.log(`rec: ${nodesBefore} -> ${totalNodes(model.graph)} nodes, ${bytesBefore} -> ${bytesAfter} bytes; ${summary(reports)}; diff ${diff.toExponential(2)}, web ${webDiff.toExponential(2)}`);
});

function summary(reports: Record<string, PassReport>): string {
  return Object.entries(reports)
    .map(([k, r]) => `${k} ${JSON.stringify(Object.fromEntries(Object.entries(r.stats).filter(([, v]) => v !== 0)))}`)
    .join(', ');
}

const sileroFeeds = (sr: bigint, samples: number) => (ort: OrtModule): Feeds => ({
  input: new ort.Tensor('float32', randomFloats(samples, 8, 0.5), [1, samples]),
  state: new ort.Tensor('float32', randomFloats(256, 9, 0.1), [2, 1, 128]),
  sr: new ort.Tensor('int64', new BigInt64Array([sr]), []),
});

const REAL_CASES: { name: string; file: string; feeds: ((ort: OrtModule) => Feeds)[] }[] = [
  { name: 'PP-OCRv4 det', file: DET, feeds: [floatFeed('x', [1, 3, 96, 128], 6, 1)] },
  { name: 'PP-OCR cls', file: CLS, feeds: [floatFeed('x', [1, 3, 48, 192], 7, 1)] },
  // Both sample rates: each takes other If branches, all of them folded.
  { name: 'Silero VAD v5', file: VAD_V5, feeds: [sileroFeeds(16000n, 512), sileroFeeds(8000n, 256)] },
];

for (const { name, file, feeds } of REAL_CASES) {
  test(`${name}: folded and fused, outputs still match, file no larger`, async () => {
    const original = await loadModel(file);
    const bytesBefore = writeModel(original).byteLength;
    const model = await loadModel(file);
    const nodesBefore = totalNodes(model.graph);
    const reports = await foldAndFuse(model);
    const bytesAfter = writeModel(model).byteLength;
    let diff = 0;
    for (const feed of feeds) diff = Math.max(diff, worstDiff(await outputsOf(nodeOrt, original, feed), await outputsOf(nodeOrt, model, feed)));
    assert.ok(diff <= FUSION_TOLERANCE, `max abs diff ${diff}`);
    assert.ok(totalNodes(model.graph) < nodesBefore);
    assert.ok(bytesAfter <= bytesBefore, `file grew from ${bytesBefore} to ${bytesAfter} bytes`);
    console.log(`${name}: ${nodesBefore} -> ${totalNodes(model.graph)} nodes, ${bytesBefore} -> ${bytesAfter} bytes; ${summary(reports)}; diff ${diff.toExponential(2)}`);
  });
}
