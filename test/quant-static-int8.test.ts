// Static int8 (QDQ) against onnxruntime: a tiny Conv+Relu+Add model quantized from calibration data
// must stay close to float32 and be fused by onnxruntime into integer kernels; the Fashion-MNIST MLP
// must keep its accuracy within 0.5 points with every calibrator; PP-OCRv4 det must quantize, load
// and run in onnxruntime-node and -web; opset 9 models are refused with one line.
import { cosineSimilarity as cosine } from '../src/eval/metrics.js';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { parseIdx } from '../src/eval/idx.js';
import { writeNpy } from '../src/eval/npy.js';
import type { QuantizeCommandReport as QuantizeReport } from '../src/pipeline/quantize-report.js';
import { spawnShrink } from './helpers/cli.js';
import { CALIBRATOR_NAMES } from '../src/methods/quantize/calibration/registry.js';
import { tensorSamples } from '../src/eval/samples.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { floats } from './helpers/tensors.js';
import { cropImage as crop, detInput, loadOcrFixtures } from './helpers/ocr-lines.js';
import { CLS, DET } from './helpers/real-models.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { ModelSession, toOrtTensor } from '../src/runtime/session.js';
import { runModel } from './helpers/run-model.js';

const work = mkdtempSync(join(tmpdir(), 'shrink-static-int8-'));
after(() => rmSync(work, { recursive: true, force: true }));



/** x [N,3,16,16] -> Conv+Relu -> (Conv, + skip) Add -> Conv -> y. */
function convReluAddModel(opset = 13): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 3, 16, 16]);
  const w = (name: string, dims: number[], seed: number, scale: number) => b.tensor(floats(name, dims, seed, -scale, scale));
  const c1 = b.node('Conv', [x, w('W1', [8, 3, 3, 3], 11, 0.4), w('B1', [8], 12, 0.2)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv1' });
  const r = b.node('Relu', [c1], [], { name: 'relu1' });
  const c2 = b.node('Conv', [r, w('W2', [8, 8, 3, 3], 13, 0.2), w('B2', [8], 14, 0.1)], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv2' });
  const s = b.node('Add', [r, c2], [], { name: 'add' });
  const [y] = b.node('Conv', [s, w('W3', [4, 8, 1, 1], 15, 0.5), w('B3', [4], 16, 0.1)], [], { name: 'conv3', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: opset }]);
}

const calibration = tensorSamples(Array.from({ length: 16 }, (_, i) => ({ x: floats('x', [1, 3, 16, 16], 100 + i) })));

test('Conv+Relu+Add: QDQ close to float32 and fused by onnxruntime into QLinearConv', async () => {
  const original = convReluAddModel();
  const model = convReluAddModel();
  const report = await quantizeStaticInt8(model, { calibration, perChannel: true }, { ort: nodeOrt });
  // conv1 (Relu folded), conv2, add, conv3; Q/DQ on x, relu1's output, conv2's output and the sum.
  assert.deepEqual(
    { nodes: report.stats.nodesQuantized, folded: report.stats.activationsFolded, activations: report.stats.activations, constants: report.stats.constants },
    { nodes: 4, folded: 1, activations: 4, constants: 6 },
  );
  assert.equal(model.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').length, 4);
  const feeds = [floats('x', [2, 3, 16, 16], 7)];
  const [a] = await runModel(original, feeds);
  const [q] = await runModel(model, feeds);
  const cos = cosine(a.data() as Float32Array, q.data() as Float32Array);
  assert.ok(cos > 0.999, `cosine ${cos}`);
  const optimized = join(work, 'conv-relu-add.optimized.onnx');
  const [fused] = await runModel(model, feeds, { threads: 1, graphOptimization: 'all', optimizedModelFilePath: optimized });
  const fusedOps = loadModel(optimized).graph.nodes.map((n) => n.opType);
  // The Relu went into conv1's QLinearConv; conv3 feeds the float graph output, so it stays a float Conv.
  assert.equal(fusedOps.filter((op) => op === 'QLinearConv').length, 2, fusedOps.join(' '));
  assert.ok(fusedOps.includes('QLinearAdd') && !fusedOps.includes('Relu'), fusedOps.join(' '));
  const cosFused = cosine(a.data() as Float32Array, fused.data() as Float32Array);
  assert.ok(cosFused > 0.999, `fused cosine ${cosFused}`);
});

const FASHION = '/usr/share/datasets/fashion-mnist';
const MLP = 'models/fashion-mnist/mlp.onnx';

/** Images of an IDX file scaled to [0, 1] (as the MLP was trained), and the labels. */
function fashion(set: 'train' | 't10k', count: number): { images: Float32Array; labels: Uint8Array } {
  const images = parseIdx(gunzipSync(readFileSync(`${FASHION}/${set}-images-idx3-ubyte.gz`)), `${set}-images`);
  const labels = parseIdx(gunzipSync(readFileSync(`${FASHION}/${set}-labels-idx1-ubyte.gz`)), `${set}-labels`);
  const n = Math.min(count, images.dims[0]);
  return { images: Float32Array.from(images.data.subarray(0, n * 784), (v) => v / 255), labels: labels.data.subarray(0, n) };
}

async function accuracy(model: Model | Uint8Array, images: Float32Array, labels: Uint8Array, graphOptimization: 'basic' | 'all'): Promise<number> {
  const n = labels.length;
  const [logits] = await runModel(model, [Tensor.fromArray('image', DataType.FLOAT, [n, 1, 28, 28], images)], { threads: 1, graphOptimization });
  const scores = logits.data() as Float32Array;
  let right = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (scores[i * 10 + c] > scores[i * 10 + best]) best = c;
    if (best === labels[i]) right++;
  }
  return (100 * right) / n;
}

test('Fashion-MNIST MLP: static int8 loses at most 0.5 points of accuracy with every calibrator', async () => {
  const train = fashion('train', 500);
  const testSet = fashion('t10k', 10_000);
  const fp32 = await accuracy(loadModel(MLP), testSet.images, testSet.labels, 'basic');
  assert.ok(Math.abs(fp32 - 89.21) < 0.01, `fp32 accuracy ${fp32}`);
  const samples = tensorSamples(Array.from({ length: 500 }, (_, i) => ({ image: Tensor.fromArray('image', DataType.FLOAT, [1, 1, 28, 28], train.images.slice(i * 784, (i + 1) * 784)) })), 'train images');
  const lines: string[] = [];
  let worst = Infinity;
  for (const calibrator of CALIBRATOR_NAMES) {
    for (const perChannel of [false, true]) {
      const model = loadModel(MLP);
      const report = await quantizeStaticInt8(model, { calibration: samples, calibrator, perChannel, batch: 100 }, { ort: nodeOrt });
      assert.equal(report.stats.calibrationSamples, 500);
      if (calibrator === 'minmax' && !perChannel) {
        // Each Gemm (Relu folded) becomes onnxruntime's QGemm.
        const optimized = join(work, 'mlp.optimized.onnx');
        await runModel(model, [Tensor.fromArray('image', DataType.FLOAT, [1, 1, 28, 28], train.images.slice(0, 784))], { threads: 1, graphOptimization: 'all', optimizedModelFilePath: optimized });
        const ops = loadModel(optimized).graph.nodes.map((n) => n.opType);
        assert.equal(ops.filter((op) => op === 'QGemm').length, 3, ops.join(' '));
      }
      const fused = await accuracy(model, testSet.images, testSet.labels, 'all');
      const plain = await accuracy(model, testSet.images, testSet.labels, 'basic');
      lines.push(`${calibrator}${perChannel ? ' per-channel' : ''}: ${fused.toFixed(2)}% fused, ${plain.toFixed(2)}% QDQ in float`);
      worst = Math.min(worst, fused);
    }
  }
  console.log(`Fashion-MNIST MLP fp32 ${fp32.toFixed(2)}%; static int8: ${lines.join('; ')}`);
  assert.ok(fp32 - worst <= 0.5, `worst ${worst}% vs ${fp32}%`);
});

test('shrink quantize --fp32-search: rounds are reported, the first layers go to fp32 while their per-layer SQNR is under the tolerance', () => {
  const train = fashion('train', 64);
  const calib = join(work, 'calib-search.npy');
  writeFileSync(calib, writeNpy({ dataType: DataType.FLOAT, dims: [64, 1, 28, 28], data: new Uint8Array(train.images.buffer) }));
  // A tolerance no int8 layer meets: every round moves the boundary on, until the rounds run out.
  const result = spawnShrink(['quantize', MLP, '-o', join(work, 'mlp-search.onnx'), '--method', 'static-int8', '--calib', calib, '--fp32-search', '80', '--fp32-rounds', '2', '--json'], { timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout) as QuantizeReport;
  const rounds = report.fp32_search ?? [];
  assert.equal(rounds.length, 2);
  assert.equal(rounds[0].kept, 0);
  assert.ok(rounds[0].boundary !== undefined && rounds[1].kept > 0, JSON.stringify(rounds));
  // The written model is the best round's: its quantized node count matches what that round kept.
  const best = rounds.reduce((a, r) => (numberOf(r.output_sqnr_db) > numberOf(a.output_sqnr_db) ? r : a));
  assert.equal(report.fp32_kept?.length, best.kept);
  if (best.kept > 0) assert.ok((report.nodes.skipped_by_reason.excluded ?? 0) > 0, JSON.stringify(report.nodes.skipped_by_reason));
  else assert.equal(report.stats.nodes_quantized, 3);
  const bad = spawnShrink(['quantize', MLP, '-o', join(work, 'never.onnx'), '--method', 'static-int8', '--calib', calib, '--fp32-search', 'x']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--fp32-search must be a positive number, got 'x'/);
});

function numberOf(value: number | string | null): number {
  return typeof value === 'number' ? value : value === 'inf' ? Infinity : Number.NaN;
}

test('shrink quantize --method static-int8: --calib .npy writes <input>_static_int8.onnx with fidelity on the calibration data; no --calib is one line, exit 1', () => {
  const train = fashion('train', 64);
  const calib = join(work, 'calib.npy');
  writeFileSync(calib, writeNpy({ dataType: DataType.FLOAT, dims: [64, 1, 28, 28], data: new Uint8Array(train.images.buffer) }));
  const folder = join(work, 'mlp-int8');
  const result = spawnShrink(['quantize', MLP, '-o', `${folder}/`, '--method', 'static-int8', '--calib', calib, '--calibrator', 'percentile', '--per-channel', '--json'], { timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout) as QuantizeReport;
  assert.equal(report.output, join(folder, 'mlp_static_int8.onnx'));
  assert.equal(report.stats.nodes_quantized, 3);
  assert.equal(report.stats.calibration_samples, 64);
  // Gemm weights int8 (~0.25x) with int32 biases.
  assert.ok(report.weights.bytes_after < 0.27 * report.weights.bytes_before, JSON.stringify(report.weights));
  assert.equal(report.fidelity?.samples, 64);
  const out = report.fidelity?.outputs.logits;
  assert.ok(out !== undefined && typeof out.cosine === 'number' && out.cosine > 0.999, JSON.stringify(out));
  console.log(`CLI static-int8 MLP: ${report.size.before} -> ${report.size.after} bytes, logits cosine ${out.cosine}, top-1 ${out.top1_agreement}`);

  const missing = spawnShrink(['quantize', MLP, '-o', `${folder}/`, '--method', 'static-int8']);
  assert.equal(missing.status, 1);
  assert.equal(missing.stdout, '');
  assert.equal(missing.stderr.trimEnd().split('\n').length, 1, missing.stderr);
  assert.match(missing.stderr, /static-int8 needs calibration data: give --calib DATA/);
});


test('PP-OCRv4 det: calibrated on crops of a rendered page, runs in onnxruntime-node (fused) and -web; fidelity reported', async () => {
  const { page } = await loadOcrFixtures();
  const full = detInput(page);
  const quadrants = [crop(full, 0, 0, 320, 320), crop(full, 0, 320, 320, 320), crop(full, 320, 0, 320, 320), crop(full, 320, 320, 320, 320)];
  const model = loadModel(DET);
  const report = await quantizeStaticInt8(model, { calibration: tensorSamples(quadrants.map((x) => ({ x })), 'page crops'), calibrator: 'percentile', perChannel: true, threads: 2 }, { ort: nodeOrt });
  assert.ok(report.warnings.some((w) => w.code === 'opset-raised'), 'opset 11 -> 13 for per-channel weights');
  assert.equal(model.opset(''), 13);
  assert.ok(report.stats.nodesQuantized > 150, JSON.stringify(report.stats));
  const [reference] = await runModel(DET, [full]);
  const [plain] = await runModel(model, [full]);
  const optimized = join(work, 'det.optimized.onnx');
  const [fused] = await runModel(model, [full], { threads: 2, graphOptimization: 'all', optimizedModelFilePath: optimized });
  const kernels = loadModel(optimized).graph.nodes.filter((n) => n.opType.startsWith('QLinear')).length;
  const r = reference.data() as Float32Array;
  const cosPlain = cosine(r, plain.data() as Float32Array);
  const cosFused = cosine(r, fused.data() as Float32Array);
  // The text mask: pixels over PaddleOCR's 0.3 threshold, compared as sets.
  const mask = (t: Tensor) => Array.from(t.data() as Float32Array, (v) => v > 0.3);
  const a = mask(reference);
  const b = mask(fused);
  const union = a.filter((v, i) => v || b[i]).length;
  const iou = a.filter((v, i) => v && b[i]).length / union;
  const web = await loadWebOrt();
  const small = quadrants[0];
  const session = await ModelSession.create(web, model, { executionProviders: WASM_EXECUTION_PROVIDERS });
  const webOut = await session.run({ x: toOrtTensor(web, small) });
  await session.release();
  const [nodeSmall] = await runModel(model, [small]);
  const cosWeb = cosine(nodeSmall.data() as Float32Array, webOut[session.outputNames[0]].data as Float32Array);
  console.log(`PP-OCRv4 det static int8 (percentile, per-channel): ${kernels} QLinear kernels after fusion; probability map cosine ${cosPlain.toFixed(4)} (QDQ), ${cosFused.toFixed(4)} (fused), text-mask IoU ${iou.toFixed(3)}; web vs node cosine ${cosWeb.toFixed(5)}`);
  assert.ok(kernels > 50, `${kernels} QLinear kernels`);
  assert.ok(cosFused > 0.9 && iou > 0.7, `cosine ${cosFused}, IoU ${iou}`);
  assert.ok(cosWeb > 0.99, `web vs node ${cosWeb}`);
});

test('PP-OCR cls (opset 9): upgraded to opset 13 (Slice, Clip, Softmax rewritten) and quantized; an op the upgrade does not know is refused with one line', async () => {
  const model = loadModel(CLS);
  const calibration = tensorSamples([1, 2, 3, 4].map((seed) => ({ x: floats('x', [1, 3, 48, 192], seed) })));
  const report = await quantizeStaticInt8(model, { calibration, perChannel: true }, { ort: nodeOrt });
  assert.ok(report.warnings.some((w) => w.code === 'opset-upgraded'), report.warnings.map((w) => w.message).join('; '));
  assert.equal(model.opset(''), 13);
  const feeds = [floats('x', [1, 3, 48, 192], 9)];
  const [a] = await runModel(CLS, feeds);
  const [q] = await runModel(model, feeds);
  const gap = Math.max(...Array.from(a.data() as Float32Array, (v, i) => Math.abs(v - (q.data() as Float32Array)[i])));
  console.log(`PP-OCR cls static int8 after opset upgrade: ${report.stats.nodesQuantized} nodes quantized, largest probability gap ${gap.toFixed(4)}`);
  assert.ok(gap < 0.1, `probability gap ${gap}`);

  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 3, 8, 8]);
  const conv = b.node('Conv', [x, b.tensor(floats('W', [4, 3, 3, 3], 1)), b.tensor(floats('B', [4], 2))], [], { name: 'conv' });
  const flat = b.node('Flatten', [conv], [], { name: 'flatten' });
  const [y] = b.node('Scatter', [flat, b.tensor(Tensor.fromArray('idx', DataType.INT64, [1, 2], new BigInt64Array([0n, 1n]))), b.tensor(floats('upd', [1, 2], 3))], [], { name: 'old_scatter', outputs: ['y'] });
  b.output(y, DataType.FLOAT);
  const old = buildModel(b.graph, [{ domain: '', version: 9 }], 4);
  await assert.rejects(
    () => quantizeStaticInt8(old, { calibration: tensorSamples([{ x: floats('x', [1, 3, 8, 8], 4) }]) }, { ort: nodeOrt }),
    (error: Error) => {
      assert.equal(error.message.split('\n').length, 1);
      assert.match(error.message, /^static-int8: the model imports ai\.onnx opset 9; QuantizeLinear\/DequantizeLinear need 10, and the model cannot be upgraded: .*Scatter node 'old_scatter'/);
      return true;
    },
  );
});

test('QOperator output: QLinearConv nodes replace the QDQ groups and stay close to the QDQ model', async () => {
  const qdq = convReluAddModel();
  await quantizeStaticInt8(qdq, { calibration, perChannel: true }, { ort: nodeOrt });
  const qop = convReluAddModel();
  const report = await quantizeStaticInt8(qop, { calibration, perChannel: true, format: 'qoperator' }, { ort: nodeOrt });
  assert.equal(report.stats.qoperators, 2, 'conv1 (+Relu) and conv2; conv3 feeds the graph output in float');
  assert.equal(qop.graph.nodes.filter((n) => n.opType === 'QLinearConv').length, 2);
  assert.equal(qop.graph.nodes.filter((n) => n.opType === 'Relu').length, 0);
  const feeds = [floats('x', [2, 3, 16, 16], 7)];
  const [a] = await runModel(qdq, feeds);
  const [b] = await runModel(qop, feeds);
  const cos = cosine(a.data() as Float32Array, b.data() as Float32Array);
  assert.ok(cos > 0.9999, `QOperator vs QDQ cosine ${cos}`);
  // onnxruntime-web (wasm) runs the QLinearConv model too, and agrees with onnxruntime-node.
  const web = await loadWebOrt();
  const [w] = await runModel(qop, feeds, { threads: 1, executionProviders: WASM_EXECUTION_PROVIDERS }, web);
  const webCos = cosine(w.data() as Float32Array, b.data() as Float32Array);
  assert.ok(webCos > 0.9999, `QOperator in onnxruntime-web vs -node cosine ${webCos}`);
});
