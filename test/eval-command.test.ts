// `shrink eval` end to end on real models with onnxruntime-node: a model against itself is exact
// (PP-OCRv4 rec on generated inputs, Silero VAD v5 with recorded LSTM states from an .npz),
// Fashion-MNIST accuracy on the 10k real test images matches a count made here directly in
// onnxruntime, and data that does not fit the model fails with one line naming the input.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../src/cli/main.js';
import { parseIdx } from '../src/eval/idx.js';
import { writeNpy } from '../src/eval/npy.js';
import { writeNpz } from '../src/eval/npz.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import type { OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession } from '../src/runtime/session.js';
import { REC, VAD_V5 } from './helpers/real-models.js';
import { spawnShrink } from './helpers/cli.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const FASHION = '/usr/share/datasets/fashion-mnist';

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-eval-'));
process.on('exit', () => fs.rmSync(temp, { recursive: true, force: true }));

/** The real CLI in a child process. */
function shrink(...args: string[]) {
  const result = spawnShrink(args);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The CLI in this process (no second Node start), with its output captured. */
async function shrinkHere(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => {
      stdout += t;
    }, stderr: (t) => {
      stderr += t;
    } });
  return { code, stdout, stderr };
}

const f32Bytes = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

function assertExact(output: Record<string, unknown>, name: string) {
  assert.equal(output.cosine, 1, `${name} cosine`);
  assert.equal(output.sqnr_db, 'inf', `${name} SQNR`);
  assert.equal(output.max_abs, 0, `${name} max abs`);
  assert.equal(output.mean_abs, 0, `${name} mean abs`);
  assert.equal(output.relative, 0, `${name} relative`);
}

test('PP-OCRv4 rec against itself (CLI, generated inputs): cosine 1, SQNR inf, zero error, full top-1 agreement, random-data warning', () => {
  const run = shrink('eval', REC, REC, '--json', '--threads', '1', '--samples', '2', '--dims', 'p2o.DynamicDimension.0=1,p2o.DynamicDimension.1=160');
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.samples, 2);
  const output = report.outputs['softmax_11.tmp_0'];
  assertExact(output, 'softmax_11.tmp_0');
  // [1, 20, 6625] per sample: 20 CTC steps of 6625 classes, 2 samples.
  assert.equal(output.elements, 2 * 20 * 6625);
  assert.equal(output.rows, 40);
  assert.equal(output.top1_agreement, 1);
  assert.equal(output.topk_overlap, 1);
  assert.match(run.stderr, /^shrink: warning: inputs are random numbers/);
  assert.deepEqual(report.warnings.length, 1);
});

test('Silero VAD v5 against itself, stateful inputs from an .npz of recorded LSTM states: exact on both outputs', async () => {
  // A 16 kHz tone with noise run chunk by chunk, as an app would: the state fed with each chunk is
  // the stateN the model returned for the previous one, so the samples carry real, non-zero states.
  const chunks = 6;
  const session = await ModelSession.create(nodeOrt, VAD_V5, { threads: 1 });
  const audio = new Float32Array(chunks * 512);
  let seed = 1;
  for (let i = 0; i < audio.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    audio[i] = 0.5 * Math.sin((2 * Math.PI * 440 * i) / 16000) + 0.05 * (seed / 2 ** 31 - 0.5);
  }
  const states = new Float32Array(chunks * 256);
  let state: OrtTensor = new nodeOrt.Tensor('float32', new Float32Array(256), [2, 1, 128]);
  const sr = new nodeOrt.Tensor('int64', BigInt64Array.from([16000n]), []);
  for (let c = 0; c < chunks; c++) {
    states.set(state.data as Float32Array, c * 256);
    const input = new nodeOrt.Tensor('float32', audio.slice(c * 512, (c + 1) * 512), [1, 512]);
    const out = await session.run({ input, state, sr });
    state = out.stateN;
  }
  await session.release();
  assert.ok(states.subarray(256).some((v) => v !== 0), 'recorded states are not all zero');
  const npz = path.join(temp, 'vad.npz');
  fs.writeFileSync(
    npz,
    writeNpz({
      input: { dataType: DataType.FLOAT, dims: [chunks, 1, 512], data: f32Bytes(audio) },
      state: { dataType: DataType.FLOAT, dims: [chunks, 2, 1, 128], data: f32Bytes(states) },
      sr: { dataType: DataType.INT64, dims: [], data: new Uint8Array(BigInt64Array.from([16000n]).buffer) },
    }),
  );
  const run = await shrinkHere('eval', VAD_V5, VAD_V5, '--data', npz, '--json', '--threads', '1');
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '', 'real data: no warning');
  const report = JSON.parse(run.stdout);
  assert.equal(report.samples, chunks);
  assert.match(report.data, /vad\.npz \(npz, 6 samples\)/);
  assertExact(report.outputs.output, 'output');
  assertExact(report.outputs.stateN, 'stateN');
  assert.equal(report.outputs.output.elements, chunks);
  assert.equal(report.outputs.stateN.elements, chunks * 256);
});

/** The Fashion-MNIST test set as float images in [0, 1] and int64 labels. */
function fashionTestSet(): { images: Float32Array; labels: BigInt64Array } {
  const images = parseIdx(gunzipSync(fs.readFileSync(`${FASHION}/t10k-images-idx3-ubyte.gz`)), 't10k-images');
  const labels = parseIdx(gunzipSync(fs.readFileSync(`${FASHION}/t10k-labels-idx1-ubyte.gz`)), 't10k-labels');
  assert.deepEqual(images.dims, [10000, 28, 28]);
  return { images: Float32Array.from(images.data, (v) => v / 255), labels: BigInt64Array.from(labels.data, (v) => BigInt(v)) };
}

/** A copy of the MLP with every weight matrix rounded to 4-bit levels (symmetric, per tensor). */
function roughMlp(file: string): void {
  const model = loadModel(MLP);
  const graph = model.graph;
  graph.initializers = graph.initializers.map((tensor) => {
    if (tensor.dims.length !== 2) return tensor;
    const w = tensor.data() as Float32Array;
    const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 7;
    return Tensor.fromArray(tensor.name, DataType.FLOAT, tensor.dims, w.map((v) => Math.round(v / scale) * scale));
  });
  graph.changed();
  saveModel(model, file);
}

/** Arg-max of each row of [rows, classes] logits. */
function argmax(logits: Float32Array, classes: number): Int32Array {
  const ids = new Int32Array(logits.length / classes);
  for (let r = 0; r < ids.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
    ids[r] = best;
  }
  return ids;
}

test('Fashion-MNIST MLP on the 10k real test images (CLI): accuracy matches a direct onnxruntime count (89.21%), and so do the rough copy and the agreement', async () => {
  const { images, labels } = fashionTestSet();
  const imagesFile = path.join(temp, 'images.npy');
  const labelsFile = path.join(temp, 'labels.npy');
  fs.writeFileSync(imagesFile, writeNpy({ dataType: DataType.FLOAT, dims: [10000, 1, 28, 28], data: f32Bytes(images) }));
  fs.writeFileSync(labelsFile, writeNpy({ dataType: DataType.INT64, dims: [10000], data: new Uint8Array(labels.buffer) }));
  const rough = path.join(temp, 'mlp-rough.onnx');
  roughMlp(rough);
  // A user metric, loaded by path: mean |difference| of one sample's logits.
  const metricFile = path.join(temp, 'logit-diff.mjs');
  fs.writeFileSync(
    metricFile,
    `export const name = 'mean logit difference';
export default (reference, candidate) => {
  const a = reference.logits.data(), b = candidate.logits.data();
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
};\n`,
  );

  const run = shrink('eval', MLP, rough, '--data', imagesFile, '--labels', labelsFile, '--metric', metricFile, '--batch', '500', '--threads', '1', '--json', '--no-progress');
  assert.equal(run.code, 0, run.stderr);
  // Nothing on stderr: no warning (progress, which a loaded machine makes last long enough to show, is off).
  assert.equal(run.stderr, '');
  const report = JSON.parse(run.stdout);

  // The independent count: both models on all 10k images in one onnxruntime call each.
  const logitsOf = async (model: string) => {
    const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
    const out = await session.run({ image: new nodeOrt.Tensor('float32', images, [10000, 1, 28, 28]) });
    await session.release();
    return out.logits.data as Float32Array;
  };
  const a = await logitsOf(MLP);
  const b = await logitsOf(rough);
  const predA = argmax(a, 10);
  const predB = argmax(b, 10);
  let correctA = 0;
  let correctB = 0;
  let agree = 0;
  let absSum = 0;
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let r = 0; r < 10000; r++) {
    if (predA[r] === Number(labels[r])) correctA++;
    if (predB[r] === Number(labels[r])) correctB++;
    if (predA[r] === predB[r]) agree++;
  }
  for (let i = 0; i < a.length; i++) {
    absSum += Math.abs(a[i] - b[i]);
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  assert.equal(correctA, 8921, 'the committed model scores 89.21%');
  assert.equal(report.samples, 10000);
  assert.deepEqual(report.accuracy, {
    original: correctA / 10000,
    candidate: correctB / 10000,
    correct_original: correctA,
    correct_candidate: correctB,
    total: 10000,
    output: 'logits',
    labels: labelsFile,
  });
  assert.ok(correctB !== correctA && correctB > 8000, `the rough copy scores differently but sensibly: ${correctB}`);
  const logits = report.outputs.logits;
  assert.equal(logits.top1_agreement, agree / 10000);
  assert.ok(Math.abs(logits.mean_abs - absSum / a.length) < 1e-9, `mean abs ${logits.mean_abs} vs ${absSum / a.length}`);
  assert.ok(Math.abs(logits.cosine - dot / Math.sqrt(normA * normB)) < 1e-9, `cosine ${logits.cosine}`);
  assert.ok(logits.cosine < 0.9999 && logits.cosine > 0.9, `rough copy cosine ${logits.cosine}`);
  assert.equal(report.custom.name, 'mean logit difference');
  assert.equal(report.custom.samples, 10000);
  // Every sample has 10 logits, so the per-sample means average to the overall mean.
  assert.ok(Math.abs(report.custom.mean - logits.mean_abs) < 1e-6, `custom ${report.custom.mean} vs ${logits.mean_abs}`);

  // The table shows the same numbers.
  const table = await shrinkHere('eval', MLP, rough, '--data', imagesFile, '--labels', labelsFile, '--batch', '1000', '--threads', '1');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /accuracy on 10,000 labels \(output 'logits'\): original 89\.21%, candidate /);
  assert.match(table.stdout, /^logits +0\.99\d+ +\d+\.\d\d /m);
});

test('bad data: wrong shape, wrong dtype, missing input, corrupt or truncated .npy, short labels: one line naming the input and what was expected, exit 1', async () => {
  const write = (name: string, bytes: Uint8Array | string) => {
    const file = path.join(temp, name);
    fs.writeFileSync(file, bytes);
    return file;
  };
  const zeros = (n: number) => new Uint8Array(n * 4);
  const cases: [string, string[], RegExp][] = [
    [
      'wrong shape',
      ['eval', MLP, MLP, '--data', write('shape.npy', writeNpy({ dataType: DataType.FLOAT, dims: [3, 1, 32, 32], data: zeros(3 * 1024) }))],
      /shape\.npy sample 0: input 'image' dim 2 is 32, expected 28: expected float32\[N,1,28,28\], got float32\[1,1,32,32\]$/,
    ],
    [
      'wrong dtype',
      ['eval', MLP, MLP, '--data', write('dtype.npy', writeNpy({ dataType: DataType.DOUBLE, dims: [2, 1, 28, 28], data: new Uint8Array(2 * 784 * 8) }))],
      /dtype\.npy sample 0: input 'image' has the wrong type: expected float32\[N,1,28,28\], got float64\[1,1,28,28\]$/,
    ],
    [
      'missing input (npz)',
      [
        'eval', VAD_V5, VAD_V5, '--data',
        write('no-sr.npz', writeNpz({ input: { dataType: DataType.FLOAT, dims: [1, 1, 512], data: zeros(512) }, state: { dataType: DataType.FLOAT, dims: [1, 2, 1, 128], data: zeros(256) } })),
      ],
      /no-sr\.npz: no array for input 'sr' \(model expects int64\[\]\); the archive holds 'input', 'state'$/,
    ],
    [
      'missing input (JSON)',
      ['eval', MLP, MLP, '--data', write('empty.json', '[{}]')],
      /empty\.json sample 0: input 'image' is missing \(model expects float32\[N,1,28,28\]; the sample has nothing\)$/,
    ],
    ['corrupt .npy', ['eval', MLP, MLP, '--data', write('corrupt.npy', 'PK\u0003\u0004 this is not numpy')], /corrupt\.npy: not a \.npy file/],
    [
      'truncated .npy',
      ['eval', MLP, MLP, '--data', write('short.npy', writeNpy({ dataType: DataType.FLOAT, dims: [4, 1, 28, 28], data: zeros(4 * 784) }).subarray(0, 3000))],
      /short\.npy: data is truncated: shape \(4, 1, 28, 28\) of float32 needs 12544 bytes, file has 2872$/,
    ],
    [
      'fewer labels than predictions',
      [
        'eval', MLP, MLP, '--data', write('two.npy', writeNpy({ dataType: DataType.FLOAT, dims: [2, 1, 28, 28], data: zeros(2 * 784) })),
        '--labels', write('one-label.json', '[3]'),
      ],
      /one-label\.json: 1 labels, but output 'logits' gives more predictions \(2 so far\)$/,
    ],
    ['float labels', ['eval', MLP, MLP, '--data', path.join(temp, 'two.npy'), '--labels', write('float-labels.npy', writeNpy({ dataType: DataType.FLOAT, dims: [2], data: zeros(2) }))], /float-labels\.npy: labels must be integer class ids, got float32/],
  ];
  for (const [what, args, expected] of cases) {
    const run = await shrinkHere(...args, '--threads', '1');
    assert.equal(run.code, 1, `${what}: exit code (stderr: ${run.stderr})`);
    assert.equal(run.stdout, '', what);
    assert.equal(run.stderr.split('\n').length, 2, `${what}: one line: ${run.stderr}`);
    assert.match(run.stderr.trim(), /^shrink: /, what);
    assert.match(run.stderr.trim(), expected, what);
  }

  // The same through the real executable: stderr is exactly the one line.
  const child = shrink('eval', MLP, MLP, '--data', path.join(temp, 'dtype.npy'));
  assert.equal(child.code, 1);
  assert.equal(child.stdout, '');
  assert.match(child.stderr, /^shrink: \S*dtype\.npy sample 0: input 'image' has the wrong type: expected float32\[N,1,28,28\], got float64\[1,1,28,28\]\n$/);

  // Command-line mistakes are usage errors (exit 2).
  const usage = await shrinkHere('eval', MLP, MLP, '--batch', '0');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^shrink: --batch must be a whole number >= 1, got '0'\n$/);
  const mixed = await shrinkHere('eval', MLP, MLP, '--data', path.join(temp, 'two.npy'), '--seed', '3');
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /--seed shapes generated inputs and has no effect with --data/);
});
