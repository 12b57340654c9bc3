// Fitted output offsets (pipeline/fit-output-bias.ts): a candidate whose logits carry a known
// systematic pull on two classes (as int8 pulls PP-OCR rec's space against its blank) gets offsets
// that restore the original's top-1 on the fitting samples and on new ones, written into the
// logits' bias (or a new Add when there is none) so that onnxruntime runs it unchanged.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { StaticQatCommandReport } from '../src/cli/qat-static-command.js';
import { writeNpz } from '../src/eval/npz.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { rowArgmax } from '../src/methods/quantize/output-offsets.js';
import { fitOutputBias } from '../src/pipeline/fit-output-bias.js';
import { spawnShrink } from './helpers/cli.js';

const [F, C] = [6, 5];

/** x [N, 6] -> MatMul -> + bias (an Add, or a Sub of its negative) = logits -> Softmax = y; `shift` moves some classes' bias. */
function classifier(shift: Record<number, number>, withBias = true): Model {
  const next = mulberry32(3);
  const b = new GraphBuilder(new Graph('classifier'));
  b.input('x', DataType.FLOAT, ['N', F]);
  const w = b.initializer(
    'w',
    DataType.FLOAT,
    [F, C],
    Float32Array.from({ length: F * C }, () => next() * 2 - 1),
  );
  const bias = Float32Array.from({ length: C }, (_, c) => 0.1 * c + (shift[c] ?? 0));
  b.node('MatMul', ['x', w], [], { outputs: ['mm'] });
  if (withBias) b.node('Add', ['mm', b.initializer('bias', DataType.FLOAT, [C], bias)], [], { outputs: ['logits'] });
  else
    b.node(
      'Sub',
      [
        'mm',
        b.initializer(
          'negative_bias',
          DataType.FLOAT,
          [C],
          bias.map((v) => -v),
        ),
      ],
      [],
      { outputs: ['logits'] },
    );
  b.node('Softmax', ['logits'], [], { outputs: ['y'] });
  b.output('y');
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

function samples(count: number, seed: number) {
  const next = mulberry32(seed);
  return Float32Array.from({ length: count * F }, () => next() * 4 - 2);
}

async function top1(model: Model, x: Float32Array): Promise<Int32Array> {
  const session = await nodeOrt.InferenceSession.create(writeModel(model));
  try {
    const out = await session.run({
      x: new nodeOrt.Tensor('float32', x, [x.length / F, F]),
    });
    return rowArgmax(out.y.data as Float32Array, C);
  } finally {
    await session.release();
  }
}

const agreement = (a: Int32Array, b: Int32Array) => a.filter((v, i) => v === b[i]).length / a.length;

for (const withBias of [true, false]) {
  test(`fitted output offsets undo a known pull on two classes (${withBias ? 'into the bias' : 'as a new Add after a Sub'}), on new samples too`, async () => {
    const original = classifier({});
    // Class 1 pulled up, class 3 down: the candidate reads 1 where the original reads something else.
    const candidate = classifier({ 1: 0.8, 3: -0.6 }, withBias);
    const fitting = samples(400, 5);
    const fresh = samples(400, 9);
    const { model, report } = await fitOutputBias(original, candidate, { x: { data: fitting, sampleDims: [F], dataType: DataType.FLOAT } }, 'logits', { ort: nodeOrt });
    assert.deepEqual([...report.classes].sort(), [1, 3], 'the two pulled classes are the ones fitted');
    assert.equal(report.written, withBias ? 'bias' : 'add');
    assert.ok(report.agreementBefore < 0.9, `the pull changes answers (${report.agreementBefore})`);
    const want = await top1(original, fresh);
    const before = agreement(await top1(candidate, fresh), want);
    const after = agreement(await top1(model, fresh), want);
    assert.ok(after >= 0.98 && after > before + 0.05, `new samples: ${before} -> ${after}`);
    assert.ok(report.agreementAfter >= after - 0.05, `fitting samples ${report.agreementAfter}`);
    assert.ok(Math.abs(report.offsets['1'] + 0.8) < 0.3 && Math.abs(report.offsets['3'] - 0.6) < 0.3, JSON.stringify(report.offsets));
    assert.equal(model.graph.nodes.length, candidate.graph.nodes.length + (withBias ? 0 : 1), withBias ? 'folded into the existing bias' : 'one Add');
    assert.equal(agreement(await top1(candidate, fresh), await top1(classifier({ 1: 0.8, 3: -0.6 }, withBias), fresh)), 1, 'the candidate itself is not changed');
  });
}

test('fitted output offsets name the missing value', async () => {
  const m = classifier({});
  await assert.rejects(fitOutputBias(m, m, { x: { data: samples(4, 1), sampleDims: [F], dataType: DataType.FLOAT } }, 'nope', { ort: nodeOrt }), /has no value 'nope'/);
});

const work = mkdtempSync(join(tmpdir(), 'shrink-output-offsets-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('shrink qat --method static-int8 --fit-output-bias: every epoch reports its fitted offsets, kept only when they score higher', () => {
  const input = join(work, 'classifier.onnx');
  writeFileSync(input, writeModel(classifier({})));
  const data = join(work, 'data.npz');
  writeFileSync(data, writeNpz({ x: { dataType: DataType.FLOAT, dims: [64, F], data: new Uint8Array(samples(64, 5).buffer) } }));
  const output = join(work, 'classifier-int8.onnx');
  const run = spawnShrink(['qat', input, '-o', output, '--method', 'static-int8', '--data', data, '--distill-value', 'logits', '--fit-output-bias', '--epochs', '1', '--batch-size', '16', '--json'], { timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as StaticQatCommandReport;
  assert.deepEqual(
    report.epochs.map((e) => e.epoch),
    [0, 1],
  );
  for (const e of report.epochs) {
    const bias = e.output_bias;
    assert.ok(bias !== undefined && bias.agreement_after >= bias.agreement_before && bias.agreement_before <= 1, JSON.stringify(e));
    if (bias.kept) assert.ok(Object.keys(bias.offsets).length > 0, 'kept offsets are offsets');
  }
  const refused = spawnShrink(['qat', input, '-o', join(work, 'refused.onnx'), '--method', 'int8-weight', '--data', data, '--fit-output-bias'], { timeout: 60_000 });
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(refused.stderr.trim(), /^shrink: --fit-output-bias: only with --method static-int8/);
});

test('shrink quantize --fit-output-bias: offsets fitted on --calib, reported; without --calib one usage line', () => {
  const input = join(work, 'classifier-q.onnx');
  writeFileSync(input, writeModel(classifier({})));
  const calib = join(work, 'calib.npz');
  writeFileSync(calib, writeNpz({ x: { dataType: DataType.FLOAT, dims: [32, F], data: new Uint8Array(samples(32, 7).buffer) } }));
  const output = join(work, 'classifier-q-int8.onnx');
  const run = spawnShrink(['quantize', input, '-o', output, '--method', 'static-int8', '--calib', calib, '--fit-output-bias', 'logits', '--no-bench', '--json'], { timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as { output_bias?: { value: string; rows: number; agreementBefore: number; agreementAfter: number } };
  const bias = report.output_bias;
  assert.ok(bias !== undefined && bias.value === 'logits' && bias.rows === 32 && bias.agreementAfter >= bias.agreementBefore, JSON.stringify(bias));
  const refused = spawnShrink(['quantize', input, '-o', join(work, 'refused-q.onnx'), '--method', 'int8-weight', '--fit-output-bias', 'logits'], { timeout: 60_000 });
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(refused.stderr.trim(), /^shrink: --fit-output-bias fits on the --calib samples: give --calib$/);
});

test('shrink run: quantize fit_output_bias fits on --calib and reports it; without --calib the step refuses', () => {
  const input = join(work, 'classifier-r.onnx');
  writeFileSync(input, writeModel(classifier({})));
  const calib = join(work, 'calib-r.npz');
  writeFileSync(calib, writeNpz({ x: { dataType: DataType.FLOAT, dims: [32, F], data: new Uint8Array(samples(32, 7).buffer) } }));
  const recipe = join(work, 'offsets.yaml');
  writeFileSync(recipe, 'steps:\n  - quantize: {method: static-int8, fit_output_bias: logits}\n');
  const run = spawnShrink(['run', recipe, input, '-o', join(work, 'classifier-r-int8.onnx'), '--calib', calib, '--data', calib, '--json', '--no-progress'], { timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const bias = JSON.parse(run.stdout).steps[0].report.output_bias;
  assert.ok(bias?.value === 'logits' && bias.rows === 32, JSON.stringify(bias));
  const refused = spawnShrink(['run', recipe, input, '-o', join(work, 'refused-r.onnx'), '--data', calib, '--no-progress'], { timeout: 60_000 });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /'fit_output_bias' fits on the calibration samples: give --calib/);
});
