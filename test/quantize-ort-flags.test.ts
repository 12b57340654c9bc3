// The flags users of onnxruntime.quantization look for, on real models through the CLI:
// --only (nodes_to_quantize / op_types_to_quantize), --format qoperator (quant_format QOperator),
// --activation-type (activation_type), their refusals where a method would ignore them (exit 2),
// and the recipe file's quantize keys only / format / activation_type.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { writeNpy } from '../src/eval/npy.js';
import { loadModel } from '../src/node/model-files.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import type { QuantizeCommandReport as QuantizeReport } from '../src/pipeline/quantize-report.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';
import { CLS } from './helpers/real-models.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = mkdtempSync(join(tmpdir(), 'shrink-ort-flags-'));
after(() => rmSync(work, { recursive: true, force: true }));
const fashion = writeFashionFiles(work, 200, 5000);

/** 4 random images [4,3,48,192] in [-0.5, 0.5) for the direction classifier. */
function clsSamples(): string {
  const x = new Float32Array(4 * 3 * 48 * 192);
  let s = 7;
  for (let i = 0; i < x.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    x[i] = s / 2147483648 - 0.5;
  }
  const file = join(work, 'cls.npy');
  writeFileSync(file, writeNpy({ dataType: DataType.FLOAT, dims: [4, 3, 48, 192], data: new Uint8Array(x.buffer) }));
  return file;
}
const CLS_DATA = clsSamples();

async function quantizeJson(args: string[]): Promise<{ report: QuantizeReport; model: Model }> {
  const output = join(work, `out-${Math.random().toString(36).slice(2)}.onnx`);
  const run = await runShrink(['quantize', ...args, '-o', output, '--json']);
  assert.equal(run.code, 0, run.stderr);
  return { report: JSON.parse(run.stdout) as QuantizeReport, model: loadModel(output) };
}

function opCounts(model: Model): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const node of model.graph.nodes) counts[node.opType] = (counts[node.opType] ?? 0) + 1;
  return counts;
}

/** Nodes of `opType` whose weight input (input 1) is a DequantizeLinear's output: their weights are int8. */
function withQuantizedWeight(model: Model, opType: string): number {
  return model.graph.nodes.filter((n) => n.opType === opType && model.graph.producer(n.inputs[1])?.opType === 'DequantizeLinear').length;
}

test('--only Conv (op_types_to_quantize) quantizes the Convs of the PP-OCR classifier and nothing else', async () => {
  // Every layer (--float-prefix 0: by default the first 13 layers of cls stay float32).
  const all = await quantizeJson([CLS, '--method', 'static-int8', '--calib', CLS_DATA, '--samples', '2', '--float-prefix', '0']);
  const only = await quantizeJson([CLS, '--method', 'static-int8', '--calib', CLS_DATA, '--samples', '2', '--only', 'Conv', '--float-prefix', '0']);
  const quantizedOps = (r: QuantizeReport) => {
    const ops: Record<string, number> = {};
    for (const n of r.nodes.list) if (n.quantized && n.reason === undefined) ops[n.op] = (ops[n.op] ?? 0) + 1;
    return ops;
  };
  // Every op type by default; with --only Conv the 53 Convs alone (their Relus fold into the Conv's range).
  assert.deepEqual(quantizedOps(only.report), { Conv: 53 });
  assert.ok(Object.keys(quantizedOps(all.report)).length > 3, JSON.stringify(quantizedOps(all.report)));
  assert.ok(all.report.nodes.quantized > only.report.nodes.quantized + 40, `${all.report.nodes.quantized} vs ${only.report.nodes.quantized}`);
  assert.equal(withQuantizedWeight(only.model, 'Conv'), 53);
  assert.equal(withQuantizedWeight(only.model, 'MatMul'), 0, 'the classifier head stays float32');
  assert.equal(withQuantizedWeight(all.model, 'MatMul'), 1);
  assert.ok(only.report.nodes.skipped_by_reason.excluded > 40);
  // A name regex works too (nodes_to_quantize), and a pattern matching nothing is reported.
  const head = await quantizeJson([CLS, '--method', 'static-int8', '--calib', CLS_DATA, '--samples', '0', '--only', '^p2o\\.MatMul\\.', '--only', 'NoSuchOp']);
  assert.deepEqual(quantizedOps(head.report), { MatMul: 1 });
  assert.deepEqual(
    head.report.warnings.filter((w) => w.code === 'unmatched-pattern').map((w) => w.message),
    [`'NoSuchOp' matches no node of ${CLS}`],
  );
});

test('--only by node name with dynamic-int8 and int4 (nodes_to_quantize) on the Fashion-MNIST MLP', async () => {
  const dynamic = await quantizeJson([MLP, '--method', 'dynamic-int8', '--only', 'fc2', '--samples', '0']);
  const ops = opCounts(dynamic.model);
  assert.equal(ops.DynamicQuantizeMatMul, 1);
  assert.equal(ops.Gemm, 2);
  assert.equal(dynamic.model.graph.nodes.find((n) => n.opType === 'DynamicQuantizeMatMul')?.name.startsWith('fc2'), true);
  const int4 = await quantizeJson([MLP, '--method', 'int4', '--only', 'fc[13]', '--samples', '0']);
  assert.equal(int4.report.nodes.quantized, 2);
});

test('--format qoperator writes QLinearConv and QLinearMatMul; the classifier still agrees with float32', async () => {
  const { report, model } = await quantizeJson([CLS, '--method', 'static-int8', '--calib', CLS_DATA, '--format', 'qoperator', '--samples', '4', '--float-prefix', '0']);
  const ops = opCounts(model);
  assert.equal(ops.QLinearConv, 53);
  assert.equal(ops.QLinearMatMul, 1);
  assert.equal(ops.Conv, undefined);
  assert.equal(ops.MatMul, undefined);
  assert.equal(report.stats.qoperators, 54);
  const out = report.fidelity?.outputs['softmax_0.tmp_0'];
  assert.ok(out !== undefined && typeof out.cosine === 'number' && out.cosine > 0.99, `cosine ${out?.cosine}`);
  console.log(`# PP-OCR cls static-int8 --format qoperator: ${ops.QLinearConv} QLinearConv, ${ops.QLinearMatMul} QLinearMatMul, cosine ${out.cosine} on 4 random images`);
});

test('--activation-type int8 gives int8 activations (uint8 by default); accuracy of the MLP holds', async () => {
  const common = [MLP, '--method', 'static-int8', '--calib', fashion.images, '--labels', fashion.labels, '--data', fashion.images];
  const zeroPointTypes = (model: Model) =>
    new Set(model.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').map((n) => constantValue(model.graph, n.inputs[2])?.dataType));
  const u8 = await quantizeJson(common);
  const s8 = await quantizeJson([...common, '--activation-type', 'int8']);
  assert.deepEqual(zeroPointTypes(u8.model), new Set([DataType.UINT8]));
  assert.deepEqual(zeroPointTypes(s8.model), new Set([DataType.INT8]));
  assert.ok(s8.model.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').length >= 3);
  const accuracy = s8.report.fidelity?.accuracy;
  assert.ok(accuracy !== undefined);
  assert.ok(accuracy.original - accuracy.candidate <= 0.02, `accuracy ${accuracy.original} -> ${accuracy.candidate}`);
  console.log(
    `# MLP static-int8 on 200 held-out images: accuracy ${accuracy.original} -> uint8 activations ${u8.report.fidelity?.accuracy?.candidate}, int8 activations ${accuracy.candidate}`,
  );
  // uint8 is dynamic-int8's own activation type, so asking for it is accepted.
  const dynamic = await quantizeJson([MLP, '--method', 'dynamic-int8', '--activation-type', 'uint8', '--samples', '0']);
  assert.equal(opCounts(dynamic.model).DynamicQuantizeMatMul, 3);
});

test('options a method would ignore are refused with exit 2 and one line', async () => {
  const refused = async (args: string[], pattern: RegExp) => {
    const run = await runShrink(['quantize', MLP, '-o', join(work, 'refused.onnx'), ...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, pattern);
  };
  await refused(['--method', 'dynamic-int8', '--format', 'qoperator'], /--format has no effect with --method dynamic-int8 \(it applies to static-int8\)/);
  await refused(['--method', 'int4', '--activation-type', 'uint8'], /--activation-type has no effect with --method int4 \(it applies to dynamic-int8, static-int8\)/);
  await refused(['--method', 'dynamic-int8', '--activation-type', 'int8'], /DynamicQuantizeLinear, which is uint8 only\); use --method static-int8/);
  await refused(['--method', 'fp16', '--weight-type', 'uint8'], /--weight-type has no effect with --method fp16/);
  await refused(['--method', 'static-int8', '--accuracy-level', '4'], /--accuracy-level has no effect with --method static-int8/);
  await refused(['--method', 'int4', '--accuracy-level', '5'], /--accuracy-level must be 0 to 4, got 5/);
  await refused(['--method', 'int4', '--only', 'fc(1'], /--only: 'fc\(1' is not a valid regular expression/);
  await refused(['--method', 'static-int8', '--format', 'qlinear'], /argument 'qlinear' is invalid\. Allowed choices are qdq, qoperator/);
});

test('recipe quantize steps take only, format and activation_type, and refuse them where they mean nothing', () => {
  const recipe = parseRecipe('steps:\n  - quantize: {method: static-int8, only: [Conv, "^head"], format: qoperator, activation_type: int8}\n', 'r.yaml');
  const step = recipe.steps[0];
  assert.equal(step.kind, 'quantize');
  if (step.kind !== 'quantize') return;
  assert.deepEqual(step.options.only, ['Conv', '^head']);
  assert.equal(step.options.format, 'qoperator');
  assert.equal(step.options.activationType, 'int8');
  const fails = (text: string, pattern: RegExp) =>
    assert.throws(
      () => parseRecipe(text, 'r.yaml'),
      (error: Error) => {
        assert.equal(error.message.split('\n').length, 1);
        assert.match(error.message, pattern);
        return true;
      },
    );
  fails('steps:\n  - quantize: {method: int4, format: qdq}\n', /^r\.yaml: steps\.0\.quantize: 'format' has no effect with method int4 \(it applies to static-int8\)$/);
  fails('steps:\n  - quantize: {method: fp16, activation_type: uint8}\n', /^r\.yaml: steps\.0\.quantize: 'activation_type' has no effect with method fp16/);
  fails('steps:\n  - quantize: {method: dynamic-int8, activation_type: int8}\n', /'activation_type' int8 is not possible with dynamic-int8/);
  fails('steps:\n  - quantize: {method: int4, only: []}\n', /'steps\.0\.quantize\.only': Too small/);
});
