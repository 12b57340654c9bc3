// Asymmetric calibration of OBS codes (cluster `codeTarget: 'original'`): the target weights the
// sweep rounds (kernels/asymmetric-target.ts) against their normal-equation reference, equal to W
// when the inputs have not drifted, and the least-squares optimum of fitting the reference's
// outputs; the paired statistics (eval/cross-gram.ts) against plain loops over the unfolded rows of
// a convolution; on the Fashion-MNIST MLP, less output error against the original on test images
// than codes fitted to each layer's own outputs; the recipe key and CLI flag.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ActivationRecorder, CrossGram } from '../src/eval/cross-gram.js';
import { crossRef, gramRef, OrtGram } from '../src/eval/gram-matrix.js';
import { type ConvGeometry, im2colChunks } from '../src/eval/im2col.js';
import { DataType } from '../src/ir/dtype.js';
import { asymmetricTarget } from '../src/kernels/asymmetric-target.js';
import { asymmetricTargetRef } from '../src/kernels/asymmetric-target-ref.js';
import { mulberry32 } from '../src/kernels/random.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import type { Model } from '../src/ir/model.js';
import { ModelSession } from '../src/runtime/session.js';
import { cluster } from '../src/pipeline/cluster.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionCalibration, writeFashionFiles } from './helpers/fashion-files.js';
import { factorInputs, gaussian, gram } from './helpers/layer-inputs.js';

/** Σ x̃ xᵀ over the rows of two [n, cols] matrices. */
function crossOf(drifted: Float64Array, x: Float64Array, n: number, cols: number): Float64Array {
  const c = new Float64Array(cols * cols);
  for (let i = 0; i < n; i++) for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) c[a * cols + b] += drifted[i * cols + a] * x[i * cols + b];
  return c;
}

/** ‖X Wᵀ - X̃ Qᵀ‖²: how far the layer with Q on drifted inputs is from the reference's outputs. */
function referenceError(w: Float64Array, q: Float64Array, x: Float64Array, drifted: Float64Array, n: number, rows: number, cols: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rows; r++) {
      let d = 0;
      for (let c = 0; c < cols; c++) d += w[r * cols + c] * x[i * cols + c] - q[r * cols + c] * drifted[i * cols + c];
      total += d * d;
    }
  }
  return total;
}

/** Inputs and a drifted copy of them (a fixed linear distortion plus noise, as upstream rounding leaves). */
function driftedInputs(n: number, cols: number, seed: number): { x: Float64Array; drifted: Float64Array } {
  const x = factorInputs(n, cols, seed);
  const next = mulberry32(seed + 100);
  const mix = Float64Array.from({ length: cols * cols }, (_, i) => (i % (cols + 1) === 0 ? 0.9 : 0) + 0.05 * gaussian(mulberry32(i + 7)));
  const drifted = new Float64Array(n * cols);
  for (let i = 0; i < n; i++) for (let a = 0; a < cols; a++) {
    let v = 0.1 * gaussian(next);
    for (let b = 0; b < cols; b++) v += mix[a * cols + b] * x[i * cols + b];
    drifted[i * cols + a] = v;
  }
  return { x, drifted };
}

test('the asymmetric target equals its normal-equation reference, is W when nothing drifted, and fits the reference outputs best', () => {
  const rows = 7;
  const cols = 24;
  const n = 300;
  const next = mulberry32(3);
  const w = Float64Array.from({ length: rows * cols }, () => gaussian(next));
  const { x, drifted } = driftedInputs(n, cols, 11);
  const h = gram(drifted, n, cols);
  const c = crossOf(drifted, x, n, cols);
  for (const damping of [0.01, 0.1]) {
    const fast = asymmetricTarget(w, rows, cols, h, c, damping);
    const ref = asymmetricTargetRef(w, rows, cols, h, c, damping);
    for (let i = 0; i < w.length; i++) assert.ok(Math.abs(fast[i] - ref[i]) < 1e-8 * Math.max(1, Math.abs(ref[i])), `damping ${damping}: weight ${i} ${fast[i]} vs ${ref[i]}`);
  }
  const same = asymmetricTarget(w, rows, cols, h, h);
  for (let i = 0; i < w.length; i++) assert.ok(Math.abs(same[i] - w[i]) < 1e-9, `no drift: weight ${i} stays`);
  // With little damping the target is (nearly) the least-squares optimum: W itself and nudged
  // copies of the target leave more error against the reference's outputs.
  const target = asymmetricTarget(w, rows, cols, h, c, 1e-6);
  const best = referenceError(w, target, x, drifted, n, rows, cols);
  assert.ok(best < 0.5 * referenceError(w, w, x, drifted, n, rows, cols), 'the target takes out most of the drift');
  for (let trial = 0; trial < 5; trial++) {
    const nudged = Float64Array.from(target, (v) => v + 0.01 * gaussian(next));
    assert.ok(referenceError(w, nudged, x, drifted, n, rows, cols) > best, `nudge ${trial}`);
  }
});

test('CrossGram pairs each batch with the recorded reference batch: X̃ᵀX̃ and X̃ᵀX over the unfolded rows of a convolution, in onnxruntime and in JS', async () => {
  const geometry: ConvGeometry = { kernel: [3, 3], strides: [2, 1], dilations: [1, 1], pads: [1, 0, 1, 0], autoPad: 'NOTSET' };
  const dims = [2, 5, 9, 7];
  const next = mulberry32(9);
  const batches = [0, 1].map(() => ({ ours: Float32Array.from({ length: 2 * 5 * 9 * 7 }, () => gaussian(next)), theirs: Float32Array.from({ length: 2 * 5 * 9 * 7 }, () => gaussian(next)) }));
  const width = 5 * 9;
  const expected = { gram: new Float64Array(width * width), cross: new Float64Array(width * width) };
  for (const b of batches) {
    const ours = [...im2colChunks(b.ours, dims, geometry, 1000)];
    const theirs = [...im2colChunks(b.theirs, dims, geometry, 1000)];
    for (const [i, chunk] of ours.entries()) {
      gramRef(chunk.rows, chunk.count, width, expected.gram);
      crossRef(chunk.rows, theirs[i].rows, chunk.count, width, expected.cross);
    }
  }
  const products = await OrtGram.create(nodeOrt, { threads: 1 });
  try {
    for (const engine of [products, undefined]) {
      const recorder = new ActivationRecorder('x', { bytes: 1e6 }, 'too large');
      for (const b of batches) recorder.add(b.theirs, dims);
      const paired = new CrossGram('x', recorder, geometry, engine);
      for (const b of batches) await paired.add(b.ours, dims);
      for (let i = 0; i < expected.gram.length; i++) {
        assert.ok(Math.abs(paired.gram[i] - expected.gram[i]) < 1e-3, `gram ${i}`);
        assert.ok(Math.abs(paired.cross[i] - expected.cross[i]) < 1e-3, `cross ${i}`);
      }
      await assert.rejects(async () => paired.add(batches[0].ours, dims), /batch 3 has no batch of the reference model to pair with/);
    }
  } finally {
    await products.release();
  }
  const small = new ActivationRecorder('x', { bytes: 100 }, "the reference model's 'x' passes the limit");
  assert.throws(() => small.add(new Float32Array(26), [26]), /passes the limit/);
});

/** Mean squared difference of the logits of two models over `images` ([n, 784] in [0, 1]). */
async function logitError(a: Model, b: Model, images: Float32Array, n: number): Promise<number> {
  const sessions = await Promise.all([a, b].map((m) => ModelSession.create(nodeOrt, m, { threads: 1 })));
  try {
    const feed = { image: new nodeOrt.Tensor('float32', images.subarray(0, n * 784), [n, 1, 28, 28]) };
    const [ya, yb] = await Promise.all(sessions.map(async (s) => (Object.values(await s.run(feed))[0].data as Float32Array)));
    let sum = 0;
    for (let i = 0; i < ya.length; i++) sum += (ya[i] - yb[i]) ** 2;
    return sum / ya.length;
  } finally {
    for (const s of sessions) await s.release();
  }
}

const MLP = 'models/fashion-mnist/mlp.onnx';
const ctx = { ort: nodeOrt, threads: 1 };

test('Fashion-MNIST MLP, 2 bits per tensor: codes fitted to the original outputs leave less logit error on the test images than codes fitted to each layer', async () => {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const calibration = arraySamples({ image: { data: Float32Array.from(train.images.subarray(0, 512 * 784), (v) => v / 255), sampleDims: [1, 28, 28], dataType: DataType.FLOAT } }, 'training images', 512);
  const testSet = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const images = Float32Array.from(testSet.images.subarray(0, 2000 * 784), (v) => v / 255);
  const mlp = loadModel(MLP);
  const settings = { bits: 2, codes: 'obs' as const, calibration, codeSamples: 512, codeDamping: 0.1 };
  const layer = await cluster(mlp, settings, ctx);
  const original = await cluster(mlp, { ...settings, codeTarget: 'original' }, ctx);
  assert.equal(original.report.stats.obs_asymmetric, 1);
  assert.equal(layer.report.stats.obs_asymmetric, 0);
  const errors = { layer: await logitError(mlp, layer.model, images, 2000), original: await logitError(mlp, original.model, images, 2000) };
  assert.ok(errors.original < 0.9 * errors.layer, JSON.stringify(errors));
});

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-obs-asymmetric-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('shrink cluster --code-target original: said in the report; without --codes obs it is one line, nothing written; the recipe key', async () => {
  const fashion = writeFashionFiles(work, 64);
  const calib = writeFashionCalibration(work, 64);
  const out = path.join(work, 'asym.onnx');
  const run = await runShrink(['cluster', MLP, '-o', out, '--bits', '3', '--per-channel', '--codes', 'obs', '--code-target', 'original', '--calib', calib, '--data', fashion.images]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /codes +OBS sweep \(GPTQ's\) on 64 calibration samples: 3 of 3 weights in 3 rounds by depth, each fitted to the original model's outputs of its layer/);
  const refused = path.join(work, 'refused.onnx');
  const bad = await runShrink(['cluster', MLP, '-o', refused, '--bits', '3', '--code-target', 'original', '--data', fashion.images]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), 'shrink: --code-target goes with --codes obs');
  assert.ok(!fs.existsSync(refused), 'nothing written');
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, code_target: original}\n', 'r.yaml'), /'code_target' goes with 'codes: obs'/);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, codes: obs, code_target: model}\n', 'r.yaml'), /code_target/);
  const recipe = parseRecipe('steps:\n  - cluster: {bits: 4, codes: obs, code_target: original}\n', 'r.yaml');
  const step = recipe.steps[0];
  assert.ok(step.kind === 'cluster' && step.options.codeTarget === 'original');
});
