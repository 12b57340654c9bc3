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
import { writeModel } from '../src/onnx/model-io.js';
import { ModelProtoSchema } from '../src/onnx/onnx_pb.js';
import { bitIdentical } from './helpers/compare.js';
import { readBytes } from './helpers/onnx-test-data.js';
import { type RealModel, realModel } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';

interface Spec extends RealModel {
  /** Graph inputs as the IR reads them: name and formatted type. */
  inputs: string[];
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

const MODELS: Spec[] = [
  {
    ...realModel('rec'),
    inputs: ['x: float32[p2o.DynamicDimension.0,3,48,p2o.DynamicDimension.1]'],
    weightsInSubgraphs: false,
    checkOutputs: ([probabilities]) => {
      assert.deepEqual(probabilities.dims, [1, 40, 6625]);
      assertSoftmax(probabilities, 6625);
    },
  },
  {
    ...realModel('det'),
    inputs: ['x: float32[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2]'],
    weightsInSubgraphs: false,
    checkOutputs: ([map]) => {
      assert.deepEqual(map.dims, [1, 1, 320, 320]);
      assertProbabilities(map);
    },
  },
  {
    ...realModel('cls'),
    inputs: ['x: float32[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2]'],
    weightsInSubgraphs: false,
    checkOutputs: ([probabilities]) => {
      assert.deepEqual(probabilities.dims, [1, 2]);
      assertSoftmax(probabilities, 2);
    },
  },
  {
    ...realModel('vadV5'),
    inputs: ['input: float32[?,?]', 'state: float32[2,?,128]', 'sr: int64[]'],
    weightsInSubgraphs: true,
    checkOutputs: vadOutputs('stateN', [2, 1, 128]),
  },
  {
    ...realModel('vadV6'),
    inputs: ['input: float32[?,?]', 'state: float32[2,?,128]', 'sr: int64[]'],
    weightsInSubgraphs: true,
    checkOutputs: vadOutputs('stateN', [2, 1, 128]),
  },
  {
    ...realModel('vadLegacy'),
    inputs: ['input: float32[batch,sequence]', 'sr: int64[]', 'h: float32[2,batch,64]', 'c: float32[2,batch,64]'],
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
    // onnxruntime's default thread count; both runs use the same, so outputs still compare bit for bit.
    const expected = await runModel(original, feeds, {});
    const actual = await runModel(reencoded, feeds, {});
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
