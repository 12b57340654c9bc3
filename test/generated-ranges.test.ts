// Generated inputs a model can take: ids inside the embedding tables the graph gathers from, masks
// all ones. Checked against the models' own configs (not read by the code under test) and by
// running the real models in onnxruntime-node on what is generated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { generatedRanges } from '../src/eval/generated-ranges.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { sampleFeeds } from '../src/eval/samples.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';

const BERT = 'models/spam-bert';
const GPT = 'models/gpt-spam';

test('spam-bert: ids inside the vocabulary and token types of its config, the mask all ones; onnxruntime runs them', async () => {
  const config = JSON.parse(fs.readFileSync(`${BERT}/config.json`, 'utf8'));
  const model = loadModel(`${BERT}/onnx/model.onnx`);
  const ranges = generatedRanges(model);
  assert.deepEqual(ranges, { input_ids: [0, config.vocab_size - 1], token_type_ids: [0, config.type_vocab_size - 1], attention_mask: [1, 1] });

  const session = await ModelSession.create(nodeOrt, model);
  const inputs = modelSignature(model).inputs;
  const dims = { batch_size: 2, sequence_length: 16 };
  for await (const sample of generatedSamples(inputs, { count: 2, dims, ranges })) {
    const out = await session.run(sampleFeeds(nodeOrt, sample));
    assert.ok(Array.from(out.logits.data as Float32Array).every(Number.isFinite));
  }
  // What the generic integer range gave before: token types past the table's two rows.
  const generic = generatedSamples(inputs, { count: 1, dims, seed: 1 });
  for await (const sample of generic) await assert.rejects(session.run(sampleFeeds(nodeOrt, sample)), /out of (data )?bounds|indices/i);
  await session.release();
});

test('gpt-spam: byte ids and positions inside its config, none for the past key/values', () => {
  const config = JSON.parse(fs.readFileSync(`${GPT}/config.json`, 'utf8'));
  const ranges = generatedRanges(loadModel(`${GPT}/onnx/model.onnx`));
  assert.deepEqual(ranges.input_ids, [0, config.vocab_size - 1]);
  assert.deepEqual(ranges.position_ids, [0, config.n_positions - 1]);
  assert.deepEqual(ranges.attention_mask, [1, 1]);
  assert.equal(Object.keys(ranges).some((name) => name.startsWith('past_key_values')), false);
});
