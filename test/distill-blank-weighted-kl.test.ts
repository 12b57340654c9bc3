// The blank-weighted KL for CTC logits (train/losses.ts blankWeightedKl, `DistillLoss` kl with a
// blank): its value equals a plain-JS reference on random logits (and plain KL at weight 1), it
// trains (a few steps of distillation lower it on a 3-D [N, T, classes] value), and the flags and
// recipe keys that turn it on are checked.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { distillLossOf, distillValue } from '../src/pipeline/recovery.js';
import { Emitter } from '../src/train/emitter.js';
import { blankWeightedKl, distillationKl } from '../src/train/losses.js';
import { runShrink } from './helpers/cli.js';
import { ctcLogitsModel, lossGraph, logSoftmax } from './helpers/loss-graph.js';
import { runModel } from './helpers/run-model.js';

const [N, C] = [7, 5];

/** T² Σ w·KL / Σ w with w = bw + (1 - bw)(1 - p_t(blank)), in float64. */
function reference(s: Float32Array, t: Float32Array, temperature: number, blank: number, blankWeight: number): number {
  let weighted = 0;
  let total = 0;
  for (let n = 0; n < N; n++) {
    const logP = logSoftmax(Array.from(t.subarray(n * C, (n + 1) * C)), temperature);
    const logQ = logSoftmax(Array.from(s.subarray(n * C, (n + 1) * C)), temperature);
    const kl = logP.reduce((sum, lp, c) => sum + Math.exp(lp) * (lp - logQ[c]), 0);
    const w = blankWeight + (1 - blankWeight) * (1 - Math.exp(logP[blank]));
    weighted += w * kl;
    total += w;
  }
  return (temperature * temperature * weighted) / total;
}

test('blank-weighted KL equals a plain-JS reference on random logits, and plain KL at weight 1', async () => {
  const next = mulberry32(3);
  const s = Float32Array.from({ length: N * C }, () => (next() * 2 - 1) * 3);
  const t = Float32Array.from({ length: N * C }, () => (next() * 2 - 1) * 3);
  // Some confident blanks (class 2 here), as in a CTC line.
  for (const n of [0, 3, 4]) t[n * C + 2] = 9;
  const feeds = [Tensor.fromArray('s', DataType.FLOAT, [N, C], s), Tensor.fromArray('t', DataType.FLOAT, [N, C], t)];
  const value = async (build: (e: Emitter) => string) => ((await runModel(lossGraph(N, C, build), feeds))[0].data() as Float32Array)[0];
  for (const [temperature, blankWeight] of [[1, 0.1], [2, 0], [1, 0.5]]) {
    const got = await value((e) => blankWeightedKl(e, 's', 't', temperature, DataType.FLOAT, 2, blankWeight));
    const want = reference(s, t, temperature, 2, blankWeight);
    assert.ok(Math.abs(got - want) < 1e-5 * Math.max(1, want), `T ${temperature}, weight ${blankWeight}: ${got} vs ${want}`);
  }
  // The weighting matters on these logits (else the test above could not tell it from plain KL).
  const plain = await value((e) => distillationKl(e, 's', 't', 1, DataType.FLOAT));
  assert.ok(Math.abs(plain - reference(s, t, 1, 2, 0.1)) > 0.05, `plain ${plain}`);
  const atOne = await value((e) => blankWeightedKl(e, 's', 't', 1, DataType.FLOAT, 2, 1));
  assert.ok(Math.abs(atOne - plain) < 1e-5, `weight 1 ${atOne} vs plain ${plain}`);
});

const [T, F, K] = [6, 4, 5];

const ctcModel = (seed: number) => ctcLogitsModel(seed, T, F, K);

test('distilling by blank-weighted KL per position lowers the loss on [N, T, classes] logits', async () => {
  const next = mulberry32(9);
  const inputs = { x: { data: Float32Array.from({ length: 64 * T * F }, () => next() * 2 - 1), sampleDims: [T, F], dataType: DataType.FLOAT } };
  const loss = distillLossOf('kl', 1, 0, 0.1);
  assert.deepEqual(loss, { kind: 'kl', temperature: 1, blank: { index: 0, weight: 0.1 } });
  const settings = { epochs: 3, batchSize: 16, schedule: { kind: 'constant' as const, rate: 0.05 }, optimizer: { kind: 'adamw' as const }, seed: 0, loss };
  const trained = await distillValue(ctcModel(1), ctcModel(2), inputs, 'logits', settings, { ort: nodeOrt, threads: 1 }, 'test');
  const [first, , last] = trained.meanLoss;
  assert.ok(first > 0.05 && last < 0.7 * first, `loss by epoch ${trained.meanLoss.join(', ')}`);
  await assert.rejects(distillValue(ctcModel(1), ctcModel(2), inputs, 'logits', { ...settings, loss: distillLossOf('kl', 1, K) }, { ort: nodeOrt, threads: 1 }, 'test'), /blank class 5 is not one of 'logits''s 5 classes/);
});

test('--distill-blank and distill_blank: checked before anything is read', async () => {
  const common = ['cluster', 'm.onnx', '-o', 'out.onnx', '--bits', '4', '--data', 'd.npy', '--epochs', '1', '--distill-value', 'logits'];
  for (const [args, message] of [
    [[...common, '--distill-blank', '0'], /--distill-blank goes with --distill-loss kl/],
    [[...common, '--distill-loss', 'kl', '--distill-blank-weight', '0.5'], /--distill-blank-weight goes with --distill-blank/],
    [[...common, '--distill-loss', 'kl', '--distill-blank', '0', '--distill-blank-weight', '2'], /--distill-blank-weight must be a number from 0 to 1, got '2'/],
    [[...common, '--distill-loss', 'kl', '--distill-blank', '-1'], /--distill-blank must be a whole number >= 0/],
    [['prune', 'm.onnx', '-o', 'out.onnx', '--method', 'channels', '--sparsity', '0.5', '--data', 'd.npy', '--epochs', '1', '--distill-value', 'logits', '--distill-loss', 'mse', '--distill-blank', '0'], /--distill-blank goes with --distill-loss kl/],
    [['qat', 'm.onnx', '-o', 'out.onnx', '--method', 'static-int8', '--data', 'd.npy', '--distill-loss', 'mse', '--distill-blank', '0'], /--distill-blank goes with --distill-loss kl/],
    [['qat', 'm.onnx', '-o', 'out.onnx', '--method', 'int4', '--data', 'd.npy', '--distill-blank', '0'], /--distill-blank: only with --method static-int8/],
  ] as const) {
    const run = await runShrink([...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, message);
  }
  const step = parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 1, distill_value: logits, distill_loss: kl, distill_blank: 0, distill_blank_weight: 0.2}\n', 'r.yaml').steps[0];
  assert.ok(step.kind === 'cluster');
  assert.equal(step.training?.distillBlank, 0);
  assert.equal(step.training?.distillBlankWeight, 0.2);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 1, distill_value: logits, distill_blank: 0}\n', 'r.yaml'), /'distill_blank' goes with 'distill_loss: kl'/);
});
