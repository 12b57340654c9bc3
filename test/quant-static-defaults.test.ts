// The defaults `shrink quantize --method static-int8` picks from the calibration data: bias correction
// is on (and says why) with at least 4 real samples, measured on at most 8; off with fewer, saying
// so; --no-bias-correction turns it off. The Fashion-MNIST MLP keeps this fast.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DataType } from '../src/ir/dtype.js';
import { parseIdx } from '../src/eval/idx.js';
import { writeNpy } from '../src/eval/npy.js';
import type { QuantizeCommandReport } from '../src/pipeline/quantize-report.js';
import { spawnShrink } from './helpers/cli.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const FASHION = '/usr/share/datasets/fashion-mnist';
const work = mkdtempSync(join(tmpdir(), 'shrink-static-defaults-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The first `count` training images as an .npy of [count, 1, 28, 28] in [0, 1]. */
function calibFile(count: number): string {
  const images = parseIdx(gunzipSync(readFileSync(`${FASHION}/train-images-idx3-ubyte.gz`)), 'train-images');
  const data = Float32Array.from(images.data.subarray(0, count * 784), (v) => v / 255);
  const file = join(work, `calib-${count}.npy`);
  writeFileSync(file, writeNpy({ dataType: DataType.FLOAT, dims: [count, 1, 28, 28], data: new Uint8Array(data.buffer) }));
  return file;
}

const quantize = (calib: string, ...extra: string[]) => spawnShrink(['quantize', MLP, '-o', join(work, `out-${extra.length}-${calib.length}.onnx`), '--method', 'static-int8', '--calib', calib, '--no-bench', ...extra], { timeout: 120_000 });

test('static-int8 default: bias correction with >= 4 real calibration samples (on the first 8, reason printed), not with 2; --no-bias-correction skips it', () => {
  const sixteen = calibFile(16);
  const on = quantize(sixteen);
  assert.equal(on.status, 0, on.stderr);
  assert.match(on.stdout, /bias +3 layer biases corrected .* on 8 samples; .*on by default: 16 real calibration samples \(--no-bias-correction skips it\)/);

  const json = JSON.parse(quantize(sixteen, '--json').stdout) as QuantizeCommandReport;
  assert.equal(json.stats.bias_correction_auto, 1);
  assert.equal(json.stats.bias_correction_on, 1);
  assert.equal(json.stats.bias_correction_samples, 8);

  const few = quantize(calibFile(2));
  assert.equal(few.status, 0, few.stderr);
  assert.match(few.stdout, /bias +not corrected: .*at least 4 real .* this run had 2 samples, 3 deep \(--bias-correction forces it\)/);

  const off = JSON.parse(quantize(sixteen, '--no-bias-correction', '--json').stdout) as QuantizeCommandReport;
  assert.equal(off.stats.bias_corrected, undefined);
  assert.equal(off.stats.bias_correction_auto, undefined);
});
