// Dynamic int8 of a BERT encoder (models/spam-bert): the default form (MatMulIntegerToFloat Q/K/V
// and an unmasked MultiHeadAttention with the mask in an extra Q/K column per head; the other
// Linears as DynamicQuantizeMatMul with their bias Add folded in), the QAttention form and
// `attention: false` load and run in
// onnxruntime-node, stay close to float32 on padded batches, and onnxruntime's optimized model
// holds the integer and fused ops expected (read back through optimizedModelFilePath at 'all').
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cosineSimilarity } from '../src/eval/metrics.js';
import type { Model } from '../src/ir/model.js';
import { quantizeDynamicInt8 } from '../src/methods/quantize/dynamic-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { inferShapes } from '../src/optimize/shape-inference/index.js';
import { paddedTokenFeeds } from './helpers/bert-token-feeds.js';

const BERT = 'models/spam-bert/onnx/model.onnx';
const BATCH = 4;
const LENGTH = 96;

function opCounts(model: Model): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const node of model.graph.nodes) counts[node.opType] = (counts[node.opType] ?? 0) + 1;
  return counts;
}

/** Token ids of a fixed pseudo-random text, rows padded from the end by 0, 10, 20, ... tokens. */
const feeds = () => paddedTokenFeeds(BATCH, LENGTH, 10, 7);

/** Logits of `model` at graph optimization 'all', and the model onnxruntime optimized it into. */
async function runOptimized(model: Model): Promise<{ logits: Float32Array; optimized: Model }> {
  const folder = mkdtempSync(join(tmpdir(), 'shrink-bert-int8-'));
  try {
    const file = join(folder, 'optimized.onnx');
    const session = await nodeOrt.InferenceSession.create(writeModel(model), {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      optimizedModelFilePath: file,
      logSeverityLevel: 3,
    });
    const logits = (await session.run(feeds())).logits.data as Float32Array;
    await session.release();
    return { logits, optimized: readModel(readFileSync(file)) };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

test('dynamic int8 of spam-bert, attention left as exported: bias Adds folded into DynamicQuantizeMatMul, close to float32, integer ops kept by onnxruntime', async () => {
  const float = await runOptimized(loadModel(BERT));
  const model = loadModel(BERT);
  const report = quantizeDynamicInt8(model, { attention: false });
  assert.equal(report.stats.quantized, 14);
  const counts = opCounts(model);
  assert.equal(counts.DynamicQuantizeMatMul, 14);
  assert.equal(counts.MatMul, 4, 'the attention products Q.K^T and P.V stay float');
  // 12 Linear layers' bias Adds are now DynamicQuantizeMatMul's bias input (Gemm biases were already).
  const withBias = model.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul' && (n.inputs[4] ?? '') !== '');
  assert.equal(withBias.length, 14);
  assert.equal(counts.Add, 22 - 12);
  const int8 = await runOptimized(model);
  assert.ok(cosineSimilarity(float.logits, int8.logits) > 0.999, `cosine ${cosineSimilarity(float.logits, int8.logits)}`);
  assert.ok(maxAbsDiff(float.logits, int8.logits) < 0.05, `max |diff| ${maxAbsDiff(float.logits, int8.logits)}`);
  const built = opCounts(int8.optimized);
  assert.equal(built.DynamicQuantizeMatMul, 14, 'onnxruntime keeps every integer product');
  assert.equal(built.MatMul, 2, 'P.V');
  assert.equal(built.FusedMatMul, 2, 'Q.K^T with its transpose and scale fused');
  assert.equal(built.Gelu, 2, 'the erf GELU fused');
  // The float model: onnxruntime fuses no attention and no SkipLayerNormalization here either.
  const floatBuilt = opCounts(float.optimized);
  assert.equal(floatBuilt.Attention ?? 0, 0);
  assert.equal(floatBuilt.SkipLayerNormalization ?? 0, 0);
  assert.equal(floatBuilt.LayerNormalization, 5);
});

test('dynamic int8 of spam-bert by default: MultiHeadAttention without a mask input (the mask in an extra Q/K column per head), close to float32 and to the QAttention form', async () => {
  const float = await runOptimized(loadModel(BERT));
  const model = loadModel(BERT);
  const report = quantizeDynamicInt8(model);
  assert.equal(report.stats.attention, 2);
  assert.deepEqual(
    report.warnings.filter((w) => w.code === 'attention-float'),
    [],
  );
  const counts = opCounts(model);
  assert.equal(counts.MultiHeadAttention, 2);
  assert.equal(counts.MatMulIntegerToFloat, 6);
  assert.equal(counts.DynamicQuantizeLinear, 2, 'one quantization of each layer input, shared by Q, K and V');
  assert.equal(counts.DynamicQuantizeMatMul, 8);
  assert.equal(counts.QAttention ?? 0, 0);
  assert.equal(counts.Softmax ?? 0, 0);
  const types = inferShapes(model).types.get(model.graph);
  // The pooler reads token 0 only: the last layer's queries are that row (push-row-gathers).
  assert.equal(report.stats.rowGathersMoved, 14);
  for (const [layer, node] of model.graph.nodes.filter((n) => n.opType === 'MultiHeadAttention').entries()) {
    // No mask input: onnxruntime's CPU kernel takes its flash path only then.
    assert.equal(node.inputs.length, 3);
    assert.ok(Math.abs((node.attrFloat('scale', 0) ?? 0) - 1 / Math.sqrt(32)) < 1e-7, 'the scale of head size 32, not 33');
    const [q, k, v] = node.inputs.map((i) => types?.get(i)?.shape);
    assert.deepEqual(q, ['batch_size', layer === 0 ? 'sequence_length' : 1, 4 * 33]);
    assert.deepEqual(v, ['batch_size', 'sequence_length', 128]);
    const masked = model.graph.producer(node.inputs[1]);
    assert.equal(masked?.opType, 'Add', 'K plus the mask columns');
    assert.deepEqual(k, ['batch_size', 'sequence_length', 4 * 33]);
    assert.deepEqual(types?.get(node.outputs[0])?.shape, ['batch_size', layer === 0 ? 'sequence_length' : 1, 128]);
  }
  const int8 = await runOptimized(model);
  assert.ok(cosineSimilarity(float.logits, int8.logits) > 0.999, `cosine ${cosineSimilarity(float.logits, int8.logits)}`);
  // Rows 1-3 are padded: a mask applied wrongly would move their logits far more than this.
  assert.ok(maxAbsDiff(float.logits, int8.logits) < 0.05, `max |diff| ${maxAbsDiff(float.logits, int8.logits)}`);
  const qattention = await runOptimized((() => {
    const m = loadModel(BERT);
    quantizeDynamicInt8(m, { attentionForm: 'qattention' });
    return m;
  })());
  assert.ok(maxAbsDiff(qattention.logits, int8.logits) < 0.02, `flash vs QAttention max |diff| ${maxAbsDiff(qattention.logits, int8.logits)}`);
  const built = opCounts(int8.optimized);
  assert.equal(built.MultiHeadAttention, 2);
  assert.equal(built.MatMulIntegerToFloat, 6);
  assert.equal(built.DynamicQuantizeMatMul, 8);
});

test('dynamic int8 of spam-bert, QAttention form: the padding mask as mask_index, close to float32', async () => {
  const float = await runOptimized(loadModel(BERT));
  const model = loadModel(BERT);
  const report = quantizeDynamicInt8(model, { attentionForm: 'qattention' });
  assert.equal(report.stats.attention, 2);
  assert.deepEqual(
    report.warnings.filter((w) => w.code === 'attention-float'),
    [],
  );
  const counts = opCounts(model);
  assert.equal(counts.QAttention, 2);
  assert.equal(counts.DynamicQuantizeMatMul, 8);
  assert.equal(counts.MultiHeadAttention ?? 0, 0);
  assert.equal(counts.Softmax ?? 0, 0);
  const attention = model.graph.nodes.filter((n) => n.opType === 'QAttention');
  for (const node of attention) {
    const mask = model.graph.producer(node.inputs[5]);
    assert.equal(mask?.opType, 'Cast');
    assert.equal(mask?.inputs[0], 'attention_mask');
  }
  // shrink's shape inference sees through QAttention (later passes infer through it).
  const types = inferShapes(model).types.get(model.graph);
  for (const node of attention) assert.deepEqual(types?.get(node.outputs[0])?.shape, ['batch_size', 'sequence_length', 128]);
  const int8 = await runOptimized(model);
  assert.ok(cosineSimilarity(float.logits, int8.logits) > 0.999, `cosine ${cosineSimilarity(float.logits, int8.logits)}`);
  // Rows 1-3 are padded: a mask applied wrongly would move their logits far more than this.
  assert.ok(maxAbsDiff(float.logits, int8.logits) < 0.05, `max |diff| ${maxAbsDiff(float.logits, int8.logits)}`);
  const built = opCounts(int8.optimized);
  assert.equal(built.QAttention, 2);
  assert.equal(built.DynamicQuantizeMatMul, 8);
});

test('an excluded projection leaves the attention as exported, with the reason', () => {
  const model = loadModel(BERT);
  const report = quantizeDynamicInt8(model, { exclude: (node) => node.name === '/layers.1/key/MatMul' });
  assert.equal(report.stats.attention, 0);
  const warning = report.warnings.find((w) => w.code === 'attention-float');
  assert.match(warning?.message ?? '', /2 found, 1 not convertible to integer attention\): the projection '\/layers\.1\/key\/MatMul' is excluded/);
  const counts = opCounts(model);
  assert.equal(counts.QAttention ?? 0, 0);
  assert.equal(counts.MultiHeadAttention ?? 0, 0);
  assert.equal(counts.MatMulIntegerToFloat ?? 0, 0);
  assert.equal(counts.Softmax, 2);
  assert.equal(counts.DynamicQuantizeMatMul, 13);
});
