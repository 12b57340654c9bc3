// `--algorithm awq` for weight-only quantization. The scales must leave the float model as it was:
// with the folds (LayerNormalization scale and bias, a Gemm's output rows and bias, a decomposed
// LayerNorm's gamma and beta through a Relu, GELU's constant 0.5 in spam-bert) and the inserted Muls and no rounding, an in-code model and spam-bert compute what they
// computed within 1e-5. On the Fashion-MNIST MLP (Gemm layers through MatMulNBits; the first reads
// the graph input through Flatten and gets a Mul) AWQ stays closer to the float logits than
// round-to-nearest on held-out images at int2 and int4, with accuracy on the 10k test images within
// noise of it (calibration on training images only), and options that cannot work are one line.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { SampleSource } from '../src/eval/samples.js';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { solveAwq } from '../src/methods/quantize/awq.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionCalibration, writeFashionFiles } from './helpers/fashion-files.js';
import { runModel } from './helpers/run-model.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-awq-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const ctx = { ort: nodeOrt, threads: 1 };

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

function randoms(n: number, next: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => scale * gaussian(next));
}

function source(rows: Record<string, Tensor>[]): SampleSource {
  return {
    inputs: Object.keys(rows[0]),
    count: rows.length,
    description: 'test samples',
    async *[Symbol.asyncIterator]() {
      for (const [index, inputs] of rows.entries()) yield { index, where: `sample ${index}`, inputs };
    },
  };
}

/**
 * x [N, 32] -> LayerNormalization -> (Q, K: MatMul [32, 32]; Shape) -> Add -> Gemm transB [48, 32]
 * + bias -> Gemm [48, 24] + bias -> Mul gamma -> Add beta -> Relu -> MatMul [24, 10] -> y. 1/s folds
 * into the LayerNorm (Q and K share s), into the first Gemm, into gamma and beta through the Relu;
 * the Add of Q and K gets a Mul.
 */
function inCodeModel(): Model {
  const next = mulberry32(5);
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 32]);
  const lnScale = Float32Array.from({ length: 32 }, (_, j) => (j % 6 === 0 ? 5 : 0.5 + next()));
  const ln = b.node('LayerNormalization', [x, b.initializer('ln.scale', DataType.FLOAT, [32], lnScale), b.initializer('ln.bias', DataType.FLOAT, [32], randoms(32, next, 0.1))], [], { name: 'ln' });
  const q = b.node('MatMul', [ln, b.initializer('wq', DataType.FLOAT, [32, 32], randoms(1024, next, 0.2))], [], { name: 'q' });
  const k = b.node('MatMul', [ln, b.initializer('wk', DataType.FLOAT, [32, 32], randoms(1024, next, 0.2))], [], { name: 'k' });
  b.node('Shape', [ln], [], { name: 'ln_shape', outputs: ['shape'] });
  const sum = b.node('Add', [q, k], [], { name: 'add' });
  const g1 = b.node('Gemm', [sum, b.initializer('w1', DataType.FLOAT, [48, 32], randoms(48 * 32, next, 0.2)), b.initializer('b1', DataType.FLOAT, [48], randoms(48, next, 0.1))], [attr.int('transB', 1)], { name: 'g1' });
  const g2 = b.node('Gemm', [g1, b.initializer('w2', DataType.FLOAT, [48, 24], randoms(48 * 24, next, 0.2)), b.initializer('b2', DataType.FLOAT, [24], randoms(24, next, 0.1))], [], { name: 'g2' });
  // A LayerNorm as exporters decompose it ends in Mul by gamma and Add of beta.
  const gm = b.node('Mul', [g2, b.initializer('gamma', DataType.FLOAT, [24], Float32Array.from({ length: 24 }, () => 0.5 + next()))], [], { name: 'gm' });
  const ga = b.node('Add', [gm, b.initializer('beta', DataType.FLOAT, [24], randoms(24, next, 0.1))], [], { name: 'ga' });
  const r = b.node('Relu', [ga]);
  b.node('MatMul', [r, b.initializer('w3', DataType.FLOAT, [24, 10], randoms(240, next, 0.2))], [], { name: 'out', outputs: ['y'] });
  b.output('y', DataType.FLOAT, ['N', 10]);
  b.output('shape', DataType.INT64, [2]);
  return buildModel(b.graph);
}

function relativeDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  let largest = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    largest = Math.max(largest, Math.abs(a[i]));
  }
  return worst / Math.max(1, largest);
}

test('awq scales and folds leave the float model unchanged: LayerNorm, Gemm, Mul and Add of constants through Relu folded, a Mul after Add', async () => {
  const model = inCodeModel();
  const next = mulberry32(8);
  const rows = Array.from({ length: 16 }, () => ({ x: Tensor.fromArray('x', DataType.FLOAT, [4, 32], randoms(128, next)) }));
  const before = await Promise.all(rows.map((r) => runModel(model, [r.x])));
  const scaled = model.clone();
  const solution = await solveAwq(scaled, { bits: 4, blockSize: 16, symmetric: true, calibration: source(rows) }, ctx);
  assert.equal(solution.solved.size, 5);
  assert.deepEqual(
    solution.groups.map((g) => [g.layers.join('+'), 'into' in g.folded ? g.folded.into : 'Mul']),
    [
      ['q+k', "LayerNormalization 'ln'"],
      ['g1', 'Mul'],
      ['g2', "Gemm 'g1'"],
      ['out', "Mul 'gm' through Add 'ga' through Relu 'Relu'"],
    ].map(([a, b]) => [a, b.replace("'Relu'", `'${scaled.graph.nodes.find((n) => n.opType === 'Relu')?.label}'`)]),
  );
  assert.ok(solution.groups.every((g) => g.errorRatio <= 1));
  for (const [i, r] of rows.entries()) {
    const [y, shape] = await runModel(scaled, [r.x]);
    assert.ok(relativeDiff(before[i][0].data() as Float32Array, y.data() as Float32Array) < 1e-5);
    assert.deepEqual(shape.data(), before[i][1].data());
  }
});

test('awq on spam-bert: the scaled float model equals the original within 1e-5', async () => {
  const bert = loadModel('models/spam-bert/onnx/model.onnx');
  const next = mulberry32(4);
  const feeds = (length: number) => {
    const int64 = (name: string, value: () => bigint) => Tensor.fromArray(name, DataType.INT64, [1, length], BigInt64Array.from({ length }, value));
    return { input_ids: int64('input_ids', () => BigInt(100 + Math.floor(next() * 3000))), attention_mask: int64('attention_mask', () => 1n), token_type_ids: int64('token_type_ids', () => 0n) };
  };
  const calibration = Array.from({ length: 8 }, (_, i) => feeds(16 + 8 * i));
  const checks = Array.from({ length: 4 }, (_, i) => feeds(20 + 11 * i));
  const order = (f: Record<string, Tensor>) => bert.graph.inputs.map((i) => f[i.name]);
  const before = await Promise.all(checks.map((f) => runModel(bert, order(f))));
  const scaled = bert.clone();
  const solution = await solveAwq(scaled, { bits: 4, blockSize: 32, symmetric: true, calibration: source(calibration) }, ctx);
  const folded = solution.groups.filter((g) => 'into' in g.folded).length;
  process.stderr.write(`spam-bert awq: ${solution.solved.size} layers, ${solution.groups.length} inputs, ${folded} folded: ${solution.groups.map((g) => `${g.layers.join('+')} α ${g.alpha} ${'into' in g.folded ? `-> ${g.folded.into}` : `Mul (${g.folded.reason})`}`).join('; ')}\n`);
  assert.ok(solution.solved.size >= 14);
  // Post-LN: the LayerNorm outputs feed residual Adds too, so Q/K/V and FFN-in get a Mul; the
  // FFN-out's 1/s goes into the constant 0.5 of GELU's last Mul.
  assert.deepEqual(
    solution.groups.filter((g) => 'into' in g.folded).map((g) => [g.layers.join('+'), 'into' in g.folded && g.folded.into]),
    [
      ['/layers.0/output/MatMul', "Mul '/layers.0/Mul_1'"],
      ['/layers.1/output/MatMul', "Mul '/layers.1/Mul_1'"],
    ],
  );
  for (const [i, f] of checks.entries()) {
    const [logits] = await runModel(scaled, order(f));
    assert.ok(relativeDiff(before[i][0].data() as Float32Array, logits.data() as Float32Array) < 1e-5);
  }
});


test('awq against round-to-nearest on the MLP at int2 and int4, on 10k held-out images', async () => {
  const calib = writeFashionCalibration(work);
  const check = writeFashionFiles(work, 256);
  const testSet = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const dense = await classifierAccuracy(nodeOrt, loadModel(MLP), testSet, { threads: 1 });
  const accuracy: Record<string, number> = {};
  const cosine: Record<string, number> = {};
  for (const [method, extra] of [
    ['int2', ['--block-size', '16', '--asymmetric']],
    ['int4', ['--block-size', '32']],
  ] as const) {
    for (const algorithm of ['rtn', 'awq']) {
      const out = path.join(work, `${method}-${algorithm}.onnx`);
      const args = ['quantize', MLP, '-o', out, '--method', method, ...extra, '--algorithm', algorithm, '--data', check.images, '--json'];
      if (algorithm === 'awq') args.push('--calib', calib);
      const run = await runShrink(args);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout);
      if (algorithm === 'awq') {
        assert.deepEqual([report.stats.awq_layers, report.stats.awq_groups, report.stats.awq_folded, report.stats.awq_mul], [3, 3, 2, 1], JSON.stringify(report.stats));
        assert.equal(report.stats.calibration_samples, 128);
      }
      cosine[`${method} ${algorithm}`] = report.fidelity.outputs.logits.cosine;
      const model = loadModel(out);
      assert.equal(model.graph.nodes.filter((n) => n.opType === 'MatMulNBits').length, 3);
      // The first layer reads the flattened image through the inserted Mul by 1/s.
      assert.equal(model.graph.nodes.filter((n) => n.opType === 'Mul').length, algorithm === 'awq' ? 1 : 0);
      accuracy[`${method} ${algorithm}`] = await classifierAccuracy(nodeOrt, model, testSet, { threads: 1 });
    }
  }
  // Without the clipping search (--no-clip) int2 is further from the float logits: at int2 most of AWQ's gain is the clipping.
  const unclipped = await runShrink(['quantize', MLP, '-o', path.join(work, 'int2-awq-noclip.onnx'), '--method', 'int2', '--block-size', '16', '--asymmetric', '--algorithm', 'awq', '--no-clip', '--calib', calib, '--data', check.images, '--json']);
  assert.equal(unclipped.code, 0, unclipped.stderr);
  const noClip = JSON.parse(unclipped.stdout);
  assert.equal(noClip.stats.awq_clip, 0);
  cosine['int2 awq --no-clip'] = noClip.fidelity.outputs.logits.cosine;
  assert.ok(cosine['int2 awq --no-clip'] < cosine['int2 awq'], JSON.stringify(cosine));
  process.stderr.write(`MLP held-out accuracy: dense ${dense.toFixed(2)}%, ${Object.entries(accuracy).map(([k, v]) => `${k} ${v.toFixed(2)}% (cosine ${cosine[k].toFixed(4)})`).join(', ')}\n`);
  // Closer to the float logits on held-out images at both widths (int2: 1 - cosine halved)...
  assert.ok(1 - cosine['int2 awq'] < 0.6 * (1 - cosine['int2 rtn']), JSON.stringify(cosine));
  assert.ok(cosine['int4 awq'] > cosine['int4 rtn'], JSON.stringify(cosine));
  // ...but no more accurate: AWQ lowers each layer's squared output error (fc1 2.7x on held-out
  // inputs at int2), which the cosine follows and the argmax does not; on all 10k test images int2
  // top-1 agreement with float drops 95.1% -> 93.8% with 128 calibration samples (95.1% with 1024).
  // Measured: int2 87.83% -> 87.40%, int4 89.09% -> 89.00%.
  assert.ok(accuracy['int2 awq'] > accuracy['int2 rtn'] - 0.6, JSON.stringify(accuracy));
  assert.ok(accuracy['int4 awq'] >= accuracy['int4 rtn'] - 0.2, JSON.stringify(accuracy));
});

test('awq options that cannot work are one line, exit 2, nothing written', async () => {
  const out = path.join(work, 'bad.onnx');
  for (const [args, message] of [
    [['--method', 'int4', '--algorithm', 'awq'], /^shrink: --algorithm awq needs calibration data: give --calib/],
    [['--method', 'int4', '--algorithm', 'awq', '--calib', 'x.npy', '--act-order'], /--act-order goes with --algorithm gptq/],
    [['--method', 'int4', '--algorithm', 'gptq', '--calib', 'x.npy', '--no-clip'], /--no-clip goes with --algorithm awq/],
    [['--method', 'fp16', '--algorithm', 'awq', '--calib', 'x.npy'], /--algorithm has no effect with --method fp16/],
  ] as const) {
    const run = await runShrink(['quantize', MLP, '-o', out, ...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.ok(!fs.existsSync(out));
  }
  assert.throws(() => parseRecipe('steps:\n  - quantize: {method: int4, algorithm: awq, act_order: true}\n', 'r.yaml'), /'act_order' goes with algorithm gptq/);
  assert.throws(() => parseRecipe('steps:\n  - quantize: {method: int4, algorithm: gptq, clip: false}\n', 'r.yaml'), /'clip' goes with algorithm awq/);
  const unclipped = parseRecipe('steps:\n  - quantize: {method: int4, algorithm: awq, clip: false}\n', 'r.yaml').steps[0];
  assert.ok(unclipped.kind === 'quantize' && unclipped.options.awqClip === false);
  const recipe = parseRecipe('steps:\n  - quantize: {method: int2, algorithm: awq, calibration_samples: 64}\n', 'r.yaml');
  const step = recipe.steps[0];
  assert.ok(step.kind === 'quantize' && step.options.algorithm === 'awq' && step.options.calibrationSamples === 64);
});
