// Bias correction's 'shrunk' shift keeps a channel's int8 shift only as far as the calibration runs
// agree on it (src/methods/quantize/bias-shift.ts): a shift whose sign changes from sample to
// sample is noise. An option of correctBiases; static int8 keeps the plain mean (NOTES.md, issue 15).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { tensorSamples } from '../src/eval/samples.js';
import { collectStatistics } from '../src/eval/activation-stats.js';
import type { Model } from '../src/ir/model.js';
import { correctBiases } from '../src/methods/quantize/bias-correction.js';
import { shrunkShift, softShrunkShift } from '../src/methods/quantize/bias-shift.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { nodeOrt } from '../src/node/ort-node.js';

test('shrunkShift: a shift the runs agree on is kept, one they disagree on is dropped, one run is its own mean', () => {
  const agree = [0.5, 0.52, 0.48, 0.51, 0.49, 0.5];
  assert.ok(Math.abs(shrunkShift(agree) - 0.5) < 0.005, String(shrunkShift(agree)));
  // Mean 0.0375 with a standard error of ~0.36: nothing left.
  assert.equal(shrunkShift([1.0, -0.8, 1.2, -1.0, 0.9, -1.1, 1.0, -0.9]), 0);
  assert.equal(shrunkShift([0.7]), 0.7);
  assert.equal(shrunkShift([]), 0);
  // Scale-free: the same runs in other units shrink by the same factor.
  const some = [0.3, 0.1, 0.25, -0.05];
  assert.ok(Math.abs(shrunkShift(some.map((v) => v * 1000)) - 1000 * shrunkShift(some)) < 1e-9);
  assert.ok(shrunkShift(some) > 0 && shrunkShift(some) < 0.15, String(shrunkShift(some)));
});

test('softShrunkShift: halves a shift whose mean equals its standard error, never drops one outright, keeps a clear one', () => {
  // Mean 1, per-run values whose standard error of the mean is 1 (n = 2: se² = sample variance / 2).
  assert.ok(Math.abs(softShrunkShift([2, 0]) - 0.5) < 1e-12, String(softShrunkShift([2, 0])));
  const noisy = [1.0, -0.8, 1.2, -1.0, 0.9, -1.1, 1.0, -0.9];
  assert.equal(shrunkShift(noisy), 0);
  assert.ok(softShrunkShift(noisy) > 0 && softShrunkShift(noisy) < 0.01 * 0.0375 * 8, String(softShrunkShift(noisy)));
  const agree = [0.5, 0.52, 0.48, 0.51, 0.49, 0.5];
  assert.ok(Math.abs(softShrunkShift(agree) - 0.5) < 0.005, String(softShrunkShift(agree)));
  assert.equal(softShrunkShift([0.7]), 0.7);
});

test("bias correction with shift 'shrunk': a consistent weight-rounding shift is corrected, a sample-to-sample one is left alone ('mean' moves it)", async () => {
  // x [1, 4, 2, 2] -> Conv 1x1 -> y [1, 3, 2, 2]: output 0 = 0.3 x0, output 1 = 0.3 x1, output 2 = 10 x0.
  // Per-tensor int8 weights (scale 10/127) store 0.3 as 4 codes = 0.31496: +0.01496 x the input.
  // x0 is positive on every sample (the shift has one sign), x1 changes sign from sample to sample.
  const x0 = [0.8, 1.0, 1.2, 0.9, 1.1, 1.0, 0.85, 1.15];
  const x1 = [1.0, -0.8, 1.2, -1.0, 0.9, -1.1, 1.0, -0.9];
  const samples = tensorSamples(x0.map((a, k) => {
    const data = new Float32Array(16);
    data.fill(a, 0, 4);
    data.fill(x1[k], 4, 8);
    return { x: Tensor.fromArray('x', DataType.FLOAT, [1, 4, 2, 2], data) };
  }));
  const codesAfter: Record<string, Int32Array> = {};
  let scale = 0;
  for (const shift of ['mean', 'shrunk'] as const) {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, [1, 4, 2, 2]);
    const weights = new Float32Array(3 * 4);
    weights[0 * 4 + 0] = 0.3;
    weights[1 * 4 + 1] = 0.3;
    weights[2 * 4 + 0] = 10;
    const w = b.tensor(Tensor.fromArray('w', DataType.FLOAT, [3, 4, 1, 1], weights));
    const bias = b.tensor(Tensor.fromArray('b', DataType.FLOAT, [3], new Float32Array(3)));
    const [y] = b.node('Conv', [x, w, bias], [], { name: 'conv', outputs: ['y'] });
    b.output(y, DataType.FLOAT);
    const model = buildModel(b.graph, [{ domain: '', version: 13 }]);
    // Static int8 without its own correction; the float graph it rewrote (same value names) kept for correctBiases.
    let float: Model | undefined;
    await quantizeStaticInt8(model, { calibration: samples, perChannel: false, biasCorrection: false, padInputChannels: false, floatStem: false }, {
      ort: nodeOrt,
      collectStatistics: async (m, values, s, options) => {
        float = m.clone();
        return collectStatistics(nodeOrt, m, values, s, options);
      },
    });
    const conv = model.graph.nodes.find((n) => n.opType === 'Conv');
    assert.ok(conv !== undefined && float !== undefined);
    const result = await correctBiases(model, float, [conv], { calibration: samples, shift }, { ort: nodeOrt });
    assert.equal(result.layers.length, 1, JSON.stringify(result));
    const dq = model.graph.producer(conv.inputs[2]);
    assert.equal(dq?.opType, 'DequantizeLinear');
    codesAfter[shift] = constantValue(model.graph, dq?.inputs[0] ?? '')?.data() as Int32Array;
    const scales = constantValue(model.graph, dq?.inputs[1] ?? '')?.data() as Float32Array;
    scale = scales[0];
  }
  const meanX0 = x0.reduce((s, v) => s + v, 0) / x0.length;
  const expected = -(4 * (10 / 127) - 0.3) * meanX0;
  for (const shift of ['mean', 'shrunk']) {
    const corrected = codesAfter[shift][0] * scale;
    assert.ok(Math.abs(corrected - expected) < 0.15 * Math.abs(expected), `${shift}: output 0's bias ${corrected}, want about ${expected}`);
  }
  // Output 1's mean shift (+0.01496 x 0.0375 = 5.6e-4, about one code of the bias) is noise beside
  // its spread (0.015 from sample to sample): the plain mean moves the bias, the shrunk one does not.
  assert.notEqual(codesAfter.mean[1], 0, `mean: output 1's bias codes ${codesAfter.mean[1]}`);
  assert.equal(codesAfter.shrunk[1], 0, `shrunk: output 1's bias moved by ${codesAfter.shrunk[1]} codes of ${scale}`);
});
