// Quantization-aware training for static int8 (src/pipeline/qat-static.ts): on a small Conv model,
// QAT by distillation from the float model must bring the int8 model's output closer to float32
// on held-out inputs than PTQ alone, the written model must be PTQ's graph with new codes only,
// and it must compute what the fake-quantized training copy computes. The CLI writes PTQ's graph,
// reports each epoch, and refuses the weight-only flags with one line (exit 2), writing nothing.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeNpz } from '../src/eval/npz.js';
import { writeModel } from '../src/onnx/model-io.js';
import { loadModel } from '../src/node/model-files.js';
import type { StaticQatCommandReport } from '../src/cli/qat-static-command.js';
import { spawnShrink } from './helpers/cli.js';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { tensorSamples } from '../src/eval/samples.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { staticInt8Qat } from '../src/pipeline/qat-static.js';
import { Tensor } from '../src/ir/tensor.js';
import { requantize, staticFakeQuant } from '../src/train/qat-static-graph.js';
import { withWeights } from '../src/train/trainer.js';
import { floats } from './helpers/tensors.js';
import { runModel } from './helpers/run-model.js';

/** x [N,3,12,12] -> Conv+Relu -> Conv+Relu -> Conv (4 channels) -> y. */
function convModel(): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 3, 12, 12]);
  const w = (name: string, dims: number[], seed: number, scale: number) => b.tensor(floats(name, dims, seed, -scale, scale));
  const pads = [attr.ints('pads', [1, 1, 1, 1])];
  const c1 = b.node('Relu', [b.node('Conv', [x, w('W1', [8, 3, 3, 3], 11, 0.5), w('B1', [8], 12, 0.2)], pads, { name: 'conv1' })], [], { name: 'relu1' });
  const c2 = b.node('Relu', [b.node('Conv', [c1, w('W2', [8, 8, 3, 3], 13, 0.3), w('B2', [8], 14, 0.1)], pads, { name: 'conv2' })], [], { name: 'relu2' });
  const [y] = b.node('Conv', [c2, w('W3', [4, 8, 1, 1], 15, 0.5), w('B3', [4], 16, 0.1)], [], { name: 'conv3', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 13 }]);
}

const images = (count: number, seed: number) => floats('x', [count, 3, 12, 12], seed);

async function meanSquaredError(model: Model, reference: Float32Array, x: ReturnType<typeof images>): Promise<number> {
  const [y] = await runModel(model, [x]);
  const v = y.data() as Float32Array;
  return v.reduce((s, a, i) => s + (a - reference[i]) ** 2, 0) / v.length;
}

test('static int8 QAT: lower held-out error than PTQ, export = fake-quant graph, PTQ graph kept', async () => {
  const float = convModel();
  const train = images(64, 1);
  const heldOut = images(32, 2);
  const result = await staticInt8Qat(
    float,
    {
      calibration: tensorSamples(Array.from({ length: 4 }, (_, i) => ({ x: floats('x', [4, 3, 12, 12], 100 + i) }))),
      inputs: { x: { data: train.data() as Float32Array, sampleDims: [3, 12, 12], dataType: DataType.FLOAT } },
      loss: { kind: 'mse' },
      epochs: 6,
      batchSize: 16,
      // The values train in quantization steps: Adam moves each by about 1/100 of its own step per
      // step. No weight code changes in 24 steps (the biases move; the weights' export is checked
      // below); at 3/100 many codes flipped together in the fifth epoch and the error rose by a third.
      schedule: { kind: 'constant', rate: 0.01 },
      seed: 0,
    },
    { ort: nodeOrt, threads: 1 },
  );
  assert.equal(result.report.weights, 3);
  assert.equal(result.report.biases, 3);
  assert.equal(result.report.kept, 6);

  const [reference] = await runModel(float, [heldOut]);
  const ptqError = await meanSquaredError(result.ptq, reference.data() as Float32Array, heldOut);
  const qatError = await meanSquaredError(result.model, reference.data() as Float32Array, heldOut);
  // 18.7e-6 -> 16.7e-6 when written: activation rounding noise, which no weight can undo, is most of it.
  assert.ok(qatError < 0.95 * ptqError, `held-out MSE vs float: PTQ ${ptqError}, QAT ${qatError}`);

  // The written model is the PTQ graph: same nodes, same initializer names and types; codes changed.
  assert.deepEqual(
    result.model.graph.nodes.map((n) => `${n.opType}(${n.inputs.join(',')})`),
    result.ptq.graph.nodes.map((n) => `${n.opType}(${n.inputs.join(',')})`),
  );
  const types = (m: Model) => m.graph.initializers.map((t) => `${t.name}:${t.dataType}`).sort();
  assert.deepEqual(types(result.model), types(result.ptq));
  const changed = result.model.graph.initializers.filter((t) => {
    const before = result.ptq.graph.initializer(t.name);
    return before !== undefined && Buffer.compare(Buffer.from(t.bytes()), Buffer.from(before.bytes())) !== 0;
  });
  assert.ok(changed.some((t) => t.dataType === DataType.INT32), 'no bias codes changed');

  // The training copy (fake quantization, float weights) computes what the written int8 model does.
  const [written] = await runModel(result.model, [heldOut]);
  const [fake] = await runModel(result.fake, [heldOut]);
  const a = written.data() as Float32Array;
  const b = fake.data() as Float32Array;
  const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  assert.ok(worst <= 1e-5, `export vs fake-quant graph: max difference ${worst}`);

  // Weights moved across bin edges (every third value by 0.7 of a step) export exactly too.
  const moved = new Map<string, Tensor>();
  for (const w of result.plan.weights) {
    const u = Float32Array.from(result.fake.graph.initializer(w.float)?.data() as Float32Array, (v, i) => (i % 3 === 0 ? v + 0.7 : v));
    moved.set(w.float, Tensor.fromArray(w.float, DataType.FLOAT, w.dims, u));
  }
  for (const b of result.plan.biases) moved.set(b.float, result.fake.graph.initializer(b.float) as Tensor);
  const exported = requantize(result.ptq, result.plan, moved);
  const flipped = exported.model.graph.initializers.filter((t) => t.dataType === DataType.INT8 && Buffer.compare(Buffer.from(t.bytes()), Buffer.from(result.ptq.graph.initializer(t.name)?.bytes() ?? [])) !== 0);
  assert.equal(flipped.length, 3);
  const [c] = await runModel(exported.model, [heldOut]);
  const [d] = await runModel(withWeights(result.fake, exported.written), [heldOut]);
  const e = c.data() as Float32Array;
  const f = d.data() as Float32Array;
  const worstMoved = e.reduce((m, v, i) => Math.max(m, Math.abs(v - f[i])), 0);
  assert.ok(worstMoved <= 1e-5, `moved weights: export vs fake-quant graph: max difference ${worstMoved}`);

  // The same in float units (the trainable value is the weight itself).
  const floatPlan = staticFakeQuant(result.ptq, 'float');
  const movedFloats = new Map<string, Tensor>();
  for (const w of floatPlan.weights) {
    // Conv weights: one scale per output channel (axis 0).
    const perChannel = w.dims.slice(1).reduce((a, b) => a * b, 1);
    const step = (i: number) => w.scale[w.axis === undefined ? 0 : Math.floor(i / perChannel)];
    const v = Float32Array.from(floatPlan.model.graph.initializer(w.float)?.data() as Float32Array, (x, i) => (i % 3 === 0 ? x + 0.7 * step(i) : x));
    movedFloats.set(w.float, Tensor.fromArray(w.float, DataType.FLOAT, w.dims, v));
  }
  for (const b of floatPlan.biases) movedFloats.set(b.float, Tensor.fromArray(b.float, DataType.FLOAT, b.dims, Float32Array.from(floatPlan.model.graph.initializer(b.float)?.data() as Float32Array, (x) => x + 1e-3)));
  const exportedFloats = requantize(result.ptq, floatPlan, movedFloats);
  const [g] = await runModel(exportedFloats.model, [heldOut]);
  const [h] = await runModel(withWeights(floatPlan.model, exportedFloats.written), [heldOut]);
  const gv = g.data() as Float32Array;
  const hv = h.data() as Float32Array;
  const worstFloats = gv.reduce((m, v, i) => Math.max(m, Math.abs(v - hv[i])), 0);
  assert.ok(worstFloats <= 1e-5, `float units: export vs fake-quant graph: max difference ${worstFloats}`);
});

test('static int8 QAT: the schedule spans the whole run (or each epoch), and a teacher other than the model quantized is distilled', async () => {
  const float = convModel();
  const train = images(32, 1);
  const calibration = tensorSamples(Array.from({ length: 2 }, (_, i) => ({ x: floats('x', [4, 3, 12, 12], 100 + i) })));
  const inputs = { x: { data: train.data() as Float32Array, sampleDims: [3, 12, 12], dataType: DataType.FLOAT } };
  const codes = (m: Model) => m.graph.initializers.filter((t) => t.dataType === DataType.INT8 || t.dataType === DataType.INT32).map((t) => Buffer.from(t.bytes()).toString('hex')).join();
  // 2 steps an epoch; the rate drops to 0 after the first epoch's steps: over the run, epoch 2 leaves
  // the codes as epoch 1 wrote them; restarted each epoch, epoch 2 trains at the full rate again.
  const byEpoch = async (span: 'run' | 'epoch') => {
    const models: Model[] = [];
    await staticInt8Qat(
      float,
      { calibration, inputs, loss: { kind: 'mse' }, epochs: 2, batchSize: 16, schedule: { kind: 'step', rate: 0.05, every: 2, gamma: 0 }, scheduleSpan: span, seed: 0, evaluate: async (m) => (models.push(m), 0) },
      { ort: nodeOrt, threads: 1 },
    );
    return models.map(codes);
  };
  const run = await byEpoch('run');
  assert.notEqual(run[1], run[0], 'epoch 1 changed no code');
  assert.equal(run[2], run[1], 'over the run, epoch 2 (rate 0) changed codes');
  const epoch = await byEpoch('epoch');
  assert.notEqual(epoch[2], epoch[1], 'restarted each epoch, epoch 2 changed no code');

  // A teacher whose output is shifted by 0.1: the int8 model moves towards it, not towards the model
  // quantized (float units: 0.26x PTQ's error to it; distilled from the model quantized 1.24x).
  const teacher = convModel();
  const b3 = teacher.graph.initializers.findIndex((t) => t.name === 'B3');
  teacher.graph.replaceInitializer(b3, Tensor.fromArray('B3', DataType.FLOAT, [4], Float32Array.from(teacher.graph.initializers[b3].data() as Float32Array, (v) => v + 0.1)));
  const result = await staticInt8Qat(float, { calibration, inputs, loss: { kind: 'mse' }, teacher, units: 'float', epochs: 4, batchSize: 16, schedule: { kind: 'constant', rate: 0.005 }, seed: 0 }, { ort: nodeOrt, threads: 1 });
  const heldOut = images(16, 2);
  const [toTeacher] = await runModel(teacher, [heldOut]);
  const ptqError = await meanSquaredError(result.ptq, toTeacher.data() as Float32Array, heldOut);
  const qatError = await meanSquaredError(result.model, toTeacher.data() as Float32Array, heldOut);
  assert.ok(qatError < 0.5 * ptqError, `held-out MSE vs the teacher: PTQ ${ptqError}, QAT ${qatError}`);
});

const work = mkdtempSync(join(tmpdir(), 'shrink-qat-static-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('shrink qat --method static-int8: PTQ graph with trained codes, epochs reported; weight-only flags refused', () => {
  const input = join(work, 'conv.onnx');
  writeFileSync(input, writeModel(convModel()));
  const data = join(work, 'data.npz');
  const x = images(32, 1).data() as Float32Array;
  writeFileSync(data, writeNpz({ x: { dataType: DataType.FLOAT, dims: [32, 3, 12, 12], data: new Uint8Array(x.buffer) } }));
  const output = join(work, 'conv-int8.onnx');
  // A user metric chooses the epoch kept: here minus the mean |difference| of the outputs.
  const metricFile = join(work, 'closeness.mjs');
  writeFileSync(
    metricFile,
    `export const name = 'closeness';
export default (reference, candidate) => {
  const [a] = Object.values(reference).map((t) => t.data()), [b] = Object.values(candidate).map((t) => t.data());
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return -sum / a.length;
};\n`,
  );
  // The epoch is chosen on a split of its own (--tune), every sample of it.
  const tune = join(work, 'tune.npz');
  writeFileSync(tune, writeNpz({ x: { dataType: DataType.FLOAT, dims: [12, 3, 12, 12], data: new Uint8Array((images(12, 3).data() as Float32Array).buffer) } }));
  const run = spawnShrink(['qat', input, '-o', output, '--method', 'static-int8', '--data', data, '--tune', tune, '--distill-loss', 'mse', '--epochs', '2', '--batch-size', '16', '--lr', '1e-4', '--metric', metricFile, '--json'], { timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as StaticQatCommandReport;
  assert.deepEqual(report.epochs.map((e) => [e.epoch, e.steps]), [[0, 0], [1, 2], [2, 2]]);
  assert.equal(report.weights, 3);
  assert.ok(report.epochs.every((e) => Number.isFinite(e.sqnr_db) && typeof e.metric === 'number' && e.metric < 0), JSON.stringify(report.epochs));
  assert.equal(report.kept_by, 'closeness');
  assert.deepEqual(report.schedule, { kind: 'cosine', rate: 1e-4, span: 'run' });
  assert.deepEqual(report.chosen_on, { file: tune, samples: 12, tune: true });
  const best = Math.max(...report.epochs.map((e) => e.metric as number));
  assert.equal(report.epochs.find((e) => e.epoch === report.kept)?.metric, best);
  const written = loadModel(output);
  assert.equal(written.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').length, 3);
  assert.ok(written.graph.initializers.some((t) => t.dataType === DataType.INT8));

  const refused = join(work, 'refused.onnx');
  const bad = spawnShrink(['qat', input, '-o', refused, '--method', 'static-int8', '--data', data, '--block-size', '32'], { timeout: 60_000 });
  // A usage error: exit 2, as every command's.
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr.trim(), /^shrink: .*--block-size: not with --method static-int8/);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.ok(!existsSync(refused));
});
