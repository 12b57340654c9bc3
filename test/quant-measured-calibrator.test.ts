// The 'measured' calibrator (calibration/measured-choice.ts): per activation, the range rule whose
// range (from half the calibration samples) quantizes the model's outputs best on the other half.
// One calibration sample carrying a single huge value stretches minmax's range of the input (and
// of what follows it) 1000-fold; the choice must see that on the held-back samples and pick a rule
// that does not follow the outlier, and the model must do better on new data than with minmax.
// The CLI option on the Fashion-MNIST MLP: it runs and reports the choice.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { parseIdx } from '../src/eval/idx.js';
import { writeNpy } from '../src/eval/npy.js';
import type { QuantizeCommandReport } from '../src/pipeline/quantize-report.js';
import { spawnShrink } from './helpers/cli.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { tensorSamples } from '../src/eval/samples.js';
import { chooseCalibrators } from '../src/methods/quantize/calibration/measured-choice.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { ModelSession } from '../src/runtime/session.js';

const WIDTH = 16;
const MLP = 'models/fashion-mnist/mlp.onnx';
const FASHION = '/usr/share/datasets/fashion-mnist';

function gaussian(count: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: count }, () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));
}

/** x [N, 16] -> MatMul -> Relu -> MatMul -> y [N, 4], fixed random weights. */
function mlp(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', WIDTH]);
  const w1 = b.initializer('w1', DataType.FLOAT, [WIDTH, WIDTH], gaussian(WIDTH * WIDTH, 1).map((v) => v / 4));
  const w2 = b.initializer('w2', DataType.FLOAT, [WIDTH, 4], gaussian(WIDTH * 4, 2).map((v) => v / 4));
  const h = b.node('MatMul', [x, w1], [], { name: 'fc1', outputs: ['h'] })[0];
  const r = b.node('Relu', [h], [], { name: 'relu', outputs: ['r'] })[0];
  const y = b.node('MatMul', [r, w2], [], { name: 'fc2', outputs: ['y'] })[0];
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph);
}

/** 64 samples of N(0, 1); the first (so in the half the ranges come from) has one value of 1000. */
function calibration() {
  return tensorSamples(
    Array.from({ length: 64 }, (_, i) => {
      const values = gaussian(WIDTH, 100 + i);
      if (i === 0) values[3] = 1000;
      return { x: Tensor.fromArray('x', DataType.FLOAT, [1, WIDTH], values) };
    }),
    'outlier samples',
  );
}

/** Output SQNR (dB) of `quantized` against `model` on 256 new samples. */
async function heldOutSqnr(model: Model, quantized: Model): Promise<number> {
  const x = new nodeOrt.Tensor('float32', gaussian(256 * WIDTH, 7), [256, WIDTH]);
  const run = async (m: Model) => {
    const session = await ModelSession.create(nodeOrt, writeModel(m), { threads: 1 });
    try {
      return (await session.run({ x })).y.data as Float32Array;
    } finally {
      await session.release();
    }
  };
  const [a, b] = [await run(model), await run(quantized)];
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < a.length; i++) {
    signal += a[i] * a[i];
    noise += (a[i] - b[i]) ** 2;
  }
  return 10 * Math.log10(signal / noise);
}

test('measured calibrator: an outlier calibration sample makes minmax lose on held-back samples, so another rule is chosen for the input, and new data is quantized better', async () => {
  const model = mlp();
  const choice = await chooseCalibrators(nodeOrt, model, ['x', 'h'], calibration(), { symmetric: false, activationType: 'uint8', threads: 1 });
  assert.equal(choice.samples, 32, 'measured on the odd half');
  assert.notEqual(choice.chosen.get('x'), 'minmax', `x: ${choice.chosen.get('x')}`);
  assert.ok(choice.measured >= 1 && choice.runs >= 2 * 32, JSON.stringify({ ...choice, chosen: [...choice.chosen] }));

  const quantize = async (calibrator: 'minmax' | 'measured') => {
    const copy = model.clone();
    const result = await quantizeStaticInt8(copy, { calibration: calibration(), calibrator, biasCorrection: false, threads: 1 }, { ort: nodeOrt });
    return { model: copy, stats: result.stats };
  };
  const minmax = await quantize('minmax');
  const measured = await quantize('measured');
  assert.ok((measured.stats.calibratorsMeasured ?? 0) >= 1, JSON.stringify(measured.stats));
  const minmaxDb = await heldOutSqnr(model, minmax.model);
  const measuredDb = await heldOutSqnr(model, measured.model);
  assert.ok(measuredDb > minmaxDb + 10, `held-out output SQNR: measured ${measuredDb.toFixed(1)} dB, minmax ${minmaxDb.toFixed(1)} dB`);
});

test('shrink quantize --calibrator measured: the Fashion-MNIST MLP quantizes, and the report says which rule each activation got and on how many held-back samples', () => {
  const work = mkdtempSync(join(tmpdir(), 'shrink-measured-'));
  try {
    const images = parseIdx(gunzipSync(readFileSync(`${FASHION}/train-images-idx3-ubyte.gz`)), 'train-images');
    const data = Float32Array.from(images.data.subarray(0, 16 * 784), (v) => v / 255);
    const calib = join(work, 'calib.npy');
    writeFileSync(calib, writeNpy({ dataType: DataType.FLOAT, dims: [16, 1, 28, 28], data: new Uint8Array(data.buffer) }));
    const args = ['quantize', MLP, '--method', 'static-int8', '--calib', calib, '--calibrator', 'measured', '--no-bias-correction', '--no-bench'];
    const text = spawnShrink([...args, '-o', join(work, 'a.onnx')], { timeout: 120_000 });
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /ranges +per activation by measured output error \(--calibrator measured\): minmax \d+, expected-minmax \d+, percentile \d+, entropy \d+, mse \d+; \d+ with differing candidates measured on 8 held-back calibration samples \(\d+ runs\)/);
    const json = JSON.parse(spawnShrink([...args, '-o', join(work, 'b.onnx'), '--json'], { timeout: 120_000 }).stdout) as QuantizeCommandReport;
    const chosen = ['minmax', 'expected_minmax', 'percentile', 'entropy', 'mse'].reduce((n, name) => n + (json.stats[`chose_${name}`] ?? 0), 0);
    assert.ok(chosen >= 3 && chosen === json.stats.activations, `every quantized activation got a rule: ${JSON.stringify(json.stats)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
