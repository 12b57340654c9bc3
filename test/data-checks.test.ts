// Sample data is checked before it is used: a NaN or infinity in `--data` or `--calib` fails with
// one line naming the file, the sample and the input (instead of eval reporting "cosine 1" on
// NaN data, or static int8 calibrating on it), and a label outside the classes of the label
// output is refused instead of counting as a silent miss. Real models: the Fashion-MNIST MLP on
// its real test images, the PP-OCR direction classifier.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { type ModelValue, SampleMismatchError, modelSignature, nonFiniteElement, sampleMismatches } from '../src/eval/match-inputs.js';
import { createAccuracyAccumulator } from '../src/eval/metrics.js';
import { writeNpy } from '../src/eval/npy.js';
import { writeNpz } from '../src/eval/npz.js';
import { type Sample, checkedSamples, tensorSamples } from '../src/eval/samples.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { ortCause } from '../src/runtime/ort-errors.js';
import { runShrink } from './helpers/cli.js';
import { CLS } from './helpers/real-models.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-data-checks-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** The first `count` Fashion-MNIST test images as floats 0-1, and their labels. */
function fashion(count: number): { images: Float32Array; labels: BigInt64Array } {
  const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  return { images: Float32Array.from(set.images.subarray(0, count * 784), (v) => v / 255), labels: BigInt64Array.from(set.labels.subarray(0, count), BigInt) };
}

const bytesOf = (array: Float32Array | BigInt64Array) => new Uint8Array(array.buffer, array.byteOffset, array.byteLength);

function imagesNpy(file: string, images: Float32Array): string {
  fs.writeFileSync(file, writeNpy({ dataType: DataType.FLOAT, dims: [images.length / 784, 1, 28, 28], data: bytesOf(images) }));
  return file;
}

/** Exit code `code` and exactly one stderr line matching `pattern`, nothing on stdout. */
function failsWith(run: { code: number; stdout: string; stderr: string }, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, run.stderr);
  assert.equal(run.stdout, '');
  assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
  assert.match(run.stderr.trimEnd(), pattern);
}

test('nonFiniteElement finds NaN and infinity in every float type, by value or by bit pattern, and never in integers', () => {
  assert.equal(nonFiniteElement(DataType.FLOAT, Float32Array.of(1, -2, 3.4e38)), undefined);
  assert.deepEqual(nonFiniteElement(DataType.FLOAT, Float32Array.of(0, 1, Number.NaN, Infinity)), { index: 2, value: 'NaN' });
  assert.deepEqual(nonFiniteElement(DataType.DOUBLE, Float64Array.of(0, -Infinity)), { index: 1, value: '-Infinity' });
  // With a bound: a float64 that float32 cannot hold.
  assert.deepEqual(nonFiniteElement(DataType.DOUBLE, Float64Array.of(1, 1e39), 2 ** 128 - 2 ** 103), { index: 1, value: '1e+39' });
  // float16: 0x7c00 is +infinity, 0xfe00 a NaN; 0x7bff (65504) is the largest finite value.
  assert.equal(nonFiniteElement(DataType.FLOAT16, Uint16Array.of(0x7bff, 0xfbff)), undefined);
  assert.deepEqual(nonFiniteElement(DataType.FLOAT16, Uint16Array.of(0x3c00, 0x7c00)), { index: 1, value: 'Infinity' });
  assert.deepEqual(nonFiniteElement(DataType.FLOAT16, Uint16Array.of(0xfe00)), { index: 0, value: 'NaN' });
  assert.deepEqual(nonFiniteElement(DataType.BFLOAT16, Uint16Array.of(0x3f80, 0xff80)), { index: 1, value: '-Infinity' });
  assert.equal(nonFiniteElement(DataType.FLOAT8E4M3FN, Uint8Array.of(0x7e, 0xfe)), undefined);
  assert.deepEqual(nonFiniteElement(DataType.FLOAT8E4M3FN, Uint8Array.of(0x7e, 0xff)), { index: 1, value: 'NaN' });
  assert.deepEqual(nonFiniteElement(DataType.FLOAT8E5M2, Uint8Array.of(0x7b, 0xfc)), { index: 1, value: '-Infinity' });
  assert.deepEqual(nonFiniteElement(DataType.FLOAT8E5M2FNUZ, Uint8Array.of(0x00, 0x80)), { index: 1, value: 'NaN' });
  assert.equal(nonFiniteElement(DataType.INT32, Int32Array.of(0x7fffffff, -1)), undefined);
  assert.equal(nonFiniteElement(DataType.UINT16, Uint16Array.of(0x7c00, 0xffff)), undefined);
});

test('a sample holding NaN or infinity does not fit the model: the message names the sample, the input and the element', async () => {
  const half: ModelValue = { name: 'x', elemType: DataType.FLOAT16, shape: [2], optional: false };
  const infinite = Tensor.fromArray('x', DataType.FLOAT16, [2], Uint16Array.of(0x3c00, 0x7c00));
  assert.deepEqual(sampleMismatches({ x: infinite }, [half], 'h.npz sample 4'), ["h.npz sample 4: input 'x' holds Infinity at element 1 of float16[2]; sample data must be finite"]);
  assert.deepEqual(sampleMismatches({ x: Tensor.fromArray('x', DataType.FLOAT16, [2], Uint16Array.of(0x3c00, 0x4000)) }, [half], 'h.npz sample 4'), []);
  // Through checkedSamples, as calibration and every other consumer read samples.
  const inputs = modelSignature(loadModel(MLP)).inputs;
  const { images } = fashion(3);
  images[2 * 784 + 300] = Number.NaN;
  const list = [0, 1, 2].map((i) => ({ image: Tensor.fromArray('image', DataType.FLOAT, [1, 1, 28, 28], images.slice(i * 784, (i + 1) * 784)) }));
  const seen: Sample[] = [];
  await assert.rejects(
    (async () => {
      for await (const sample of checkedSamples(tensorSamples(list, 'images'), inputs)) seen.push(sample);
    })(),
    (error: Error) => {
      assert.ok(error instanceof SampleMismatchError);
      assert.equal(error.message, "images 2: input 'image' holds NaN at element 300 of float32[1,1,28,28]; sample data must be finite");
      return true;
    },
  );
  assert.equal(seen.length, 2, 'the finite samples before it came through');
});

test('shrink eval: NaN or infinity in --data is refused with one line (was: cosine 1 on all-NaN data)', async () => {
  const nan = imagesNpy(path.join(work, 'all-nan.npy'), new Float32Array(4 * 784).fill(Number.NaN));
  failsWith(await runShrink(['eval', MLP, MLP, '--data', nan, '--json']), 1, new RegExp(`^shrink: ${escape(nan)} sample 0: input 'image' holds NaN at element 0 of float32\\[1,1,28,28\\]; sample data must be finite$`));

  const { images } = fashion(32);
  images[17 * 784 + 5] = -Infinity;
  const inf = imagesNpy(path.join(work, 'one-inf.npy'), images);
  failsWith(await runShrink(['eval', MLP, MLP, '--data', inf, '--batch', '8']), 1, new RegExp(`^shrink: ${escape(inf)} sample 17: input 'image' holds -Infinity at element 5 of float32\\[1,1,28,28\\]`));

  // The real OCR direction classifier, samples from an .npz keyed by input name.
  const crops = new Float32Array(3 * 3 * 48 * 192).fill(0.25);
  crops[2 * 3 * 48 * 192 + 7] = Number.NaN;
  const npz = path.join(work, 'crops.npz');
  fs.writeFileSync(npz, writeNpz({ x: { dataType: DataType.FLOAT, dims: [3, 3, 48, 192], data: bytesOf(crops) } }));
  failsWith(await runShrink(['eval', CLS, CLS, '--data', npz]), 1, new RegExp(`^shrink: ${escape(npz)} sample 2: input 'x' holds NaN at element 7 of float32\\[1,3,48,192\\]`));

  // The same data without the bad value evaluates.
  images[17 * 784 + 5] = 0;
  const good = await runShrink(['eval', MLP, MLP, '--data', imagesNpy(path.join(work, 'finite.npy'), images), '--json']);
  assert.equal(good.code, 0, good.stderr);
  assert.equal(JSON.parse(good.stdout).outputs.logits.cosine, 1);
});

test('shrink quantize --method static-int8: a NaN calibration sample is refused before anything is written', async () => {
  const { images } = fashion(16);
  images[9 * 784 + 400] = Number.NaN;
  const calib = imagesNpy(path.join(work, 'calib-nan.npy'), images);
  const output = path.join(work, 'mlp-int8.onnx');
  failsWith(
    await runShrink(['quantize', MLP, '-o', output, '--method', 'static-int8', '--calib', calib]),
    1,
    new RegExp(`^shrink: ${escape(calib)} sample 9: input 'image' holds NaN at element 400 of float32\\[1,1,28,28\\]; sample data must be finite$`),
  );
  assert.ok(!fs.existsSync(output));
});

test('shrink eval --labels: a class id the label output does not have is refused (was: counted as a miss)', async () => {
  const { images, labels } = fashion(64);
  const data = imagesNpy(path.join(work, 'images.npy'), images);
  const labelsFile = path.join(work, 'labels.npy');
  labels[37] = 10n;
  fs.writeFileSync(labelsFile, writeNpy({ dataType: DataType.INT64, dims: [64], data: bytesOf(labels) }));
  failsWith(await runShrink(['eval', MLP, MLP, '--data', data, '--labels', labelsFile, '--batch', '16']), 1, /label 10 at index 37 is not a class of output 'logits', which scores 10 classes \(0 to 9\)$/);
  // Negative ids were refused when read already.
  labels[37] = -1n;
  fs.writeFileSync(labelsFile, writeNpy({ dataType: DataType.INT64, dims: [64], data: bytesOf(labels) }));
  failsWith(await runShrink(['eval', MLP, MLP, '--data', data, '--labels', labelsFile]), 1, new RegExp(`^shrink: ${escape(labelsFile)}: label 37 is -1, not a class id`));
  // In range, the accuracy is reported.
  labels[37] = 0n;
  fs.writeFileSync(labelsFile, writeNpy({ dataType: DataType.INT64, dims: [64], data: bytesOf(labels) }));
  const run = await runShrink(['eval', MLP, MLP, '--data', data, '--labels', labelsFile, '--json']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(JSON.parse(run.stdout).accuracy.total, 64);

  // The accumulator names the labels it was given and counts the index across batches.
  const accuracy = createAccuracyAccumulator('labels.json');
  const scores = (rows: number) => Tensor.fromArray('logits', DataType.FLOAT, [rows, 3], new Float32Array(rows * 3));
  accuracy.add(scores(2), [0, 2]);
  assert.throws(() => accuracy.add(scores(2), [1, 3]), { message: "labels.json: label 3 at index 3 is not a class of output 'logits', which scores 3 classes (0 to 2)" });
});

test('ortCause keeps the cause of onnxruntime errors: no C++ source path or signature, the node named', () => {
  const cases: [string, string][] = [
    [
      'This is an invalid model. In Node, ("relu1", Frobnicate, "", -1) : ("fc1_out": tensor(float),) -> ("relu1_out",) , Error No Op registered for Frobnicate with domain_version of 17',
      "node 'relu1' (Frobnicate): No Op registered for Frobnicate with domain_version of 17",
    ],
    [
      'Load model from /tmp/m.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:202 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, const onnxruntime::logging::Logger&, const onnxruntime::ModelOptions&) Unsupported model IR version: 99, max supported IR version: 13\n',
      'Unsupported model IR version: 99, max supported IR version: 13',
    ],
    [
      "Can't create a session. ERROR_CODE: 1, ERROR_MESSAGE: /mnt/work/s/onnxruntime/core/graph/model.cc:203 onnxruntime::Model::Model(ModelProto &&, const PathString &) Unsupported model IR version: 99, max supported IR version: 13",
      'Unsupported model IR version: 99, max supported IR version: 13',
    ],
    [
      "Non-zero status code returned while running Gemm node. Name:'fc1' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/math/gemm_helper.h:14 onnxruntime::GemmHelper::GemmHelper(const onnxruntime::TensorShape&, bool, const onnxruntime::TensorShape&, bool, const onnxruntime::TensorShape&) left operand cannot broadcast on dim 1",
      "node 'fc1' (Gemm): left operand cannot broadcast on dim 1",
    ],
    ['[ONNXRuntimeError] : 1 : FAIL : Load model from x.onnx failed:Protobuf parsing failed.', 'Protobuf parsing failed.'],
  ];
  for (const [raw, cause] of cases) assert.equal(ortCause(new Error(raw)), cause);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
