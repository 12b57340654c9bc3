// Dynamic int8 against float32, side by side in one run under onnxruntime-node (CPU, 1 thread,
// graph optimization 'all', what users get by default). Models: a MatMul-heavy transformer FFN
// stack built here (4 blocks of [768,3072] + [3072,768], batch 8 x 16 tokens), the Fashion-MNIST
// MLP (3 Gemm) at batch 64, and every real model (PP-OCRv4 rec at batch 8, det, cls at batch 8,
// Silero VAD v5/v6/legacy). Variants:
//   fp32         the model as given;
//   int8         `quantizeDynamicInt8` defaults: DynamicQuantizeMatMul, Conv weights int8 decoded
//                by Cast and Mul (folded into float weights by onnxruntime at load, so the Conv keeps
//                its float speed), DynamicQuantizeLSTM, per-channel int8 weights;
//   int8-ops     the standard-op forms: DynamicQuantizeLinear + MatMulInteger and + ConvInteger
//                (only where the model's opset has them, >= 11; else the row is omitted);
//   int8-no-conv int8 with Conv left in float (`--exclude Conv`): before the Cast form, the
//                speed-oriented choice (onnxruntime keeps a weight's DequantizeLinear unfolded and its
//                float Conv then loses the prepacked NCHWc kernels). Omitted for models without Conv.
// Latency: median of interleaved rounds (each round times every variant once), each sample an
// average of back-to-back runs over at least SAMPLE_MS. Speed-up is fp32 latency / variant latency.
// Fidelity: lowest cosine over outputs against fp32 on the same inputs, in onnxruntime-node and
// in onnxruntime-web (wasm).
import { cosineSimilarity } from '../src/eval/metrics.js';
import { agreement, spamData } from './lib/held-out.js';
import { paddedBatch, paddedBatches } from './lib/spam-bert-batches.js';
import { bertEncoder } from './lib/bert-encoder.js';
import { type OrtProfile, profileModel } from './lib/ort-profile.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { type DynamicInt8Options, quantizeDynamicInt8 } from '../src/methods/quantize/dynamic-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { pushRowGathersPass } from '../src/optimize/push-row-gathers.js';
import type { OrtModule, OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession } from '../src/runtime/session.js';
import { OCR, VAD, feedsFor, floats, sr16k, zeros } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const THREADS = 1;
const ROUNDS = 15;
const WARMUP = 2;
const SAMPLE_MS = 20;
const VARIANTS: Record<string, DynamicInt8Options | undefined> = {
  fp32: undefined,
  int8: { perChannel: true },
  'int8-ops': {
    perChannel: true,
    matmulForm: 'onnx',
    convForm: 'conv-integer',
  },
  'int8-no-conv': { perChannel: true, ops: ['MatMul', 'Gemm', 'LSTM'] },
};

/** Transformer feed-forward blocks: x + W2 relu(W1 x + b1) + b2, weights ~ U(-0.036, 0.036) (Xavier-like). */
export function ffnStack(blocks: number, hidden: number, inner: number, seed = 7): Model {
  const b = new GraphBuilder();
  let x = b.input('x', DataType.FLOAT, ['batch', 'tokens', hidden]);
  const scale = Math.sqrt(6 / (hidden + inner));
  for (let i = 0; i < blocks; i++) {
    const w1 = b.tensor(floats(`block${i}.w1`, [hidden, inner], seed + 4 * i, -scale, scale));
    const b1 = b.tensor(floats(`block${i}.b1`, [inner], seed + 4 * i + 1, -0.1, 0.1));
    const w2 = b.tensor(floats(`block${i}.w2`, [inner, hidden], seed + 4 * i + 2, -scale, scale));
    const b2 = b.tensor(floats(`block${i}.b2`, [hidden], seed + 4 * i + 3, -0.1, 0.1));
    const h = b.node('Relu', [b.node('Add', [b.node('MatMul', [x, w1]), b1])]);
    x = b.node('Add', [x, b.node('Add', [b.node('MatMul', [h, w2]), b2])]);
  }
  b.output(x, DataType.FLOAT);
  return buildModel(b.graph);
}

interface Spec {
  name: string;
  load: () => Model;
  feeds: () => Tensor[];
  batch: string;
}

const MODELS: Spec[] = [
  {
    name: 'FFN stack 4x[768,3072]',
    load: () => ffnStack(4, 768, 3072),
    feeds: () => [floats('x', [8, 16, 768], 11)],
    batch: '8 x 16 tokens',
  },
  {
    name: 'Fashion-MNIST MLP',
    load: () => loadModel('models/fashion-mnist/mlp.onnx'),
    feeds: () => [floats('image', [64, 1, 28, 28], 12, 0, 1)],
    batch: '64',
  },
  {
    name: 'PP-OCRv4 rec',
    load: () => loadModel(`${OCR}/ch_PP-OCRv4_rec_infer.onnx`),
    feeds: () => [floats('x', [8, 3, 48, 320], 1)],
    batch: '8',
  },
  {
    name: 'PP-OCRv4 det',
    load: () => loadModel(`${OCR}/ch_PP-OCRv4_det_infer.onnx`),
    feeds: () => [floats('x', [1, 3, 320, 320], 2, -2, 2)],
    batch: '1',
  },
  {
    name: 'PP-OCR cls',
    load: () => loadModel(`${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx`),
    feeds: () => [floats('x', [8, 3, 48, 192], 3)],
    batch: '8',
  },
  {
    name: 'Silero VAD v5',
    load: () => loadModel(`${VAD}/silero_vad_v5.onnx`),
    feeds: () => [floats('input', [1, 512], 4, -0.5, 0.5), zeros('state', [2, 1, 128]), sr16k()],
    batch: '1',
  },
  {
    name: 'Silero VAD v6',
    load: () => loadModel(`${VAD}/silero_vad_v6.onnx`),
    feeds: () => [floats('input', [1, 576], 5, -0.5, 0.5), zeros('state', [2, 1, 128]), sr16k()],
    batch: '1',
  },
  {
    name: 'Silero VAD legacy',
    load: () => loadModel(`${VAD}/silero_vad_legacy.onnx`),
    feeds: () => [floats('input', [1, 512], 6, -0.5, 0.5), sr16k(), zeros('h', [2, 1, 64]), zeros('c', [2, 1, 64])],
    batch: '1',
  },
];

interface VariantResult {
  bytes: number;
  quantized: number;
  medianMs: number;
  samplesMs: number[];
  speedup: number;
  cosine: number;
  web: { runs: boolean; cosine?: number; error?: string };
}

interface ModelResult {
  model: string;
  batch: string;
  runsPerSample: number;
  variants: Record<string, VariantResult>;
  notes: string[];
}

function lowestCosine(reference: Record<string, OrtTensor>, candidate: Record<string, OrtTensor>): number {
  let lowest = 1;
  for (const [name, a] of Object.entries(reference)) {
    lowest = Math.min(lowest, cosineSimilarity(a.data as Float32Array, candidate[name].data as Float32Array));
  }
  return lowest;
}

async function benchModel(spec: Spec, web: OrtModule, log: (line: string) => void): Promise<ModelResult> {
  const files: Record<string, Uint8Array> = {};
  const quantized: Record<string, number> = {};
  const notes: string[] = [];
  for (const [variant, options] of Object.entries(VARIANTS)) {
    const model = spec.load();
    if (options === undefined) {
      files[variant] = writeModel(model);
      continue;
    }
    if (variant === 'int8-no-conv' && ![...model.graph.allNodes()].some(({ node }) => node.opType === 'Conv')) continue;
    if (variant === 'int8-ops' && (model.opset('') ?? 1) < 11) {
      notes.push(`int8-ops omitted: the model imports ai.onnx ${model.opset('')} (DynamicQuantizeLinear needs 11)`);
      continue;
    }
    const report = quantizeDynamicInt8(model, options);
    quantized[variant] = report.stats.quantized;
    files[variant] = writeModel(model);
  }
  const names = Object.keys(files);
  const sessions = Object.fromEntries(
    await Promise.all(
      names.map(
        async (v) =>
          [
            v,
            await ModelSession.create(nodeOrt, files[v], {
              threads: THREADS,
              graphOptimization: 'all',
            }),
          ] as const,
      ),
    ),
  );
  const feeds = feedsFor(nodeOrt, spec.feeds());
  const outputs: Record<string, Record<string, OrtTensor>> = {};
  for (const v of names) outputs[v] = await sessions[v].run(feeds);
  // Back-to-back runs per sample so that a sample of a sub-millisecond model is not timer noise.
  const started = performance.now();
  for (let i = 0; i < WARMUP; i++) await sessions.fp32.run(feeds);
  const oneRun = (performance.now() - started) / WARMUP;
  const runsPerSample = Math.max(1, Math.ceil(SAMPLE_MS / Math.max(oneRun, 1e-3)));
  for (const v of names) for (let i = 0; i < WARMUP; i++) await sessions[v].run(feeds);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((v) => [v, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of names) {
      const t0 = performance.now();
      for (let i = 0; i < runsPerSample; i++) await sessions[v].run(feeds);
      samples[v].push((performance.now() - t0) / runsPerSample);
    }
  }
  for (const s of Object.values(sessions)) await s.release();
  // onnxruntime-web: does each file load and run, and how close is it to fp32 there.
  const webOut: Record<string, Record<string, OrtTensor> | string> = {};
  const webFeeds = feedsFor(web, spec.feeds());
  for (const v of names) {
    try {
      const s = await ModelSession.create(web, files[v], {
        threads: 1,
        executionProviders: WASM_EXECUTION_PROVIDERS,
      });
      webOut[v] = await s.run(webFeeds);
      await s.release();
    } catch (error) {
      webOut[v] = (error as Error).message.split('\n')[0];
    }
  }
  const base = median(samples.fp32);
  const variants: Record<string, VariantResult> = {};
  for (const v of names) {
    const w = webOut[v];
    const wRef = webOut.fp32;
    variants[v] = {
      bytes: files[v].length,
      quantized: quantized[v] ?? 0,
      medianMs: round(median(samples[v])),
      samplesMs: samples[v].map(round),
      speedup: round(base / median(samples[v])),
      cosine: round(lowestCosine(outputs.fp32, outputs[v])),
      web:
        typeof w === 'string'
          ? { runs: false, error: w }
          : {
              runs: true,
              cosine: typeof wRef === 'string' ? undefined : round(lowestCosine(wRef, w)),
            },
    };
    log(
      `${spec.name} ${v}: ${variants[v].medianMs} ms (x${variants[v].speedup}), cosine ${variants[v].cosine}, web ${variants[v].web.runs ? 'runs' : 'FAILS'}`,
    );
  }
  return {
    model: spec.name,
    batch: spec.batch,
    runsPerSample,
    variants,
    notes,
  };
}

function markdown(results: ModelResult[], machine: Record<string, unknown>): string {
  const lines = [
    '# Dynamic int8 vs float32',
    '',
    `One run. Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime} (CPU, ${THREADS} thread, graph optimization 'all'), ` +
      `onnxruntime-web ${machine.onnxruntimeWeb} (wasm, 1 thread) for the load-and-run check, ${machine.date}, load average ${machine.loadAverage} at the start. ` +
      `Latency: median of ${ROUNDS} interleaved rounds after ${WARMUP} warm-up runs. Speed-up: fp32 latency / variant latency (above 1 is faster).`,
    '',
    '**fp32-fused**: float32 after `shrink optimize` (MultiHeadAttention, SkipLayerNormalization, Gelu), to show what onnxruntime\'s fused CPU kernels give without int8. ' +
      '**int8**: `shrink quantize --method dynamic-int8` defaults (DynamicQuantizeMatMul; Conv weights int8 per channel, decoded by Cast and Mul, which onnxruntime folds into float weights at load; DynamicQuantizeLSTM). ' +
      '**int8-ops**: standard ops only (DynamicQuantizeLinear + MatMulInteger / ConvInteger), where the opset allows. ' +
      '**int8-no-conv**: int8 with Conv left in float (`--exclude Conv`), for models that have Conv.',
    '',
    'Conv weights decode through Cast and Mul because onnxruntime keeps DequantizeLinear nodes unfolded (to preserve QDQ patterns): ' +
      'with DequantizeLinear the float Conv saw a computed weight and lost its prepacked NCHWc kernels, and Conv-heavy models got slower ' +
      "(PP-OCRv4 det at 'all' in an earlier run: 23.0 ms fp32, 30.5 ms int8). " +
      'ConvInteger (int8-ops) is slower still: onnxruntime CPU has no fast integer convolution for these shapes. ' +
      'PP-OCRv4 rec: its 9 constant-weight MatMuls (a 120-wide attention neck and the [120,6625] classifier) are a small share of its work next to the ' +
      'Conv backbone, so without Conv it is even and with Conv it pays the Conv cost. ' +
      'Silero runs one 512-sample frame per call: its LSTM and Conv work is too small for integer kernels to pay for the activation quantization.',
    '',
    '| model | batch | variant | quantized ops | KiB | latency (ms) | speed-up | cosine vs fp32 (node) | onnxruntime-web |',
    '|---|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    for (const [v, x] of Object.entries(r.variants)) {
      const web = x.web.runs ? `runs${x.web.cosine === undefined ? '' : `, cosine ${x.web.cosine}`}` : `fails: ${x.web.error}`;
      lines.push(
        `| ${r.model} | ${r.batch} | ${v} | ${x.quantized} | ${(x.bytes / 1024).toFixed(0)} | ${x.medianMs} | ${x.speedup.toFixed(2)}x | ${x.cosine} | ${web} |`,
      );
    }
  }
  const notes = results.flatMap((r) => r.notes.map((n) => `- ${r.model}: ${n}`));
  if (notes.length > 0) lines.push('', ...notes);
  return `${lines.join('\n')}\n`;
}

// ---- spam-bert (models/spam-bert): batches of held-out e-mails at 1 and 2 threads ----

const BERT_PATH = 'models/spam-bert/onnx/model.onnx';
const BERT_BATCHES = [1, 8, 32];
const BERT_THREADS = [1, 2];
const BERT_ROUNDS = 25;
const BERT_VARIANTS: Record<string, DynamicInt8Options | 'optimize' | 'rows' | undefined> = {
  fp32: undefined,
  // shrink optimize's fusions (MultiHeadAttention, SkipLayerNormalization, Gelu) on float32: what
  // onnxruntime's fused CPU kernels do for this model without int8.
  'fp32-fused': 'optimize',
  // float32 with push-row-gathers alone (exact): how much of int8's speed-up the row rewrite gives by itself.
  'fp32-rows': 'rows',
  int8: { perChannel: true },
  // int8 with every layer on every token (the default before push-row-gathers).
  'int8-all-rows': { perChannel: true, rowGathers: false },
  // The attention forms compared on every token, like int8-all-rows (the rows rewrite is not theirs).
  'int8-qattention': { perChannel: true, attentionForm: 'qattention', rowGathers: false },
  'int8-no-attention': { perChannel: true, attention: false, rowGathers: false },
};

interface BertTiming {
  batch: number;
  tokens: number;
  threads: number;
  /** Per variant: median and fastest wall-clock ms per run, median process CPU ms per run. */
  latency: Record<string, { median: number; min: number; cpuMedian: number }>;
  speedup: Record<string, { median: number; min: number; cpu: number }>;
}

async function timeBert(files: Record<string, Uint8Array>, feeds: Record<string, OrtTensor>, threads: number): Promise<BertTiming['latency']> {
  const names = Object.keys(files);
  const sessions: Record<string, ModelSession> = {};
  for (const v of names) sessions[v] = await ModelSession.create(nodeOrt, files[v], { threads, graphOptimization: 'all' });
  try {
    for (const v of names) for (let i = 0; i < WARMUP; i++) await sessions[v].run(feeds);
    const started = performance.now();
    await sessions.fp32.run(feeds);
    const runsPerSample = Math.max(1, Math.ceil(SAMPLE_MS / Math.max(performance.now() - started, 1e-3)));
    const wall: Record<string, number[]> = Object.fromEntries(names.map((v) => [v, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(names.map((v) => [v, []]));
    for (let r = 0; r < BERT_ROUNDS; r++) {
      for (const v of names) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        for (let i = 0; i < runsPerSample; i++) await sessions[v].run(feeds);
        wall[v].push((performance.now() - t0) / runsPerSample);
        const used = process.cpuUsage(c0);
        cpu[v].push((used.user + used.system) / 1000 / runsPerSample);
      }
    }
    return Object.fromEntries(names.map((v) => [v, { median: round(median(wall[v])), min: round(Math.min(...wall[v])), cpuMedian: round(median(cpu[v])) }]));
  } finally {
    for (const s of Object.values(sessions)) await s.release();
  }
}

/** Accuracy on the held-out e-mails (batches of 32), agreement and logit cosine against fp32. */
async function classifyBatches(bytes: Uint8Array, batches: Record<string, Tensor>[], labels: number[]): Promise<{ accuracy: number; logits: Float32Array }> {
  const session = await ModelSession.create(nodeOrt, bytes, { threads: 2, graphOptimization: 'all' });
  const logits = new Float32Array(labels.length * 2);
  let at = 0;
  try {
    for (const batch of batches) {
      const out = (await session.run(feedsFor(nodeOrt, Object.values(batch)), ['logits'])).logits.data as Float32Array;
      logits.set(out, at);
      at += out.length;
    }
  } finally {
    await session.release();
  }
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if ((logits[2 * i + 1] > logits[2 * i] ? 1 : 0) === labels[i]) correct++;
  return { accuracy: (100 * correct) / labels.length, logits };
}

export async function benchSpamBert(web: OrtModule, log: (line: string) => void) {
  const data = await spamData(1);
  const files: Record<string, Uint8Array> = {};
  const reports: Record<string, { quantized: number; attention: number; warnings: string[] }> = {};
  for (const [v, options] of Object.entries(BERT_VARIANTS)) {
    const model = loadModel(BERT_PATH);
    if (options === 'optimize') {
      await optimizeModel(model, { level: 'full' });
    } else if (options === 'rows') {
      pushRowGathersPass.run(model, {}, {});
    } else if (options !== undefined) {
      const report = quantizeDynamicInt8(model, options);
      reports[v] = { quantized: report.stats.quantized, attention: report.stats.attention ?? 0, warnings: report.warnings.map((w) => w.message) };
    }
    files[v] = writeModel(model);
  }
  // Fidelity on all held-out e-mails.
  const batches = paddedBatches(data.inputs, 32);
  const scored: Record<string, { accuracy: number; logits: Float32Array }> = {};
  for (const v of Object.keys(files)) scored[v] = await classifyBatches(files[v], batches, data.labels);
  const fidelity = Object.fromEntries(
    Object.keys(files).map((v) => [
      v,
      {
        accuracy: round(scored[v].accuracy),
        agreement: round(agreement(scored.fp32.logits, scored[v].logits)),
        cosine: round(cosineSimilarity(scored.fp32.logits, scored[v].logits)),
      },
    ]),
  );
  for (const [v, f] of Object.entries(fidelity)) log(`spam-bert ${v}: ${f.accuracy}% held-out, agreement ${f.agreement}%, logit cosine ${f.cosine}`);
  // Speed: the first held-out e-mails as one padded batch, every variant in each round.
  const timings: BertTiming[] = [];
  for (const threads of BERT_THREADS) {
    for (const size of BERT_BATCHES) {
      const batch = paddedBatch(data.inputs, 0, size);
      const latency = await timeBert(files, feedsFor(nodeOrt, Object.values(batch)), threads);
      const base = latency.fp32;
      const speedup = Object.fromEntries(
        Object.entries(latency).map(([v, l]) => [v, { median: round(base.median / l.median), min: round(base.min / l.min), cpu: round(base.cpuMedian / l.cpuMedian) }]),
      );
      timings.push({ batch: size, tokens: batch.input_ids.dims[1], threads, latency, speedup });
      log(`spam-bert batch ${size} x ${batch.input_ids.dims[1]}, ${threads} thread(s): ${Object.entries(latency).map(([v, l]) => `${v} ${l.median} ms (x${speedup[v].median})`).join(', ')}`);
    }
  }
  // Where the time goes at batch 8, 1 thread, and what onnxruntime builds of each file.
  const profiles: Record<string, OrtProfile> = {};
  const profileFeeds = feedsFor(nodeOrt, Object.values(paddedBatch(data.inputs, 0, 8)));
  for (const v of Object.keys(files)) profiles[v] = await profileModel(files[v], profileFeeds, { threads: 1, runs: 40 });
  log(`spam-bert profile, batch 8, 1 thread (sum of each node's fastest run): ${Object.entries(profiles).map(([v, p]) => `${v} ${p.totalMs} ms`).join(', ')}`);
  // onnxruntime-web: does each file load and run (batch 8), and its logits against fp32 there.
  const webFeeds = feedsFor(web, Object.values(paddedBatch(data.inputs, 0, 8)));
  const webLogits: Record<string, Float32Array | string> = {};
  for (const v of Object.keys(files)) {
    try {
      const s = await ModelSession.create(web, files[v], { threads: 1, executionProviders: WASM_EXECUTION_PROVIDERS });
      webLogits[v] = (await s.run(webFeeds)).logits.data as Float32Array;
      await s.release();
    } catch (error) {
      webLogits[v] = (error as Error).message.split('\n')[0];
    }
  }
  const ref = webLogits.fp32;
  const webResult = Object.fromEntries(
    Object.entries(webLogits).map(([v, w]) => [v, typeof w === 'string' ? { runs: false, error: w } : { runs: true, cosine: typeof ref === 'string' ? undefined : round(cosineSimilarity(ref, w)) }]),
  );
  return {
    model: BERT_PATH,
    held_out: data.labels.length,
    bytes: Object.fromEntries(Object.entries(files).map(([v, b]) => [v, b.length])),
    quantization: reports,
    fidelity,
    timings,
    profiles,
    web: webResult,
  };
}

function bertMarkdown(bert: Awaited<ReturnType<typeof benchSpamBert>>, machine: Record<string, unknown>): string {
  const lines = [
    `## spam-bert (BERT, 2 layers, hidden 128, 4 heads): dynamic int8 at batch ${BERT_BATCHES.join(' and ')}`,
    '',
    `Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime} at graph optimization 'all', ${machine.date}, load average ${machine.loadAverage} at the start. ` +
      `Both sides run in the same process, interleaved: each of ${BERT_ROUNDS} rounds times every variant once (an average of back-to-back runs over at least ${SAMPLE_MS} ms), with the thread count of the row for all of them (intra-op threads; inter-op 1). ` +
      `Inputs: the first held-out e-mails as one batch padded to the longest (token 0, mask 0). Speed-up: fp32 / variant, of the median wall-clock times, of the fastest rounds, and of the median process CPU time (which a busy machine disturbs least at 1 thread).`,
    '',
    `Fidelity on all ${bert.held_out} held-out e-mails (batches of 32), against the labels and against fp32's logits; onnxruntime-web (wasm, 1 thread) loads and runs each file on batch 8.`,
    '',
    '**fp32-fused**: float32 after `shrink optimize` (MultiHeadAttention, SkipLayerNormalization, Gelu, and push-row-gathers), to show what onnxruntime\'s fused CPU kernels give without int8. ' +
      '**fp32-rows**: float32 with push-row-gathers alone (the pooler reads token 0, so the last layer\'s queries, attention output, LayerNorms and feed-forward block run for that token only; exact): the part of the speed-up that is not int8. ' +
      '**int8**: `shrink quantize --method dynamic-int8` defaults (self-attention as one DynamicQuantizeLinear of the layer input, MatMulIntegerToFloat for Q, K and V, the padding mask folded into one extra Q/K column per head, and com.microsoft MultiHeadAttention without a mask input, which onnxruntime\'s CPU runs on its flash path; the other Linears DynamicQuantizeMatMul with their bias Add folded in; then push-row-gathers, whose rows get their own dynamic activation scales). ' +
      '**int8-all-rows**: the same without push-row-gathers (`rowGathers: false`, every layer on every token: int8\'s own speed-up). ' +
      '**int8-qattention**: int8-all-rows with `attentionForm: \'qattention\'` (the default before: com.microsoft QAttention, one integer GEMM for Q, K and V, the padding mask as mask_index). ' +
      '**int8-no-attention**: int8-all-rows with `attention: false` (the attention ops left as exported).',
    '',
    '| variant | KiB | quantized ops | held-out accuracy | agreement with fp32 | logit cosine | onnxruntime-web |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const [v, f] of Object.entries(bert.fidelity)) {
    const w = bert.web[v] as { runs: boolean; cosine?: number; error?: string };
    const web = w.runs ? `runs${w.cosine === undefined ? '' : `, cosine ${w.cosine}`}` : `fails: ${w.error}`;
    lines.push(`| ${v} | ${(bert.bytes[v] / 1024).toFixed(0)} | ${bert.quantization[v]?.quantized ?? 0} | ${f.accuracy}% | ${f.agreement}% | ${f.cosine} | ${web} |`);
  }
  lines.push('', '| batch x tokens | threads | variant | median ms | fastest ms | CPU ms | speed-up (median) | (fastest) | (CPU) |', '|---|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const t of bert.timings) {
    for (const [v, l] of Object.entries(t.latency)) {
      const s = t.speedup[v];
      lines.push(`| ${t.batch} x ${t.tokens} | ${t.threads} | ${v} | ${l.median} | ${l.min} | ${l.cpuMedian} | ${s.median.toFixed(2)}x | ${s.min.toFixed(2)}x | ${s.cpu.toFixed(2)}x |`);
    }
  }
  const ops = [...new Set(Object.values(bert.profiles).flatMap((p) => p.byOp.filter((o) => o.share >= 0.02).map((o) => o.op)))];
  const variants = Object.keys(bert.profiles);
  lines.push(
    '',
    "Where the time goes (batch 8, 1 thread): onnxruntime's profile (`enableProfiling`, 40 runs), each node's fastest run summed by op type, in ms per run (op types under 2% of every variant left out), and the op types of the model onnxruntime builds at 'all' (`optimizedModelFilePath`):",
    '',
    `| op type | ${variants.join(' | ')} |`,
    `|---|${variants.map(() => '---:').join('|')}|`,
    ...ops.map((op) => `| ${op} | ${variants.map((v) => bert.profiles[v].byOp.find((o) => o.op === op)?.ms ?? '').join(' | ')} |`),
    `| **total** | ${variants.map((v) => `**${bert.profiles[v].totalMs}**`).join(' | ')} |`,
    '',
    ...variants.map((v) => `- ${v} as onnxruntime builds it: ${Object.entries(bert.profiles[v].built).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`).join(', ')}`),
  );
  const fp32 = bert.profiles.fp32;
  // The analysis of integer vs float work is of int8 on every token (the rows rewrite is not int8).
  const int8 = bert.profiles['int8-all-rows'];
  const separate = bert.profiles['int8-no-attention'];
  if (fp32 !== undefined && int8 !== undefined && separate !== undefined) {
    const integer = separate.byOp.find((o) => o.op === 'DynamicQuantizeMatMul')?.ms ?? 0;
    const rest = separate.totalMs - integer;
    lines.push(
      '',
      `In the profile int8 on every token (int8-all-rows) is ${round(fp32.totalMs / int8.totalMs)}x fp32 (int8-no-attention ${round(fp32.totalMs / separate.totalMs)}x). In int8-no-attention, where each op is separate, the integer products (DynamicQuantizeMatMul) take ${integer} ms; the other ${round(rest)} ms are float work no onnxruntime CPU kernel does in integers ` +
        `(the attention products Q.K^T and P.V, Softmax, the head Transposes, LayerNormalization, GELU, the residual and mask Adds, the embedding Gathers). ` +
        `Even if the integer products took no time, int8 would be ${round(fp32.totalMs / rest)}x fp32 here: with hidden size 128 and 128 tokens the attention products are as large a share as the linear layers' products are small.`,
    );
    // The default int8: what float work is left, and what 2x would ask of the integer products.
    const integerOps = ['DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'DynamicQuantizeLinear'];
    const integerMs = int8.byOp.filter((o) => integerOps.includes(o.op)).reduce((a, o) => a + o.ms, 0);
    const floatMs = int8.totalMs - integerMs;
    const top = int8.byOp.filter((o) => !integerOps.includes(o.op) && o.share >= 0.02).map((o) => `${o.op} ${o.ms}`);
    lines.push(
      '',
      `In int8 on every token (int8-all-rows) the integer products and their input quantization take ${round(integerMs)} ms and float work ${round(floatMs)} ms (${top.join(', ')}). ` +
        `2x fp32 is ${round(fp32.totalMs / 2)} ms: the integer products would have to take ${round(fp32.totalMs / 2 - floatMs)} ms, ${round(integerMs / Math.max(fp32.totalMs / 2 - floatMs, 1e-3))}x less than they do.`,
    );
    const rows = bert.profiles['fp32-rows'];
    const shipped = bert.profiles.int8;
    if (rows !== undefined && shipped !== undefined) {
      lines.push(
        '',
        `The default int8 also computes the last layer for the pooled token only (push-row-gathers): ${shipped.totalMs} ms in the profile, ${round(fp32.totalMs / shipped.totalMs)}x fp32, and ${round(rows.totalMs / shipped.totalMs)}x fp32-rows, the float model with the same rewrite (${rows.totalMs} ms).`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

// ---- a BERT-base-shaped encoder (random weights): the same forms at real transformer sizes ----

const BASE = { layers: 2, hidden: 768, heads: 12, inner: 3072, batch: 8, tokens: 128 };

export async function benchBertBase(log: (line: string) => void) {
  const files: Record<string, Uint8Array> = {};
  for (const [v, options] of Object.entries(BERT_VARIANTS)) {
    // The encoder built here returns every token (no pooler): the rows rewrite has nothing to move.
    if (typeof options === 'string' || v === 'int8-all-rows') continue;
    const model = bertEncoder(BASE.layers, BASE.hidden, BASE.heads, BASE.inner);
    if (options !== undefined) quantizeDynamicInt8(model, options);
    files[v] = writeModel(model);
  }
  const mask = new BigInt64Array(BASE.batch * BASE.tokens).fill(1n);
  // Rows padded by 0, 8, ..., 56 tokens, as a batch of different lengths is.
  for (let row = 0; row < BASE.batch; row++) for (let t = BASE.tokens - 8 * row; t < BASE.tokens; t++) mask[row * BASE.tokens + t] = 0n;
  const feeds = feedsFor(nodeOrt, [floats('x', [BASE.batch, BASE.tokens, BASE.hidden], 31), Tensor.fromArray('attention_mask', DataType.INT64, [BASE.batch, BASE.tokens], mask)]);
  const cosine: Record<string, number> = {};
  const reference = await ModelSession.create(nodeOrt, files.fp32, { threads: 2, graphOptimization: 'all' });
  const expected = (await reference.run(feeds))[reference.outputNames[0]].data as Float32Array;
  await reference.release();
  for (const v of Object.keys(files)) {
    const s = await ModelSession.create(nodeOrt, files[v], { threads: 2, graphOptimization: 'all' });
    cosine[v] = round(cosineSimilarity(expected, (await s.run(feeds))[s.outputNames[0]].data as Float32Array));
    await s.release();
  }
  const timings = [];
  for (const threads of BERT_THREADS) {
    const latency = await timeBert(files, feeds, threads);
    const speedup = Object.fromEntries(Object.entries(latency).map(([v, l]) => [v, { median: round(latency.fp32.median / l.median), min: round(latency.fp32.min / l.min), cpu: round(latency.fp32.cpuMedian / l.cpuMedian) }]));
    timings.push({ threads, latency, speedup });
    log(`BERT-base-shaped, ${threads} thread(s): ${Object.entries(latency).map(([v, l]) => `${v} ${l.median} ms (x${speedup[v].median}, CPU x${speedup[v].cpu})`).join(', ')}`);
  }
  return { shape: BASE, bytes: Object.fromEntries(Object.entries(files).map(([v, b]) => [v, b.length])), cosine, timings };
}

function bertBaseMarkdown(base: Awaited<ReturnType<typeof benchBertBase>>): string {
  const s = base.shape;
  const lines = [
    `## A BERT-base-shaped encoder (${s.layers} layers, hidden ${s.hidden}, ${s.heads} heads, feed-forward ${s.inner}, ReLU; random weights): batch ${s.batch} x ${s.tokens} tokens`,
    '',
    `Built in code (bench/lib/bert-encoder.ts) as torch.onnx.export lays out BERT, with an additive padding mask (rows padded by 0-56 tokens). Random weights: no accuracy, only the output cosine against fp32. Timed as above (${BERT_ROUNDS} interleaved rounds).`,
    '',
    '| threads | variant | MiB | cosine vs fp32 | median ms | fastest ms | CPU ms | speed-up (median) | (fastest) | (CPU) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const t of base.timings) {
    for (const [v, l] of Object.entries(t.latency)) {
      const x = t.speedup[v];
      lines.push(`| ${t.threads} | ${v} | ${(base.bytes[v] / 2 ** 20).toFixed(1)} | ${base.cosine[v]} | ${l.median} | ${l.min} | ${l.cpuMedian} | ${x.median.toFixed(2)}x | ${x.min.toFixed(2)}x | ${x.cpu.toFixed(2)}x |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The spam-bert rows alone (bench/results/quantize-dynamic-bert.*): `npm run bench -- quantize-dynamic-bert`. */
export const quantizeDynamicBertBench: Bench = {
  name: 'quantize-dynamic-bert',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo({ web: true });
    const web = await loadWebOrt();
    const bert = await benchSpamBert(web, log);
    const base = await benchBertBase(log);
    return {
      json: { machine, threads: BERT_THREADS, batches: BERT_BATCHES, rounds: BERT_ROUNDS, spam_bert: bert, bert_base_shaped: base },
      markdown: `# Dynamic int8 vs float32: spam-bert and a BERT-base-shaped encoder\n\n${bertMarkdown(bert, machine)}\n${bertBaseMarkdown(base)}`,
    };
  },
};

export const quantizeDynamicBench: Bench = {
  name: 'quantize-dynamic',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo({ web: true });
    const web = await loadWebOrt();
    const results: ModelResult[] = [];
    for (const spec of MODELS) results.push(await benchModel(spec, web, log));
    const bert = await benchSpamBert(web, log);
    const base = await benchBertBase(log);
    return {
      json: { machine, threads: THREADS, rounds: ROUNDS, results, spam_bert: bert, bert_base_shaped: base },
      markdown: `${markdown(results, machine)}\n${bertMarkdown(bert, machine)}\n${bertBaseMarkdown(base)}`,
    };
  },
};
