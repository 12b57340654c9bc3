// Activation statistics beyond calibration: XᵀX in onnxruntime against the plain-JS reference,
// per-channel L2 norms, and the collector feeding both on PP-OCRv4 rec's first MatMul input,
// checked against a direct computation from the activation fetched as an extra output.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChannelNorms } from '../src/eval/channel-norms.js';
import { collectActivations } from '../src/eval/activation-stats.js';
import { GramMatrix, OrtGram, gramRef } from '../src/eval/gram-matrix.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { sampleFeeds } from '../src/eval/samples.js';
import { TensorStatistics } from '../src/eval/tensor-statistics.js';
import { weightedLayers } from '../src/graph-edit/weighted-layers.js';
import { nodeOrder } from '../src/ir/toposort.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import { REC } from './helpers/real-models.js';
import { pseudoRandom } from './helpers/tensors.js';

/** Largest |a - b| over the largest |b|. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** float32 products summed in float32 inside each onnxruntime call: a few ulps of the largest entry. */
const ORT_GRAM_TOLERANCE = 1e-5;

test('XᵀX in onnxruntime equals the float64 JS reference, across row chunks and on array views', async () => {
  const k = 48;
  const rows = 9000; // three onnxruntime calls of at most 4096 rows
  const backing = pseudoRandom((rows + 3) * k, 1, -2, 2);
  const x = backing.subarray(3 * k); // a view with an offset, as onnxruntime outputs may be
  const expected = new Float64Array(k * k);
  gramRef(x, rows, k, expected);
  const products = await OrtGram.create(nodeOrt, { threads: 1 });
  try {
    const got = new Float64Array(k * k);
    await products.addProduct(x, rows, k, got);
    const error = relativeError(got, expected);
    assert.ok(error < ORT_GRAM_TOLERANCE, `relative error ${error}`);
    // Symmetric, and the diagonal is Σ x².
    let diagonal = 0;
    for (let r = 0; r < rows; r++) diagonal += x[r * k + 5] ** 2;
    assert.ok(Math.abs(got[5 * k + 5] - diagonal) / diagonal < ORT_GRAM_TOLERANCE);
    assert.equal(got[3 * k + 7], got[7 * k + 3]);
  } finally {
    await products.release();
  }
  // The accumulator picks JS for a tiny batch and onnxruntime for a large one, and sums both.
  const gram = new GramMatrix('x', { ort: nodeOrt, threads: 1 });
  await gram.add(x.subarray(0, 2 * k), [2, k]);
  await gram.add(x.subarray(2 * k), [rows - 2, k]);
  await gram.release();
  assert.equal(gram.rows, rows);
  assert.ok(relativeError(gram.matrix, expected) < ORT_GRAM_TOLERANCE);
  assert.equal(gram.byteSize, k * k * 8);
});

test('channel norms along any axis equal the direct sums; a batch with other channels is refused', () => {
  // [2, 3, 4]: channels on axis 1 and on the last axis.
  const data = Float32Array.from({ length: 24 }, (_, i) => (i % 7) - 3);
  const middle = new ChannelNorms('v', 1);
  const last = new ChannelNorms('v', -1);
  middle.add(data, [2, 3, 4]);
  last.add(data, [2, 3, 4]);
  const at = (a: number, c: number, i: number) => data[(a * 3 + c) * 4 + i];
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let a = 0; a < 2; a++) for (let i = 0; i < 4; i++) s += at(a, c, i) ** 2;
    assert.equal(middle.sumSquares[c], s);
  }
  for (let i = 0; i < 4; i++) {
    let s = 0;
    for (let a = 0; a < 2; a++) for (let c = 0; c < 3; c++) s += at(a, c, i) ** 2;
    assert.equal(last.norms()[i], Math.sqrt(s));
  }
  assert.equal(middle.count, 8);
  assert.equal(last.count, 6);
  assert.throws(() => last.add(new Float32Array(10), [2, 5]), /'v': axis -1 has 5 channels in this batch, 4 before/);
});

test('PP-OCRv4 rec: per-channel norms and XᵀX of the first MatMul input, streamed, match a direct computation', async () => {
  const model = loadModel(REC);
  const first = weightedLayers(model.graph, nodeOrder(model.graph).order).find((l) => l.node.opType === 'MatMul');
  assert.ok(first?.axes !== undefined);
  const x = first.node.inputs[0];
  const k = first.axes.inputChannels as number;
  assert.equal(k, 120);
  const signature = modelSignature(model);
  const samples = generatedSamples(signature.inputs, { count: 4, seed: 3, dims: { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 160 } });

  // The reference: the activation itself, fetched sample by sample as an extra output.
  const session = await ModelSession.create(nodeOrt, model, { extraOutputs: [x], threads: 1 });
  const expectedGram = new Float64Array(k * k);
  const expectedSquares = new Float64Array(k);
  const imageSquares = new Float64Array(3);
  let rows = 0;
  let min = Infinity;
  try {
    for await (const sample of samples) {
      const value = (await session.run(sampleFeeds(nodeOrt, sample), [x]))[x];
      const data = value.data as Float32Array;
      const n = data.length / k;
      gramRef(data, n, k, expectedGram);
      for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) expectedSquares[j] += data[r * k + j] ** 2;
      for (const v of data) min = Math.min(min, v);
      rows += n;
      const image = sample.inputs.x.data() as Float32Array;
      const plane = image.length / 3;
      for (let i = 0; i < image.length; i++) imageSquares[Math.floor(i / plane)] += image[i] ** 2;
    }
  } finally {
    await session.release();
  }
  assert.equal(rows, 4 * 20, '20 time steps of 120 features per 160-pixel line');

  for (const batch of [1, 2]) {
    const norms = new ChannelNorms(x, -1);
    const ortGram = new GramMatrix(x, { ort: nodeOrt, engine: 'ort', threads: 1 });
    const jsGram = new GramMatrix(x, { engine: 'js' });
    const range = new TensorStatistics(x);
    const imageNorms = new ChannelNorms('x', 1);
    const result = await collectActivations(nodeOrt, model, [norms, ortGram, jsGram, range, imageNorms], samples, { batch, threads: 1 });
    assert.equal(result.samples, 4);
    assert.equal(result.passes, 1);
    assert.equal(ortGram.rows, rows);
    assert.equal(norms.count, rows);
    assert.ok(relativeError(norms.sumSquares, expectedSquares) < 1e-12, `batch ${batch}: channel norms`);
    assert.ok(relativeError(imageNorms.sumSquares, imageSquares) < 1e-12, `batch ${batch}: norms of a graph input`);
    const ortError = relativeError(ortGram.matrix, expectedGram);
    assert.ok(ortError < ORT_GRAM_TOLERANCE, `batch ${batch}: XᵀX in onnxruntime, relative error ${ortError}`);
    if (batch === 1) assert.deepEqual(jsGram.matrix, expectedGram, 'the JS path is the reference itself');
    else assert.ok(relativeError(jsGram.matrix, expectedGram) < 1e-12);
    assert.equal(range.min, min);
    // State is per channel, whatever the number of samples.
    assert.equal(ortGram.byteSize, k * k * 8);
    assert.equal(norms.byteSize, k * 8);
  }
});

test('values exposed a group per pass; values that are not float32 are reported and feed nothing', async () => {
  const model = loadModel(REC);
  const signature = modelSignature(model);
  const samples = generatedSamples(signature.inputs, { count: 2, seed: 4, dims: { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 64 } });
  const shapeOf = model.graph.nodes.find((n) => n.opType === 'Shape');
  assert.ok(shapeOf !== undefined);
  const layers = weightedLayers(model.graph).slice(0, 3);
  const norms = layers.map((l) => new ChannelNorms(l.node.outputs[0], 1));
  const notFloat = new ChannelNorms(shapeOf.outputs[0], 0);
  const result = await collectActivations(nodeOrt, model, [...norms, notFloat], samples, { valuesPerRun: 2, threads: 1 });
  assert.equal(result.passes, 2);
  assert.deepEqual([...result.notFloat], [[shapeOf.outputs[0], 'int64']]);
  assert.equal(notFloat.count, 0);
  for (const [i, n] of norms.entries()) assert.equal(n.sumSquares.length, layers[i].axes?.outputChannels);
});
