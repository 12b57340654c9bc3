// OBS codes (cluster `codes: 'obs'`): the fast kernel against its explicit-inverse reference; every
// value one of its row's centroids and fixed (pruned) weights kept; less output error than nearest
// codes on inputs the Hessian never saw; on the Fashion-MNIST MLP, calibrated on 256 training
// images, higher accuracy on the 10,000 test images than nearest codes with the same codebooks;
// the CLI flag, its report and its bad input.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { nearestCentroid, obsCodes } from '../src/kernels/obs-codes.js';
import { obsCodesRef } from '../src/kernels/obs-codes-ref.js';
import { mulberry32 } from '../src/kernels/random.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { cluster } from '../src/pipeline/cluster.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runShrink } from './helpers/cli.js';
import { fashionTestAccuracy, writeFashionCalibration, writeFashionFiles } from './helpers/fashion-files.js';
import { factorInputs, gaussian, gram, outputError } from './helpers/layer-inputs.js';

/** Per row: `k` centroids spread over the row's range (ascending). */
function rowBooks(w: Float64Array, rows: number, cols: number, k: number): Float64Array[] {
  return Array.from({ length: rows }, (_, r) => {
    const row = w.subarray(r * cols, (r + 1) * cols);
    const lo = Math.min(...row);
    const hi = Math.max(...row);
    return Float64Array.from({ length: k }, (_, j) => lo + ((j + 0.5) * (hi - lo)) / k);
  });
}

test('nearestCentroid picks the closest of ascending centroids, the lower one on a tie', () => {
  const c = [-1, 0, 0.5, 2];
  assert.deepEqual([-5, -0.6, -0.5, 0.2, 0.25, 0.3, 1.25, 1.3, 9].map((v) => nearestCentroid(v, c)), [-1, -1, -1, 0, 0, 0.5, 0.5, 2, 2]);
  assert.equal(nearestCentroid(3, [7]), 7);
});

test('OBS codes equal the explicit-inverse reference; every value is a centroid of its row; fixed weights stay', () => {
  const rows = 9;
  const cols = 30;
  const h = gram(factorInputs(200, cols, 1), 200, cols);
  const next = mulberry32(2);
  const w = Float64Array.from({ length: rows * cols }, () => gaussian(next));
  const books = rowBooks(w, rows, cols, 4);
  const fixed = Uint8Array.from({ length: rows * cols }, (_, i) => (i % 7 === 3 ? 1 : 0));
  for (const w0 of [w, Float64Array.from(w, (v, i) => (fixed[i] === 1 ? 0 : v))]) {
    for (const [options, mask] of [[{ sweepBlock: 8 }, undefined], [{ sweepBlock: 128, damping: 0.05 }, undefined], [{ sweepBlock: 7 }, fixed], [{ sweepBlock: 8, actOrder: true }, undefined], [{ sweepBlock: 5, actOrder: true }, fixed]] as const) {
      const what = `${JSON.stringify(options)}${mask === undefined ? '' : ' with fixed weights'}`;
      const fast = obsCodes(w0, rows, cols, h, (r) => books[r], options, mask);
      const ref = obsCodesRef(w0, rows, cols, h, (r) => books[r], options, mask);
      for (let i = 0; i < w0.length; i++) assert.ok(Math.abs(fast.weights[i] - ref.weights[i]) < 1e-9, `${what}: weight ${i}`);
      assert.ok(Math.abs(fast.loss - ref.loss) < 1e-9 * Math.max(1, ref.loss), `${what}: loss ${fast.loss} vs ${ref.loss}`);
      for (let i = 0; i < w0.length; i++) {
        if (mask?.[i] === 1) assert.equal(fast.weights[i], w0[i], `${what}: fixed weight ${i} kept`);
        else assert.ok(books[Math.floor(i / cols)].includes(fast.weights[i]), `${what}: weight ${i} is a centroid of its row`);
      }
    }
  }
});

test('OBS codes leave less output error than nearest codes on inputs the Hessian never saw (2 and 3 bits)', () => {
  const rows = 16;
  const cols = 48;
  const n = 400;
  const h = gram(factorInputs(n, cols, 3), n, cols);
  const heldOut = factorInputs(n, cols, 4);
  const next = mulberry32(5);
  const w = Float64Array.from({ length: rows * cols }, () => gaussian(next));
  for (const k of [4, 8]) {
    const books = rowBooks(w, rows, cols, k);
    const nearest = Float64Array.from(w, (v, i) => nearestCentroid(v, books[Math.floor(i / cols)]));
    const errors = { nearest: outputError(w, nearest, heldOut, n, rows, cols), obs: outputError(w, obsCodes(w, rows, cols, h, (r) => books[r]).weights, heldOut, n, rows, cols), actOrder: outputError(w, obsCodes(w, rows, cols, h, (r) => books[r], { actOrder: true }).weights, heldOut, n, rows, cols) };
    assert.ok(errors.obs < 0.6 * errors.nearest, `${k} centroids: ${JSON.stringify(errors)}`);
    assert.ok(errors.actOrder < 0.6 * errors.nearest, `${k} centroids, act-order: ${JSON.stringify(errors)}`);
  }
});

const MLP = 'models/fashion-mnist/mlp.onnx';
const ctx = { ort: nodeOrt, threads: 1 };

test('Fashion-MNIST MLP, 2 bits per tensor: OBS codes calibrated on 256 training images beat nearest codes on the 10,000 test images', async () => {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const calibration = arraySamples({ image: { data: Float32Array.from(train.images.subarray(0, 256 * 784), (v) => v / 255), sampleDims: [1, 28, 28], dataType: DataType.FLOAT } }, 'training images', 256);
  const mlp = loadModel(MLP);
  const nearest = await cluster(mlp, { bits: 2 }, ctx);
  const obs = await cluster(mlp, { bits: 2, codes: 'obs', calibration, codeSamples: 256 }, ctx);
  const layers = obs.report.tensors.length;
  assert.equal(obs.report.stats.obs_layers, layers, 'every MatMul swept');
  assert.equal(obs.report.stats.obs_samples, 256);
  assert.ok(obs.report.tensors.every((t) => t.obs === true));
  // The same codebooks: only the codes differ, so the weights' SQNR falls while the outputs improve.
  for (const [i, t] of obs.report.tensors.entries()) assert.equal(t.centroids, nearest.report.tensors[i].centroids);
  const scores = { float32: await fashionTestAccuracy(mlp), nearest: await fashionTestAccuracy(nearest.model), obs: await fashionTestAccuracy(obs.model) };
  // Measured: 80.84% nearest, 84.21% OBS (float32 89.21%).
  assert.ok(scores.obs > scores.nearest + 2, JSON.stringify(scores));
});

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-obs-codes-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('shrink cluster --codes obs: calibrates on --calib (else --data, with a warning when those are the checked samples), says so in the report; bad flags are one line', async () => {
  const fashion = writeFashionFiles(work, 256);
  const out = path.join(work, 'obs.onnx');
  const run = await runShrink(['cluster', MLP, '-o', out, '--bits', '3', '--per-channel', '--codes', 'obs', '--data', fashion.images, '--labels', fashion.labels]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /codes +OBS sweep \(GPTQ's\) on 64 calibration samples: 3 of 3 weights in 3 rounds by depth/);
  assert.match(run.stdout, /method +cluster \(bits 3, grouping channel, .*codes obs/);
  assert.ok(fs.existsSync(out));
  // 256 samples of --data, all checked: calibration reads the same ones, and says the check flatters.
  assert.match(run.stdout, /warning +calibrated on the same --data samples the result is checked on \(256 samples, 256 checked\)/);
  const calib = writeFashionCalibration(work, 96);
  const own = await runShrink(['cluster', MLP, '-o', path.join(work, 'obs-calib.onnx'), '--bits', '3', '--per-channel', '--codes', 'obs', '--calib', calib, '--data', fashion.images, '--json']);
  assert.equal(own.code, 0, own.stderr);
  const report = JSON.parse(own.stdout);
  assert.equal(report.stats.obs_samples, 64, '64 of the 96 --calib samples');
  assert.equal(report.settings.codes, 'obs');
  assert.ok(!report.warnings.some((w: { code: string }) => w.code === 'calibration-is-check'));
  const stray = await runShrink(['cluster', MLP, '-o', path.join(work, 'stray.onnx'), '--bits', '3', '--calib', calib]);
  assert.equal(stray.code, 2);
  assert.equal(stray.stderr.trim(), 'shrink: --calib goes with --codes obs or --importance (the samples they measure)');
  const refused = path.join(work, 'refused.onnx');
  const bad = await runShrink(['cluster', MLP, '-o', refused, '--bits', '3', '--codes', 'obs']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), 'shrink: --codes obs calibrates each layer on real inputs: give --calib FILE (or --data)');
  assert.ok(!fs.existsSync(refused), 'nothing written');
  const loose = await runShrink(['cluster', MLP, '-o', refused, '--bits', '3', '--codes', 'best', '--data', fashion.images]);
  assert.equal(loose.code, 2);
  assert.match(loose.stderr, /--codes.*best/);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, code_samples: 32}\n', 'r.yaml'), /'code_samples' goes with 'codes: obs'/);
  assert.equal(parseRecipe('steps:\n  - cluster: {bits: 4, codes: obs, code_samples: 32}\n', 'r.yaml').steps[0].kind, 'cluster');
});
