// Static int8 against float32 (issue 15) on two models, each measured on data its calibration never
// saw, the float32 and int8 sessions timed in interleaved rounds at 1 and at 2 threads:
//   Fashion-MNIST CNN (bench/lib/fashion-cnn.ts, trained here once and kept in bench/work/):
//     calibrated on the first 512 training images, accuracy on the 10k test images, batch 64;
//     PyTorch's own static int8 of the same weights (fbgemm, or onednn in Debian's build;
//     bench/torch/cnn_int8_reference.py) as a peer in the same run when python3-torch is there;
//   PP-OCRv4 rec: calibrated on the first 64 'train' lines of bench/work/rec-corpus
//     (scripts/make-rec-corpus.ts), read on the 200 'heldout' lines (other fonts, texts and seed):
//     lines whose greedy-CTC text is identical to float32's, and words (bench/lib/words-identical.ts:
//     float32's words, split on spaces, that the int8 line reproduces in order, by a longest common
//     subsequence); timed on 8 held-out lines (8 x 48x320).
// int8 is the default command, `shrink quantize IN -o OUT --method static-int8 --calib D`
// (quantizeStaticInt8 with no other option), and for rec also the flags of REC_CONFIGS. Sessions: onnxruntime-node, graph optimization 'all'
// (where the QDQ groups become integer kernels), intra-op threads 1 or 2, inter-op 1. Accuracy and
// readings are taken at 'all' too: what a user runs.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeNpz } from '../src/eval/npz.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import { quantizeStaticInt8, type StaticInt8Options } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import type { OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession } from '../src/runtime/session.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { batchedSamples } from './lib/batched-samples.js';
import { FASHION_CNN_TRAINING, type FashionSets, fashionSets, trainFashionCnn } from './lib/fashion-cnn.js';
import { OCR } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { ensureRecCorpus, loadRecSet, readRecSet, recSlice, sameLines } from './lib/rec-corpus.js';
import { median, round } from './lib/stats.js';
import { sameWords } from './lib/words-identical.js';
import type { Bench, BenchOutput } from './run.js';

const THREADS = [1, 2];
const ROUNDS = 21;
const SAMPLE_MS = 40;
const CNN_FILE = 'bench/work/fashion-cnn.onnx';
const CNN_CALIBRATION = 512;
const CNN_BATCH = 64;
const REC_FILE = `${OCR}/ch_PP-OCRv4_rec_infer.onnx`;
const REC_CALIBRATION = 64;
const REC_BATCH = 8;
const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = 'bench/torch/cnn_int8_reference.py';

interface Timing {
  threads: number;
  fp32Ms: number;
  int8Ms: number;
  /** fp32 median / int8 median: above 1, int8 is faster. */
  speedup: number;
  runsPerSample: number;
  /** 1-minute load average before and after the rounds. */
  load: [number, number];
  /** false: both sessions with onnxruntime's idle threads sleeping instead of spinning (its default). */
  spinning?: false;
}

interface Row {
  model: string;
  heldOut: string;
  calibration: string;
  quantizeSeconds: number;
  nodesQuantized: number;
  stats: Record<string, number>;
  /** Op types onnxruntime runs for the int8 file at 'all' (its optimized model), with counts. */
  int8Ops: Record<string, number>;
  fp32Ops: Record<string, number>;
  fidelity: Record<string, number | string>;
  timings: Timing[];
}

interface TorchPeer {
  threads: number;
  torch: string;
  engine: string;
  fp32_accuracy: number;
  int8_accuracy: number;
  fp32_ms: number;
  int8_ms: number;
  speedup: number;
}

function loadNow(): number {
  return round(os.loadavg()[0]);
}

/** Median latency of each model over interleaved rounds (each round times fp32 then int8 once). */
async function interleaved(files: { fp32: Uint8Array; int8: Uint8Array }, feeds: Record<string, OrtTensor>, threads: number, spinning?: false): Promise<Timing> {
  const options = { threads, graphOptimization: 'all' as const, spinning };
  const sessions = { fp32: await ModelSession.create(nodeOrt, files.fp32, options), int8: await ModelSession.create(nodeOrt, files.int8, options) };
  try {
    const before = loadNow();
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) await sessions.fp32.run(feeds);
    const oneRun = (performance.now() - t0) / 3;
    for (let i = 0; i < 3; i++) await sessions.int8.run(feeds);
    // Back-to-back runs per sample so that a short run is not timer noise.
    const runsPerSample = Math.max(1, Math.ceil(SAMPLE_MS / Math.max(oneRun, 1e-3)));
    const samples = { fp32: [] as number[], int8: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of ['fp32', 'int8'] as const) {
        const start = performance.now();
        for (let i = 0; i < runsPerSample; i++) await sessions[v].run(feeds);
        samples[v].push((performance.now() - start) / runsPerSample);
      }
    }
    const [fp32Ms, int8Ms] = [median(samples.fp32), median(samples.int8)];
    return { threads, fp32Ms: round(fp32Ms), int8Ms: round(int8Ms), speedup: round(fp32Ms / int8Ms), runsPerSample, load: [before, loadNow()], ...(spinning === false ? { spinning } : {}) };
  } finally {
    await sessions.fp32.release();
    await sessions.int8.release();
  }
}

/** Op types of the model onnxruntime builds from `bytes` at 'all', counted. */
async function builtOps(bytes: Uint8Array, scratch: string): Promise<Record<string, number>> {
  const file = path.join(scratch, 'optimized.onnx');
  const session = await ModelSession.create(nodeOrt, bytes, { threads: 1, graphOptimization: 'all', optimizedModelFilePath: file });
  await session.release();
  const counts: Record<string, number> = {};
  for (const node of loadModel(file).graph.nodes) counts[node.opType] = (counts[node.opType] ?? 0) + 1;
  return counts;
}

/** Top-1 accuracy on the test images, at onnxruntime's 'all' level as deployed (int8 fused). */
function testAccuracy(bytes: Uint8Array, set: FashionSets['test']): Promise<number> {
  return classifierAccuracy(nodeOrt, bytes, set, { threads: 2, graphOptimization: 'all' });
}

function pixels(images: Uint8Array | Float32Array, start: number, count: number): Float32Array {
  const out = new Float32Array(count * 784);
  const scale = images instanceof Uint8Array ? 1 / 255 : 1;
  for (let i = 0; i < out.length; i++) out[i] = images[start * 784 + i] * scale;
  return out;
}

/** Top-1 accuracy (percent) at graph optimization 'all', 1000 images per run. */
async function cnnModel(sets: FashionSets, log: (line: string) => void): Promise<Uint8Array> {
  if (!fs.existsSync(CNN_FILE)) {
    const trained = await trainFashionCnn(sets, log);
    log(`fashion-cnn: ${trained.accuracy}% after ${trained.seconds.toFixed(0)} s; kept in ${CNN_FILE}`);
    fs.mkdirSync(path.dirname(CNN_FILE), { recursive: true });
    fs.writeFileSync(CNN_FILE, writeModel(trained.model));
  }
  return new Uint8Array(fs.readFileSync(CNN_FILE));
}

export async function cnnRow(sets: FashionSets, scratch: string, log: (line: string) => void): Promise<{ row: Row; fp32: Uint8Array; calibration: Float32Array }> {
  const fp32 = await cnnModel(sets, log);
  const calibration = pixels(sets.train.images, 0, CNN_CALIBRATION);
  const model = readModel(fp32);
  const started = performance.now();
  const report = await quantizeStaticInt8(model, { calibration: batchedSamples('input', [1, 28, 28], calibration, CNN_CALIBRATION, CNN_BATCH, 'training images') }, { ort: nodeOrt });
  const quantizeSeconds = (performance.now() - started) / 1000;
  const int8 = writeModel(model);
  const [fp32Accuracy, int8Accuracy] = [await testAccuracy(fp32, sets.test), await testAccuracy(int8, sets.test)];
  log(`fashion-cnn: accuracy fp32 ${fp32Accuracy}%, int8 ${int8Accuracy}% on ${sets.test.count} test images`);
  const feeds = { input: new nodeOrt.Tensor('float32', pixels(sets.test.images, 0, CNN_BATCH), [CNN_BATCH, 1, 28, 28]) };
  const timings: Timing[] = [];
  // Both settings of onnxruntime's idle threads for both models: spinning is its default and the
  // faster one on a quiet machine; sleeping threads are faster when other work shares the cores.
  for (const threads of THREADS) {
    for (const spinning of [undefined, false] as const) {
      timings.push(await interleaved({ fp32, int8 }, feeds, threads, spinning));
      log(`fashion-cnn: ${JSON.stringify(timings.at(-1))}`);
    }
  }
  return {
    fp32,
    calibration,
    row: {
      model: 'Fashion-MNIST CNN',
      heldOut: `${sets.test.count} test images; timed at batch ${CNN_BATCH}`,
      calibration: `first ${CNN_CALIBRATION} training images`,
      quantizeSeconds: round(quantizeSeconds),
      nodesQuantized: report.stats.nodesQuantized,
      stats: report.stats,
      int8Ops: await builtOps(int8, scratch),
      fp32Ops: await builtOps(fp32, scratch),
      fidelity: { fp32_accuracy: fp32Accuracy, int8_accuracy: int8Accuracy, drop_points: round(fp32Accuracy - int8Accuracy) },
      timings,
    },
  };
}

/** PyTorch's fbgemm static int8 of the same weights, or why there is none (no python3-torch, a failed run). */
export function torchPeer(fp32: Uint8Array, calibration: Float32Array, sets: FashionSets, scratch: string, log: (line: string) => void): TorchPeer[] | string {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) return `no PyTorch at ${PYTHON} (Debian python3-torch): peer skipped`;
  const graph = readModel(fp32).graph;
  const arrays: Parameters<typeof writeNpz>[0] = {};
  for (const layer of ['conv1', 'conv2', 'fc1', 'fc2', 'bn1', 'bn2']) {
    const fields = layer.startsWith('bn') ? ['weight', 'bias', 'running_mean', 'running_var'] : ['weight', 'bias'];
    for (const field of fields) {
      const t = constantValue(graph, `${layer}.${field}`);
      if (t === undefined) throw new Error(`${CNN_FILE}: no initializer '${layer}.${field}' for the PyTorch peer`);
      arrays[`${layer}.${field}`] = { dataType: DataType.FLOAT, dims: [...t.dims], data: new Uint8Array((t.data() as Float32Array).slice().buffer) };
    }
  }
  const sizes = BigInt64Array.from([32, 64, 128, 10], BigInt);
  arrays.sizes = { dataType: DataType.INT64, dims: [4], data: new Uint8Array(sizes.buffer) };
  arrays.calib_x = { dataType: DataType.FLOAT, dims: [CNN_CALIBRATION, 1, 28, 28], data: new Uint8Array(calibration.buffer) };
  arrays.test_x = { dataType: DataType.FLOAT, dims: [sets.test.count, 1, 28, 28], data: new Uint8Array(pixels(sets.test.images, 0, sets.test.count).buffer) };
  arrays.test_y = { dataType: DataType.INT64, dims: [sets.test.count], data: new Uint8Array(BigInt64Array.from(sets.test.labels, BigInt).buffer) };
  const setup = path.join(scratch, 'cnn-setup.npz');
  fs.writeFileSync(setup, writeNpz(arrays));
  const peers: TorchPeer[] = [];
  for (const threads of THREADS) {
    // Thread libraries read their environment at start: one process per thread count.
    const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: '1' };
    const run = spawnSync(PYTHON, [TORCH_SCRIPT, setup, '--threads', String(threads), '--rounds', String(ROUNDS)], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
    if (run.status !== 0) return `${TORCH_SCRIPT} failed: ${run.stderr.trim().split('\n').at(-1)}`;
    const peer = { ...(JSON.parse(run.stdout) as TorchPeer), threads };
    log(`pytorch peer: ${JSON.stringify(peer)}`);
    peers.push(peer);
  }
  return peers;
}

/** The rec configurations: the default command, and the flags that keep more of the lines (see the notes). */
const REC_CONFIGS: { label: string; options: Omit<StaticInt8Options, 'calibration'> }[] = [
  { label: 'default', options: {} },
  { label: '--only Conv', options: { opTypes: ['Conv'] } },
];

async function recRows(scratch: string, log: (line: string) => void): Promise<Row[]> {
  ensureRecCorpus(undefined, log);
  const train = recSlice(await loadRecSet('train'), REC_CALIBRATION);
  const heldout = await loadRecSet('heldout');
  const fp32 = new Uint8Array(fs.readFileSync(REC_FILE));
  const reference = await readRecSet(nodeOrt, fp32, heldout, 2, 'all');
  const fp32Ops = await builtOps(fp32, scratch);
  const per = 3 * 48 * 320;
  const feeds = { x: new nodeOrt.Tensor('float32', heldout.x.slice(0, REC_BATCH * per), [REC_BATCH, 3, 48, 320]) };
  const rows: Row[] = [];
  for (const config of REC_CONFIGS) {
    const model = loadModel(REC_FILE);
    const started = performance.now();
    const calibration = batchedSamples('x', [3, 48, 320], train.x, train.count, REC_BATCH, "rec corpus 'train' lines");
    const report = await quantizeStaticInt8(model, { ...config.options, calibration, threads: 2 }, { ort: nodeOrt });
    const quantizeSeconds = (performance.now() - started) / 1000;
    const int8 = writeModel(model);
    const candidate = await readRecSet(nodeOrt, int8, heldout, 2, 'all');
    const identical = sameLines(reference.texts, candidate.texts);
    // Most changes are a space gained or lost between an English word and Chinese text.
    const squeeze = (texts: readonly string[]) => texts.map((t) => t.replace(/\s/g, ''));
    const changed = reference.texts.flatMap((t, i) => (t === candidate.texts[i] ? [] : [`'${t}' -> '${candidate.texts[i]}'`]));
    log(`rec ${config.label}: ${(identical * 100).toFixed(1)}% of ${heldout.count} held-out lines identical, ${(sameWords(reference.texts, candidate.texts) * 100).toFixed(1)}% of words; changed: ${changed.slice(0, 8).join(', ')}`);
    const timings: Timing[] = [];
    for (const threads of THREADS) {
      timings.push(await interleaved({ fp32, int8 }, feeds, threads));
      log(`rec ${config.label}: ${JSON.stringify(timings.at(-1))}`);
    }
    rows.push({
      model: `PP-OCRv4 rec (${config.label})`,
      heldOut: `${heldout.count} 'heldout' lines; timed at ${REC_BATCH} x 48x320`,
      calibration: `first ${REC_CALIBRATION} 'train' lines`,
      quantizeSeconds: round(quantizeSeconds),
      nodesQuantized: report.stats.nodesQuantized,
      stats: report.stats,
      int8Ops: await builtOps(int8, scratch),
      fp32Ops,
      fidelity: {
        lines_identical: round(identical * 100),
        words_identical: round(sameWords(reference.texts, candidate.texts) * 100),
        lines_identical_ignoring_spaces: round(sameLines(squeeze(reference.texts), squeeze(candidate.texts)) * 100),
        fp32_reads_as_rendered: round(sameLines(heldout.texts, reference.texts) * 100),
        int8_reads_as_rendered: round(sameLines(heldout.texts, candidate.texts) * 100),
        changed: changed.slice(0, 10).join('; '),
      },
      timings,
    });
  }
  return rows;
}

function opList(ops: Record<string, number>): string {
  return Object.entries(ops)
    .sort((a, b) => b[1] - a[1])
    .map(([op, n]) => `${op} ${n}`)
    .join(', ');
}

function markdown(rows: Row[], peers: TorchPeer[] | string, machine: Record<string, unknown>): string {
  const lines = [
    '# Static int8 vs float32: Fashion-MNIST CNN and PP-OCRv4 rec, on held-out data',
    '',
    `One run. Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime} (CPU, graph optimization 'all', intra-op threads 1 or 2, inter-op 1), ${machine.date}, ` +
      `load average ${machine.loadAverage} at the start (the load columns: before and after each row's rounds). Latency: median of ${ROUNDS} interleaved rounds (fp32 then int8 in each) after 3 warm-up runs, ` +
      `each sample an average of back-to-back runs over at least ${SAMPLE_MS} ms. Speed-up: fp32 / int8 latency.`,
    '',
    'int8: the default command, `shrink quantize IN -o OUT --method static-int8 --calib D` (per-channel int8 weights, uint8 activations, minmax). Rec also with the flags named in its rows. Accuracy and readings at `all`, as timed. ' +
      "Rec's words identical: fp32's words (each line split on spaces) that the int8 line reproduces in order (longest common subsequence of the two word lists), over all fp32 words; a lost space costs both words it joined.",
    '',
    '| model | calibration | held out | fp32 | int8 | threads | fp32 (ms) | int8 (ms) | speed-up | load |',
    '|---|---|---|---|---|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const [a, b] = r.model.startsWith('Fashion')
      ? [`${r.fidelity.fp32_accuracy}% accuracy`, `${r.fidelity.int8_accuracy}% (${Number(r.fidelity.drop_points) >= 0 ? '-' : '+'}${Math.abs(Number(r.fidelity.drop_points))} points)`]
      : [`reads ${r.fidelity.fp32_reads_as_rendered}% as rendered`, `${r.fidelity.words_identical}% of words, ${r.fidelity.lines_identical}% of lines identical to fp32 (${r.fidelity.lines_identical_ignoring_spaces}% ignoring spaces); reads ${r.fidelity.int8_reads_as_rendered}% as rendered`];
    for (const t of r.timings) lines.push(`| ${r.model} | ${r.calibration} | ${r.heldOut} | ${a} | ${b} | ${t.threads}${t.spinning === false ? ', threads sleep' : ''} | ${t.fp32Ms} | ${t.int8Ms} | ${t.speedup.toFixed(2)}x | ${t.load.join(' / ')} |`);
  }
  lines.push('');
  if (typeof peers === 'string') lines.push(`PyTorch peer: ${peers}.`);
  else {
    lines.push(
      'PyTorch peer (same weights and calibration images; eager-mode static int8 on the engine named, Conv+BN+ReLU and Linear+ReLU fused, the default qconfig of that engine; `torch.set_num_threads(N)`, OMP_NUM_THREADS=N, one process per N; batch 64, same rounds):',
      '',
      '| PyTorch | threads | fp32 accuracy | int8 accuracy | fp32 (ms) | int8 (ms) | speed-up |',
      '|---|---:|---:|---:|---:|---:|---:|',
    );
    for (const p of peers) lines.push(`| ${p.torch} ${p.engine} | ${p.threads} | ${round(p.fp32_accuracy)}% | ${round(p.int8_accuracy)}% | ${round(p.fp32_ms)} | ${round(p.int8_ms)} | ${round(p.speedup).toFixed(2)}x |`);
  }
  lines.push('', 'What onnxruntime runs at `all` (its optimized model):', '');
  for (const r of rows) lines.push(`- **${r.model}** fp32: ${opList(r.fp32Ops)}; int8 (${r.nodesQuantized} nodes quantized, ${r.quantizeSeconds} s): ${opList(r.int8Ops)}.`);
  for (const r of rows) if (r.model.startsWith('PP-OCRv4 rec') && r.fidelity.changed !== '') lines.push('', `${r.model}: lines that changed (fp32 -> int8, first 10): ${r.fidelity.changed}.`);
  return `${lines.join('\n')}\n`;
}

export const quantizeStaticCnnRecBench: Bench = {
  name: 'quantize-static-cnn-rec',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bench-static-cnn-rec-'));
    try {
      const sets = fashionSets();
      const cnn = await cnnRow(sets, scratch, log);
      const peers = torchPeer(cnn.fp32, cnn.calibration, sets, scratch, log);
      if (typeof peers === 'string') log(peers);
      const rows = [cnn.row, ...(await recRows(scratch, log))];
      return { json: { machine, threads: THREADS, rounds: ROUNDS, cnnTraining: FASHION_CNN_TRAINING, rows, pytorch: peers }, markdown: markdown(rows, peers, machine) };
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  },
};
