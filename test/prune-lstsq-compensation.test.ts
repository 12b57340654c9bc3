// Least-squares compensation of removed channels (methods/prune/lstsq-compensation.ts): a removed
// channel that is an affine function of kept ones is folded into its readers exactly (a 3x3 conv
// without padding, a MatMul), where mean compensation is not; and the Cholesky solve it uses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { invertSpd, solveSpd } from '../src/kernels/linalg.js';
import { channelsPass } from '../src/methods/prune/channels.js';
import { tensorSamples } from '../src/eval/samples.js';
import { runPass } from '../src/pipeline/pass.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { pseudoRandom } from './helpers/tensors.js';

test('solveSpd: A·X = B, as A⁻¹·B', () => {
  const n = 7;
  const m = 3;
  const r = pseudoRandom(n * n, 11);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) a[i * n + j] += r[i * n + k] * r[j * n + k];
  for (let i = 0; i < n; i++) a[i * n + i] += 0.1;
  const b = Float64Array.from(pseudoRandom(n * m, 12));
  const x = solveSpd(a, n, b, m);
  const inv = invertSpd(a, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let ref = 0;
      for (let k = 0; k < n; k++) ref += inv[i * n + k] * b[k * m + j];
      assert.ok(Math.abs(x[i * m + j] - ref) < 1e-9 * (1 + Math.abs(ref)), `x[${i}][${j}] ${x[i * m + j]} vs ${ref}`);
    }
  }
});

/** Rows of a layer's weight [outputs, inputs] with the last output = 0.5·row 0 − 0.3·row 1 (bias 0.5·b0 − 0.3·b1 + 0.2), small enough to go first. */
function dependentLast(outputs: number, inputs: number, seed: number): { w: Float32Array; b: Float32Array } {
  const w = pseudoRandom(outputs * inputs, seed, -2, 2);
  const b = pseudoRandom(outputs, seed + 1);
  const last = outputs - 1;
  for (let i = 0; i < inputs; i++) w[last * inputs + i] = 0.5 * w[i] - 0.3 * w[inputs + i];
  b[last] = 0.5 * b[0] - 0.3 * b[1] + 0.2;
  return { w, b };
}

async function compare(model: Model, feeds: Tensor[], only: string, sparsity: number) {
  const [original] = await runModel(model, feeds);
  const samples = tensorSamples(feeds.map((f) => ({ [f.name]: f })));
  const differences: Record<string, number> = {};
  for (const compensation of ['mean', 'lstsq'] as const) {
    const pruned = model.clone();
    const report = await runPass(channelsPass, pruned, { sparsity, only: [only], calibration: samples, compensation, lstsqDamping: 1e-9 }, { ort: nodeOrt });
    assert.equal(report.stats.removedChannels, 1);
    const [out] = await runModel(pruned, feeds);
    differences[compensation] = maxAbsDifference(out, original);
  }
  return differences;
}

test('lstsq compensation: a removed conv channel that is an affine function of kept ones changes nothing (3x3 reader, no padding)', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 8, 6, 6]);
  const stem = dependentLast(6, 8, 1);
  const y = b.node('Conv', [x, b.initializer('stem.w', DataType.FLOAT, [6, 8, 1, 1], stem.w), b.initializer('stem.b', DataType.FLOAT, [6], stem.b)], [], { name: 'stem' });
  b.output(b.node('Conv', [y, b.initializer('head.w', DataType.FLOAT, [4, 6, 3, 3], pseudoRandom(216, 3))], [], { name: 'head' }), DataType.FLOAT);
  const model = buildModel(b.graph);
  const feeds = [0, 1].map((s) => Tensor.fromArray('x', DataType.FLOAT, [1, 8, 6, 6], pseudoRandom(288, 10 + s)));
  const d = await compare(model, feeds, 'stem', 1 / 6);
  assert.ok(d.mean > 0.1, `mean compensation differs: ${d.mean}`);
  assert.ok(d.lstsq <= 1e-4, `lstsq: ${d.lstsq}`);
});

test('lstsq compensation: the same through a MatMul reader (an MLP hidden unit)', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [4, 8]);
  const fc1 = dependentLast(6, 8, 5);
  // MatMul weights are [inputs, outputs]: transpose the rows.
  const w1 = new Float32Array(48);
  for (let o = 0; o < 6; o++) for (let i = 0; i < 8; i++) w1[i * 6 + o] = fc1.w[o * 8 + i];
  const h = b.node('Add', [b.node('MatMul', [x, b.initializer('fc1.w', DataType.FLOAT, [8, 6], w1)], [], { name: 'fc1' }), b.initializer('fc1.b', DataType.FLOAT, [6], fc1.b)]);
  b.output(b.node('MatMul', [h, b.initializer('fc2.w', DataType.FLOAT, [6, 3], pseudoRandom(18, 7))], [], { name: 'fc2' }), DataType.FLOAT);
  const model = buildModel(b.graph);
  const feeds = [0, 1, 2].map((s) => Tensor.fromArray('x', DataType.FLOAT, [4, 8], pseudoRandom(32, 20 + s)));
  const d = await compare(model, feeds, 'fc1', 1 / 6);
  assert.ok(d.mean > 0.1, `mean compensation differs: ${d.mean}`);
  assert.ok(d.lstsq <= 1e-4, `lstsq: ${d.lstsq}`);
});
