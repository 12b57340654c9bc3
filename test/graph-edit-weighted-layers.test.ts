// The weighted-layer table: on layers built in code, each weight's axes against the shapes
// onnxruntime gives their outputs; on the real models, the layer counts, and every layer's output
// and input channels against the inferred shapes of the activations it produces and reads (and
// against the BatchNormalization that follows, where one does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Dim } from '../src/ir/value-info.js';
import { constantValue } from '../src/ir/constants.js';
import { loadModel } from '../src/node/model-files.js';
import { inferShapes } from '../src/optimize/shape-inference/index.js';
import {
  type WeightedLayer,
  WEIGHTED_OPS,
  isDepthwise,
  isWeightedLayer,
  layerWeightName,
  matrixWeightShape,
  outputChannelAxis,
  reductionAxis,
  weightAxes,
  weightedLayers,
} from '../src/graph-edit/weighted-layers.js';
import { REAL_MODELS, type RealModelKey } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';
import { floats, pseudoRandom } from './helpers/tensors.js';

/** Every kind of weighted layer side by side, each reading its own input; plus nodes that are not layers. */
function layersModel(): Model {
  const b = new GraphBuilder();
  const w = (name: string, dims: number[], seed: number) => b.initializer(name, DataType.FLOAT, dims, pseudoRandom(dims.reduce((x, y) => x * y, 1), seed));
  const out = (name: string) => ({ name, outputs: [name.replace('node_', '')] });
  const image = b.input('image', DataType.FLOAT, [2, 8, 6, 6]);
  const conv = [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1])];
  b.node('Conv', [image, w('w_conv', [16, 8, 3, 3], 1), w('b_conv', [16], 2)], conv, out('node_conv'));
  b.node('Conv', [image, w('w_grouped', [6, 4, 3, 3], 3)], [...conv, attr.int('group', 2)], out('node_grouped'));
  b.node('Conv', [image, w('w_depthwise', [16, 1, 3, 3], 4)], [...conv, attr.int('group', 8)], out('node_depthwise'));
  b.node('ConvTranspose', [image, w('w_up', [8, 3, 2, 2], 5)], [attr.ints('strides', [2, 2]), attr.int('group', 2)], out('node_up'));
  const tokens = b.input('tokens', DataType.FLOAT, [2, 5, 12]);
  b.node('MatMul', [tokens, w('w_matmul', [12, 7], 6)], [], out('node_matmul'));
  b.node('MatMul', [tokens, b.input('runtime_b', DataType.FLOAT, [12, 3])], [], out('node_runtime'));
  const rows = b.input('rows', DataType.FLOAT, [4, 12]);
  b.node('Gemm', [rows, w('w_gemm', [12, 9], 7), w('c_gemm', [9], 8)], [], out('node_gemm'));
  b.node('Gemm', [rows, w('w_gemm_t', [10, 12], 9)], [attr.int('transB', 1)], out('node_gemm_t'));
  const ids = b.input('ids', DataType.INT64, [2, 3]);
  b.node('Gather', [w('table', [20, 6], 10), ids], [], out('node_embedding'));
  const sequence = b.input('sequence', DataType.FLOAT, [5, 2, 12]);
  b.node('LSTM', [sequence, w('w_lstm', [2, 4 * 7, 12], 11), w('r_lstm', [2, 4 * 7, 7], 12)], [attr.int('hidden_size', 7), attr.string('direction', 'bidirectional')], {
    name: 'node_lstm',
    outputs: ['lstm', 'lstm_h'],
  });
  b.node('GRU', [sequence, w('w_gru', [1, 3 * 4, 12], 13), w('r_gru', [1, 3 * 4, 4], 14)], [attr.int('hidden_size', 4)], { name: 'node_gru', outputs: ['gru'] });
  for (const name of ['conv', 'grouped', 'depthwise', 'up', 'matmul', 'runtime', 'gemm', 'gemm_t', 'embedding', 'lstm', 'gru']) b.output(name, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

const feeds = () => [
  floats('image', [2, 8, 6, 6], 20),
  floats('tokens', [2, 5, 12], 21),
  floats('runtime_b', [12, 3], 22),
  floats('rows', [4, 12], 23),
  Tensor.fromArray('ids', DataType.INT64, [2, 3], BigInt64Array.of(0n, 19n, 3n, 7n, 7n, 12n)),
  floats('sequence', [5, 2, 12], 24),
];

test('tiny layers: weight input, output and reduction axes, groups, channels; onnxruntime agrees on every output channel count', async () => {
  const model = layersModel();
  const graph = model.graph;
  const layers = weightedLayers(graph);
  const byNode = new Map(layers.map((l) => [l.node.name, l]));
  assert.deepEqual(
    layers.map((l) => l.node.name),
    ['node_conv', 'node_grouped', 'node_depthwise', 'node_up', 'node_matmul', 'node_gemm', 'node_gemm_t', 'node_embedding', 'node_lstm', 'node_gru'],
    'the MatMul with a runtime B is no layer',
  );
  const axes = (name: string) => {
    const layer = byNode.get(name) as WeightedLayer;
    const a = layer.axes;
    assert.ok(a !== undefined, name);
    return [a.output, a.reduction, a.groups, a.outputChannels, a.inputChannels, layer.weightName];
  };
  assert.deepEqual(axes('node_conv'), [0, 1, 1, 16, 8, 'w_conv']);
  assert.deepEqual(axes('node_grouped'), [0, 1, 2, 6, 8, 'w_grouped']);
  assert.deepEqual(axes('node_depthwise'), [0, 1, 8, 16, 8, 'w_depthwise']);
  assert.deepEqual(axes('node_up'), [1, 0, 2, 6, 8, 'w_up']);
  assert.deepEqual(axes('node_matmul'), [1, 0, 1, 7, 12, 'w_matmul']);
  assert.deepEqual(axes('node_gemm'), [1, 0, 1, 9, 12, 'w_gemm']);
  assert.deepEqual(axes('node_gemm_t'), [0, 1, 1, 10, 12, 'w_gemm_t']);
  assert.deepEqual(axes('node_embedding'), [1, undefined, 1, 6, undefined, 'table']);
  assert.deepEqual(axes('node_lstm'), [1, 2, 1, 7, 12, 'w_lstm']);
  assert.deepEqual(axes('node_gru'), [1, 2, 1, 4, 12, 'w_gru']);
  assert.deepEqual(byNode.get('node_lstm')?.axes?.stacked, [0], 'directions');
  assert.equal(WEIGHTED_OPS.LSTM.recurrence, 2);
  assert.equal(WEIGHTED_OPS.Gemm.bias, 2);
  assert.equal(WEIGHTED_OPS.MatMul.bias, undefined);

  const node = (name: string) => graph.nodes.find((n) => n.name === name) ?? assert.fail(name);
  assert.deepEqual(
    ['node_conv', 'node_grouped', 'node_depthwise', 'node_up'].map((n) => isDepthwise(node(n), byNode.get(n)?.weight.dims ?? [])),
    [false, false, true, false],
  );
  assert.deepEqual(matrixWeightShape(node('node_gemm_t'), [10, 12]), { K: 12, N: 10, transposed: true });
  assert.deepEqual(matrixWeightShape(node('node_matmul'), [12, 7]), { K: 12, N: 7, transposed: false });
  assert.equal(matrixWeightShape(node('node_conv'), [16, 8, 3, 3]), undefined, 'not a matrix layer');
  assert.equal(outputChannelAxis(node('node_gemm_t'), [10, 12]), 0);
  assert.equal(reductionAxis(node('node_gemm'), [12, 9]), 0);
  // Layouts the op cannot have: a batched MatMul B, a rank-2 Conv weight.
  assert.equal(weightAxes(node('node_matmul'), [3, 12, 7]), undefined);
  assert.equal(weightAxes(node('node_conv'), [16, 8]), undefined);
  assert.equal(isWeightedLayer(graph, node('node_runtime')), false);
  assert.equal(layerWeightName(node('node_runtime')), 'runtime_b');

  // The oracle: the shapes onnxruntime gives each output (and the inputs' own), at the activations' channel axes.
  const inputs = feeds();
  const outputs = await runModel(model, inputs);
  const shape = new Map([...inputs, ...outputs].map((t) => [t.name, t.dims]));
  for (const layer of layers) {
    const produced = shape.get(layer.node.outputs[0]) as readonly number[];
    const read = shape.get(layer.node.inputs[0]) as readonly number[];
    const axes = layer.op.activationAxes(layer.node);
    assert.equal(produced.at(axes.output), layer.axes?.outputChannels, `${layer.node.name}: output [${produced}]`);
    assert.equal(axes.input === undefined ? undefined : read.at(axes.input), layer.axes?.inputChannels, `${layer.node.name}: input [${read}]`);
  }
});

test('not layers: a weight that is not float, an op of another domain', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 4]);
  b.node('MatMul', [x, b.initializer('codes', DataType.INT8, [4, 2], new Int8Array(8))], [], { name: 'int_weight' });
  b.addNode('MatMul', [x, b.initializer('w', DataType.FLOAT, [4, 2], new Float32Array(8))], [], { name: 'custom', domain: 'com.example' });
  b.node('MatMul', [x, b.initializer('w16', DataType.FLOAT16, [4, 2], new Uint16Array(8))], [], { name: 'half' });
  const graph = buildModel(b.graph).graph;
  assert.deepEqual(
    weightedLayers(graph).map((l) => l.node.name),
    ['half'],
  );
});

/** Channel count of `shape` at `axis` (negative from the end), when inferred as a number. */
function channelDim(shape: readonly Dim[] | undefined, axis: number | undefined): number | undefined {
  if (shape === undefined || axis === undefined) return undefined;
  const d = shape[axis < 0 ? shape.length + axis : axis];
  return typeof d === 'number' ? d : undefined;
}

/** Per model: layers by op type (all scopes), depthwise Convs, layers read by a BatchNormalization, channel counts checked. */
const EXPECTED: Record<RealModelKey, { layers: Record<string, number>; depthwise: number; followedByBatchNorm: number; checked: number }> = {
  rec: { layers: { Conv: 38, MatMul: 9 }, depthwise: 14, followedByBatchNorm: 6, checked: 94 },
  det: { layers: { Conv: 62, ConvTranspose: 2 }, depthwise: 14, followedByBatchNorm: 2, checked: 128 },
  cls: { layers: { Conv: 53, MatMul: 1 }, depthwise: 11, followedByBatchNorm: 35, checked: 108 },
  // Silero: every layer inside If branches; the decoder Conv's input and output shapes stay unknown (4 of each model's 24).
  vadV5: { layers: { Conv: 12 }, depthwise: 0, followedByBatchNorm: 0, checked: 20 },
  vadV6: { layers: { Conv: 12 }, depthwise: 0, followedByBatchNorm: 0, checked: 20 },
  // The LSTMs read a value of unknown shape (4 of 88).
  vadLegacy: { layers: { Conv: 36, LSTM: 8 }, depthwise: 8, followedByBatchNorm: 0, checked: 84 },
};

for (const real of REAL_MODELS) {
  test(`${real.name}: weighted layers, and every weight's channels match the activations around it`, () => {
    const model = loadModel(real.file);
    const inferred = inferShapes(model);
    const counts: Record<string, number> = {};
    let depthwise = 0;
    let followedByBatchNorm = 0;
    let checked = 0;
    model.graph.visit((graph: Graph) => {
      const types = inferred.types.get(graph);
      for (const layer of weightedLayers(graph)) {
        const { node, axes } = layer;
        const where = `${node.opType} '${node.label}' weight [${layer.weight.dims}]`;
        counts[node.opType] = (counts[node.opType] ?? 0) + 1;
        assert.ok(axes !== undefined, `${where}: no layout`);
        if (isDepthwise(node, layer.weight.dims)) depthwise++;
        if (node.opType === 'LSTM') assert.equal(axes.outputChannels, node.attrInt('hidden_size', 0), `${where}: hidden_size`);
        const activation = layer.op.activationAxes(node);
        const produced = channelDim(types?.get(node.outputs[0])?.shape, activation.output);
        const read = channelDim(types?.get(node.inputs[0])?.shape, activation.input);
        if (produced !== undefined) {
          assert.equal(produced, axes.outputChannels, `${where}: output channels`);
          checked++;
        }
        if (read !== undefined) {
          assert.equal(read, axes.inputChannels, `${where}: input channels`);
          checked++;
        }
        const readers = graph.consumers(node.outputs[0]);
        if (readers.length === 1 && readers[0].opType === 'BatchNormalization') {
          assert.deepEqual(constantValue(graph, readers[0].inputs[1])?.dims, [axes.outputChannels], `${where}: BatchNormalization scale`);
          followedByBatchNorm++;
        }
      }
    });
    const expected = EXPECTED[real.key];
    assert.deepEqual(counts, expected.layers);
    assert.equal(depthwise, expected.depthwise, 'depthwise convolutions');
    assert.equal(followedByBatchNorm, expected.followedByBatchNorm, 'layers followed by BatchNormalization');
    assert.equal(checked, expected.checked, 'channel counts checked against inferred shapes');
  });
}
