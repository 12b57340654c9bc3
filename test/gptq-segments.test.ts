// GPTQ one piece at a time (methods/prune/segmented-rounds.ts, for models too large to run whole)
// against the whole-model rounds on a small generated decoder (external data, as the 28 GB one):
// the model is cut at its residual stream (attention and MLP halves of each layer, then the head),
// and every layer gets the codes the whole-model path gives it, with the JS kernel and with the
// blocked one (onnxruntime GEMMs).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeDecoderModel } from '../bench/lib/decoder-model.js';
import { tensorSamples } from '../src/eval/samples.js';
import { graphSegments } from '../src/graph-edit/segments.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { solveGptq } from '../src/methods/quantize/gptq.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';

const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-gptq-segments-'));
after(() => fs.rmSync(folder, { recursive: true, force: true }));
const file = writeDecoderModel(folder, 'decoder.onnx', { hidden: 64, layers: 2, vocabulary: 40 }, 5);

function calibration() {
  const next = mulberry32(9);
  return tensorSamples(
    Array.from({ length: 4 }, () => ({ input_ids: Tensor.fromArray('input_ids', DataType.INT64, [1, 24], BigInt64Array.from({ length: 24 }, () => BigInt(Math.floor(next() * 40)))) })),
  );
}

test('the generated decoder is cut at its residual stream: attention and MLP halves, then the head', () => {
  const model = loadModel(file);
  const segments = graphSegments(model, (node) => node.opType === 'MatMul');
  assert.equal(segments.length, 5);
  assert.deepEqual(segments.map((s) => s.inputs), [[], ['layers.0.attn_residual'], ['layers.0.mlp_residual'], ['layers.1.attn_residual'], ['layers.1.mlp_residual']]);
  assert.deepEqual(segments[0].graphInputs, ['input_ids']);
  assert.deepEqual(segments[4].outputs, ['logits']);
});

for (const kernel of ['js', 'blocked'] as const) {
  test(`GPTQ piece by piece gives the whole-model codes (${kernel} kernel)`, async () => {
    const settings = { bits: 4 as const, blockSize: 16, symmetric: false, samples: 4, kernel };
    const ctx = { ort: nodeOrt, threads: 1 };
    const whole = await solveGptq(loadModel(file), { ...settings, calibration: calibration(), segments: false }, ctx);
    const pieces = await solveGptq(loadModel(file), { ...settings, calibration: calibration(), segments: true }, ctx);
    assert.equal(whole.segments, 1);
    assert.equal(pieces.segments, 5);
    assert.equal(pieces.solved.size, 13); // 6 per layer and the head
    assert.deepEqual([...pieces.solved.keys()].sort(), [...whole.solved.keys()].sort());
    for (const [name, blocks] of whole.solved) {
      const other = pieces.solved.get(name);
      assert.ok(other !== undefined, name);
      let different = 0;
      for (let i = 0; i < blocks.codes.length; i++) if (blocks.codes[i] !== other.codes[i]) different++;
      // Pieces and the whole model may sum activations in another order: a rare code on a rounding tie.
      assert.ok(different <= blocks.codes.length * 0.002, `${name}: ${different} of ${blocks.codes.length} codes differ`);
    }
  });
}

test('calibration data that does not fit the model is one line naming the input, piece by piece too', async () => {
  const wrong = tensorSamples([{ tokens: Tensor.fromArray('tokens', DataType.INT64, [1, 4], BigInt64Array.from([1n, 2n, 3n, 4n])) }]);
  await assert.rejects(
    solveGptq(loadModel(file), { bits: 4, blockSize: 16, symmetric: false, samples: 1, calibration: wrong, segments: true }, { ort: nodeOrt, threads: 1 }),
    (error: Error) => /input_ids|tokens/.test(error.message) && !error.message.includes('\n'),
  );
});
