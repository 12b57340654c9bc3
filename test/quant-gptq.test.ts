// `--algorithm gptq` for weight-only quantization: on the Fashion-MNIST MLP (Gemm layers through
// MatMulNBits) GPTQ keeps more held-out accuracy than round-to-nearest at int2 and no less at int4
// (10k test images, counted with onnxruntime here) and stays closer to the original's logits, the report says how it ran, and options that
// cannot work are refused with one line before anything is read.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionCalibration, writeFashionFiles } from './helpers/fashion-files.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-gptq-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));


test('gptq against round-to-nearest on the MLP: int2 much closer, int4 no worse, on 10k held-out images', async () => {
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
    for (const algorithm of ['rtn', 'gptq']) {
      const out = path.join(work, `${method}-${algorithm}.onnx`);
      const args = ['quantize', MLP, '-o', out, '--method', method, ...extra, '--algorithm', algorithm, '--data', check.images, '--json'];
      if (algorithm === 'gptq') args.push('--calib', calib);
      const run = await runShrink(args);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout);
      if (algorithm === 'gptq') {
        assert.equal(report.stats.gptq_layers, 3, JSON.stringify(report.stats));
        assert.equal(report.stats.calibration_samples, 128);
        assert.equal(report.stats.gptq_rounds, 3);
      }
      // The report's own check ran on test images; calibration saw training images only.
      cosine[`${method} ${algorithm}`] = report.fidelity.outputs.logits.cosine;
      const model = loadModel(out);
      assert.equal(model.graph.nodes.filter((n) => n.opType === 'MatMulNBits').length, 3);
      accuracy[`${method} ${algorithm}`] = await classifierAccuracy(nodeOrt, model, testSet, { threads: 1 });
    }
  }
  process.stderr.write(`MLP held-out accuracy: dense ${dense.toFixed(2)}%, ${Object.entries(accuracy).map(([k, v]) => `${k} ${v.toFixed(2)}% (cosine ${cosine[k].toFixed(4)})`).join(', ')}\n`);
  assert.ok(accuracy['int2 gptq'] > accuracy['int2 rtn'] + 0.3, JSON.stringify(accuracy));
  assert.ok(1 - cosine['int2 gptq'] < 0.5 * (1 - cosine['int2 rtn']), JSON.stringify(cosine));
  assert.ok(cosine['int4 gptq'] > cosine['int4 rtn'], JSON.stringify(cosine));
  assert.ok(accuracy['int4 gptq'] >= accuracy['int4 rtn'] - 0.1, JSON.stringify(accuracy));
  assert.ok(accuracy['int4 gptq'] > dense - 0.5, JSON.stringify(accuracy));
});

test('gptq options that cannot work are one line, exit 2, nothing written', async () => {
  const out = path.join(work, 'bad.onnx');
  for (const [args, message] of [
    [['--method', 'int4', '--algorithm', 'gptq'], /--algorithm gptq needs calibration data: give --calib/],
    [['--method', 'int4', '--act-order'], /--act-order goes with --algorithm gptq/],
    [['--method', 'fp16', '--algorithm', 'gptq', '--calib', 'x.npy'], /--algorithm has no effect with --method fp16/],
  ] as const) {
    const run = await runShrink(['quantize', MLP, '-o', out, ...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.ok(!fs.existsSync(out));
  }
  assert.throws(() => parseRecipe('steps:\n  - quantize: {method: int4, act_order: true}\n', 'r.yaml'), /'act_order' goes with algorithm gptq/);
  assert.throws(() => parseRecipe('steps:\n  - quantize: {method: fp16, algorithm: gptq}\n', 'r.yaml'), /'algorithm' has no effect with method fp16/);
  const recipe = parseRecipe('steps:\n  - quantize: {method: int4, algorithm: gptq, act_order: true, calibration_samples: 64}\n', 'r.yaml');
  const step = recipe.steps[0];
  assert.ok(step.kind === 'quantize' && step.options.algorithm === 'gptq' && step.options.actOrder === true && step.options.calibrationSamples === 64);
});
