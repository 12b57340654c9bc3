// One-shot pruning with calibration data against magnitude pruning, at the same sparsity and with
// no fine-tuning, side by side in one run:
//   spam-bert   the 2-layer BERT classifier of models/spam-bert (SpamAssassin e-mails); every
//               MatMul/Gemm weight (attention projections, feed-forward, pooler, classifier;
//               embeddings stay); calibration: 128 training e-mails (seeded pick, never held out),
//               each at its own length; measured on the 769 held-out e-mails the model never saw:
//               accuracy, mean cross-entropy, top-1 agreement with the dense model
//   MLP         models/fashion-mnist/mlp.onnx (3 Gemm); calibration: 128 training images;
//               measured on the 10k test images
//   gpt-spam    the byte-level decoder of models/gpt-spam (4 layers, hidden 128); every MatMul
//               (attention projections, MLP, LM head; embeddings stay); calibration: 128 windows
//               of 128 tokens from its calibration e-mails (never trained on); measured by
//               perplexity on the first 65,536 bytes of its held-out e-mails, as bench/decoder.ts
// Methods: magnitude (per layer; `nm` for N:M, both keep the largest |w|), Wanda (|w|·‖x‖ per
// output) and SparseGPT (OBS updates from XᵀX, damping 0.01, blocks of 128), all through the
// prune recipe step (src/pipeline/prune.ts), at 50% and 2:4 (and 70%, 4:8; gpt-spam 50% and 2:4).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decoderSamples, decoderSignature } from '../src/eval/decoder.js';
import type { SampleSource } from '../src/eval/samples.js';
import type { Model } from '../src/ir/model.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel } from '../src/onnx/model-io.js';
import type { RecipeContext } from '../src/pipeline/context.js';
import { evaluateDecoders } from '../src/pipeline/decoder-eval.js';
import { type PruneOptions, prune } from '../src/pipeline/prune.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { agreement, classifySpam, fashionCalibration, gptSpamSplit, gptSpamText, klFromDense, spamData } from './lib/held-out.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const ROOT = path.join(import.meta.dirname, '..');
const SPAM_DIR = path.join(ROOT, 'models/spam-bert');
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
  const model = readModel(fs.readFileSync(path.join(SPAM_DIR, 'onnx/model.onnx')));
  const data = await spamData(CALIBRATION);
  const dense = await classifySpam(model, data);
  log(`spam-bert dense: ${round(dense.accuracy)}% on ${data.inputs.length} held-out e-mails, loss ${dense.loss.toFixed(4)}`);
  const rows: Row[] = [];
  for (const setting of SETTINGS) {
    for (const method of METHODS) {
      const started = performance.now();
      const { model: pruned, report } = await prune(model, pruneOptions(method, setting, data.calibration), ctx);
      const seconds = (performance.now() - started) / 1000;
      const result = await classifySpam(pruned, data);
      rows.push({ setting: setting.label, method, accuracy: round(result.accuracy), loss: Number(result.loss.toFixed(4)), kl: Number(klFromDense(dense.logits, result.logits).toPrecision(3)), agreement: round(agreement(dense.logits, result.logits)), sparsity: report.sparsity.pruned_weights, seconds: round(seconds) });
      log(`spam-bert ${setting.label} ${method}: ${round(result.accuracy)}%, loss ${result.loss.toFixed(4)}, ${seconds.toFixed(1)} s`);
    }
  }
  return { dense: { accuracy: round(dense.accuracy), loss: Number(dense.loss.toFixed(4)) }, rows, calibration: CALIBRATION, heldOut: data.inputs.length };
}

const GPT_CONTEXT = 128;
const GPT_HELD_OUT_BYTES = 65536;
const GPT_SETTINGS = SETTINGS.filter((s) => s.label === '50%' || s.label === '2:4');

interface DecoderRow {
  setting: string;
  method: string;
  perplexity: number;
  /** Perplexity over the dense model's. */
  ratio: number;
  sparsity: number;
  seconds: number;
}

/** Held-out perplexity of the decoder (the split and windows of bench/decoder.ts). */
async function decoderPerplexity(name: string, model: Model, heldOut: Uint8Array): Promise<number> {
  const [row] = await evaluateDecoders([{ name, model }], heldOut, { context: GPT_CONTEXT, batch: 8 }, ctx);
  return row.perplexity;
}

async function gptSpam(log: (line: string) => void): Promise<{ dense: number; rows: DecoderRow[] }> {
  const model = readModel(fs.readFileSync(path.join(ROOT, 'models/gpt-spam/onnx/model.onnx')));
  const split = gptSpamSplit();
  const heldOut = gptSpamText(split.heldout).subarray(0, GPT_HELD_OUT_BYTES);
  const sig = decoderSignature(model, 'models/gpt-spam/onnx/model.onnx');
  const calibration = decoderSamples(sig, gptSpamText(split.calibration), GPT_CONTEXT, CALIBRATION, 'calibration e-mails');
  const dense = await decoderPerplexity('dense', model, heldOut);
  log(`gpt-spam dense: perplexity ${dense.toFixed(4)}`);
  const rows: DecoderRow[] = [];
  for (const setting of GPT_SETTINGS) {
    for (const method of METHODS) {
      const started = performance.now();
      const { model: pruned, report } = await prune(model, pruneOptions(method, setting, calibration), ctx);
      const seconds = (performance.now() - started) / 1000;
      const ppl = await decoderPerplexity(`${setting.label} ${method}`, pruned, heldOut);
      rows.push({ setting: setting.label, method, perplexity: Number(ppl.toFixed(4)), ratio: Number((ppl / dense).toFixed(4)), sparsity: report.sparsity.pruned_weights, seconds: round(seconds) });
      log(`gpt-spam ${setting.label} ${method}: perplexity ${ppl.toFixed(4)}, ${seconds.toFixed(1)} s`);
    }
  }
  return { dense: Number(dense.toFixed(4)), rows };
}

async function mlp(log: (line: string) => void): Promise<{ dense: number; rows: Row[] }> {
  const model = readModel(fs.readFileSync(path.join(ROOT, 'models/fashion-mnist/mlp.onnx')));
  const testSet = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const calibration = fashionCalibration(CALIBRATION);
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
    const decoder = await gptSpam(log);
    const json = { machine, spam_bert: spam, mlp: fashion, gpt_spam: { held_out_bytes: GPT_HELD_OUT_BYTES, context: GPT_CONTEXT, calibration_windows: CALIBRATION, ...decoder } };
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
      `## gpt-spam (models/gpt-spam, byte-level decoder): perplexity on ${GPT_HELD_OUT_BYTES} held-out bytes, calibration ${CALIBRATION} windows of ${GPT_CONTEXT} tokens`,
      '',
      `Held out and calibration as bench/decoder.ts (${GPT_HELD_OUT_BYTES / GPT_CONTEXT} windows of ${GPT_CONTEXT} tokens that do not overlap; calibration windows from the calibration e-mails, run from an empty cache). Every MatMul is pruned (24 in the blocks and the LM head); the two embeddings stay. Dense perplexity: ${decoder.dense}.`,
      '',
      '| pruning | method | perplexity | / dense | sparsity of the pruned weights | seconds |',
      '| --- | --- | ---: | ---: | ---: | ---: |',
      ...decoder.rows.map((r) => `| ${r.setting} | ${r.method} | ${r.perplexity} | ${r.ratio} | ${round(r.sparsity * 100)}% | ${r.seconds} |`),
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
