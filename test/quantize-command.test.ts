// `shrink quantize` end to end: the real CLI in a child process on the PP-OCR direction
// classifier. --method fp16 into a folder writes <input>_fp16.onnx, and the --json report's
// numbers agree with the files on disk; bad command lines fail with one line and the right code.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import type { QuantizeCommandReport as QuantizeReport } from '../src/pipeline/quantize-report.js';
import { loadModel } from '../src/node/model-files.js';
import { REPO_ROOT, spawnShrink } from './helpers/cli.js';
import { CLS } from './helpers/real-models.js';

const CLS_DIMS = 'p2o.DynamicDimension.0=1,p2o.DynamicDimension.1=48,p2o.DynamicDimension.2=192';
const work = mkdtempSync(join(tmpdir(), 'shrink-quantize-'));
after(() => rmSync(work, { recursive: true, force: true }));

const shrink = (...args: string[]) => spawnShrink(args, { timeout: 60_000 });

function oneLineError(result: ReturnType<typeof shrink>, code: number, pattern: RegExp): void {
  assert.equal(result.status, code, result.stderr);
  assert.equal(result.stdout, '');
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], pattern);
}

test('quantize --method fp16 into a folder writes <input>_fp16.onnx and a JSON report that matches it', () => {
  const folder = join(work, 'out');
  const result = shrink('quantize', CLS, '-o', `${folder}/`, '--method', 'fp16', '--json', '--samples', '2', '--dims', CLS_DIMS);
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout) as QuantizeReport;
  const file = join(folder, 'ch_ppocr_mobile_v2.0_cls_infer_fp16.onnx');
  assert.equal(report.output, file);
  assert.equal(report.method, 'fp16');
  assert.equal(report.size.before, statSync(join(REPO_ROOT, CLS)).size);
  assert.equal(report.size.after, statSync(file).size);
  assert.ok(report.size.ratio < 0.55, `ratio ${report.size.ratio}`);
  // Every converted weight halves; the per-tensor list adds up to the summary.
  assert.equal(report.weights.tensors, 183);
  assert.equal(report.weights.bytes_after * 2, report.weights.bytes_before);
  assert.equal(
    report.tensors.reduce((n, t) => n + t.bytes_before, 0),
    report.weights.bytes_before,
  );
  assert.ok(typeof report.weights.min_sqnr_db === 'number' && report.weights.min_sqnr_db > 60, `min SQNR ${report.weights.min_sqnr_db}`);
  // On CPU every compute op of this model stays float32, each with its reason.
  assert.equal(report.nodes.quantized, 0);
  assert.equal(report.nodes.skipped, report.nodes.list.length);
  assert.equal(report.nodes.skipped_by_reason['no float16 kernel in onnxruntime CPU for Conv-9'], 53);
  const fidelity = report.fidelity;
  assert.ok(fidelity !== undefined, report.fidelity_skipped);
  assert.equal(fidelity.samples, 2);
  const out = fidelity.outputs['softmax_0.tmp_0'];
  assert.ok(typeof out.cosine === 'number' && out.cosine > 0.9999, `cosine ${out.cosine}`);
  assert.equal(out.top1_agreement, 1);
  const written = loadModel(file);
  assert.equal(written.graph.initializers.filter((t) => t.dataType === DataType.FLOAT16).length, 183);
});

test('quantize prints a readable report, and --exclude keeps the named op in float32', () => {
  const file = join(work, 'cls-excluded.onnx');
  const result = shrink('quantize', CLS, '-o', file, '--method', 'fp16', '--exclude', 'Conv', '--samples', '0');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^size {7}565 KiB -> \d+ KiB \(0\.\d+x\)$/m);
  assert.match(result.stdout, /53 {2}excluded by 'Conv'/);
  assert.match(result.stdout, /fidelity {3}not measured: --samples 0/);
  const written = loadModel(file);
  // Conv weights (and the biases only Convs read) stayed float32.
  assert.ok(written.graph.nodes.filter((n) => n.opType === 'Conv').every((n) => n.inputs.slice(1).every((w) => !w.endsWith('_fp32'))));
});

test('bad command lines: unknown method (2), missing input (1), missing --calib (1), bad config (1, naming the key)', () => {
  oneLineError(
    shrink('quantize', CLS, '-o', work, '--method', 'int3'),
    2,
    /^shrink: option '--method <method>' argument 'int3' is invalid\. Allowed choices are fp16, bf16, /,
  );
  oneLineError(shrink('quantize', join(work, 'missing.onnx'), '-o', work, '--method', 'fp16'), 1, /^shrink: .*missing\.onnx: no such file$/);
  oneLineError(shrink('quantize', CLS, '-o', work, '--method', 'static-int8'), 1, /^shrink: quantize: static-int8 needs calibration data: give --calib DATA/);
  const config = join(work, 'config.json');
  writeFileSync(config, JSON.stringify({ nodes: [{ match: 'Conv', precision: 'fp8' }] }));
  oneLineError(shrink('quantize', CLS, '-o', work, '--method', 'fp16', '--config', config), 1, /config\.json: 'nodes\.0\.precision': Invalid option/);
  writeFileSync(config, JSON.stringify({ blocksize: 32 }));
  oneLineError(shrink('quantize', CLS, '-o', work, '--method', 'fp16', '--config', config), 1, /config\.json: 'blocksize': Unrecognized key/);
  oneLineError(shrink('quantize', CLS, '-o', work, '--method', 'fp16', '--exclude', 'conv('), 2, /--exclude: 'conv\(' is not a valid regular expression/);
  assert.equal(readFileSync(config, 'utf8').length > 0, true);
});
