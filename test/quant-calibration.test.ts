// Calibrators on synthetic distributions with known answers, the streaming histogram, and the
// collector against onnxruntime: statistics of exposed activations, memory that does not grow with
// the number of samples, and one-line errors for calibration data of the wrong shape.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { collectStatistics } from '../src/eval/activation-stats.js';
import { entropyCalibrator } from '../src/methods/quantize/calibration/entropy.js';
import { Histogram } from '../src/eval/histogram.js';
import { minMaxCalibrator } from '../src/methods/quantize/calibration/minmax.js';
import { expectedLargest } from '../src/methods/quantize/calibration/expected-minmax.js';
import { mseCalibrator } from '../src/methods/quantize/calibration/mse.js';
import { percentileCalibrator } from '../src/methods/quantize/calibration/percentile.js';
import { RANGE_CALIBRATOR_NAMES, calibratorNamed } from '../src/methods/quantize/calibration/registry.js';
import { TensorStatistics } from '../src/eval/tensor-statistics.js';
import { fakeQuantize, rangeParams } from '../src/methods/quantize/quant-params.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { tensorSamples } from '../src/eval/samples.js';


/** Standard normal values (Box-Muller over mulberry32). */
function gaussian(count: number, seed: number, sigma = 1): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return out;
}

function uniform(count: number, seed: number, lo: number, hi: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: count }, () => lo + (hi - lo) * random());
}

/** Statistics of `values` fed in `batches` equal parts (so the histogram re-bins as ranges grow). */
function statsOf(values: Float32Array, batches = 10): TensorStatistics {
  const stats = new TensorStatistics('t');
  const size = Math.ceil(values.length / batches);
  for (let i = 0; i < values.length; i += size) stats.add(values.subarray(i, i + size));
  return stats;
}

function exactQuantile(values: Float32Array, fraction: number): number {
  const sorted = Float32Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

test('MinMax is the exact range seen; symmetric mirrors the larger magnitude', () => {
  const values = uniform(10_000, 1, -2, 3);
  values[17] = -2.5;
  values[9000] = 3.25;
  const stats = statsOf(values);
  assert.deepEqual(minMaxCalibrator.range(stats, { symmetric: false }), { min: -2.5, max: 3.25 });
  assert.deepEqual(minMaxCalibrator.range(stats, { symmetric: true }), { min: -3.25, max: 3.25 });
  assert.equal(stats.count, 10_000);
});

test('expected-minmax: minmax over 4 runs in expectation, which stays put as runs are added (minmax widens); merge and JSON keep the runs', () => {
  const random = mulberry32(7);
  const runs = (count: number) => {
    const stats = new TensorStatistics('x');
    // Each run: 1000 bell-shaped values; more runs reach further into the tails.
    for (let r = 0; r < count; r++) stats.add(Float32Array.from({ length: 1000 }, () => random() + random() + random() - 1.5));
    return stats;
  };
  const [few, many] = [runs(4), runs(64)];
  const expected = (s: TensorStatistics) => calibratorNamed('expected-minmax').range(s, { symmetric: false });
  assert.deepEqual(expected(few), { min: few.min, max: few.max }, 'up to 4 runs it is minmax');
  assert.ok(many.max - many.min > few.max - few.min, 'minmax widens with more runs');
  const [a, b] = [expected(few), expected(many)];
  assert.ok(Math.abs(b.max - b.min - (a.max - a.min)) < 0.1 * (a.max - a.min), `expected-minmax ${a.min}..${a.max} (4 runs) vs ${b.min}..${b.max} (64)`);
  assert.ok(b.max < many.max && b.min > many.min, 'the rarest values are clipped');
  // Maxima 1..5, 4 drawn: the largest is 5 with chance 4/5, else 4: 4.8. Minima -1..-5 mirror it.
  const five = new TensorStatistics('x');
  for (let v = 1; v <= 5; v++) five.add([-v, v]);
  const fiveRange = expected(five);
  assert.ok(Math.abs(fiveRange.max - 4.8) < 1e-12 && Math.abs(fiveRange.min + 4.8) < 1e-12, JSON.stringify(fiveRange));
  assert.ok(Math.abs(expectedLargest([1, 2, 3, 4, 5], 1) - 3) < 1e-12, 'one run: the mean');
  const merged = TensorStatistics.fromJSON(JSON.parse(JSON.stringify(five.toJSON())));
  merged.merge(five);
  assert.equal(merged.runs, 10);
  assert.ok(Math.abs(expected(merged).max - expectedLargest([1, 1, 2, 2, 3, 3, 4, 4, 5, 5], 4)) < 1e-12);
});

test('the histogram re-bins as the range grows and keeps quantiles within a bin or two', () => {
  // Batches of growing range: every new batch widens the histogram.
  const values = new Float32Array(100_000);
  for (let b = 0; b < 10; b++) values.set(uniform(10_000, 10 + b, -(b + 1), 2 * (b + 1)), b * 10_000);
  const streamed = new Histogram(2048, false);
  for (let b = 0; b < 10; b++) streamed.add(values.subarray(b * 10_000, (b + 1) * 10_000));
  assert.equal(streamed.lo, Math.min(...values));
  assert.equal(streamed.hi, Math.max(...values));
  assert.ok(Math.abs(streamed.counted() - 100_000) < 1e-6, `counted ${streamed.counted()}`);
  for (const f of [0.01, 0.25, 0.5, 0.9, 0.999]) {
    const q = streamed.quantile(f);
    const exact = exactQuantile(values, f);
    assert.ok(Math.abs(q - exact) < 2 * streamed.binWidth, `quantile ${f}: ${q} vs ${exact} (bin ${streamed.binWidth})`);
  }
});

test('Percentile: uniform tails and the 99.9th percentile of |N(0, 1)|', () => {
  const u = statsOf(uniform(1_000_000, 2, 0, 1));
  const r = percentileCalibrator.range(u, { symmetric: false, percentile: 99 });
  assert.ok(Math.abs(r.max - 0.99) < 2e-3 && Math.abs(r.min - 0.01) < 2e-3, JSON.stringify(r));
  const g = statsOf(gaussian(1_000_000, 3));
  const t = percentileCalibrator.range(g, { symmetric: true, percentile: 99.9 }).max;
  // P(|Z| < 3.2905) = 0.999.
  assert.ok(Math.abs(t - 3.2905) < 0.03, `99.9th percentile of |Z| = ${t}`);
  // The default 99.999 stays close to the maximum but below it.
  const d = percentileCalibrator.range(g, { symmetric: true });
  assert.ok(d.max <= g.absMax && d.max > 4, JSON.stringify(d));
});

test('Entropy (KL, TensorRT): a Gaussian with far outliers is clipped well below its maximum', () => {
  const values = gaussian(200_000, 4);
  for (let i = 0; i < 20; i++) values[i * 1000] = (i % 2 === 0 ? 1 : -1) * (40 + i);
  const stats = statsOf(values);
  const t = entropyCalibrator.range(stats, { symmetric: true }).max;
  assert.ok(stats.absMax > 58);
  assert.ok(t > 2.5 && t < 8, `entropy threshold ${t} (max ${stats.absMax})`);
  // Without outliers, the threshold stays in the tail of the distribution, near where the data ends.
  const clean = statsOf(uniform(200_000, 5, -1, 1));
  const u = entropyCalibrator.range(clean, { symmetric: true }).max;
  assert.ok(u > 0.9, `uniform threshold ${u}`);
});

test('Entropy never clips the body: an image whose white background sits at exactly +1 keeps its range', () => {
  // 95% of the pixels at +1 (background), the rest near -1 (ink): plain TensorRT KL picks a
  // threshold of about 0.95, clipping every pixel and flattening the image; at most 0.1% may go.
  const random = mulberry32(12);
  const values = Float32Array.from({ length: 100_000 }, () => (random() < 0.95 ? 1 : -1 + random() * 0.05));
  const stats = statsOf(values);
  const t = entropyCalibrator.range(stats, { symmetric: true }).max;
  let clipped = 0;
  for (const v of values) if (Math.abs(v) > t) clipped++;
  assert.ok(clipped <= 0.001 * values.length, `threshold ${t} clips ${clipped} of ${values.length} values`);
  assert.ok(t > 0.99, `threshold ${t}`);
});

test('MSE: the chosen range is within 2% of the brute-force optimum of the true squared error', () => {
  // Laplace-like heavy tails: the optimum clips.
  const random = mulberry32(6);
  const values = Float32Array.from({ length: 100_000 }, () => {
    const u = random() - 0.5;
    return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  });
  const trueMse = (t: number, symmetric: boolean, lo = -t) => {
    const p = rangeParams({ min: lo, max: t }, symmetric ? 'int8' : 'uint8', symmetric);
    let sum = 0;
    for (const v of values) sum += (v - fakeQuantize(v, p)) ** 2;
    return sum / values.length;
  };
  const stats = statsOf(values);
  for (const symmetric of [true, false]) {
    const chosen = mseCalibrator.range(stats, { symmetric });
    let best = Infinity;
    for (let k = 1; k <= 400; k++) {
      const f = k / 400;
      best = Math.min(best, symmetric ? trueMse(f * stats.absMax, true) : trueMse(f * stats.max, false, f * stats.min));
    }
    const got = trueMse(chosen.max, symmetric, chosen.min);
    assert.ok(got <= best * 1.02, `${symmetric ? 'symmetric' : 'asymmetric'}: MSE ${got} at [${chosen.min}, ${chosen.max}] vs best ${best}`);
    // For Laplace(1) and 8 bits the optimum clips near 9.9 (Banner et al., ACIQ), well inside the 13.5 seen.
    assert.ok(chosen.max < stats.max * 0.9 && chosen.max > 8, `MSE clips the tail: ${chosen.max} of ${stats.max}`);
  }
});

test('every calibrator is in the registry; unknown names fail with the list', () => {
  for (const name of RANGE_CALIBRATOR_NAMES) assert.equal(calibratorNamed(name).name, name);
  assert.throws(() => calibratorNamed('kl'), /unknown calibrator 'kl' \(known: minmax, expected-minmax, percentile, entropy, mse, measured\)/);
});

/** x [N, 64] -> Relu -> Mul by 2 -> y: known activations for the collector. */
function tinyModel() {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 64]);
  const r = b.node('Relu', [x], [], { name: 'relu', outputs: ['r'] })[0];
  const two = b.initializer('two', DataType.FLOAT, [], Float32Array.of(2));
  const y = b.node('Mul', [r, two], [], { name: 'mul', outputs: ['y'] })[0];
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph);
}

const samplesOf = (count: number, dims = [1, 64]) =>
  tensorSamples(Array.from({ length: count }, (_, i) => ({ x: Tensor.fromArray('x', DataType.FLOAT, dims, uniform(dims[0] * dims[1], 100 + i, -3, 2)) })), 'test samples');

test('collector: activations read through onnxruntime, in groups and batches, match the values computed directly', async () => {
  const model = tinyModel();
  const samples = samplesOf(20);
  const all: number[] = [];
  for await (const s of samples) all.push(...(s.inputs.x.data() as Float32Array));
  const result = await collectStatistics(nodeOrt, model, ['x', 'r', 'y'], samples, { valuesPerRun: 1, batch: 4 });
  assert.equal(result.samples, 20);
  assert.equal(result.passes, 2, 'r and y exposed one per session');
  const max = Math.max(...all);
  const x = result.stats.get('x');
  const y = result.stats.get('y');
  assert.ok(x !== undefined && y !== undefined);
  assert.equal(x.min, Math.min(...all));
  assert.equal(x.max, max);
  assert.equal(result.stats.get('r')?.min, 0);
  assert.equal(y.max, 2 * max);
  assert.equal(y.zeros, all.filter((v) => v <= 0).length);
});

test('collector: memory is the same for 10 and 200 samples (fixed-size histograms per activation)', async () => {
  const model = tinyModel();
  const small = await collectStatistics(nodeOrt, model, ['x', 'r', 'y'], samplesOf(10));
  const large = await collectStatistics(nodeOrt, model, ['x', 'r', 'y'], samplesOf(200, [4, 64]), { batch: 8 });
  const bytes = (r: typeof small) => [...r.stats.values()].reduce((n, s) => n + s.byteSize, 0);
  assert.equal(large.samples, 200);
  assert.equal(large.stats.get('x')?.count, 200 * 4 * 64);
  assert.equal(bytes(small), bytes(large));
  assert.equal(bytes(large), 3 * 2 * 2048 * 8);
});

test('collector: calibration data of the wrong shape fails with one line naming the sample', async () => {
  const model = tinyModel();
  await assert.rejects(
    () => collectStatistics(nodeOrt, model, ['r'], samplesOf(3, [1, 32])),
    (error: Error) => {
      assert.equal(error.message.split('\n').length, 1, error.message);
      assert.match(error.message, /test samples 0.*'x'/);
      return true;
    },
  );
});
