// Weight sharing on the Fashion-MNIST MLP (models/fashion-mnist/mlp.onnx, 89.21% in float32), with
// accuracy counted here on the 10,000 held-out test images in onnxruntime-node: 4-bit per-tensor
// codebooks lose at most 0.6 points; per-channel, grouped and kmeans++ codebooks decode in
// onnxruntime exactly as the codes say; a codebook on a uniform grid becomes DequantizeLinear and
// changes nothing; fine-tuning the centroids (one epoch on 12,000 training images) raises 2- and
// 3-bit accuracy; the gradient that reaches a codebook through the decoding Gather is right.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { DataType } from '../src/ir/dtype.js';
import { constantValue } from '../src/ir/constants.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { findClusters } from '../src/methods/cluster/decode-graph.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { cluster } from '../src/pipeline/cluster.js';
import { fashionTestAccuracy } from './helpers/fashion-files.js';
import { checkGradient } from './helpers/gradient-check.js';
import { maxAbsDiff, runModel } from './helpers/run-model.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const ctx = { ort: nodeOrt, threads: 1 };
const testSet = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
const images = Tensor.fromArray('image', DataType.FLOAT, [10000, 1, 28, 28], Float32Array.from(testSet.images, (v) => v / 255));

async function logitsOf(model: Model): Promise<Float32Array> {
  const [logits] = await runModel(model, [images]);
  return logits.data() as Float32Array;
}

const accuracy = fashionTestAccuracy;

/** The MLP with every clustered weight replaced by its decoding, computed here from codes, codebook and offsets. */
function decodedByHand(original: Model, clustered: Model): Model {
  const dense = original.clone();
  for (const f of findClusters(clustered)) {
    const codes = constantValue(f.graph, f.codes) as Tensor;
    const book = constantValue(f.graph, f.codebook)?.data() as Float32Array;
    const offsets = f.offsets === undefined ? undefined : (constantValue(f.graph, f.offsets) as Tensor);
    const c = codes.data() as Uint8Array;
    const axis = offsets?.dims.findIndex((d) => d > 1) ?? -1;
    const inner = codes.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const values = Float32Array.from(c, (code, i) => book[(offsets === undefined ? 0 : (offsets.data() as Int32Array)[Math.floor(i / inner) % codes.dims[axis]]) + code]);
    const weight = f.codes.replace(/_codes$/, '');
    const at = dense.graph.initializers.findIndex((t) => t.name === weight);
    dense.graph.replaceInitializer(at, Tensor.fromArray(weight, DataType.FLOAT, codes.dims, values));
  }
  return dense;
}

test('4-bit per-tensor codebooks: uint8 codes + 16 centroids per weight, held-out accuracy within 0.6 points of float32', async () => {
  const mlp = loadModel(MLP);
  const fp32 = await accuracy(mlp);
  assert.ok(Math.abs(fp32 - 89.21) < 0.01, `fp32 ${fp32}`);
  const { model, report } = await cluster(mlp, { bits: 4 }, ctx);
  const found = findClusters(model);
  assert.deepEqual(found.map((f) => [f.codes, f.codebook, f.stride, f.offsets]), [
    ['fc1.weight_codes', 'fc1.weight_codebook', 16, undefined],
    ['fc2.weight_codes', 'fc2.weight_codebook', 16, undefined],
    ['fc3.weight_codes', 'fc3.weight_codebook', 16, undefined],
  ]);
  const codes = model.graph.initializer('fc1.weight_codes') as Tensor;
  assert.equal(codes.dataType, DataType.UINT8);
  assert.deepEqual(codes.dims, [256, 784]);
  assert.ok((codes.data() as Uint8Array).every((c) => c < 16));
  assert.equal(model.graph.initializer('fc1.weight'), undefined, 'the float weight is gone');
  assert.deepEqual(report.tensors.map((t) => t.centroids), [16, 16, 16]);
  assert.ok(report.tensors.every((t) => typeof t.sqnr_db === 'number' && t.sqnr_db > 17), JSON.stringify(report.tensors.map((t) => t.sqnr_db)));
  assert.ok(report.size.ratio < 0.26 && (report.gzip?.ratio ?? 1) < 0.15, `size ${report.size.ratio}, gzip ${report.gzip?.ratio}`);
  const acc = await accuracy(model);
  console.log(`MLP 4-bit per-tensor: ${acc.toFixed(2)}% vs float32 ${fp32.toFixed(2)}%; file x${report.size.ratio}, gzip -9 x${report.gzip?.ratio}; SQNR ${report.tensors.map((t) => t.sqnr_db).join('/')} dB`);
  assert.ok(fp32 - acc <= 0.6, `4-bit accuracy ${acc}% vs ${fp32}%`);
  // onnxruntime decodes exactly what the codes say.
  assert.ok(maxAbsDiff(await logitsOf(model), await logitsOf(decodedByHand(mlp, model))) < 1e-4);
});

test('per-channel, grouped and kmeans++ codebooks: offsets into one flat codebook decode as the codes say; accuracy within 1 point', async () => {
  const mlp = loadModel(MLP);
  const lines: string[] = [];
  for (const options of [{ grouping: 'channel' as const }, { channelsPerGroup: 32 }, { init: 'kmeans++' as const, seed: 3 }]) {
    const { model, report } = await cluster(mlp, { bits: 4, ...options }, ctx);
    const found = findClusters(model);
    assert.equal(found.length, 3);
    const fc1 = report.tensors[0];
    const expectedBooks = 'grouping' in options ? 256 : 'channelsPerGroup' in options ? 8 : 1;
    assert.equal(fc1.codebooks, expectedBooks);
    assert.equal((model.graph.initializer(fc1.codebook) as Tensor).elementCount, expectedBooks * 16);
    if (expectedBooks > 1) {
      // Gemm transB: fc1.weight is [N=256, K=784], output channels on axis 0.
      const offsets = model.graph.initializer(found[0].offsets as string) as Tensor;
      assert.deepEqual(offsets.dims, [256, 1]);
      assert.equal((offsets.data() as Int32Array)[255], (expectedBooks - 1) * 16);
    }
    assert.ok(maxAbsDiff(await logitsOf(model), await logitsOf(decodedByHand(mlp, model))) < 1e-4);
    const acc = await accuracy(model);
    lines.push(`${JSON.stringify(options)} ${acc.toFixed(2)}% (fc1 SQNR ${fc1.sqnr_db} dB, gzip x${report.gzip?.ratio})`);
    assert.ok(89.21 - acc <= 1, `${JSON.stringify(options)}: ${acc}%`);
  }
  console.log(`MLP 4-bit: ${lines.join('; ')}`);
});

test('a codebook on a uniform grid is written as DequantizeLinear (per tensor and per channel) and changes no output', async () => {
  const mlp = loadModel(MLP);
  for (const grouping of ['tensor', 'channel'] as const) {
    // Every weight on a grid of 16 steps: per tensor one step, per channel each row its own.
    const gridded = mlp.clone();
    for (const name of ['fc1.weight', 'fc2.weight', 'fc3.weight']) {
      const w = gridded.graph.initializer(name) as Tensor;
      const [rows, cols] = w.dims;
      const values = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        const step = grouping === 'tensor' ? 0.01 : 0.01 * (1 + (r % 3));
        for (let c = 0; c < cols; c++) values[r * cols + c] = ((((r * cols + c) * 7) % 16) - 8) * step;
      }
      gridded.graph.replaceInitializer(gridded.graph.initializers.indexOf(w), Tensor.fromArray(name, DataType.FLOAT, w.dims, values));
    }
    const { model, report } = await cluster(gridded, { bits: 4, grouping }, ctx);
    assert.deepEqual(report.tensors.map((t) => t.form), ['dequantize-linear', 'dequantize-linear', 'dequantize-linear']);
    assert.equal(report.stats.folded, 3);
    const dq = model.graph.nodes.filter((n) => n.opType === 'DequantizeLinear');
    assert.equal(dq.length, 3);
    assert.equal((model.graph.initializer(dq[0].inputs[1]) as Tensor).elementCount, grouping === 'tensor' ? 1 : 256);
    assert.deepEqual(report.tensors.map((t) => t.sqnr_db), ['inf', 'inf', 'inf']);
    assert.ok(maxAbsDiff(await logitsOf(gridded), await logitsOf(model)) < 1e-5);
  }
});

test('fine-tuning the centroids for one epoch on 12,000 training images raises held-out accuracy at 2 and 3 bits; only codebooks change', async () => {
  const mlp = loadModel(MLP);
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const n = 12000;
  const data = {
    inputs: { image: { data: Float32Array.from(train.images.subarray(0, n * 784), (v) => v / 255), sampleDims: [1, 28, 28], dataType: DataType.FLOAT } },
    labels: BigInt64Array.from(train.labels.subarray(0, n), (v) => BigInt(v)),
  };
  const lines: string[] = [];
  for (const [bits, gain] of [
    [2, 1.5],
    [3, 0.1],
  ]) {
    const plain = await cluster(mlp, { bits }, ctx);
    const tuned = await cluster(mlp, { bits, data, finetune: { epochs: 1, batchSize: 64, schedule: { kind: 'cosine', rate: 0.001 }, optimizer: { kind: 'adamw' } } }, ctx);
    const before = await accuracy(plain.model);
    const after = await accuracy(tuned.model);
    const f = tuned.report.finetune;
    assert.equal(f?.codebooks, 3);
    assert.equal(f?.centroids, 3 * 2 ** bits);
    // The codes, biases and graph are those of the untuned result; the codebooks moved.
    assert.deepEqual(tuned.model.graph.initializer('fc1.weight_codes')?.data(), plain.model.graph.initializer('fc1.weight_codes')?.data());
    assert.deepEqual(tuned.model.graph.initializer('fc1.bias')?.data(), mlp.graph.initializer('fc1.bias')?.data());
    assert.notDeepEqual(tuned.model.graph.initializer('fc1.weight_codebook')?.data(), plain.model.graph.initializer('fc1.weight_codebook')?.data());
    lines.push(`${bits}-bit ${before.toFixed(2)}% -> ${after.toFixed(2)}% (${f?.steps} steps, ${f?.seconds.toFixed(1)} s)`);
    assert.ok(after - before >= gain, `${bits} bits: ${before}% -> ${after}%`);
  }
  console.log(`MLP centroid fine-tuning, held-out test accuracy: ${lines.join('; ')}`);
});

test('gradient of a codebook through Cast + Add(offsets) + Gather + MatMul: finite differences agree (a centroid gets the summed gradients of its weights)', async () => {
  await checkGradient({
    build: (b) => {
      const codes = b.initializer('codes', DataType.UINT8, [4, 2], Uint8Array.from([0, 3, 1, 1, 3, 0, 2, 2]));
      const offsets = b.initializer('offsets', DataType.INT32, [1, 2], Int32Array.from([0, 4]));
      const asInt = b.node('Cast', [codes], [attr.int('to', DataType.INT32)]);
      const w = b.node('Gather', ['codebook', b.node('Add', [asInt, offsets])]);
      return b.node('MatMul', ['x', w]);
    },
    inputs: { x: { dims: [3, 4] }, codebook: { dims: [8] } },
    wrt: ['codebook'],
  });
});
