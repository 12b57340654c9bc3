// Weight-only quantization of a decoder language model, by perplexity on held-out text and greedy
// generation speed in onnxruntime-node, every variant side by side in one run:
//   model       models/gpt-spam (byte-level GPT, 4 layers, hidden 128, 4 heads, context 128; made
//               by scripts/train-decoder.py, exported with past_key_values/present)
//   held out    the first 65,536 bytes of the held-out e-mails (MD5 starting 'f', one per line),
//               512 windows of 128 that do not overlap
//   calibration 128 windows of 128 tokens from the calibration e-mails (MD5 starting 'e'), never
//               trained on, never scored
//   variants    float32; int4 (symmetric) at block 32 and 128 and int2 (asymmetric) at block 16
//               and 32, each by round to nearest, HQQ, GPTQ and AWQ
//   forms       the same model with its attention fused into onnxruntime's MultiHeadAttention and
//               GroupQueryAttention (opt-in optimizer passes), float32 and int4 g128 RTN/AWQ
// Quantization through the quantize recipe step (src/pipeline/quantize.ts), perplexity and
// generation through the decoder evaluation step (src/pipeline/decoder-eval.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decoderSamples, decoderSignature, generate } from '../src/eval/decoder.js';
import type { Model } from '../src/ir/model.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import type { RecipeContext } from '../src/pipeline/context.js';
import { evaluateDecoders } from '../src/pipeline/decoder-eval.js';
import { type QuantizeOptions, quantize } from '../src/pipeline/quantize.js';
import { ModelSession } from '../src/runtime/session.js';
import { gptSpamSplit, gptSpamText } from './lib/held-out.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const ROOT = path.join(import.meta.dirname, '..');
const MODEL_DIR = path.join(ROOT, 'models/gpt-spam');
const CONTEXT = 128;
const HELD_OUT_BYTES = 65536;
const CALIBRATION_WINDOWS = 128;
const PROMPT = 'Subject: ';
const GENERATE = 100;
const GENERATION_REPEATS = 7;
// One onnxruntime thread: the machine is shared, and one thread keeps the speeds comparable.
const ctx: RecipeContext = { ort: nodeOrt, threads: 1 };

interface Setting {
  label: string;
  method: 'int4' | 'int2';
  blockSize: number;
  symmetric: boolean;
}
const SETTINGS: Setting[] = [
  { label: 'int4 g32 sym', method: 'int4', blockSize: 32, symmetric: true },
  { label: 'int4 g128 sym', method: 'int4', blockSize: 128, symmetric: true },
  { label: 'int2 g16 asym', method: 'int2', blockSize: 16, symmetric: false },
  { label: 'int2 g32 asym', method: 'int2', blockSize: 32, symmetric: false },
];
const ALGORITHMS = ['rtn', 'hqq', 'gptq', 'awq'] as const;
const FORMS = [
  { label: 'MultiHeadAttention', pass: 'fuse-cached-attention' },
  { label: 'GroupQueryAttention', pass: 'fuse-group-query-attention' },
];
const FORM_SETTING = SETTINGS[1];

interface Row {
  setting: string;
  algorithm: string;
  perplexity: number;
  /** Perplexity over float32's. */
  ratio: number;
  tokens_per_second: number;
  bytes: number;
  quantize_seconds: number;
}

/** Perplexity of `model` on the held-out text (no generation: speed is measured later, interleaved). */
async function heldOutPerplexity(name: string, model: Model, heldOut: Uint8Array): Promise<number> {
  const [row] = await evaluateDecoders([{ name, model }], heldOut, { context: CONTEXT, batch: 8 }, ctx);
  return row.perplexity;
}

/**
 * Greedy generation tokens/s of every model, round-robin over the models `GENERATION_REPEATS`
 * times (so a busy spell of the shared machine hits all of them alike), median per model.
 */
async function generationSpeeds(models: readonly Model[], log: (line: string) => void): Promise<number[]> {
  const prompt = Array.from(new TextEncoder().encode(PROMPT));
  const sessions = await Promise.all(models.map((m) => ModelSession.create(nodeOrt, m, { threads: 1 })));
  const speeds: number[][] = models.map(() => []);
  try {
    const sigs = models.map((m, i) => decoderSignature(m, `variant ${i}`, true));
    for (let repeat = 0; repeat < GENERATION_REPEATS; repeat++) {
      for (const [i, session] of sessions.entries()) speeds[i].push((await generate(nodeOrt, session, sigs[i], prompt, { tokens: GENERATE })).tokensPerSecond);
      log(`generation round ${repeat + 1} of ${GENERATION_REPEATS}`);
    }
  } finally {
    for (const session of sessions) await session.release();
  }
  return speeds.map(median);
}

export const decoderBench: Bench = {
  name: 'decoder',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    const split = gptSpamSplit();
    const heldOut = gptSpamText(split.heldout).subarray(0, HELD_OUT_BYTES);
    const model = readModel(fs.readFileSync(path.join(MODEL_DIR, 'onnx/model.onnx')));
    const sig = decoderSignature(model, 'models/gpt-spam/onnx/model.onnx', true);
    const calibration = decoderSamples(sig, gptSpamText(split.calibration), CONTEXT, CALIBRATION_WINDOWS, 'calibration e-mails');
    const densePerplexity = await heldOutPerplexity('float32', model, heldOut);
    const denseBytes = writeModel(model).byteLength;
    log(`float32: perplexity ${densePerplexity.toFixed(4)} (torch ${split.perplexity.heldout_65536_chunked})`);
    const rows: Row[] = [];
    const variants: Model[] = [];
    for (const setting of SETTINGS) {
      for (const algorithm of ALGORITHMS) {
        const base: QuantizeOptions = { method: setting.method, blockSize: setting.blockSize, symmetric: setting.symmetric };
        const options: QuantizeOptions = algorithm === 'rtn' ? base : algorithm === 'hqq' ? { ...base, rounding: 'hqq' } : { ...base, algorithm, calibration };
        const started = performance.now();
        const { model: quantized } = await quantize(model, options, ctx);
        const seconds = (performance.now() - started) / 1000;
        const ppl = await heldOutPerplexity(`${setting.label} ${algorithm}`, quantized, heldOut);
        variants.push(quantized);
        rows.push({
          setting: setting.label,
          algorithm,
          perplexity: Number(ppl.toFixed(4)),
          ratio: Number((ppl / densePerplexity).toFixed(4)),
          tokens_per_second: 0,
          bytes: writeModel(quantized).byteLength,
          quantize_seconds: round(seconds),
        });
        log(`${setting.label} ${algorithm}: perplexity ${ppl.toFixed(4)}, quantized in ${seconds.toFixed(1)} s`);
      }
    }
    // The fused forms: float32 and int4 g128 by RTN and AWQ, scored and timed like the rest.
    const formRows: Row[] = [];
    for (const form of FORMS) {
      const fused = model.clone();
      await optimizeModel(fused, { passes: [form.pass, 'eliminate-dead-nodes', 'eliminate-unused-initializers', 'topological-sort'] }, ctx);
      const formCalibration = decoderSamples(decoderSignature(fused, form.label, true), gptSpamText(split.calibration), CONTEXT, CALIBRATION_WINDOWS, 'calibration e-mails');
      for (const algorithm of ['float32', 'rtn', 'awq'] as const) {
        const base: QuantizeOptions = { method: FORM_SETTING.method, blockSize: FORM_SETTING.blockSize, symmetric: FORM_SETTING.symmetric };
        const started = performance.now();
        const variant = algorithm === 'float32' ? fused : (await quantize(fused, algorithm === 'rtn' ? base : { ...base, algorithm, calibration: formCalibration }, ctx)).model;
        const seconds = (performance.now() - started) / 1000;
        const ppl = await heldOutPerplexity(`${form.label} ${algorithm}`, variant, heldOut);
        variants.push(variant);
        formRows.push({
          setting: `${form.label} ${algorithm === 'float32' ? 'float32' : FORM_SETTING.label}`,
          algorithm: algorithm === 'float32' ? '-' : algorithm,
          perplexity: Number(ppl.toFixed(4)),
          ratio: Number((ppl / densePerplexity).toFixed(4)),
          tokens_per_second: 0,
          bytes: writeModel(variant).byteLength,
          quantize_seconds: algorithm === 'float32' ? 0 : round(seconds),
        });
        log(`${form.label} ${algorithm}: perplexity ${ppl.toFixed(4)}`);
      }
    }
    const [denseSpeed, ...speeds] = await generationSpeeds([model, ...variants], log);
    const loadAtEnd = os.loadavg().map((l) => l.toFixed(2)).join(' ');
    for (const [i, row] of [...rows, ...formRows].entries()) row.tokens_per_second = round(speeds[i]);
    const of = (setting: string, algorithm: string) => rows.find((r) => r.setting === setting && r.algorithm === algorithm)?.perplexity ?? NaN;
    const beats = SETTINGS.map((s) => ({
      setting: s.label,
      gptq_beats_rtn: of(s.label, 'gptq') < of(s.label, 'rtn'),
      awq_beats_rtn: of(s.label, 'awq') < of(s.label, 'rtn'),
    }));
    const json = {
      machine,
      model: 'models/gpt-spam/onnx/model.onnx',
      held_out: { bytes: heldOut.length, windows: HELD_OUT_BYTES / CONTEXT, context: CONTEXT },
      calibration_windows: CALIBRATION_WINDOWS,
      generation: { prompt: PROMPT, new_tokens: GENERATE, repeats: GENERATION_REPEATS, threads: 1 },
      float32: { perplexity: Number(densePerplexity.toFixed(4)), torch_perplexity: split.perplexity.heldout_65536_chunked, tokens_per_second: round(denseSpeed), bytes: denseBytes },
      rows,
      beats,
      fused_forms: formRows,
      load_at_end: loadAtEnd,
    };
    const verdict = (b: (typeof beats)[number]) => `${b.setting}: GPTQ ${b.gptq_beats_rtn ? 'beats' : 'does not beat'} RTN, AWQ ${b.awq_beats_rtn ? 'beats' : 'does not beat'} RTN`;
    const markdown = [
      '# Decoder: perplexity and generation speed of weight-only quantization',
      '',
      `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ${machine.date}, load ${machine.loadAverage} at the start, ${loadAtEnd} at the end.`,
      '',
      `Model: models/gpt-spam (byte-level GPT-style decoder, 4 layers, hidden 128, 4 heads, context 128, ${denseBytes} bytes float32; scripts/train-decoder.py). Held out: the first ${HELD_OUT_BYTES} bytes of the held-out e-mails, ${HELD_OUT_BYTES / CONTEXT} windows of ${CONTEXT} tokens that do not overlap (each scores its tokens 2..128). Calibration (GPTQ, AWQ): ${CALIBRATION_WINDOWS} windows of ${CONTEXT} tokens from the calibration e-mails, run from an empty cache (past length 0). Every MatMul (24 in the blocks, the LM head) goes to MatMulNBits; the two embeddings (Gather) to GatherBlockQuantized with the setting's bits and block (HQQ rounds them by HQQ; GPTQ and AWQ leave them to round to nearest). AWQ: s = RMS^α per input feature (α on 20 points by the layer's calibration output error), then a clipping factor per block, chosen per block and refined block by block on each row's whole output error (cross-block terms). Generation: greedy, ${GENERATE} tokens after the prompt ${JSON.stringify(PROMPT)}, one token per run through the KV cache, 1 onnxruntime thread, every model in turn ${GENERATION_REPEATS} times, median per model; the machine is shared (load above), so speeds are rough.`,
      '',
      `float32: perplexity **${densePerplexity.toFixed(4)}** (torch, same model and text: ${split.perplexity.heldout_65536_chunked}), ${denseSpeed.toFixed(1)} tokens/s, ${denseBytes} bytes.`,
      '',
      'The model is small and under-trained (141 steps, 18 minutes on a shared core): quantization moves its perplexity by tenths of a percent at int4 and by a few percent at int2, so the algorithms differ by little; the perplexities are deterministic (a rerun gives the same digits), the speeds are not. HQQ writes float zero points at int2 (larger files).',
      '',
      '| setting | algorithm | perplexity | / float32 | tokens/s | file bytes | quantize s |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.setting} | ${r.algorithm} | ${r.perplexity} | ${r.ratio} | ${r.tokens_per_second} | ${r.bytes} | ${r.quantize_seconds} |`),
      '',
      ...beats.map((b) => `- ${verdict(b)}`),
      '',
      `## Fused attention forms`,
      '',
      `The same model with its four attention blocks (and their past/present Concat) fused into onnxruntime's com.microsoft MultiHeadAttention (the model's mask as attention_bias) and GroupQueryAttention (causal, seqlens from attention_mask) by the opt-in optimizer passes fuse-cached-attention and fuse-group-query-attention; then ${FORM_SETTING.label} by RTN and AWQ (same calibration). Generation timed in the same round-robin as the table above (float32 unfused: ${denseSpeed.toFixed(1)} tokens/s).`,
      '',
      '| form | algorithm | perplexity | / float32 | tokens/s | file bytes | quantize s |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
      ...formRows.map((r) => `| ${r.setting} | ${r.algorithm} | ${r.perplexity} | ${r.ratio} | ${r.tokens_per_second} | ${r.bytes} | ${r.quantize_seconds} |`),
      '',
    ].join('\n');
    return { json, markdown };
  },
};
