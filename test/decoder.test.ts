// Decoder language models (issue 14): perplexity against the number torch computed for the same
// model and text (written by scripts/train-decoder.py into models/gpt-spam/heldout.json), KV-cache
// generation against runs of the whole sequence without the cache, the one-line errors for models
// without the structure an option needs, and GPTQ/AWQ fed decoder calibration samples (an .npz
// with zero-sized past tensors and int64 ids through the CLI; decoderSamples in the library), the
// results loading and scoring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decoderSamples, decoderSignature, generate, perplexity } from '../src/eval/decoder.js';
import { memoryByteSource } from '../src/eval/byte-source.js';
import { writeNpz } from '../src/eval/npz.js';
import { npzSamples } from '../src/eval/sample-arrays.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadModel } from '../src/node/model-files.js';
import { quantize } from '../src/pipeline/quantize.js';
import { ModelSession } from '../src/runtime/session.js';
import { REPO_ROOT, spawnShrink } from './helpers/cli.js';

const DIR = path.join(REPO_ROOT, 'models/gpt-spam');
const MODEL = path.join(DIR, 'onnx/model.onnx');
const SAMPLE = path.join(DIR, 'heldout-sample.txt');
const TORCH = JSON.parse(fs.readFileSync(path.join(DIR, 'heldout.json'), 'utf8')) as { context: number; perplexity: Record<string, number> };
const text = new Uint8Array(fs.readFileSync(SAMPLE));

async function session(file = MODEL): Promise<ModelSession> {
  return ModelSession.create(nodeOrt, loadModel(file), { threads: 1 });
}

test('perplexity on the held-out sample equals the one torch computed (chunked and stride 64)', async () => {
  const model = loadModel(MODEL);
  const sig = decoderSignature(model, MODEL);
  assert.equal(sig.cache.length, 4);
  assert.deepEqual([sig.heads, sig.headDim], [4, 32]);
  const s = await ModelSession.create(nodeOrt, model, { threads: 1 });
  try {
    const chunked = await perplexity(nodeOrt, s, sig, text, { context: TORCH.context });
    assert.equal(chunked.windows, text.length / TORCH.context);
    assert.equal(chunked.tokens, chunked.windows * (TORCH.context - 1));
    assert.ok(Math.abs(chunked.perplexity / TORCH.perplexity.sample_chunked - 1) < 1e-4, `shrink ${chunked.perplexity}, torch ${TORCH.perplexity.sample_chunked}`);
    const sliding = await perplexity(nodeOrt, s, sig, text, { context: TORCH.context, stride: 64, batch: 5 });
    assert.ok(Math.abs(sliding.perplexity / TORCH.perplexity.sample_stride_64 - 1) < 1e-4, `shrink ${sliding.perplexity}, torch ${TORCH.perplexity.sample_stride_64}`);
    assert.equal(sliding.tokens, TORCH.context - 1 + (sliding.windows - 1) * 64);
  } finally {
    await s.release();
  }
});

test('greedy generation through the KV cache gives the logits of the whole sequence run without it', async () => {
  const model = loadModel(MODEL);
  const sig = decoderSignature(model, MODEL, true);
  const s = await ModelSession.create(nodeOrt, model, { threads: 1 });
  try {
    const prompt = Array.from(new TextEncoder().encode('Subject: Your account '));
    const out = await generate(nodeOrt, s, sig, prompt, { tokens: 24, keepLogits: true });
    assert.equal(out.tokens.length, 24);
    assert.ok(out.tokensPerSecond > 0);
    const all = [...prompt, ...out.tokens];
    // One run of every token from an empty cache: position i's logits predict token i + 1.
    const feeds = {
      input_ids: new nodeOrt.Tensor('int64', BigInt64Array.from(all, BigInt), [1, all.length]),
      attention_mask: new nodeOrt.Tensor('int64', new BigInt64Array(all.length).fill(1n), [1, all.length]),
      position_ids: new nodeOrt.Tensor('int64', BigInt64Array.from(all, (_, i) => BigInt(i)), [1, all.length]),
      ...Object.fromEntries(sig.cache.flatMap((p) => [p.pastKey, p.pastValue]).map((name) => [name, new nodeOrt.Tensor('float32', new Float32Array(0), [1, 4, 0, 32])])),
    };
    const full = (await s.run(feeds, ['logits'])).logits.data as Float32Array;
    const logits = out.logits as Float32Array[];
    assert.equal(logits.length, 25);
    let worst = 0;
    for (const [step, cached] of logits.entries()) {
      const position = prompt.length - 1 + step;
      const row = full.subarray(position * 256, (position + 1) * 256);
      for (let j = 0; j < 256; j++) worst = Math.max(worst, Math.abs(row[j] - cached[j]));
      // The greedy pick is the whole sequence's argmax at that position.
      if (step < out.tokens.length) assert.equal(out.tokens[step], row.indexOf(Math.max(...row)));
    }
    assert.ok(worst < 1e-4, `largest logit difference ${worst}`);
  } finally {
    await s.release();
  }
});

test('a model without the KV structure generation needs: one line naming what is missing, exit 1', () => {
  const bert = 'models/spam-bert/onnx/model.onnx';
  assert.throws(() => decoderSignature(loadModel(path.join(REPO_ROOT, bert)), bert, true), /no 'logits' output|no KV cache/);
  const noPresent = loadModel(MODEL);
  noPresent.graph.outputs = noPresent.graph.outputs.filter((o) => o.name !== 'present.2.value');
  assert.throws(() => decoderSignature(noPresent, 'cut.onnx', true), /^Error: cut\.onnx: output present\.2\.value missing \(the model takes past_key_values\.2\.value\)$/);

  // spam-bert has input_ids and logits but no cache.
  const result = spawnShrink(['eval', bert, '--perplexity', SAMPLE, '--context', '128', '--generate', '4']);
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  assert.match(result.stderr, /models\/spam-bert\/onnx\/model\.onnx: no KV cache: generation needs past_key_values\.\{i\}\.key\/value inputs/);

  // Without --generate the cache is not needed, but logits must be [batch, sequence, vocabulary].
  const classifier = spawnShrink(['eval', bert, '--perplexity', SAMPLE, '--context', '128']);
  assert.equal(classifier.status, 1, classifier.stderr);
  assert.equal(classifier.stderr.trim(), "shrink: models/spam-bert/onnx/model.onnx: output 'logits' is float32[batch_size,2], not [batch, sequence, vocabulary]");

  // Token ids past the vocabulary (the logits' declared last dim) are named before onnxruntime's Gather fails.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-decoder-'));
  try {
    const ids = path.join(dir, 'ids.json');
    fs.writeFileSync(ids, JSON.stringify([...Array.from({ length: 200 }, (_, i) => i), ...Array.from({ length: 100 }, () => 300)]));
    const outside = spawnShrink(['eval', MODEL, '--perplexity', ids]);
    assert.equal(outside.status, 1, outside.stderr);
    assert.equal(outside.stderr.trim().split('\n').length, 1, outside.stderr);
    assert.match(outside.stderr, /ids\.json: token 300 at position 200 is outside the vocabulary of .*model\.onnx \(256\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an .npz with a zero-sized past array streams samples of [1, heads, 0, head_dim] between full ones', async () => {
  const archive = writeNpz({
    input_ids: { dataType: DataType.INT64, dims: [3, 2], data: new Uint8Array(BigInt64Array.from([1n, 2n, 3n, 4n, 5n, 6n]).buffer) },
    past: { dataType: DataType.FLOAT, dims: [3, 4, 0, 32], data: new Uint8Array(0) },
  });
  const inputs = [
    { name: 'input_ids', elemType: DataType.INT64, shape: [null, null], optional: false },
    { name: 'past', elemType: DataType.FLOAT, shape: [null, 4, null, 32], optional: false },
  ];
  const seen: string[] = [];
  for await (const sample of await npzSamples(memoryByteSource(archive), 'calib.npz', inputs)) {
    seen.push(`${sample.inputs.input_ids.dims}:${Array.from(sample.inputs.input_ids.data() as BigInt64Array).join(' ')} ${sample.inputs.past.dims}`);
  }
  assert.deepEqual(seen, ['1,2:1 2 1,4,0,32', '1,2:3 4 1,4,0,32', '1,2:5 6 1,4,0,32']);
});

test('GPTQ calibrates on decoder windows from an .npz through the CLI, AWQ on decoderSamples in the library; both load and score', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-decoder-'));
  try {
    const windows = 4;
    const context = TORCH.context;
    const ids = BigInt64Array.from(text.subarray(0, windows * context), BigInt);
    const positions = BigInt64Array.from({ length: windows * context }, (_, i) => BigInt(i % context));
    const bytes = (a: BigInt64Array) => new Uint8Array(a.buffer);
    const arrays: Parameters<typeof writeNpz>[0] = {
      input_ids: { dataType: DataType.INT64, dims: [windows, context], data: bytes(ids) },
      attention_mask: { dataType: DataType.INT64, dims: [windows, context], data: bytes(new BigInt64Array(windows * context).fill(1n)) },
      position_ids: { dataType: DataType.INT64, dims: [windows, context], data: bytes(positions) },
    };
    for (let layer = 0; layer < 4; layer++) {
      for (const kind of ['key', 'value']) arrays[`past_key_values.${layer}.${kind}`] = { dataType: DataType.FLOAT, dims: [windows, 4, 0, 32], data: new Uint8Array(0) };
    }
    const calib = path.join(dir, 'calib.npz');
    fs.writeFileSync(calib, writeNpz(arrays));
    const model = loadModel(MODEL);
    const sig = decoderSignature(model, MODEL);
    // Scored on the sample's second half, which calibration never saw.
    const heldOut = text.subarray(8192);
    const score = async (m: Model | string) => {
      const s = await ModelSession.create(nodeOrt, m, { threads: 1 });
      try {
        return (await perplexity(nodeOrt, s, sig, heldOut, { context })).perplexity;
      } finally {
        await s.release();
      }
    };
    const base = await score(model);
    const out = path.join(dir, 'gptq.onnx');
    const result = spawnShrink(['quantize', MODEL, '--method', 'int4', '--block-size', '32', '--algorithm', 'gptq', '--calib', calib, '--samples', '1', '-o', out, '--json'], { timeout: 120_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(decoderSignature(loadModel(out), out, true).cache.length, 4);
    const awq = await quantize(model, { method: 'int4', blockSize: 32, algorithm: 'awq', calibration: decoderSamples(sig, text, context, windows) }, { ort: nodeOrt, threads: 1 });
    for (const [name, candidate] of [['gptq', out], ['awq', awq.model]] as const) {
      const ppl = await score(candidate);
      // int4 g32 moves this model's perplexity by tenths of a percent, never by half.
      assert.ok(Number.isFinite(ppl) && ppl > base * 0.98 && ppl < base * 1.5, `${name}: ${ppl} against fp32 ${base}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
