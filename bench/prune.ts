// Pruning on the Fashion-MNIST CNN of the training benchmark (conv32-bn-relu-pool,
// conv64-bn-relu-pool, fc128, fc10), trained here from scratch for 3 epochs exactly as bench/train.ts
// trains it, then, side by side in one run:
//   structured  half of the CNN's channels removed by shrink's channel pruning (112 of 224: ranked
//               across groups with no group losing more than 60%, and, for comparison, 50% of every
//               group), each fine-tuned one epoch with the same step (src/pipeline/train.ts, SGD
//               momentum 0.9, weight decay 5e-4, cosine from 0.01, same batches) as the unpruned
//               model; test accuracy (10k images), file size, MACs, and onnxruntime-node latency at
//               batch 64 (1 thread, interleaved rounds, median).
//   peer        no fine-tuning: PyTorch's prune.global_unstructured with L1Unstructured over every
//               Conv2d/Linear weight at 50% and 80% (bench/torch/prune_reference.py, Debian
//               python3-torch) against shrink's global magnitude pruning of the same weights of the
//               same trained model; shrink's per-layer magnitude and 2:4 too. Test accuracy, and the
//               gzip -9 size of shrink's files (onnxruntime has no sparse kernels: that is all
//               unstructured sparsity buys in ONNX).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchmarkModels } from '../src/eval/benchmark.js';
import { writeNpz } from '../src/eval/npz.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { RecipeContext } from '../src/pipeline/context.js';
import { type PruneOptions, type PruneRecovery, prune } from '../src/pipeline/prune.js';
import { gzipBytes } from '../src/pipeline/prune-report.js';
import { train } from '../src/pipeline/train.js';
import { classifierAccuracy, imageTrainingData } from '../src/train/classification.js';
import { FASHION_CNN_TRAINING, type FashionSets, trainFashionCnn } from './lib/fashion-cnn.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const PYTHON = '/usr/bin/python3';
const REFERENCE = path.join(import.meta.dirname, 'torch', 'prune_reference.py');
/** The one-epoch fine-tuning every model of the structured comparison gets. */
const FINE_TUNE: PruneRecovery = { epochs: 1, batchSize: 64, schedule: { kind: 'cosine', rate: 0.01 }, optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 }, seed: 7 };
const SPEED = { batch: 64, runs: 40, warmup: 5, threads: 1 };
const INPUT_SHAPES = { input: [1, 1, 28, 28] };
const PEER_SPARSITIES = [0.5, 0.8];

const ctx: RecipeContext = { ort: nodeOrt, threads: 2 };
const f32 = (data: Float32Array, dims: number[]) => ({ dataType: DataType.FLOAT, dims, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
const i64 = (values: ArrayLike<number>, dims: number[]) => ({ dataType: DataType.INT64, dims, data: new Uint8Array(BigInt64Array.from(Array.from(values, BigInt)).buffer) });

type Sets = FashionSets;

const trainData = (sets: Sets) => ({ inputs: { input: { data: sets.train.images, sampleDims: sets.train.imageDims, dataType: DataType.FLOAT, scale: 1 / 255 } }, labels: sets.train.labels });

async function structured(base: Model, sets: Sets, log: (l: string) => void) {
  const accuracy = (m: Model) => classifierAccuracy(nodeOrt, m, sets.test, { threads: 2 });
  log('structured: the unpruned CNN fine-tuned one epoch');
  const dense = await train(base, { ...FINE_TUNE, data: imageTrainingData(sets.train) }, ctx);
  const variants: { name: string; options: Partial<PruneOptions> }[] = [
    { name: 'half the channels, ranked across groups (--scope global --max-ratio 0.6)', options: { scope: 'global', maxRatio: 0.6 } },
    { name: 'half of every group (--scope layer)', options: { scope: 'layer' } },
  ];
  const rows = [];
  const denseBytes = writeModel(dense.model);
  for (const v of variants) {
    log(`structured: ${v.name}`);
    const settings: PruneOptions = { method: 'channels', sparsity: 0.5, ...v.options, inputShapes: INPUT_SHAPES };
    const untuned = await prune(base, settings, ctx);
    const { model, report } = await prune(base, { ...settings, data: trainData(sets), recovery: FINE_TUNE }, ctx);
    const bytes = writeModel(model);
    const speed = await benchmarkModels(nodeOrt, [{ name: 'unpruned', source: denseBytes }, { name: 'pruned', source: bytes }], SPEED);
    const [a, b] = speed.models.map((m) => m.latency_ms.median);
    const after = await accuracy(model);
    rows.push({
      name: v.name,
      channels: (report.groups ?? []).map((g) => `${g.sources.join(',')} ${g.channels_before}->${g.channels_after}`),
      accuracy_before_fine_tune: round(await accuracy(untuned.model)),
      accuracy: round(after),
      accuracy_gap_points: round(await accuracy(dense.model) - after),
      size_ratio: round(bytes.byteLength / denseBytes.byteLength),
      macs: report.macs === undefined ? null : { before: report.macs.before, after: report.macs.after, ratio: report.macs.ratio },
      latency_ms: { unpruned: round(a), pruned: round(b) },
      speedup: round(a / b),
    });
  }
  return {
    setup: { fine_tune: 'one epoch, SGD momentum 0.9, weight decay 5e-4, cosine from 0.01, batch 64, seed 7 (the same step for every model)', speed: SPEED },
    unpruned: { accuracy: round(await accuracy(dense.model)), bytes: denseBytes.byteLength },
    pruned: rows,
  };
}

/** PyTorch's global L1 pruning of the same weights, or why it could not run. */
function pytorch(base: Model, sets: Sets, dir: string): { ok: true; torch: string; dense: number; results: { sparsity: number; accuracy: number; zero_share: number }[] } | { ok: false; why: string } {
  const setup = path.join(dir, 'prune.npz');
  const arrays: Parameters<typeof writeNpz>[0] = {};
  for (const t of base.graph.initializers) arrays[t.name] = f32(t.data() as Float32Array, [...t.dims]);
  arrays.cnn = i64([32, 64, 128, 10], [4]);
  arrays.test_x = f32(Float32Array.from(sets.test.images, (v) => v / 255), [sets.test.count, 784]);
  arrays.test_y = i64(sets.test.labels, [sets.test.count]);
  fs.writeFileSync(setup, writeNpz(arrays));
  const run = spawnSync(PYTHON, [REFERENCE, setup, '--sparsity', ...PEER_SPARSITIES.map(String)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.error !== undefined) return { ok: false, why: `cannot start ${PYTHON} (${run.error.message}); install Debian's python3 and python3-torch` };
  if (/No module named 'torch'/.test(run.stderr)) return { ok: false, why: `${PYTHON} has no PyTorch; install Debian's python3-torch (apt-get install -y python3-torch)` };
  if (run.status !== 0) return { ok: false, why: `the PyTorch reference failed: ${run.stderr.trim().split('\n').pop()}` };
  const out = JSON.parse(run.stdout.trim().split('\n').pop() as string);
  return { ok: true, torch: out.torch, dense: out.dense_accuracy, results: out.results };
}

async function unstructured(base: Model, sets: Sets, dir: string, log: (l: string) => void) {
  const accuracy = (m: Model) => classifierAccuracy(nodeOrt, m, sets.test, { threads: 2 });
  const denseGzip = gzipBytes(base) as number;
  const ours = [];
  const runs: { name: string; options: PruneOptions }[] = [
    ...PEER_SPARSITIES.map((s) => ({ name: `global magnitude ${s * 100}%`, options: { method: 'magnitude' as const, sparsity: s, scope: 'global' as const } })),
    ...PEER_SPARSITIES.map((s) => ({ name: `per-layer magnitude ${s * 100}%`, options: { method: 'magnitude' as const, sparsity: s } })),
    // conv1 reads one channel: no run of 4 along its reduction axis.
    { name: '2:4 (conv1 excluded)', options: { method: 'nm' as const, pattern: { n: 2, m: 4 }, exclude: ['conv1'] } },
  ];
  for (const r of runs) {
    log(`peer: shrink ${r.name}`);
    const { model, report } = await prune(base, r.options, ctx);
    ours.push({ name: r.name, sparsity: report.sparsity.pruned_weights, accuracy: round(await accuracy(model)), gzip_ratio: round((gzipBytes(model) as number) / denseGzip) });
  }
  log('peer: PyTorch global_unstructured L1');
  return { dense_accuracy: round(await accuracy(base)), dense_gzip_bytes: denseGzip, shrink: ours, pytorch: pytorch(base, sets, dir) };
}

export const pruneBench: Bench = {
  name: 'prune',
  async run(log): Promise<BenchOutput> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-prune-bench-'));
    try {
      const machine = machineInfo();
      const sets: Sets = { train: readIdxImageSet(FASHION_MNIST_DIR, 'train'), test: readIdxImageSet(FASHION_MNIST_DIR, 't10k') };
      const base = await trainFashionCnn(sets, log);
      const s = await structured(base.model, sets, log);
      const u = await unstructured(base.model, sets, dir, log);
      const json = { machine, base: { accuracy: round(base.accuracy), seconds: round(base.seconds) }, structured: s, peer: u };
      const peerRows = PEER_SPARSITIES.map((sparsity) => {
        const ours = u.shrink.find((r) => r.name === `global magnitude ${sparsity * 100}%`);
        const theirs = u.pytorch.ok ? u.pytorch.results.find((r) => r.sparsity === sparsity) : undefined;
        return `| ${sparsity * 100}% | ${ours?.accuracy}% | ${theirs === undefined ? 'n/a' : `${round(theirs.accuracy)}%`} | ${ours?.gzip_ratio}x |`;
      });
      const markdown = [
        '# Pruning: the Fashion-MNIST CNN',
        '',
        `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}${u.pytorch.ok ? `, PyTorch ${u.pytorch.torch}` : ''}; ${machine.date}, load ${machine.loadAverage}.`,
        '',
        `Base: the CNN of bench/train.ts trained from scratch for ${FASHION_CNN_TRAINING.epochs} epochs (${round(base.seconds)} s): test accuracy ${round(base.accuracy)}%.`,
        '',
        `## Structured: half the channels removed, fine-tuned one epoch`,
        '',
        `Unpruned, fine-tuned the same way: ${s.unpruned.accuracy}% (${s.unpruned.bytes} bytes). Latency: onnxruntime-node, batch ${SPEED.batch}, ${SPEED.threads} thread, median of ${SPEED.runs} interleaved runs.`,
        '',
        '| Pruning | channels | accuracy before fine-tuning | after | gap to unpruned | file size | MACs | latency unpruned / pruned | speed-up |',
        '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
        ...s.pruned.map(
          (r) =>
            `| ${r.name} | ${r.channels.slice(0, 3).join('; ')} | ${r.accuracy_before_fine_tune}% | ${r.accuracy}% | ${r.accuracy_gap_points} points | ${r.size_ratio}x | ${r.macs?.ratio}x | ${r.latency_ms.unpruned} / ${r.latency_ms.pruned} ms | ${r.speedup}x |`,
        ),
        '',
        '## Unstructured, no fine-tuning: shrink against PyTorch',
        '',
        u.pytorch.ok
          ? `PyTorch ${u.pytorch.torch} \`prune.global_unstructured(L1Unstructured)\` over the weights of conv1, conv2, fc1, fc2 of the same trained model; shrink \`--method magnitude --scope global\` over the same weights. Dense: shrink ${u.dense_accuracy}%, PyTorch ${round(u.pytorch.dense)}%.`
          : `**PyTorch is missing: ${u.pytorch.why}.** Only shrink's side was measured. Dense: ${u.dense_accuracy}%.`,
        '',
        '| Sparsity | shrink global magnitude | PyTorch global L1 | shrink gzip -9 size |',
        '| ---: | ---: | ---: | ---: |',
        ...peerRows,
        '',
        `Other shrink methods, same model, no fine-tuning: ${u.shrink
          .filter((r) => !r.name.startsWith('global'))
          .map((r) => `${r.name}: ${r.accuracy}% (${(r.sparsity * 100).toFixed(1)}% of the pruned weights zero, gzip ${r.gzip_ratio}x)`)
          .join('; ')}. Dense file gzip -9: ${u.dense_gzip_bytes} bytes; onnxruntime has no sparse kernels, so unstructured and N:M sparsity shrink the compressed download only.`,
        '',
      ].join('\n');
      return { json, markdown };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
