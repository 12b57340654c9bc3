// The blank-weighted KL's CTC extras (train/losses.ts CtcKlExtras): a focus class whose steps
// weigh more (PP-OCR's space) and a top-1 term (cross-entropy against the teacher's arg-max). Their
// value equals a float64 reference on random logits, they train on [N, T, classes] logits, and the
// recipe keys that turn them on are checked.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { distillLossOf, distillValue } from '../src/pipeline/recovery.js';
import { blankWeightedKl, type CtcKlExtras } from '../src/train/losses.js';
import { runShrink } from './helpers/cli.js';
import { ctcLogitsModel, lossGraph, logSoftmax } from './helpers/loss-graph.js';
import { runModel } from './helpers/run-model.js';

const [N, C] = [9, 5];

/** T² Σ w·(KL + a·CE_top1) / Σ w, w = bw + (1 - bw)(1 - p_t(blank)) + F·p_t(focus), in float64. */
function reference(s: Float32Array, t: Float32Array, temperature: number, blank: number, blankWeight: number, extras: CtcKlExtras): number {
  let weighted = 0;
  let total = 0;
  for (let n = 0; n < N; n++) {
    const teacher = Array.from(t.subarray(n * C, (n + 1) * C));
    const logP = logSoftmax(teacher, temperature);
    const logQ = logSoftmax(Array.from(s.subarray(n * C, (n + 1) * C)), temperature);
    const kl = logP.reduce((sum, lp, c) => sum + Math.exp(lp) * (lp - logQ[c]), 0);
    const top = teacher.indexOf(Math.max(...teacher));
    const w = blankWeight + (1 - blankWeight) * (1 - Math.exp(logP[blank])) + (extras.focus === undefined ? 0 : extras.focus.weight * Math.exp(logP[extras.focus.index]));
    weighted += w * (kl + (extras.top1 ?? 0) * -logQ[top]);
    total += w;
  }
  return (temperature * temperature * weighted) / total;
}

test('focus class and top-1 term equal a float64 reference on random logits', async () => {
  const next = mulberry32(5);
  const s = Float32Array.from({ length: N * C }, () => (next() * 2 - 1) * 3);
  const t = Float32Array.from({ length: N * C }, () => (next() * 2 - 1) * 3);
  // Confident blanks (class 0) and a few steps where the focus class (4) leads.
  for (const n of [0, 3, 4, 7]) t[n * C] = 9;
  for (const n of [2, 5]) t[n * C + 4] = 4;
  const feeds = [Tensor.fromArray('s', DataType.FLOAT, [N, C], s), Tensor.fromArray('t', DataType.FLOAT, [N, C], t)];
  const value = async (extras: CtcKlExtras, temperature = 1) => ((await runModel(lossGraph(N, C, (e) => blankWeightedKl(e, 's', 't', temperature, DataType.FLOAT, 0, 0.1, extras)), feeds))[0].data() as Float32Array)[0];
  const cases: [CtcKlExtras, number][] = [[{ focus: { index: 4, weight: 3 } }, 1], [{ top1: 0.5 }, 1], [{ focus: { index: 4, weight: 2 }, top1: 1 }, 2], [{}, 1]];
  const got: number[] = [];
  for (const [extras, temperature] of cases) {
    got.push(await value(extras, temperature));
    const want = reference(s, t, temperature, 0, 0.1, extras);
    assert.ok(Math.abs(got[got.length - 1] - want) < 1e-5 * Math.max(1, want), `${JSON.stringify(extras)} T ${temperature}: ${got[got.length - 1]} vs ${want}`);
  }
  // Each extra changes the value on these logits (else the reference could not tell them apart).
  const base = got[3];
  assert.ok(Math.abs(got[0] - base) > 0.05 && Math.abs(got[1] - base) > 0.05, `focus ${got[0]}, top-1 ${got[1]}, neither ${base}`);
  assert.equal(await value({ focus: { index: 4, weight: 0 }, top1: 0 }), base);
});

const [T, F, K] = [6, 4, 5];

const ctcModel = (seed: number) => ctcLogitsModel(seed, T, F, K);

test('distilling with a focus class and a top-1 term lowers the loss; recipe keys and their errors', async () => {
  const next = mulberry32(9);
  const inputs = { x: { data: Float32Array.from({ length: 64 * T * F }, () => next() * 2 - 1), sampleDims: [T, F], dataType: DataType.FLOAT } };
  const loss = distillLossOf('kl', 1, 0, 0.1, { distillFocus: K - 1, distillFocusWeight: 2, distillTop1: 0.5 });
  assert.deepEqual(loss, { kind: 'kl', temperature: 1, blank: { index: 0, weight: 0.1, focus: { index: K - 1, weight: 2 }, top1: 0.5 } });
  const settings = { epochs: 3, batchSize: 16, schedule: { kind: 'constant' as const, rate: 0.05 }, optimizer: { kind: 'adamw' as const }, seed: 0, loss };
  const trained = await distillValue(ctcModel(1), ctcModel(2), inputs, 'logits', settings, { ort: nodeOrt, threads: 1 }, 'test');
  const [first, , last] = trained.meanLoss;
  // The top-1 term has a floor (the student cannot be sure where the teacher is not), so it falls less than KL alone.
  assert.ok(first > 0.05 && last < 0.8 * first, `loss by epoch ${trained.meanLoss.join(', ')}`);
  await assert.rejects(distillValue(ctcModel(1), ctcModel(2), inputs, 'logits', { ...settings, loss: distillLossOf('kl', 1, 0, undefined, { distillFocus: K, distillFocusWeight: 1 }) }, { ort: nodeOrt, threads: 1 }, 'test'), /focus class 5 is not one of 'logits''s 5 classes/);
  assert.throws(() => distillLossOf('kl', 1, undefined, undefined, { distillTop1: 1 }), /goes with a blank class/);
  assert.throws(() => distillLossOf('kl', 1, 0, undefined, { distillFocus: 4 }), /focus class \(distill focus\) and its weight go together/);

  const step = parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 1, distill_value: logits, distill_loss: kl, distill_blank: 0, distill_focus: 6624, distill_focus_weight: 4, distill_top1: 0.5}\n', 'r.yaml').steps[0];
  assert.ok(step.kind === 'cluster');
  assert.deepEqual([step.training?.distillFocus, step.training?.distillFocusWeight, step.training?.distillTop1], [6624, 4, 0.5]);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 1, distill_value: logits, distill_loss: kl, distill_top1: 1}\n', 'r.yaml'), /'distill_top1' goes with 'distill_blank'/);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 4, epochs: 1, distill_value: logits, distill_loss: kl, distill_blank: 0, distill_focus: 3}\n', 'r.yaml'), /'distill_focus' and 'distill_focus_weight' go together/);
});

test('--distill-focus and --distill-top1: checked before anything is read', async () => {
  const common = ['cluster', 'm.onnx', '-o', 'out.onnx', '--bits', '4', '--data', 'd.npy', '--epochs', '1', '--distill-value', 'logits', '--distill-loss', 'kl'];
  for (const [args, message] of [
    [[...common, '--distill-top1', '1'], /--distill-top1 goes with --distill-blank/],
    [[...common, '--distill-blank', '0', '--distill-focus', '6624'], /--distill-focus and --distill-focus-weight go together/],
    [[...common, '--distill-blank', '0', '--distill-focus', '6624', '--distill-focus-weight', '-1'], /--distill-focus-weight must be a number >= 0, got '-1'/],
    [[...common, '--distill-blank', '0', '--distill-top1', 'x'], /--distill-top1 must be a number >= 0, got 'x'/],
  ] as const) {
    const run = await runShrink([...args]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, message);
  }
});
