// Static int8 (QDQ) against float32, side by side in one run under onnxruntime-node (CPU, 1 and 2
// threads, graph optimization 'all': the level at which onnxruntime fuses DequantizeLinear -> Conv ->
// QuantizeLinear into QLinearConv, so 'basic' would time float Convs wrapped in Q/DQ instead).
// Models, each with the default command's settings unless the row says otherwise:
//   PP-OCRv4 det  at 640x640, calibrated on the first 4, 8 and 16 calibration pages of
//                 scripts/make-det-pages.ts (one row each: more data must not make it worse),
//                 measured on its 16 held-out pages (other fonts, texts, papers, seed): text-mask IoU
//                 (probability maps > 0.3, src/eval/ocr-det.ts) against float32, mean and lowest;
//                 the same with `--calibrator measured` (the rule per activation by measured output
//                 error, calibration/measured-choice.ts) and with `--calibrator expected-minmax`;
//   PP-OCRv4 rec  batch 8 of rendered lines (width 320), Conv only, minmax, per-channel,
//                 calibrated on every third line of the committed fixtures (test/quant-static-int8-rec.test.ts);
//   PP-OCR cls    batch 8 of lines resized to 48x192, calibrated on 64 training lines of
//                 scripts/make-rec-corpus.ts, measured on its 200 held-out lines (direction agreement);
//                 quantized as the CLI does, with latency placement (src/pipeline/latency-placement.ts:
//                 the layers onnxruntime runs slower in int8 here stay float) profiled on the timed batch.
// QUANTIZE_STATIC_ROWS=<substrings of row names, separated by |> runs only those rows and merges them into the
// committed bench/results/quantize-static.json (rows of the same name replaced, the others kept
// with the load and date they were measured at).
// Latency: median of interleaved rounds (each round times fp32 and int8 once), each sample an
// average of back-to-back runs over at least SAMPLE_MS, at each thread count. Speed-up: fp32
// latency / int8 latency. Fidelity: lowest cosine over outputs against fp32 on the timed input, in
// onnxruntime-node at 'all' (the fused kernels) and in onnxruntime-web (wasm), where the int8 file
// must also load; and the held-out measure where the row has one.
import { cosineSimilarity } from '../src/eval/metrics.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Sample, SampleSource } from '../src/eval/samples.js';
import { quantizeStaticInt8, type StaticInt8Options } from '../src/methods/quantize/static-int8.js';
import { profileNodes } from '../src/node/node-profile.js';
import { quantize } from '../src/pipeline/quantize.js';
import type { LatencyPlacementReport } from '../src/pipeline/latency-placement.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { OrtModule, OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession } from '../src/runtime/session.js';
import { textMaskIou } from '../src/eval/ocr-det.js';
import { loadOcrFixtures, type OcrLine, recInput } from '../test/helpers/ocr-lines.js';
import { loadClsLines } from './lib/cls-lines.js';
import { DET_PAGES, ensureDetPages, loadDetPages } from './lib/det-pages.js';
import { ensureRecCorpus } from './lib/rec-corpus.js';
import { OCR, feedsFor } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const THREADS = [1, 2] as const;
const ROUNDS = 25;
const WARMUP = 3;
const SAMPLE_MS = 40;
/** Held-out cls lines measured (all of scripts/make-rec-corpus.ts's held-out set). */
const CLS_HELD_OUT = 200;

type Fixtures = Awaited<ReturnType<typeof loadOcrFixtures>>;

interface Spec {
  name: string;
  file: string;
  batch: string;
  /** What the int8 file was built with, for the table. */
  config: string;
  options: Omit<StaticInt8Options, 'calibration'>;
  calibration: (fixtures: Fixtures) => Promise<{ tensors: Tensor[]; description: string }>;
  input: (fixtures: Fixtures) => Promise<Tensor>;
  /** Data calibration never saw, and what is measured on it against fp32. */
  heldOut?: () => Promise<{ inputs: Tensor[]; measure: 'text-mask IoU' | 'direction agreement'; description: string }>;
  /** Why the measured ratio is what it is (filled in from the committed measurements). */
  why: string;
  /** Quantize through the pipeline with latency placement profiled on the timed input, as the CLI does. */
  latencyPlacement?: boolean;
}

/** The first eight lines whose recogniser input is 320 wide, so they stack into one batch. */
const batchOf8 = (lines: readonly OcrLine[]) => lines.filter((l) => l.inputWidth === 320).slice(0, 8);
/** Every third line, as calibration (the timed batch is among them only by chance of order). */
const everyThird = (lines: readonly OcrLine[]) => lines.filter((_, i) => i % 3 === 0);

const DET_WHY =
  'Its time is Conv at 640x640 (a PPLCNet backbone and a DB neck/head): every Conv becomes a QLinearConv (uint8 activations x int8 per-channel weights), a quarter of the memory traffic. Each hard-swish x * HardSigmoid(x) runs as QLinearAdd (x + 3 quantized on [0, 6], which clips) and QLinearMul (src/methods/quantize/qdq-hardsigmoid.ts) instead of a float DequantizeLinear -> HardSigmoid -> QuantizeLinear round trip (34 of them). What stays float is the head\'s two ConvTranspose (no int8 kernel in onnxruntime\'s CPU provider) and the final Sigmoid.';
const CLS_WHY =
  'Tiny (565 KiB, about 1 ms per line) and made of MobileNetV3 blocks at 48x192 and below: the int8 kernels (QLinearConv on small maps, QLinearMul with [N,C,1,1] broadcasts in the SE blocks, uint8 MaxPool) are not faster than the NCHWc-blocked float Convs with fused activations that fp32 gets at `all`. The hard-swish round trips are gone (as det), which took it from 0.68x to near parity; `shrink quantize` times the result and warns (slower-than-original) when it is slower.';

/**
 * The command's defaults (what `shrink quantize --method static-int8 --calib D` passes): minmax
 * ranges, bias correction when the data is real and 4+ samples, the float prefix by share of the
 * multiply-accumulates.
 */
const COMMAND_DEFAULTS: Spec['options'] = { biasCorrection: 'auto', floatPrefix: 'auto' };

/**
 * PP-OCRv4 det with the command's defaults (or `--calibrator expected-minmax` / `measured`, or
 * `--float-prefix N`), calibrated on the first `pages` calibration pages. With 4 pages
 * expected-minmax is minmax, so it runs from 8. The rows with another calibrator are every layer
 * int8 (`--float-prefix 0`: they were measured before the float prefix was the default).
 */
const detSpec = (pages: number, calibrator: 'minmax' | 'expected-minmax' | 'measured', floatPrefix: number | 'auto' = 'auto'): Spec => ({
  name: `PP-OCRv4 det (${pages} pages${calibrator === 'minmax' ? '' : `, ${calibrator}`}${floatPrefix !== 'auto' ? `, --float-prefix ${floatPrefix}` : ''})`,
  file: `${OCR}/ch_PP-OCRv4_det_infer.onnx`,
  batch: '1 x 640x640',
  config:
    (calibrator === 'minmax'
      ? 'default (every op type, minmax, per-channel, bias correction on the first 8 samples)'
      : `--calibrator ${calibrator} (every op type, per-channel, bias correction on the first 8 samples)`) +
    (floatPrefix === 'auto'
      ? ' + the float prefix by default (--float-prefix auto: the first weighted layers holding <= 12% of the multiply-accumulates float32, 10 here)'
      : floatPrefix === 0
        ? ' + --float-prefix 0 (every layer int8: the default before the float prefix)'
        : ` + --float-prefix ${floatPrefix} (the first ${floatPrefix} weighted layers and the nodes before the next float32)`),
  options: { ...COMMAND_DEFAULTS, calibrator, floatPrefix },
  calibration: async () => ({ tensors: (await loadDetPages('calib')).slice(0, pages), description: `the first ${pages} calibration pages (${DET_PAGES}/calib.npz), one per run` }),
  input: async () => (await loadDetPages('heldout'))[0],
  heldOut: async () => ({ inputs: await loadDetPages('heldout'), measure: 'text-mask IoU', description: '16 held-out pages' }),
  why: DET_WHY,
});

/** Calibration page counts the det rows use: the result must not depend on how much data there is. */
const DET_PAGE_COUNTS = [4, 8, 16];

const MODELS: Spec[] = [
  ...DET_PAGE_COUNTS.map((pages) => detSpec(pages, 'minmax')),
  ...DET_PAGE_COUNTS.map((pages) => detSpec(pages, 'minmax', 0)),
  ...DET_PAGE_COUNTS.map((pages) => detSpec(pages, 'measured', 0)),
  ...DET_PAGE_COUNTS.filter((pages) => pages > 4).map((pages) => detSpec(pages, 'expected-minmax', 0)),
  ...DET_PAGE_COUNTS.map((pages) => detSpec(pages, 'minmax', 7)),
  {
    name: 'PP-OCRv4 rec',
    file: `${OCR}/ch_PP-OCRv4_rec_infer.onnx`,
    batch: '8 x 48x320',
    config: 'Conv only, minmax, per-channel',
    options: { calibrator: 'minmax', perChannel: true, opTypes: ['Conv'] },
    calibration: async ({ lines }) => ({ tensors: everyThird(lines).map((l) => recInput([l])), description: 'every third rendered line (20), one per run' }),
    input: async ({ lines }) => recInput(batchOf8(lines)),
    why: 'Conv only (the configuration that keeps every decoded line): the Conv backbone becomes QLinearConv and carries most of the time; the SVTR neck (attention MatMuls, LayerNormalization, the elementwise Add/Mul), the hard-swish Muls and the [120,6625] classifier stay float, so each quantized Conv is wrapped in Q/DQ at its float neighbours.',
  },
  {
    name: 'PP-OCR cls',
    file: `${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx`,
    batch: '8 x 48x192',
    config: 'the CLI default (every op type, minmax, per-channel; bias correction where the default turns it on; latency placement profiled on the timed batch)',
    options: COMMAND_DEFAULTS,
    latencyPlacement: true,
    calibration: async () => ({ tensors: await Promise.all(Array.from({ length: 8 }, (_, i) => loadClsLines('train', i * 8, 8))), description: '64 training lines of the rendered corpus, 8 per run' }),
    input: async () => loadClsLines('heldout', 0, 8),
    heldOut: async () => ({ inputs: await Promise.all(Array.from({ length: CLS_HELD_OUT / 8 }, (_, i) => loadClsLines('heldout', i * 8, 8))), measure: 'direction agreement', description: `${CLS_HELD_OUT} held-out lines` }),
    why: CLS_WHY,
  },
];

function samplesOf(tensors: readonly Tensor[], description: string): SampleSource {
  return {
    inputs: ['x'],
    count: tensors.length,
    description,
    async *[Symbol.asyncIterator]() {
      for (const [index, x] of tensors.entries()) yield { index, where: `${description} ${index}`, inputs: { x } } satisfies Sample;
    },
  };
}

function lowestCosine(reference: Record<string, OrtTensor>, candidate: Record<string, OrtTensor>): number {
  let lowest = 1;
  for (const [name, a] of Object.entries(reference)) {
    lowest = Math.min(lowest, cosineSimilarity(a.data as Float32Array, candidate[name].data as Float32Array));
  }
  return lowest;
}

function largestDifference(reference: Record<string, OrtTensor>, candidate: Record<string, OrtTensor>): number {
  let largest = 0;
  for (const [name, a] of Object.entries(reference)) {
    const x = a.data as Float32Array;
    const y = candidate[name].data as Float32Array;
    for (let i = 0; i < x.length; i++) largest = Math.max(largest, Math.abs(x[i] - y[i]));
  }
  return largest;
}

interface VariantResult {
  bytes: number;
  /** Median latency per thread count ('1', '2'). */
  medianMs: Record<string, number>;
  samplesMs: Record<string, number[]>;
  /** Nodes after onnxruntime's 'all' optimizations, by kind, from its optimized model file. */
  qlinearKernels: number;
  remainingQdq: number;
  /** Op types that the remaining DequantizeLinear nodes feed: the float islands between int8 kernels. */
  dequantizedInto: Record<string, number>;
}

interface HeldOutResult {
  measure: string;
  description: string;
  /** Mean and lowest over samples (IoU per page; agreement over all lines). */
  mean: number;
  lowest: number;
}

interface ModelResult {
  model: string;
  batch: string;
  config: string;
  calibration: string;
  quantizeSeconds: number;
  nodesQuantized: number;
  runsPerSample: Record<string, number>;
  fp32: VariantResult;
  int8: VariantResult;
  /** fp32 median / int8 median per thread count: above 1, int8 is faster. */
  speedup: Record<string, number>;
  cosine: number;
  /** Largest absolute output difference against fp32 (cosine hides a 2-class softmax's changes). */
  maxAbsDiff: number;
  heldOut?: HeldOutResult;
  /** 1-minute load average when its timing started and ended (the machine is shared). */
  load: [number, number];
  /** When the row was measured (rows of a QUANTIZE_STATIC_ROWS run are merged into older ones). */
  date?: string;
  /** Latency placement (rows quantized as the CLI does): layers kept float for speed, what was timed. */
  placement?: LatencyPlacementReport;
  web: { runs: boolean; cosine?: number; error?: string };
  warnings: string[];
  why: string;
}

/** Counts what onnxruntime made of the file at 'all': fused integer kernels and leftover Q/DQ. */
async function fusedCounts(bytes: Uint8Array, scratch: string): Promise<Omit<VariantResult, 'bytes' | 'medianMs' | 'samplesMs'>> {
  const file = path.join(scratch, 'optimized.onnx');
  const session = await ModelSession.create(nodeOrt, bytes, { threads: 1, graphOptimization: 'all', optimizedModelFilePath: file });
  await session.release();
  const graph = loadModel(file).graph;
  const nodes = graph.nodes.map((node) => node.opType);
  const dequantizedInto: Record<string, number> = {};
  for (const node of graph.nodes) {
    if (node.opType !== 'DequantizeLinear') continue;
    for (const user of graph.consumers(node.outputs[0])) dequantizedInto[user.opType] = (dequantizedInto[user.opType] ?? 0) + 1;
  }
  return {
    dequantizedInto,
    qlinearKernels: nodes.filter((op) => op.startsWith('QLinear') || op === 'MatMulIntegerToFloat' || op === 'DynamicQuantizeMatMul').length,
    remainingQdq: nodes.filter((op) => op === 'QuantizeLinear' || op === 'DequantizeLinear').length,
  };
}

/** The held-out measure of int8 against fp32, both at 'all' (the fused kernels a user runs). */
async function measureHeldOut(spec: Spec, files: { fp32: Uint8Array; int8: Uint8Array }): Promise<HeldOutResult | undefined> {
  if (spec.heldOut === undefined) return undefined;
  const { inputs, measure, description } = await spec.heldOut();
  const sessions = {
    fp32: await ModelSession.create(nodeOrt, files.fp32, { threads: 2, graphOptimization: 'all' }),
    int8: await ModelSession.create(nodeOrt, files.int8, { threads: 2, graphOptimization: 'all' }),
  };
  const scores: number[] = [];
  let agree = 0;
  let lines = 0;
  for (const input of inputs) {
    const feeds = feedsFor(nodeOrt, [input]);
    const [a, b] = [await sessions.fp32.run(feeds), await sessions.int8.run(feeds)];
    const name = Object.keys(a)[0];
    const x = a[name].data as Float32Array;
    const y = b[name].data as Float32Array;
    if (measure === 'text-mask IoU') scores.push(textMaskIou(x, y));
    else {
      // [N, 2] direction probabilities: the same class wins.
      for (let i = 0; i < x.length; i += 2) {
        agree += Number(x[i] >= x[i + 1] === y[i] >= y[i + 1]);
        lines++;
      }
    }
  }
  await sessions.fp32.release();
  await sessions.int8.release();
  if (measure === 'text-mask IoU') return { measure, description, mean: round(scores.reduce((s, v) => s + v, 0) / scores.length), lowest: round(Math.min(...scores)) };
  return { measure, description, mean: round(agree / lines), lowest: round(agree / lines) };
}

async function benchModel(spec: Spec, web: OrtModule, scratch: string, log: (line: string) => void): Promise<ModelResult> {
  const fixtures = await loadOcrFixtures();
  const fp32Bytes = writeModel(loadModel(spec.file));
  const model: Model = loadModel(spec.file);
  const { tensors, description } = await spec.calibration(fixtures);
  const input = await spec.input(fixtures);
  const started = performance.now();
  const calibration = samplesOf(tensors, description);
  let report: { stats: Record<string, number>; warnings: { code: string }[] };
  let int8Bytes: Uint8Array;
  let placement: LatencyPlacementReport | undefined;
  if (spec.latencyPlacement === true) {
    // As `shrink quantize` runs it: the pipeline, with the profiler on the timed batch (its first sample).
    // biasCorrection left to the command's default ('auto').
    const latencyPlacement = { inputs: { x: input }, profile: (m: Uint8Array, feeds: Record<string, Tensor>) => profileNodes(m, feeds, { runs: 10 }) };
    const quantized = await quantize(model, { method: 'static-int8', calibration, latencyPlacement }, { ort: nodeOrt, threads: os.cpus().length });
    report = { stats: { nodesQuantized: quantized.report.nodes.quantized }, warnings: quantized.report.warnings };
    int8Bytes = writeModel(quantized.model);
    placement = quantized.report.placement;
    log(`${spec.name}: placement kept ${placement?.kept_float.length ?? 0} layers float (${placement?.reason ?? JSON.stringify(placement?.timed)})`);
  } else {
    report = await quantizeStaticInt8(model, { ...spec.options, calibration, threads: os.cpus().length }, { ort: nodeOrt });
    int8Bytes = writeModel(model);
  }
  const quantizeSeconds = (performance.now() - started) / 1000;
  const files = { fp32: fp32Bytes, int8: int8Bytes };
  log(`${spec.name}: ${report.stats.nodesQuantized} nodes quantized in ${quantizeSeconds.toFixed(1)} s`);

  const feeds = feedsFor(nodeOrt, [input]);
  const samples = { fp32: {} as Record<string, number[]>, int8: {} as Record<string, number[]> };
  const runsPerSample: Record<string, number> = {};
  let outputs: Record<'fp32' | 'int8', Record<string, OrtTensor>> | undefined;
  const loadBefore = os.loadavg()[0];
  for (const threads of THREADS) {
    const sessions = {
      fp32: await ModelSession.create(nodeOrt, files.fp32, { threads, graphOptimization: 'all' }),
      int8: await ModelSession.create(nodeOrt, files.int8, { threads, graphOptimization: 'all' }),
    };
    outputs ??= { fp32: await sessions.fp32.run(feeds), int8: await sessions.int8.run(feeds) };
    const warmStart = performance.now();
    for (let i = 0; i < WARMUP; i++) await sessions.fp32.run(feeds);
    const oneRun = (performance.now() - warmStart) / WARMUP;
    for (let i = 0; i < WARMUP; i++) await sessions.int8.run(feeds);
    // Back-to-back runs per sample so that a short run is not timer noise.
    const runs = Math.max(1, Math.ceil(SAMPLE_MS / Math.max(oneRun, 1e-3)));
    runsPerSample[threads] = runs;
    samples.fp32[threads] = [];
    samples.int8[threads] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of ['fp32', 'int8'] as const) {
        const t0 = performance.now();
        for (let i = 0; i < runs; i++) await sessions[v].run(feeds);
        samples[v][threads].push((performance.now() - t0) / runs);
      }
    }
    await sessions.fp32.release();
    await sessions.int8.release();
  }
  const load: [number, number] = [round(loadBefore), round(os.loadavg()[0])];
  const heldOut = await measureHeldOut(spec, files);

  // onnxruntime-web (wasm): the int8 file must load and run; its output against fp32 there.
  let webResult: ModelResult['web'];
  try {
    const webFeeds = feedsFor(web, [input]);
    const runWeb = async (bytes: Uint8Array) => {
      const s = await ModelSession.create(web, bytes, { threads: 1, executionProviders: WASM_EXECUTION_PROVIDERS });
      const out = await s.run(webFeeds);
      await s.release();
      return out;
    };
    const [a, b] = [await runWeb(files.fp32), await runWeb(files.int8)];
    webResult = { runs: true, cosine: round(lowestCosine(a, b)) };
  } catch (error) {
    webResult = { runs: false, error: (error as Error).message.split('\n')[0] };
  }

  const perThreads = (f: (t: number) => number) => Object.fromEntries(THREADS.map((t) => [String(t), round(f(t))]));
  const variant = async (v: 'fp32' | 'int8'): Promise<VariantResult> => ({
    bytes: files[v].length,
    medianMs: perThreads((t) => median(samples[v][t])),
    samplesMs: Object.fromEntries(THREADS.map((t) => [String(t), samples[v][t].map(round)])),
    ...(await fusedCounts(files[v], scratch)),
  });
  const out = outputs as Record<'fp32' | 'int8', Record<string, OrtTensor>>;
  const result: ModelResult = {
    model: spec.name,
    batch: spec.batch,
    config: spec.config,
    calibration: description,
    quantizeSeconds: round(quantizeSeconds),
    nodesQuantized: report.stats.nodesQuantized,
    runsPerSample,
    fp32: await variant('fp32'),
    int8: await variant('int8'),
    speedup: perThreads((t) => median(samples.fp32[t]) / median(samples.int8[t])),
    cosine: round(lowestCosine(out.fp32, out.int8)),
    maxAbsDiff: round(largestDifference(out.fp32, out.int8)),
    ...(heldOut === undefined ? {} : { heldOut }),
    load,
    date: new Date().toISOString().slice(0, 16).replace('T', ' '),
    ...(placement === undefined ? {} : { placement }),
    web: webResult,
    warnings: report.warnings.map((w) => w.code),
    why: spec.why,
  };
  log(
    `${spec.name}: ${THREADS.map((t) => `${t} thread${t > 1 ? 's' : ''}: fp32 ${result.fp32.medianMs[t]} ms, int8 ${result.int8.medianMs[t]} ms (x${result.speedup[t]})`).join('; ')}, ` +
      `load ${load[0]} -> ${load[1]}, ${result.int8.qlinearKernels} QLinear kernels, ${result.int8.remainingQdq} Q/DQ left, cosine ${result.cosine}` +
      `${heldOut === undefined ? '' : `, ${heldOut.measure} ${heldOut.mean} (lowest ${heldOut.lowest}) on ${heldOut.description}`}, web ${webResult.runs ? `runs (cosine ${webResult.cosine})` : `FAILS: ${webResult.error}`}`,
  );
  return result;
}

function markdown(results: ModelResult[], machine: Record<string, unknown>, merged: boolean): string {
  const lines = [
    '# Static int8 vs float32',
    '',
    `${merged ? 'Rows from more than one run (QUANTIZE_STATIC_ROWS reran some; each row has its load, and its date below); the machine as of the latest' : 'One run'}. Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime} (CPU, ${THREADS.join(' and ')} intra-op threads for both sides, graph optimization 'all'), ` +
      `onnxruntime-web ${machine.onnxruntimeWeb} (wasm, 1 thread) for the load-and-run check, ${machine.date}, load average ${machine.loadAverage} at the start. ` +
      `Latency: median of ${ROUNDS} interleaved rounds (fp32 then int8 in each) after ${WARMUP} warm-up runs, at each thread count. Speed-up: fp32 latency / int8 latency (above 1 is faster).`,
    '',
    'int8: `quantizeStaticInt8` (QDQ), what `shrink quantize IN -o OUT --method static-int8 --calib D` runs with the row\'s settings. ' +
      'fp32: the original file. Held-out: data that calibration never saw (other fonts, texts and seed: scripts/make-det-pages.ts, scripts/make-rec-corpus.ts). ' +
      'QLinear kernels / Q/DQ left: node counts in the model onnxruntime builds at `all` (its optimized model file).',
    '',
    '| model | input | int8 config | calibration | held-out | nodes quantized | KiB fp32 / int8 | fp32 1t (ms) | int8 1t (ms) | speed-up 1t | fp32 2t (ms) | int8 2t (ms) | speed-up 2t | load during timing | QLinear kernels | Q/DQ left | cosine vs fp32 | held-out fidelity (mean / lowest) | quantize (s) | onnxruntime-web |',
    '|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---|',
  ];
  for (const r of results) {
    const web = r.web.runs ? `runs, cosine ${r.web.cosine}` : `fails: ${r.web.error}`;
    const held = r.heldOut === undefined ? 'the timed batch (fixtures)' : r.heldOut.description;
    const fidelity = r.heldOut === undefined ? '' : r.heldOut.measure === 'text-mask IoU' ? `IoU ${r.heldOut.mean} / ${r.heldOut.lowest}` : `${(r.heldOut.mean * 100).toFixed(1)}% same direction`;
    const timing = THREADS.map((t) => `${r.fp32.medianMs[t]} | ${r.int8.medianMs[t]} | ${r.speedup[t].toFixed(2)}x`).join(' | ');
    lines.push(
      `| ${r.model} | ${r.batch} | ${r.config} | ${r.calibration} | ${held} | ${r.nodesQuantized} | ${(r.fp32.bytes / 1024).toFixed(0)} / ${(r.int8.bytes / 1024).toFixed(0)} | ` +
        `${timing} | ${r.load[0]} -> ${r.load[1]} | ${r.int8.qlinearKernels} | ${r.int8.remainingQdq} | ${r.cosine} | ${fidelity} | ${r.quantizeSeconds} | ${web} |`,
    );
  }
  const islands = (r: ModelResult) =>
    Object.entries(r.int8.dequantizedInto)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ');
  const placed = (r: ModelResult) =>
    r.placement === undefined
      ? ''
      : ` Latency placement: ${r.placement.kept_float.length === 0 ? `all-int8 kept (${r.placement.reason ?? 'the mixed model timed no faster'})` : `${r.placement.kept_float.length} layers kept float32 (${r.placement.kept_candidate ?? r.placement.proposed.map((p) => p.op).join(', ')}), timed ${r.placement.timed?.int8_ms.toFixed(2)} -> ${r.placement.timed?.mixed_ms.toFixed(2)} ms at 1 thread`}${(r.placement.candidates ?? []).some((c) => c.timed_ms !== undefined) ? ` (candidates timed: ${(r.placement.candidates ?? []).map((c) => `${c.name} ${c.timed_ms?.toFixed(2)} ms`).join('; ')})` : ''}.`;
  const whys = results.map((r) => `- **${r.model}** (${THREADS.map((t) => `${r.speedup[t].toFixed(2)}x at ${t}t`).join(', ')}${r.date === undefined ? '' : `, measured ${r.date} UTC`}): ${r.why}${placed(r)} Float ops fed by the remaining DequantizeLinear: ${islands(r) || 'none'}.`);
  lines.push('', ...whys);
  return `${lines.join('\n')}\n`;
}

const COMMITTED = 'bench/results/quantize-static.json';

/** The committed rows in their order, those rerun replaced, new ones appended (in MODELS order). */
function mergedRows(rerun: readonly ModelResult[], log: (line: string) => void): ModelResult[] {
  if (!fs.existsSync(COMMITTED)) return [...rerun];
  const committed = (JSON.parse(fs.readFileSync(COMMITTED, 'utf8')) as { results: ModelResult[] }).results;
  const byName = new Map(rerun.map((r) => [r.model, r]));
  const rows = committed.map((r) => byName.get(r.model) ?? r);
  for (const r of rerun) if (!committed.some((c) => c.model === r.model)) rows.push(r);
  log(`merged ${rerun.length} rerun row(s) into the ${committed.length} of ${COMMITTED}`);
  return rows;
}

export const quantizeStaticBench: Bench = {
  name: 'quantize-static',
  async run(log): Promise<BenchOutput> {
    ensureDetPages(DET_PAGES, log);
    ensureRecCorpus(undefined, log);
    const machine = machineInfo({ web: true });
    const web = await loadWebOrt();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bench-static-'));
    const results: ModelResult[] = [];
    // QUANTIZE_STATIC_ROWS=measured (substrings of row names, '|' between them) runs only those rows.
    const only = process.env.QUANTIZE_STATIC_ROWS;
    const picked = (name: string) => only === undefined || only.split('|').some((part) => name.includes(part));
    try {
      for (const spec of MODELS.filter((m) => picked(m.name))) results.push(await benchModel(spec, web, scratch, log));
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
    const rows = only === undefined ? results : mergedRows(results, log);
    return {
      json: { machine, threads: THREADS, rounds: ROUNDS, results: rows },
      markdown: markdown(rows, machine, only !== undefined),
    };
  },
};
