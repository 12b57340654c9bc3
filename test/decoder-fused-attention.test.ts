// Decoders in onnxruntime's fused attention forms (issue 14): gpt-spam's four attention blocks with
// their past/present Concat rewritten into com.microsoft MultiHeadAttention and GroupQueryAttention
// (src/optimize/fuse-cached-attention.ts), checked against the unfused model in onnxruntime-node:
// perplexity, greedy generation through the KV cache and its logits, then RTN, GPTQ and AWQ on the
// fused forms. A model without attention_mask cannot take GroupQueryAttention: one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decoderSamples, decoderSignature, generate, perplexity } from '../src/eval/decoder.js';
import type { Model } from '../src/ir/model.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { quantize } from '../src/pipeline/quantize.js';
import { ModelSession } from '../src/runtime/session.js';
import { REPO_ROOT } from './helpers/cli.js';

const MODEL = path.join(REPO_ROOT, 'models/gpt-spam/onnx/model.onnx');
const text = new Uint8Array(fs.readFileSync(path.join(REPO_ROOT, 'models/gpt-spam/heldout-sample.txt')));
const PROMPT = Array.from(new TextEncoder().encode('Subject: Your account '));

async function fused(pass: string): Promise<Model> {
  const model = loadModel(MODEL);
  const reports = await optimizeModel(model, { passes: [pass, 'eliminate-dead-nodes', 'eliminate-unused-initializers', 'topological-sort'] }, { ort: nodeOrt });
  assert.equal(reports.find((r) => r.pass === pass)?.stats.fused, 4, `${pass}: ${JSON.stringify(reports)}`);
  return model;
}

/** Perplexity on `tokens` and greedy generation (tokens and every step's logits) through the cache. */
async function behaviour(model: Model, tokens: Uint8Array) {
  const sig = decoderSignature(model, 'model', true);
  const s = await ModelSession.create(nodeOrt, model, { threads: 1 });
  try {
    const ppl = (await perplexity(nodeOrt, s, sig, tokens, { context: 128 })).perplexity;
    const gen = await generate(nodeOrt, s, sig, PROMPT, { tokens: 16, keepLogits: true });
    return { ppl, tokens: gen.tokens, logits: gen.logits as Float32Array[] };
  } finally {
    await s.release();
  }
}

test('gpt-spam as MultiHeadAttention and GroupQueryAttention: the unfused model\'s perplexity, generated tokens and logits (1e-4)', async () => {
  const sample = text.subarray(0, 4096);
  const base = await behaviour(loadModel(MODEL), sample);
  for (const [pass, op] of [['fuse-cached-attention', 'MultiHeadAttention'], ['fuse-group-query-attention', 'GroupQueryAttention']]) {
    const model = await fused(pass);
    const ops = model.graph.nodes.map((n) => n.opType);
    assert.equal(ops.filter((o) => o === op).length, 4);
    assert.ok(!ops.includes('Softmax'), `${pass}: ${[...new Set(ops)].join(',')}`);
    const sig = decoderSignature(model, pass, true);
    assert.deepEqual([sig.cache.length, sig.heads, sig.headDim], [4, 4, 32]);
    const got = await behaviour(model, sample);
    assert.ok(Math.abs(got.ppl / base.ppl - 1) < 1e-6, `${pass}: perplexity ${got.ppl} vs ${base.ppl}`);
    assert.deepEqual(got.tokens, base.tokens);
    let worst = 0;
    for (const [step, logits] of got.logits.entries()) for (let j = 0; j < logits.length; j++) worst = Math.max(worst, Math.abs(logits[j] - base.logits[step][j]));
    assert.ok(worst < 1e-4, `${pass}: largest logit difference ${worst}`);
  }
});

test('RTN, GPTQ and AWQ int4 quantize the fused decoders; the results keep the fused op and score near float', async () => {
  const heldOut = text.subarray(8192, 8192 + 4096);
  for (const [pass, op, algorithms] of [['fuse-cached-attention', 'MultiHeadAttention', ['rtn', 'awq']], ['fuse-group-query-attention', 'GroupQueryAttention', ['gptq']]] as const) {
    const model = await fused(pass);
    const sig = decoderSignature(model, pass, true);
    const base = (await behaviour(model, heldOut)).ppl;
    for (const algorithm of algorithms) {
      const options = algorithm === 'rtn' ? {} : { algorithm, calibration: decoderSamples(sig, text, 128, 2) };
      const q = await quantize(model, { method: 'int4', blockSize: 32, ...options }, { ort: nodeOrt, threads: 1 });
      const ops = q.model.graph.nodes.map((n) => n.opType);
      assert.equal(ops.filter((o) => o === op).length, 4, `${pass} ${algorithm}`);
      assert.ok(ops.filter((o) => o === 'MatMulNBits').length >= 24, `${pass} ${algorithm}: ${[...new Set(ops)].join(',')}`);
      const ppl = (await behaviour(q.model, heldOut)).ppl;
      // int4 g32 moves this model's perplexity by tenths of a percent.
      assert.ok(ppl > base * 0.98 && ppl < base * 1.05, `${pass} ${algorithm}: ${ppl} against fp32 ${base}`);
    }
  }
});

test('GroupQueryAttention on a decoder without attention_mask: one line naming what is missing', async () => {
  const model = loadModel(MODEL);
  // The mask under another name: GroupQueryAttention's lengths come from 'attention_mask' only.
  for (const input of model.graph.inputs) if (input.name === 'attention_mask') input.name = 'mask';
  for (const node of model.graph.nodes) node.inputs = node.inputs.map((v) => (v === 'attention_mask' ? 'mask' : v));
  model.graph.changed();
  await assert.rejects(optimizeModel(model, { passes: ['fuse-group-query-attention'] }, { ort: nodeOrt }), /^Error: GroupQueryAttention needs the decoder's attention_mask input \(for seqlens_k and total_sequence_length\); the model has input_ids, mask, position_ids, past_key_values\.0\.key/);
});
