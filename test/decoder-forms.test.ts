// Decoder forms beside the merged one (issue 14), each checked against gpt-spam's merged decoder in
// onnxruntime-node (perplexity, greedy generation through the KV cache and its logits):
// - onnxruntime's fused attention: the four attention blocks with their past/present Concat
//   rewritten into com.microsoft MultiHeadAttention and GroupQueryAttention
//   (src/optimize/fuse-cached-attention.ts), also in onnxruntime-web; RTN, GPTQ and AWQ on them; a model without
//   attention_mask cannot take GroupQueryAttention (one line);
// - optimum's separate pair: decoder_model (no past inputs, src/graph-edit/decoder-without-past.ts)
//   for the prompt, decoder_with_past_model for the new tokens, each quantized on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchDims } from '../src/eval/bench-inputs.js';
import { decoderSamples, decoderSignature, generate, perplexity } from '../src/eval/decoder.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { decoderWithoutPast } from '../src/graph-edit/decoder-without-past.js';
import type { Model } from '../src/ir/model.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { quantize } from '../src/pipeline/quantize.js';
import { ModelSession } from '../src/runtime/session.js';
import { writeModel } from '../src/onnx/model-io.js';
import { REPO_ROOT, runShrink } from './helpers/cli.js';

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

/** int4 g32 of the fused form by each algorithm: the fused op stays, every MatMul packs, perplexity stays near float. */
async function quantizesFused(pass: string, op: string, algorithms: readonly ('rtn' | 'gptq' | 'awq')[]): Promise<void> {
  const heldOut = text.subarray(8192, 8192 + 2048);
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

test('RTN and AWQ int4 quantize the MultiHeadAttention decoder; the result keeps the fused op and scores near float', async () => {
  await quantizesFused('fuse-cached-attention', 'MultiHeadAttention', ['rtn', 'awq']);
});

test('GPTQ int4 quantizes the GroupQueryAttention decoder; the result keeps the fused op and scores near float', async () => {
  await quantizesFused('fuse-group-query-attention', 'GroupQueryAttention', ['gptq']);
});

test('both fused forms run in onnxruntime-web (wasm) with the unfused model\'s perplexity and greedy tokens', async () => {
  const ort = await loadWebOrt();
  const sample = text.subarray(0, 2048);
  const prompt = Array.from(new TextEncoder().encode('Subject: '));
  const measure = async (model: Model) => {
    const sig = decoderSignature(model, 'model', true);
    const s = await ModelSession.create(ort, model, { threads: 1, executionProviders: WASM_EXECUTION_PROVIDERS });
    try {
      return { ppl: (await perplexity(ort, s, sig, sample, { context: 128 })).perplexity, tokens: (await generate(ort, s, sig, prompt, { tokens: 10 })).tokens };
    } finally {
      await s.release();
    }
  };
  const base = await measure(loadModel(MODEL));
  for (const pass of ['fuse-cached-attention', 'fuse-group-query-attention']) {
    const got = await measure(await fused(pass));
    assert.ok(Math.abs(got.ppl / base.ppl - 1) < 1e-6, `${pass}: ${got.ppl} vs ${base.ppl}`);
    assert.deepEqual(got.tokens, base.tokens, pass);
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

test('separate pair: decoder without past inputs for the prompt, the merged one for new tokens; same perplexity and generation, also at int4', async () => {
  const merged = loadModel(MODEL);
  const sig = decoderSignature(merged, MODEL, true);
  const first = decoderWithoutPast(merged, sig);
  const firstSig = decoderSignature(first, 'decoder_model.onnx');
  assert.deepEqual([firstSig.cache.length, first.graph.inputs.map((i) => i.name)], [0, ['input_ids', 'attention_mask', 'position_ids']]);
  assert.equal(merged.graph.inputs.length, 11, 'the merged model is not changed');
  const sample = text.subarray(0, 4096);
  const base = await behaviour(merged, sample);
  const run = async (withPast: Model, prompt: Model) => {
    const [s, p] = await Promise.all([withPast, prompt].map((m) => ModelSession.create(nodeOrt, m, { threads: 1 })));
    try {
      const ppl = (await perplexity(nodeOrt, p, decoderSignature(prompt, 'decoder_model'), sample, { context: 128, batch: 2 })).perplexity;
      const gen = await generate(nodeOrt, s, decoderSignature(withPast, 'with past', true), PROMPT, { tokens: 16, keepLogits: true, prefill: { session: p, sig: decoderSignature(prompt, 'decoder_model') } });
      return { ppl, tokens: gen.tokens, logits: gen.logits as Float32Array[] };
    } finally {
      await s.release();
      await p.release();
    }
  };
  const pair = await run(merged, first);
  assert.ok(Math.abs(pair.ppl / base.ppl - 1) < 1e-6, `pair ${pair.ppl} vs merged ${base.ppl}`);
  assert.deepEqual(pair.tokens, base.tokens);
  let worst = 0;
  for (const [step, logits] of pair.logits.entries()) for (let j = 0; j < logits.length; j++) worst = Math.max(worst, Math.abs(logits[j] - base.logits[step][j]));
  assert.ok(worst < 1e-4, `largest logit difference ${worst}`);
  // Each model of the pair quantized on its own (as optimum ships them): the same weights round alike.
  const [q, qFirst] = await Promise.all([merged, first].map(async (m) => (await quantize(m, { method: 'int4', blockSize: 32 }, { ort: nodeOrt, threads: 1 })).model));
  const quantized = await run(q, qFirst);
  const mergedQuantized = await behaviour(q, sample);
  assert.ok(Math.abs(quantized.ppl / mergedQuantized.ppl - 1) < 1e-6 && quantized.ppl !== pair.ppl, `pair int4 ${quantized.ppl}, merged int4 ${mergedQuantized.ppl}, float ${pair.ppl}`);
  assert.deepEqual(quantized.tokens, mergedQuantized.tokens);
});

test('generated speed-check inputs: a dim named past_sequence_length + sequence_length is the sum of the two', () => {
  const { inputs } = modelSignature(loadModel(MODEL));
  const defaults = benchDims(inputs);
  assert.deepEqual([defaults['input_ids[1]'], defaults['past_key_values.0.key[2]'], defaults['attention_mask[1]']], [320, 320, 640]);
  const step = benchDims(inputs, { dims: { past_sequence_length: 127, sequence_length: 1 } });
  assert.deepEqual([step['input_ids[1]'], step['past_key_values.3.value[2]'], step['attention_mask[1]']], [1, 127, 128]);
});

test('shrink eval on optimum\'s pair: decoder_model.onnx scores the text, generation runs through decoder_with_past_model.onnx beside it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-pair-'));
  try {
    const merged = loadModel(MODEL);
    fs.writeFileSync(path.join(dir, 'decoder_model.onnx'), writeModel(decoderWithoutPast(merged, decoderSignature(merged, MODEL, true))));
    fs.copyFileSync(MODEL, path.join(dir, 'decoder_with_past_model.onnx'));
    const sample = path.join(dir, 'sample.txt');
    fs.writeFileSync(sample, text.subarray(0, 2048));
    const run = async (model: string) => {
      const result = await runShrink(['eval', model, '--perplexity', sample, '--context', '128', '--generate', '8', '--prompt', 'Subject: ', '--json', '--threads', '1']);
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout).models[0] as { perplexity: number; generation: { tokens: number[] } };
    };
    const pair = await run(path.join(dir, 'decoder_model.onnx'));
    const base = await run(MODEL);
    assert.ok(Math.abs(pair.perplexity / base.perplexity - 1) < 1e-6, `${pair.perplexity} vs ${base.perplexity}`);
    assert.deepEqual(pair.generation.tokens, base.generation.tokens);
    // Without the partner the first model has no cache: one line naming what generation needs.
    fs.rmSync(path.join(dir, 'decoder_with_past_model.onnx'));
    const alone = await runShrink(['eval', path.join(dir, 'decoder_model.onnx'), '--perplexity', sample, '--context', '128', '--generate', '8']);
    assert.equal(alone.code, 1);
    assert.match(alone.stderr.trim(), /decoder_model\.onnx: no KV cache: generation needs past_key_values/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
