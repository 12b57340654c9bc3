// Low-rank factorization (shrink lowrank), three parts in one run:
//   mlp     the Fashion-MNIST MLP (models/fashion-mnist, 784-256-128-10, 89.21%) factored by
//           parameter budget (--ratio 0.5 and 0.3) and by energy (0.95), each without training and
//           fine-tuned one epoch on the 60,000 training images (AdamW 1e-3, the command's default;
//           SGD 0.05 and 0.005 at ratio 0.5 for comparison); test accuracy on the 10,000 test
//           images, parameters, file size, and onnxruntime-node latency at batch 64 (1 thread,
//           interleaved rounds), whole model and fc1 alone.
//   rec     PP-OCRv4 rec's nine MatMuls (two attention blocks and the 6625-class head), one layer
//           at a time at energies 0.9 .. 0.999, factored even where that saves nothing so the
//           curve is whole: rank, parameters, the layer's own output SQNR (X L R against X W on the
//           original's activations), output cosine and the
//           share of the 60 rendered lines (test/fixtures/ocr) decoded exactly as the original.
//   svd     time of the randomized SVD with its products in JS and in onnxruntime.
import { readFileSync } from 'node:fs';
import { benchmarkModels } from '../src/eval/benchmark.js';
import { ctcAlphabet, decodeCtcGreedy } from '../src/eval/ctc.js';
import { cosineSimilarity } from '../src/eval/metrics.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { gaussian, jsOperator, matmul, randomizedSvd } from '../src/kernels/svd.js';
import { addSqnrTerms, sqnrFromSums } from '../src/kernels/sqnr.js';
import { constantValue } from '../src/ir/constants.js';
import { type FactoredLayer, type LowRankDetails, lowRankPass } from '../src/methods/lowrank/lowrank.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { RecipeContext } from '../src/pipeline/context.js';
import { lowRank, type LowRankStepOptions } from '../src/pipeline/lowrank.js';
import { runPass } from '../src/pipeline/pass.js';
import type { RecoverySettings } from '../src/pipeline/recovery.js';
import { OrtProducts } from '../src/runtime/ort-products.js';
import { ModelSession, fromOrtTensor, toOrtTensor } from '../src/runtime/session.js';
import { loadOcrLines, type OcrLine, REC_DICTIONARY, recBatches } from '../test/helpers/ocr-lines.js';
import { REC } from '../test/helpers/real-models.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const ctx: RecipeContext = { ort: nodeOrt, threads: 1 };
const ADAMW: RecoverySettings = { epochs: 1, batchSize: 64, schedule: { kind: 'cosine', rate: 1e-3 }, optimizer: { kind: 'adamw' }, seed: 0 };
const sgd = (rate: number): RecoverySettings => ({ epochs: 1, batchSize: 64, schedule: { kind: 'cosine', rate }, optimizer: { kind: 'sgd', momentum: 0.9 }, seed: 0 });
const ENERGIES = [0.9, 0.95, 0.99, 0.995, 0.999];
const SPEED = { batch: 64, runs: 40, warmup: 5, threads: 1 };

interface Split {
  pixels: Float32Array;
  labels: Uint8Array;
}

function split(name: 'train' | 't10k'): Split {
  const set = readIdxImageSet(FASHION_MNIST_DIR, name);
  return { pixels: Float32Array.from(set.images, (v) => v / 255), labels: set.labels };
}

async function accuracy(model: Model, data: Split): Promise<number> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  try {
    const n = data.labels.length;
    const out = await session.run({ image: toOrtTensor(nodeOrt, Tensor.fromArray('image', DataType.FLOAT, [n, 1, 28, 28], data.pixels)) });
    const scores = out.logits.data as Float32Array;
    let right = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (scores[i * 10 + c] > scores[i * 10 + best]) best = c;
      if (best === data.labels[i]) right++;
    }
    return round((100 * right) / n);
  } finally {
    await session.release();
  }
}

/** Latency (median ms) of each model at batch 64, interleaved rounds. */
async function latencies(models: { name: string; model: Model }[]): Promise<number[]> {
  const report = await benchmarkModels(nodeOrt, models.map((m) => ({ name: m.name, source: writeModel(m.model), model: m.model })), { ...SPEED, batch: SPEED.batch });
  return report.models.map((m) => round(m.latency_ms.median));
}

/** fc1 of the MLP (and its factored pair) alone: input [64, 784] -> [64, 256]. */
function fc1Alone(model: Model, factored: boolean): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 784]);
  const g = model.graph;
  const read = (name: string) => g.initializer(name) as Tensor;
  if (!factored) {
    const fc1 = g.nodes.find((n) => n.name === 'fc1');
    if (fc1 === undefined) throw new Error('the MLP has no fc1');
    for (const name of fc1.inputs.slice(1)) b.tensor(read(name));
    b.output(b.node('Gemm', [x, ...fc1.inputs.slice(1)], fc1.attributes, { outputs: ['y'] })[0] as string, DataType.FLOAT);
  } else {
    const tail = g.nodes.find((n) => n.name === 'fc1');
    const head = g.nodes.find((n) => n.outputs[0] === tail?.inputs[0]);
    if (head === undefined || tail === undefined) throw new Error('fc1 was not factored');
    for (const name of [head.inputs[1], tail.inputs[1], tail.inputs[2]]) b.tensor(read(name));
    const mid = b.node('Gemm', [x, head.inputs[1]], head.attributes, { outputs: ['mid'] })[0] as string;
    b.output(b.node('Gemm', [mid, tail.inputs[1], tail.inputs[2]], tail.attributes, { outputs: ['y'] })[0] as string, DataType.FLOAT);
  }
  return buildModel(b.graph);
}

async function mlpPart(log: (line: string) => void) {
  const original = loadModel(MLP);
  const train = split('train');
  const test = split('t10k');
  const base = await accuracy(original, test);
  log(`MLP original ${base}%`);
  const data = { inputs: { image: { data: train.pixels, sampleDims: [1, 28, 28], dataType: DataType.FLOAT } }, labels: train.labels };
  const rows: Record<string, unknown>[] = [];
  const runs: [string, LowRankStepOptions][] = [
    ['ratio 0.5', { ratio: 0.5 }],
    ['ratio 0.5, fine-tuned (AdamW 1e-3)', { ratio: 0.5, data, recovery: ADAMW }],
    ['ratio 0.5, fine-tuned (SGD 0.05)', { ratio: 0.5, data, recovery: sgd(0.05) }],
    ['ratio 0.5, fine-tuned (SGD 0.005)', { ratio: 0.5, data, recovery: sgd(0.005) }],
    ['ratio 0.3', { ratio: 0.3 }],
    ['ratio 0.3, fine-tuned (AdamW 1e-3)', { ratio: 0.3, data, recovery: ADAMW }],
    ['energy 0.95', { energy: 0.95 }],
    ['energy 0.95, fine-tuned (AdamW 1e-3)', { energy: 0.95, data, recovery: ADAMW }],
  ];
  let half: Model | undefined;
  for (const [name, options] of runs) {
    const { model, report } = await lowRank(original, options, ctx);
    if (name === 'ratio 0.5') half = model;
    const acc = await accuracy(model, test);
    rows.push({
      run: name,
      accuracy: acc,
      loss_points: round(base - acc),
      parameters: report.parameters.after,
      parameter_ratio: report.parameters.ratio,
      size_ratio: report.size.ratio,
      ranks: report.layers.map((l) => `${l.nodes[0]} ${l.rank}/${l.full_rank}`).join(', '),
      energy_kept: report.layers.map((l) => round(l.energy_kept)).join(', '),
      factor_ms: report.ms,
      train_s: report.recovery === undefined ? undefined : round(report.recovery.seconds),
    });
    log(`MLP ${name}: ${acc}% (${report.parameters.after} parameters)`);
  }
  const factored = half as Model;
  const [whole, factoredWhole] = await latencies([{ name: 'original', model: original }, { name: 'ratio 0.5', model: factored }]);
  const [fc1, fc1Factored] = await latencies([{ name: 'fc1', model: fc1Alone(original, false) }, { name: 'fc1 factored', model: fc1Alone(factored, true) }]);
  return { base, parameters: 235146, rows, latency_ms: { model: { original: whole, factored: factoredWhole }, fc1: { original: fc1, factored: fc1Factored } } };
}

async function recTexts(model: Model, lines: readonly OcrLine[], alphabet: ReturnType<typeof ctcAlphabet>, extra: string[] = []): Promise<{ texts: string[]; outputs: Float32Array[]; values: Map<string, Float32Array[]> }> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 1, extraOutputs: extra });
  const texts: string[] = new Array(lines.length);
  const outputs: Float32Array[] = new Array(lines.length);
  const values = new Map<string, Float32Array[]>(extra.map((name) => [name, new Array(lines.length)]));
  try {
    for (const b of recBatches(lines, 1)) {
      const out = await session.run({ x: toOrtTensor(nodeOrt, b.input) });
      const t = fromOrtTensor(out[session.outputNames[0]], 'y');
      texts[b.indices[0]] = decodeCtcGreedy(t.data() as Float32Array, t.dims, alphabet)[0].text;
      outputs[b.indices[0]] = (t.data() as Float32Array).slice();
      for (const name of extra) (values.get(name) as Float32Array[])[b.indices[0]] = (out[name].data as Float32Array).slice();
    }
  } finally {
    await session.release();
  }
  return { texts, outputs, values };
}

/** The factored layer's own output error: X (L R) against X W, X the original's input to the layer on every line. */
function ownSqnr(model: Model, layer: FactoredLayer, inputs: Float32Array[], reference: Float32Array[]): number {
  const read = (name: string) => constantValue(model.graph, name)?.data() as Float32Array;
  const [p, q] = layer.matrix;
  const product = matmul(read(layer.factors[0]), p, layer.rank, read(layer.factors[1]), q);
  const sums = { signal: 0, noise: 0 };
  inputs.forEach((x, i) => {
    addSqnrTerms(sums, reference[i], matmul(x, x.length / p, p, product, q));
  });
  return sqnrFromSums(sums);
}

async function recPart(log: (line: string) => void) {
  const original = loadModel(REC);
  const lines = await loadOcrLines();
  const alphabet = ctcAlphabet(readFileSync(REC_DICTIONARY, 'utf8'));
  const matmuls = original.graph.nodes.filter((n) => n.opType === 'MatMul');
  const reference = await recTexts(original, lines, alphabet, [...new Set(matmuls.flatMap((n) => [n.inputs[0], n.outputs[0]]))]);
  const rows: Record<string, unknown>[] = [];
  for (const node of matmuls) {
    for (const energy of ENERGIES) {
      const model = original.clone();
      // --only takes regexes: anchor the name ('p2o.MatMul.2' would also pick p2o.MatMul.20).
      const exact = `^${node.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
      const pass = await runPass(lowRankPass, model, { energy, only: [exact], onlyWhenSmaller: false, threads: 1 }, ctx);
      const layer = (pass as typeof pass & { details: LowRankDetails }).details.layers[0];
      // MatMuls of two activations (attention scores) have no weight to factor.
      if (layer === undefined) continue;
      if (layer.nodes[0] !== node.name) throw new Error(`--only ${exact} picked ${layer.nodes.join(', ')}`);
      const got = await recTexts(model, lines, alphabet);
      const identical = got.texts.filter((t, i) => t === reference.texts[i]).length / lines.length;
      const cosines = got.outputs.map((o, i) => cosineSimilarity(reference.outputs[i], o));
      const own = ownSqnr(model, layer, reference.values.get(node.inputs[0]) as Float32Array[], reference.values.get(node.outputs[0]) as Float32Array[]);
      rows.push({
        layer: node.name,
        matrix: layer.matrix.join('x'),
        energy,
        rank: `${layer.rank}/${layer.fullRank}`,
        parameters_before: layer.parametersBefore,
        parameters_after: layer.parametersAfter,
        saves: layer.parametersAfter < layer.parametersBefore ? 'yes' : 'no',
        own_sqnr_db: round(own),
        output_cosine_mean: round(cosines.reduce((a, b) => a + b, 0) / cosines.length),
        output_cosine_min: round(Math.min(...cosines)),
        lines_identical: round(identical),
      });
      log(`rec ${node.name} energy ${energy}: rank ${layer.rank}, ${layer.parametersAfter}/${layer.parametersBefore} parameters, own SQNR ${own.toFixed(1)} dB, lines ${(identical * 100).toFixed(1)}%`);
    }
  }
  // Every MatMul at once, only where it saves (what `shrink lowrank --energy E --only MatMul` writes).
  for (const energy of ENERGIES) {
    const model = original.clone();
    const pass = await runPass(lowRankPass, model, { energy, only: ['MatMul'], threads: 1 }, ctx);
    const details = (pass as typeof pass & { details: LowRankDetails }).details;
    const got = await recTexts(model, lines, alphabet);
    const cosines = got.outputs.map((o, i) => cosineSimilarity(reference.outputs[i], o));
    rows.push({
      layer: 'every MatMul, where it saves',
      matrix: `${details.layers.length} factored`,
      energy,
      rank: details.layers.map((x) => `${x.nodes[0]} ${x.rank}`).join(', '),
      parameters_before: details.parameters.before,
      parameters_after: details.parameters.after,
      saves: details.parameters.after < details.parameters.before ? 'yes' : 'no',
      output_cosine_mean: round(cosines.reduce((a, b) => a + b, 0) / cosines.length),
      output_cosine_min: round(Math.min(...cosines)),
      lines_identical: round(got.texts.filter((t, i) => t === reference.texts[i]).length / lines.length),
    });
  }
  return { model: REC, lines: lines.length, rows };
}

async function svdPart(log: (line: string) => void) {
  const products = await OrtProducts.create(nodeOrt, { threads: 1 });
  const rows: Record<string, unknown>[] = [];
  try {
    for (const [m, n, rank] of [
      [256, 784, 79],
      [256, 784, 192],
      [120, 6625, 110],
      [1024, 1024, 128],
    ] as const) {
      const a = gaussian(m * n, 1);
      const times = { js: [] as number[], ort: [] as number[] };
      for (let round = 0; round < 3; round++) {
        for (const engine of ['js', 'ort'] as const) {
          const started = performance.now();
          await randomizedSvd(engine === 'js' ? jsOperator(a, m, n) : products.operator(a, m, n), rank);
          times[engine].push(performance.now() - started);
        }
      }
      rows.push({ matrix: `${m}x${n}`, rank, js_ms: round(median(times.js)), ort_ms: round(median(times.ort)) });
      log(`svd ${m}x${n} rank ${rank}: js ${median(times.js).toFixed(0)} ms, ort ${median(times.ort).toFixed(0)} ms`);
    }
  } finally {
    await products.release();
  }
  return rows;
}

function table(rows: Record<string, unknown>[], columns: [string, string][]): string {
  const head = `| ${columns.map(([, h]) => h).join(' | ')} |\n| ${columns.map(() => '---').join(' | ')} |\n`;
  return `${head}${rows.map((r) => `| ${columns.map(([k]) => (r[k] === undefined ? '' : String(r[k]))).join(' | ')} |`).join('\n')}\n`;
}

export const lowRankBench: Bench = {
  name: 'lowrank',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    const mlp = await mlpPart(log);
    const svd = await svdPart(log);
    const rec = await recPart(log);
    const md = [
      '# Low-rank factorization',
      '',
      `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ${machine.date}, load ${machine.loadAverage}.`,
      '',
      `## Fashion-MNIST MLP (784-256-128-10, ${mlp.parameters} parameters, ${mlp.base}% on the 10,000 test images)`,
      '',
      'Fine-tuning: one epoch over the 60,000 training images, batch 64, cosine schedule.',
      '',
      table(mlp.rows, [
        ['run', 'Run'],
        ['accuracy', 'accuracy %'],
        ['loss_points', 'loss (points)'],
        ['parameters', 'parameters'],
        ['parameter_ratio', 'of original'],
        ['ranks', 'ranks'],
        ['energy_kept', 'energy kept'],
        ['train_s', 'training s'],
      ]),
      `Latency, onnxruntime-node, batch ${SPEED.batch}, 1 thread, median of ${SPEED.runs} interleaved runs: whole model ${mlp.latency_ms.model.original} ms -> ${mlp.latency_ms.model.factored} ms at ratio 0.5; fc1 alone (784 -> 256) ${mlp.latency_ms.fc1.original} ms -> ${mlp.latency_ms.fc1.factored} ms as two Gemms through rank 79.`,
      '',
      '## Randomized SVD: products in JS or onnxruntime (float64)',
      '',
      table(svd, [
        ['matrix', 'matrix'],
        ['rank', 'rank'],
        ['js_ms', 'JS products, ms'],
        ['ort_ms', 'onnxruntime products, ms'],
      ]),
      `## PP-OCRv4 rec: fidelity vs parameters per MatMul (${rec.lines} rendered lines)`,
      '',
      'Each layer alone, factored at the rank that keeps the energy share even where that saves no parameters (saves = no); own SQNR: the layer\'s output X L R against X W on the original\'s activations X over the lines; cosine: the model output (softmax over 6625 classes) per line against the original\'s; lines: decoded text identical to the original\'s. Last rows: every MatMul at once where it saves parameters, as `shrink lowrank --energy E --only MatMul` writes it.',
      '',
      table(rec.rows, [
        ['layer', 'layer'],
        ['matrix', 'matrix'],
        ['energy', 'energy'],
        ['rank', 'rank'],
        ['parameters_before', 'params before'],
        ['parameters_after', 'params after'],
        ['saves', 'saves'],
        ['own_sqnr_db', 'own SQNR dB'],
        ['output_cosine_mean', 'cosine mean'],
        ['output_cosine_min', 'cosine min'],
        ['lines_identical', 'lines identical'],
      ]),
    ].join('\n');
    return { json: { machine, mlp, svd, rec }, markdown: md };
  },
};
