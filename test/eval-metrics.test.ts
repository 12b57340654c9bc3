// Fidelity and accuracy metrics against values worked out by hand, identical outputs, streamed
// batches against one-shot computation, and real classifier outputs from onnxruntime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import {
  computeMetrics,
  createAccuracyAccumulator,
  createCustomMetricAccumulator,
  createMetricAccumulator,
  predictedClasses,
} from '../src/eval/metrics.js';
import { float16ToNumber, numberToFloat16, tensorFromValues } from '../src/eval/numeric.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession, fromOrtTensor } from '../src/runtime/session.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { sampleFeeds } from '../src/eval/samples.js';
import { CLS } from './helpers/real-models.js';

const f32 = (values: number[], dims = [values.length], name = 'y') => Tensor.fromArray(name, DataType.FLOAT, dims, new Float32Array(values));
const close = (actual: number, expected: number, what: string, tolerance = 1e-12) =>
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

test('a = [1, 2, 3], b = [1, 2, 4]: every metric matches the hand computation', () => {
  const m = computeMetrics(f32([1, 2, 3]), f32([1, 2, 4]));
  // a.b = 1 + 4 + 12 = 17, |a|^2 = 14, |b|^2 = 21, |a - b|^2 = 1, |a - b|_1 = 1
  close(m.cosine, 17 / Math.sqrt(14 * 21), 'cosine');
  close(m.cosine, 0.9914601339836675, 'cosine (decimal)');
  close(m.sqnrDb, 10 * Math.log10(14), 'sqnr');
  close(m.sqnrDb, 11.461280356782382, 'sqnr (decimal)');
  assert.equal(m.maxAbs, 1);
  close(m.meanAbs, 1 / 3, 'mean abs');
  close(m.relative, 1 / Math.sqrt(14), 'relative');
  assert.deepEqual([m.elements, m.nonFinite, m.rows], [3, 0, undefined]);
});

test('identical outputs give cosine 1, SQNR Infinity and zero error; a zero reference is handled', () => {
  for (const t of [f32([0.5, -2, 7.25, 1e-8], [2, 2]), f32([0, 0, 0])]) {
    const m = computeMetrics(t, t);
    assert.deepEqual([m.cosine, m.sqnrDb, m.maxAbs, m.meanAbs, m.relative], [1, Infinity, 0, 0, 0]);
  }
  const m = computeMetrics(f32([0, 0]), f32([0, 3]));
  assert.deepEqual([m.cosine, m.sqnrDb, m.relative, m.maxAbs], [0, -Infinity, Infinity, 3]);
  // a = [1, 0], b = [-1, 0]: opposite vectors, noise 4 over signal 1.
  const opposite = computeMetrics(f32([1, 0]), f32([-1, 0]));
  close(opposite.cosine, -1, 'cosine');
  close(opposite.sqnrDb, 10 * Math.log10(1 / 4), 'sqnr');
});

test('streamed batches give the one-shot numbers', () => {
  let state = 12345;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return (state / 2 ** 31) * 2 - 1;
  };
  const a = Array.from({ length: 3000 }, random);
  const b = a.map((x) => x + 0.01 * random());
  const oneShot = computeMetrics(f32(a, [300, 10]), f32(b, [300, 10]));
  const streamed = createMetricAccumulator();
  for (let start = 0; start < 3000; start += 700) {
    const end = Math.min(start + 700, 3000);
    streamed.add(f32(a.slice(start, end), [(end - start) / 10, 10]), f32(b.slice(start, end), [(end - start) / 10, 10]));
  }
  const batched = streamed.result();
  for (const key of ['cosine', 'sqnrDb', 'maxAbs', 'meanAbs', 'relative', 'top1Agreement', 'topKOverlap'] as const) {
    close(batched[key] as number, oneShot[key] as number, key, 1e-12);
  }
  assert.deepEqual([batched.elements, batched.rows, batched.k], [3000, 300, 5]);
  assert.ok(oneShot.sqnrDb > 30 && oneShot.sqnrDb < 60, `sqnr ${oneShot.sqnrDb}`);
});

test('classifier outputs: top-1 agreement and top-k overlap by hand', () => {
  const reference = f32([0.1, 0.7, 0.2, 0.5, 0.3, 0.2], [2, 3]);
  const candidate = f32([0.1, 0.2, 0.7, 0.6, 0.3, 0.1], [2, 3]);
  // Row 0: arg-max 1 vs 2 (disagree); row 1: 0 vs 0 (agree). Top-2: {1,2} vs {2,1}, {0,1} vs {0,1}.
  const top2 = computeMetrics(reference, candidate, { topK: 2 });
  assert.deepEqual([top2.rows, top2.top1Agreement, top2.topKOverlap, top2.k], [2, 0.5, 1, 2]);
  const top1 = computeMetrics(reference, candidate, { topK: 1 });
  assert.deepEqual([top1.top1Agreement, top1.topKOverlap], [0.5, 0.5]);
  // Rank 4 (a probability map) is not treated as classes unless asked.
  assert.equal(computeMetrics(f32([1, 2, 3, 4], [1, 1, 2, 2]), f32([1, 2, 3, 4], [1, 1, 2, 2])).top1Agreement, undefined);
  assert.equal(computeMetrics(reference, candidate, { classifier: false }).top1Agreement, undefined);
  assert.deepEqual(predictedClasses(reference), [1, 0]);
});

test('float16 and int64 outputs are read as numbers; NaN mismatches are counted; shape mismatches throw', () => {
  const half = (values: number[]) => Tensor.fromArray('h', DataType.FLOAT16, [values.length], Uint16Array.from(values, numberToFloat16));
  const m = computeMetrics(half([1, 2, 3]), half([1, 2, 4]));
  close(m.sqnrDb, 10 * Math.log10(14), 'float16 sqnr');
  const ints = computeMetrics(
    tensorFromValues('i', DataType.INT64, [3], [1n, 2n, 3n], 'i'),
    tensorFromValues('i', DataType.INT64, [3], [1n, 2n, 4n], 'i'),
  );
  close(ints.cosine, 17 / Math.sqrt(294), 'int64 cosine');
  const nan = computeMetrics(f32([1, Number.NaN, 3, Number.NaN]), f32([1, Number.NaN, 3, 0]));
  assert.equal(nan.nonFinite, 1);
  assert.ok(Number.isNaN(nan.sqnrDb));
  assert.throws(() => computeMetrics(f32([1, 2], [2], 'logits'), f32([1, 2], [1, 2])), /^Error: output 'logits': reference has dims \[2\], candidate has \[1,2\]$/);
});

test('accuracy against labels, from scores and from class ids; a custom metric is averaged', () => {
  const accuracy = createAccuracyAccumulator();
  accuracy.add(f32([0.9, 0.1, 0.2, 0.8, 0.6, 0.4], [3, 2]), [0, 1, 1]);
  accuracy.add(tensorFromValues('ids', DataType.INT64, [2], [1n, 0n], 'ids'), [1n, 1n]);
  assert.deepEqual(accuracy.result(), { correct: 3, total: 5, accuracy: 0.6 });
  assert.throws(() => accuracy.add(f32([1, 2], [1, 2]), [0, 1]), /1 predictions \(dims \[1,2\]\) for 2 labels/);
  const custom = createCustomMetricAccumulator((a, b) => Math.abs((a.y.data() as Float32Array)[0] - (b.y.data() as Float32Array)[0]));
  const sample = { index: 0, where: 's', inputs: {} };
  custom.add({ y: f32([1]) }, { y: f32([3]) }, sample);
  custom.add({ y: f32([1]) }, { y: f32([2]) }, sample);
  assert.deepEqual(custom.result(), { mean: 1.5, min: 1, max: 2, samples: 2 });
});

test('PP-OCR direction classifier vs itself at another ORT optimization level: near-identical, same top-1', async () => {
  const model = loadModel(CLS);
  const signature = modelSignature(model);
  const source = generatedSamples(signature.inputs, { count: 3, seed: 7, dims: { 'p2o.DynamicDimension.0': 2, 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 } });
  const basic = await ModelSession.create(nodeOrt, model, { threads: 1, graphOptimization: 'disabled' });
  const all = await ModelSession.create(nodeOrt, model, { threads: 1, graphOptimization: 'all' });
  const accumulator = createMetricAccumulator();
  const self = createMetricAccumulator();
  for await (const sample of source) {
    const feeds = sampleFeeds(nodeOrt, sample);
    const a = fromOrtTensor((await basic.run(feeds))['softmax_0.tmp_0'], 'softmax');
    const b = fromOrtTensor((await all.run(feeds))['softmax_0.tmp_0'], 'softmax');
    accumulator.add(a, b);
    self.add(a, a);
  }
  await basic.release();
  await all.release();
  const m = accumulator.result();
  assert.deepEqual([m.elements, m.rows, m.k], [12, 6, 2]);
  assert.equal(m.top1Agreement, 1);
  assert.ok(m.cosine > 0.99999, `cosine ${m.cosine}`);
  assert.ok(m.sqnrDb > 60, `sqnr ${m.sqnrDb}`);
  assert.ok(m.maxAbs < 1e-3, `max abs ${m.maxAbs}`);
  assert.deepEqual([self.result().cosine, self.result().sqnrDb], [1, Infinity]);
});

test('float16 conversion: all 65,536 bit patterns round-trip, and ties round to even', () => {
  let checked = 0;
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = float16ToNumber(bits);
    if (Number.isNaN(value)) continue;
    assert.equal(numberToFloat16(value), bits, `0x${bits.toString(16)} -> ${value}`);
    checked++;
  }
  assert.equal(checked, 65536 - 2 * 1023); // every pattern except the NaNs
  assert.equal(numberToFloat16(1 + 2 ** -11), 0x3c00); // halfway between 1 and the next half: to even (1)
  assert.equal(numberToFloat16(1 + 3 * 2 ** -11), 0x3c02); // halfway, rounds up to the even mantissa 2
  assert.equal(numberToFloat16(65519), 0x7bff); // below the rounding boundary of the largest half
  assert.equal(numberToFloat16(65520), 0x7c00); // rounds to infinity
  assert.equal(numberToFloat16(2 ** -25), 0x0000); // half the smallest subnormal: to even (0)
  assert.equal(numberToFloat16(3 * 2 ** -25), 0x0002);
  assert.equal(numberToFloat16(Number.NaN), 0x7e00);
});
