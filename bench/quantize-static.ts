// Static int8 (QDQ) against float32, side by side in one run under onnxruntime-node (CPU, 1 thread,
// graph optimization 'all': the level at which onnxruntime fuses DequantizeLinear -> Conv ->
// QuantizeLinear into QLinearConv, so 'basic' would time float Convs wrapped in Q/DQ instead).
// Models, each calibrated on the committed rendered OCR fixtures (test/fixtures/ocr), never on noise:
//   PP-OCRv4 det  at 640x640 (the rendered page), calibrated on its four 320x320 quadrants,
//                 percentile, per-channel (the configuration of test/quant-static-int8.test.ts);
//   PP-OCRv4 rec  batch 8 of rendered lines (width 320), Conv only, minmax, per-channel,
//                 calibrated on every third line (test/quant-static-int8-rec.test.ts);
//   PP-OCR cls    batch 8 of rendered lines resized to 48x192, every op type, minmax, per-channel,
//                 calibrated on every third line.
// Latency: median of interleaved rounds (each round times fp32 and int8 once), each sample an
// average of back-to-back runs over at least SAMPLE_MS. Speed-up: fp32 latency / int8 latency.
// Fidelity: lowest cosine over outputs against fp32 on the timed input, in onnxruntime-node at
// 'all' (the fused kernels) and in onnxruntime-web (wasm), where the int8 file must also load.
import { cosineSimilarity } from '../src/eval/metrics.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Sample, SampleSource } from '../src/eval/samples.js';
import { quantizeStaticInt8, type StaticInt8Options } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { OrtModule, OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession } from '../src/runtime/session.js';
import { detInput, loadOcrFixtures, type OcrLine, recInput } from '../test/helpers/ocr-lines.js';
import { OCR, feedsFor } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const THREADS = 1;
const ROUNDS = 25;
const WARMUP = 3;
const SAMPLE_MS = 40;
const CLS_WIDTH = 192;

interface Spec {
  name: string;
  file: string;
  batch: string;
  /** What the int8 file was built with, for the table. */
  config: string;
  options: Omit<StaticInt8Options, 'calibration'>;
  calibration: (fixtures: Awaited<ReturnType<typeof loadOcrFixtures>>) => { tensors: Tensor[]; description: string };
  input: (fixtures: Awaited<ReturnType<typeof loadOcrFixtures>>) => Tensor;
  /** Why the measured ratio is what it is (filled in from the committed measurements). */
  why: string;
}

/** A [1,3,h,w] window of a [1,3,H,W] image. */
function crop(image: Tensor, y0: number, x0: number, h: number, w: number): Tensor {
  const [, , H, W] = image.dims;
  const data = image.data() as Float32Array;
  const out = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) out.set(data.subarray((c * H + y0 + y) * W + x0, (c * H + y0 + y) * W + x0 + w), (c * h + y) * w);
  }
  return Tensor.fromArray(image.name, DataType.FLOAT, [1, 3, h, w], out);
}

/**
 * Direction-classifier input as PaddleOCR's resize_norm_img builds it: the line (height 48) squeezed
 * to at most 192 wide (bilinear along x; the height already matches), (x / 255 - 0.5) / 0.5, zero
 * padding on the right.
 */
function clsInput(lines: readonly OcrLine[]): Tensor {
  const plane = 48 * CLS_WIDTH;
  const out = new Float32Array(lines.length * 3 * plane);
  lines.forEach((line, n) => {
    const width = Math.min(CLS_WIDTH, line.width);
    const step = line.width / width;
    for (let y = 0; y < 48; y++) {
      for (let x = 0; x < width; x++) {
        const at = Math.min(line.width - 1, (x + 0.5) * step - 0.5);
        const left = Math.max(0, Math.floor(at));
        const right = Math.min(line.width - 1, left + 1);
        const t = Math.max(0, at - left);
        for (let c = 0; c < 3; c++) {
          const value = line.pixels[(y * line.width + left) * 3 + c] * (1 - t) + line.pixels[(y * line.width + right) * 3 + c] * t;
          out[(n * 3 + c) * plane + y * CLS_WIDTH + x] = value / 127.5 - 1;
        }
      }
    }
  });
  return Tensor.fromArray('x', DataType.FLOAT, [lines.length, 3, 48, CLS_WIDTH], out);
}

/** The first eight lines whose recogniser input is 320 wide, so they stack into one batch. */
const batchOf8 = (lines: readonly OcrLine[]) => lines.filter((l) => l.inputWidth === 320).slice(0, 8);
/** Every third line, as calibration (the timed batch is among them only by chance of order). */
const everyThird = (lines: readonly OcrLine[]) => lines.filter((_, i) => i % 3 === 0);

const MODELS: Spec[] = [
  {
    name: 'PP-OCRv4 det',
    file: `${OCR}/ch_PP-OCRv4_det_infer.onnx`,
    batch: '1 x 640x640',
    config: 'every op type, percentile, per-channel',
    options: { calibrator: 'percentile', perChannel: true },
    calibration: ({ page }) => {
      const full = detInput(page);
      return {
        tensors: [crop(full, 0, 0, 320, 320), crop(full, 0, 320, 320, 320), crop(full, 320, 0, 320, 320), crop(full, 320, 320, 320, 320)],
        description: 'four 320x320 quadrants of the rendered page',
      };
    },
    input: ({ page }) => detInput(page),
    why: 'Its time is Conv at 640x640 (a PPLCNet backbone and a DB neck/head): nearly every Conv becomes a QLinearConv (uint8 activations x int8 per-channel weights, an integer GEMM that uses AVX512-VNNI where the CPU has it), a quarter of the memory traffic per weight and activation. What stays float is the HardSigmoid of each hard-swish (no int8 kernel) and the head\'s ConvTranspose. Its max abs diff is 1 because the output is a probability map whose pixels at text edges flip between 0 and 1; test/quant-static-int8.test.ts checks the text mask (IoU).',
  },
  {
    name: 'PP-OCRv4 rec',
    file: `${OCR}/ch_PP-OCRv4_rec_infer.onnx`,
    batch: '8 x 48x320',
    config: 'Conv only, minmax, per-channel',
    options: { calibrator: 'minmax', perChannel: true, opTypes: ['Conv'] },
    calibration: ({ lines }) => ({ tensors: everyThird(lines).map((l) => recInput([l])), description: 'every third rendered line (20), one per run' }),
    input: ({ lines }) => recInput(batchOf8(lines)),
    why: 'Conv only (the configuration that keeps every decoded line): the Conv backbone becomes QLinearConv and carries most of the time; the SVTR neck (attention MatMuls, LayerNormalization, the elementwise Add/Mul), the hard-swish Muls and the [120,6625] classifier stay float, so each quantized Conv is wrapped in Q/DQ at its float neighbours.',
  },
  {
    name: 'PP-OCR cls',
    file: `${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx`,
    batch: '8 x 48x192',
    config: 'every op type, minmax, per-channel',
    options: { calibrator: 'minmax', perChannel: true },
    calibration: ({ lines }) => ({ tensors: [clsInput(everyThird(lines))], description: 'every third rendered line (20), resized to 48x192, one run' }),
    input: ({ lines }) => clsInput(batchOf8(lines)),
    why: 'Slower, because the model is tiny (565 KiB, about 1 ms per image) and made of MobileNetV3 blocks whose work is elementwise rather than Conv: hard-swish runs as HardSigmoid x Mul, and onnxruntime has no int8 HardSigmoid, so each of the 27 blocks leaves int8 for a DequantizeLinear -> HardSigmoid -> QuantizeLinear round trip, and the QLinearMul/QLinearAdd/QLinearGlobalAveragePool kernels are no faster than float on maps this small. fp32 at `all` instead runs NCHWc-blocked Convs with the activation fused. Its 2-class softmax is saturated on these lines, so int8 and fp32 give the same probabilities to 1e-6.',
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
  medianMs: number;
  samplesMs: number[];
  /** Nodes after onnxruntime's 'all' optimizations, by kind, from its optimized model file. */
  qlinearKernels: number;
  remainingQdq: number;
  /** Op types that the remaining DequantizeLinear nodes feed: the float islands between int8 kernels. */
  dequantizedInto: Record<string, number>;
}

interface ModelResult {
  model: string;
  batch: string;
  config: string;
  calibration: string;
  quantizeSeconds: number;
  nodesQuantized: number;
  runsPerSample: number;
  fp32: VariantResult;
  int8: VariantResult;
  /** fp32 median / int8 median: above 1, int8 is faster. */
  speedup: number;
  cosine: number;
  /** Largest absolute output difference against fp32 (cosine hides a 2-class softmax's changes). */
  maxAbsDiff: number;
  web: { runs: boolean; cosine?: number; error?: string };
  warnings: string[];
  why: string;
}

/** Counts what onnxruntime made of the file at 'all': fused integer kernels and leftover Q/DQ. */
async function fusedCounts(bytes: Uint8Array, scratch: string): Promise<Omit<VariantResult, 'bytes' | 'medianMs' | 'samplesMs'>> {
  const file = path.join(scratch, 'optimized.onnx');
  const session = await ModelSession.create(nodeOrt, bytes, { threads: THREADS, graphOptimization: 'all', optimizedModelFilePath: file });
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

async function benchModel(spec: Spec, web: OrtModule, scratch: string, log: (line: string) => void): Promise<ModelResult> {
  const fixtures = await loadOcrFixtures();
  const fp32Bytes = writeModel(loadModel(spec.file));
  const model: Model = loadModel(spec.file);
  const { tensors, description } = spec.calibration(fixtures);
  const started = performance.now();
  const report = await quantizeStaticInt8(model, { ...spec.options, calibration: samplesOf(tensors, description), threads: os.cpus().length }, { ort: nodeOrt });
  const quantizeSeconds = (performance.now() - started) / 1000;
  const files = { fp32: fp32Bytes, int8: writeModel(model) };
  log(`${spec.name}: ${report.stats.nodesQuantized} nodes quantized in ${quantizeSeconds.toFixed(1)} s`);

  const sessions = {
    fp32: await ModelSession.create(nodeOrt, files.fp32, { threads: THREADS, graphOptimization: 'all' }),
    int8: await ModelSession.create(nodeOrt, files.int8, { threads: THREADS, graphOptimization: 'all' }),
  };
  const input = spec.input(fixtures);
  const feeds = feedsFor(nodeOrt, [input]);
  const outputs = { fp32: await sessions.fp32.run(feeds), int8: await sessions.int8.run(feeds) };
  const warmStart = performance.now();
  for (let i = 0; i < WARMUP; i++) await sessions.fp32.run(feeds);
  const oneRun = (performance.now() - warmStart) / WARMUP;
  for (let i = 0; i < WARMUP; i++) await sessions.int8.run(feeds);
  // Back-to-back runs per sample so that a short run is not timer noise.
  const runsPerSample = Math.max(1, Math.ceil(SAMPLE_MS / Math.max(oneRun, 1e-3)));
  const samples = { fp32: [] as number[], int8: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of ['fp32', 'int8'] as const) {
      const t0 = performance.now();
      for (let i = 0; i < runsPerSample; i++) await sessions[v].run(feeds);
      samples[v].push((performance.now() - t0) / runsPerSample);
    }
  }
  await sessions.fp32.release();
  await sessions.int8.release();

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

  const variant = async (v: 'fp32' | 'int8'): Promise<VariantResult> => ({
    bytes: files[v].length,
    medianMs: round(median(samples[v])),
    samplesMs: samples[v].map(round),
    ...(await fusedCounts(files[v], scratch)),
  });
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
    speedup: round(median(samples.fp32) / median(samples.int8)),
    cosine: round(lowestCosine(outputs.fp32, outputs.int8)),
    maxAbsDiff: round(largestDifference(outputs.fp32, outputs.int8)),
    web: webResult,
    warnings: report.warnings.map((w) => w.code),
    why: spec.why,
  };
  log(
    `${spec.name}: fp32 ${result.fp32.medianMs} ms, int8 ${result.int8.medianMs} ms (x${result.speedup}), ${result.int8.qlinearKernels} QLinear kernels, ` +
      `${result.int8.remainingQdq} Q/DQ left, cosine ${result.cosine}, web ${webResult.runs ? `runs (cosine ${webResult.cosine})` : `FAILS: ${webResult.error}`}`,
  );
  return result;
}

function markdown(results: ModelResult[], machine: Record<string, unknown>): string {
  const lines = [
    '# Static int8 vs float32',
    '',
    `One run. Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime} (CPU, ${THREADS} thread, graph optimization 'all'), ` +
      `onnxruntime-web ${machine.onnxruntimeWeb} (wasm, 1 thread) for the load-and-run check, ${machine.date}, load average ${machine.loadAverage} at the start. ` +
      `Latency: median of ${ROUNDS} interleaved rounds after ${WARMUP} warm-up runs. Speed-up: fp32 latency / int8 latency (above 1 is faster).`,
    '',
    'int8: `quantizeStaticInt8` (QDQ), calibrated on the committed rendered OCR fixtures (test/fixtures/ocr). ' +
      'QLinear kernels / Q/DQ left: node counts in the model onnxruntime builds at `all` (its optimized model file).',
    '',
    '| model | input | int8 config | calibration | nodes quantized | KiB fp32 / int8 | fp32 (ms) | int8 (ms) | speed-up | QLinear kernels | Q/DQ left | cosine vs fp32 (node) | max abs diff | onnxruntime-web |',
    '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    const web = r.web.runs ? `runs, cosine ${r.web.cosine}` : `fails: ${r.web.error}`;
    lines.push(
      `| ${r.model} | ${r.batch} | ${r.config} | ${r.calibration} | ${r.nodesQuantized} | ${(r.fp32.bytes / 1024).toFixed(0)} / ${(r.int8.bytes / 1024).toFixed(0)} | ` +
        `${r.fp32.medianMs} | ${r.int8.medianMs} | ${r.speedup.toFixed(2)}x | ${r.int8.qlinearKernels} | ${r.int8.remainingQdq} | ${r.cosine} | ${r.maxAbsDiff} | ${web} |`,
    );
  }
  const islands = (r: ModelResult) =>
    Object.entries(r.int8.dequantizedInto)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ');
  const whys = results.map((r) => `- **${r.model}** (${r.speedup.toFixed(2)}x): ${r.why} Float ops fed by the remaining DequantizeLinear: ${islands(r) || 'none'}.`);
  lines.push('', ...whys);
  return `${lines.join('\n')}\n`;
}

export const quantizeStaticBench: Bench = {
  name: 'quantize-static',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo({ web: true });
    const web = await loadWebOrt();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bench-static-'));
    const results: ModelResult[] = [];
    try {
      for (const spec of MODELS) results.push(await benchModel(spec, web, scratch, log));
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
    return {
      json: { machine, threads: THREADS, rounds: ROUNDS, results },
      markdown: markdown(results, machine),
    };
  },
};
