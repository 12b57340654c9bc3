// Weight sharing on the real PP-OCRv4 models (REAL_MODELS.md), whose weights all sit in Constant
// nodes: the clustered graphs load and run in onnxruntime-node, the Constant weights are gone in
// favour of uint8 codes + codebooks, and the outputs' cosine against the original (and, for rec,
// the share of rendered text lines read identically) is reported. PP-OCR is sensitive: its
// depthwise convolutions differ in range from channel to channel, so per-channel codebooks hold up
// where per-tensor ones do not (rec reads no line right at 4-bit per tensor; see the log lines).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { findClusters } from '../src/methods/cluster/decode-graph.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { cluster } from '../src/pipeline/cluster.js';
import { agreement, detInput, loadOcrFixtures, loadOcrLines, readLines, recInput } from './helpers/ocr-lines.js';
import { DET, REC } from './helpers/real-models.js';
import { cosine } from './helpers/compare.js';
import { runModel } from './helpers/run-model.js';

const ctx = { ort: nodeOrt, threads: 1 };

/** Checks the layout every clustered weight must have, and that no clustered weight is left as a Constant node. */
function checkLayout(original: Model, model: Model, tensors: { name: string; codes: string; codebook: string; form: string }[]): void {
  const found = new Map(findClusters(model).map((f) => [f.codes, f]));
  for (const t of tensors) {
    assert.equal(constantValue(model.graph, t.name), undefined, `'${t.name}' is gone`);
    assert.ok(constantValue(original.graph, t.name) !== undefined);
    if (t.form !== 'gather') continue;
    const f = found.get(t.codes);
    assert.ok(f !== undefined, `'${t.codes}' decodes through a Gather`);
    assert.equal(constantValue(model.graph, t.codes)?.dataType, DataType.UINT8);
    assert.equal(f.codebook, t.codebook);
  }
}

test('PP-OCRv4 rec: per-channel 4-bit and per-tensor 8-bit codebooks load and run in onnxruntime; cosine and lines read reported', async () => {
  const rec = loadModel(REC);
  const lines = await loadOcrLines();
  const expected = await readLines(rec, lines);
  const x = recInput(lines.slice(0, 1));
  const [reference] = await runModel(rec, [x]);
  const log: string[] = [];
  for (const options of [
    { bits: 4, grouping: 'channel' as const },
    { bits: 8, grouping: 'tensor' as const },
  ]) {
    const { model, report } = await cluster(rec, options, ctx);
    checkLayout(rec, model, report.tensors);
    assert.ok(report.tensors.length >= 6);
    // The written bytes load and run.
    const [out] = await runModel(writeModel(model), [x]);
    const cos = cosine(reference.data() as Float32Array, out.data() as Float32Array);
    const same = agreement(expected, await readLines(model, lines));
    log.push(`${options.bits}-bit per ${options.grouping}: ${report.tensors.length} weights clustered (${report.skipped.length} left alone), file x${report.size.ratio}, gzip -9 x${report.gzip?.ratio}, cosine ${cos.toFixed(4)} on line 1, ${(same * 100).toFixed(1)}% of ${lines.length} lines identical`);
    assert.ok(cos > 0.9, `cosine ${cos}`);
    assert.ok(same >= 0.6, `lines ${same}`);
  }
  console.log(`PP-OCRv4 rec: ${log.join('; ')}`);
});

test('PP-OCRv4 det: per-channel 4-bit codebooks load and run; probability-map cosine on the rendered page reported', async () => {
  const det = loadModel(DET);
  const { page } = await loadOcrFixtures();
  const x = detInput(page);
  const [reference] = await runModel(det, [x]);
  const log: string[] = [];
  for (const options of [
    { bits: 4, grouping: 'channel' as const },
    { bits: 6, grouping: 'channel' as const },
  ]) {
    const { model, report } = await cluster(det, options, ctx);
    checkLayout(det, model, report.tensors);
    const [out] = await runModel(writeModel(model), [x]);
    const cos = cosine(reference.data() as Float32Array, out.data() as Float32Array);
    log.push(`${options.bits}-bit per ${options.grouping}: ${report.tensors.length} weights (${report.skipped.length} left alone), gzip -9 x${report.gzip?.ratio}, cosine ${cos.toFixed(4)}`);
    assert.ok(cos > 0.8, `cosine ${cos}`);
  }
  console.log(`PP-OCRv4 det: ${log.join('; ')}`);
});

test('spam-bert (models/spam-bert): embedding Gathers and MatMuls clustered at 4 bits per tensor; logits cosine above 0.999', async () => {
  const bert = loadModel('models/spam-bert/onnx/model.onnx');
  const length = 64;
  const shape = [4, length];
  const int64 = (name: string, value: (i: number) => bigint) => Tensor.fromArray(name, DataType.INT64, shape, BigInt64Array.from({ length: 4 * length }, (_, i) => value(i)));
  const byName: Record<string, Tensor> = {
    input_ids: int64('input_ids', (i) => BigInt(100 + ((i * 37) % 3000))),
    attention_mask: int64('attention_mask', () => 1n),
    token_type_ids: int64('token_type_ids', () => 0n),
  };
  const feeds = bert.graph.inputs.map((i) => byName[i.name]);
  const [reference] = await runModel(bert, feeds);
  const { model, report } = await cluster(bert, { bits: 4 }, ctx);
  checkLayout(bert, model, report.tensors);
  const embeddings = report.tensors.filter((t) => t.op === 'Gather').map((t) => t.name);
  assert.deepEqual(embeddings, ['word_embeddings.weight', 'position_embeddings.weight', 'token_type_embeddings.weight']);
  const [out] = await runModel(writeModel(model), feeds);
  const cos = cosine(reference.data() as Float32Array, out.data() as Float32Array);
  console.log(`spam-bert 4-bit per tensor: ${report.tensors.length} weights (${embeddings.length} embeddings), file x${report.size.ratio}, gzip -9 x${report.gzip?.ratio}, logits cosine ${cos.toFixed(5)}`);
  assert.ok(cos > 0.999, `cosine ${cos}`);
});
