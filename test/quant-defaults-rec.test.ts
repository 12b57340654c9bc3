// The default static-int8 command on PP-OCRv4 rec, checked on text it was not calibrated on:
// calibrated on 12 rendered lines in one font, judged on 16 lines in six other fonts. With
// per-tensor weights (the old default) every one of those lines decoded wrong and the command said
// nothing; per-channel weights are the default now, most lines decode as the float model reads
// them (and more since the first layers stay float32 by default: --float-prefix auto), and the
// verdict says plainly how close the result is and what to try.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeNpy } from '../src/eval/npy.js';
import { DataType } from '../src/ir/dtype.js';
import { spawnShrink } from './helpers/cli.js';
import { loadOcrLines, type OcrLine, readLines, recInput } from './helpers/ocr-lines.js';
import { REC } from './helpers/real-models.js';

const work = fs.mkdtempSync(path.join(tmpdir(), 'shrink-rec-defaults-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

const CALIBRATION_FONT = 'Noto-Sans-CJK-SC';

function writeLines(file: string, lines: readonly OcrLine[]): string {
  const input = recInput(lines);
  fs.writeFileSync(file, writeNpy({ dataType: DataType.FLOAT, dims: [...input.dims], data: input.bytes() }));
  return file;
}

test('static-int8 on PP-OCRv4 rec by default: per-channel weights, held-out lines read as in float, a verdict with what to try', { timeout: 420_000 }, async () => {
  // Lines of one input width stack into one .npy; the calibration font is not among the held-out ones.
  const lines = (await loadOcrLines()).filter((l) => l.inputWidth === 320);
  const calibration = writeLines(path.join(work, 'calib.npy'), lines.filter((l) => l.font === CALIBRATION_FONT));
  const heldOut = lines.filter((l) => l.font !== CALIBRATION_FONT);
  const data = writeLines(path.join(work, 'held-out.npy'), heldOut);
  assert.equal(heldOut.length, 16);
  const reference = await readLines(REC, heldOut);

  const quantize = (output: string, ...extra: string[]) => {
    const run = spawnShrink(['quantize', REC, '-o', output, '--method', 'static-int8', '--calib', calibration, '--data', data, '--json', '--no-progress', ...extra], { timeout: 300_000 });
    assert.equal(run.status, 0, run.stderr);
    return { report: JSON.parse(run.stdout), stderr: run.stderr };
  };
  const byDefault = quantize(path.join(work, 'default.onnx'));
  // The old default: per-tensor weights, every layer int8.
  const perTensor = quantize(path.join(work, 'per-tensor.onnx'), '--per-tensor', '--float-prefix', '0');
  assert.equal(byDefault.report.stats.per_channel, 1);
  assert.equal(perTensor.report.stats.per_channel, 0);
  assert.ok(byDefault.report.stats.float_prefix_layers > 0 && perTensor.report.stats.float_prefix_layers === 0);

  const same = async (file: string) => (await readLines(file, heldOut)).filter((text, i) => text === reference[i]).length;
  const sameByDefault = await same(path.join(work, 'default.onnx'));
  const samePerTensor = await same(path.join(work, 'per-tensor.onnx'));
  const cosine = (r: { fidelity: { outputs: Record<string, { cosine: number }> } }) => Object.values(r.fidelity.outputs)[0].cosine;
  console.log(`# held-out lines decoded as in float32: per-channel (default) ${sameByDefault}/16, cosine ${cosine(byDefault.report).toFixed(4)}; per-tensor ${samePerTensor}/16, cosine ${cosine(perTensor.report).toFixed(4)}`);
  assert.ok(sameByDefault >= 12, `default: ${sameByDefault}/16 lines as in float32`);
  assert.ok(sameByDefault > samePerTensor);
  assert.ok(cosine(byDefault.report) > cosine(perTensor.report));

  // The verdict is never a plain table: below cosine 0.99 it is a warning with the settings to try.
  for (const { report, stderr } of [byDefault, perTensor]) {
    if (cosine(report) >= 0.99) {
      assert.equal(report.verdict.status, 'close');
      continue;
    }
    assert.equal(report.verdict.status, 'damaged');
    assert.ok(report.verdict.hints.includes('--calibrator entropy') && report.verdict.hints.includes('--fp32-search 20'), report.verdict.hints.join(', '));
    assert.match(stderr, /shrink: warning: the result differs from the original on 16 samples: .*; try /);
  }
  assert.ok(perTensor.report.verdict.hints.includes('--per-channel'));
});
