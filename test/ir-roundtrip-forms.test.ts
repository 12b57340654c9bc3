// Writing and reading back keeps every part of a model: subgraphs (If with Constant nodes, a Loop
// inside a branch), model-local functions, metadata, doc strings, value_info, opset imports of two
// domains, and tensors in float_data / int32_data form. Checked on a model built in code (and run
// in onnxruntime) and on the six real models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { create, equals, fromBinary } from '@bufbuild/protobuf';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { modelToProto } from '../src/ir/to-proto.js';
import { validateGraph } from '../src/ir/validate.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import {
  FunctionProtoSchema,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
} from '../src/onnx/onnx_pb.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import { REAL_MODELS } from './helpers/real-models.js';

const W = [0.5, -1, 2, 0.25, 4, -3];
const SHIFT = [1, -2, 3];
const FUNCTION_DOMAIN = 'local.fn';

/** ScaleShift(X, S) = (X + S) * S, a model-local function in its own domain. */
function scaleShiftFunction() {
  return create(FunctionProtoSchema, {
    name: 'ScaleShift',
    domain: FUNCTION_DOMAIN,
    input: ['X', 'S'],
    output: ['Y'],
    docString: 'adds S, then scales by S',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })],
    node: [
      create(NodeProtoSchema, { opType: 'Add', input: ['X', 'S'], output: ['T'], name: 'fn_add' }),
      create(NodeProtoSchema, { opType: 'Mul', input: ['T', 'S'], output: ['Y'], name: 'fn_mul' }),
    ],
  });
}

/**
 * y = cond ? ((x + w + shift) * shift + trip) * 10 : -((x + w + shift) * shift), where "+ trip"
 * is a Loop adding a Constant 1 trip times inside the then-branch.
 */
function buildFormsModel(): Model {
  const b = new GraphBuilder(new Graph('forms'));
  const x = b.input('x', DataType.FLOAT, ['N', 3]);
  const cond = b.input('cond', DataType.BOOL, []);
  const trip = b.input('trip', DataType.INT64, []);
  // Weights stored in the typed fields rather than raw_data, as older exporters write them.
  const w = b.tensor(
    Tensor.fromProto(create(TensorProtoSchema, { name: 'w', dataType: DataType.FLOAT, dims: [2n, 3n], floatData: W, docString: 'weights' }), 'w'),
  );
  const shift = b.tensor(Tensor.fromProto(create(TensorProtoSchema, { name: 'shift', dataType: DataType.INT8, dims: [3n], int32Data: SHIFT }), 'shift'));

  const addNode = b.addNode('Add', [x, w], [], { name: 'add_w', outputs: ['a'] });
  addNode.proto = create(NodeProtoSchema, { docString: 'x plus the weights' });
  b.valueInfo('a', DataType.FLOAT, ['N', 3]);
  const s = b.node('Cast', [shift], [attr.int('to', DataType.FLOAT)], { name: 'cast_shift' });
  const scaled = b.node('ScaleShift', ['a', s], [], { name: 'call_fn', domain: FUNCTION_DOMAIN, outputs: ['scaled'] })[0];

  const thenBranch = b.subgraph('then_graph', (t) => {
    const ten = t.constant(Tensor.fromArray('ten', DataType.FLOAT, [], new Float32Array([10])));
    const body = t.subgraph('loop_body', (l) => {
      l.input('iter', DataType.INT64, []);
      const keepGoing = l.input('cond_in', DataType.BOOL, []);
      const acc = l.input('acc_in', DataType.FLOAT, undefined);
      const one = l.constant(Tensor.fromArray('one', DataType.FLOAT, [], new Float32Array([1])));
      l.output(l.node('Identity', [keepGoing], [], { outputs: ['cond_out'] })[0], DataType.BOOL, []);
      l.output(l.node('Add', [acc, one], [], { outputs: ['acc_out'] })[0], DataType.FLOAT);
    });
    // '' for the optional loop condition: run exactly `trip` times.
    const looped = t.node('Loop', [trip, '', scaled], [attr.graph('body', body)], { name: 'count_up', outputs: ['looped'] })[0];
    t.output(t.node('Mul', [looped, ten], [], { outputs: ['then_out'] })[0], DataType.FLOAT);
  });
  const elseBranch = b.subgraph('else_graph', (e) => {
    const minus = e.constant(Tensor.fromArray('minus_one', DataType.FLOAT, [1], new Float32Array([-1])));
    e.output(e.node('Mul', [scaled, minus], [], { outputs: ['else_out'] })[0], DataType.FLOAT);
  });
  b.node('If', [cond], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)], { name: 'choose', outputs: ['y'] });
  b.output('y', DataType.FLOAT, ['N', 3]);
  b.graph.proto = create(GraphProtoSchema, { docString: 'the main graph' });

  const model = buildModel(b.graph, [
    { domain: '', version: 17 },
    { domain: FUNCTION_DOMAIN, version: 1 },
  ]);
  model.docString = 'a model that uses every storage form';
  model.producerVersion = '0.1.0';
  model.modelVersion = 3n;
  model.domain = 'dev.shrink.tests';
  model.metadata = [
    { key: 'author', value: 'shrink tests' },
    { key: 'note', value: 'ünïcode survives' },
  ];
  model.functions = [scaleShiftFunction()];
  return model;
}

function expected(x: number[], flag: boolean, trip: number): number[] {
  return x.map((v, i) => {
    const s = SHIFT[i % 3];
    const scaled = (v + W[i] + s) * s;
    return flag ? (scaled + trip) * 10 : -scaled;
  });
}

async function runForms(model: Model | Uint8Array, x: number[], flag: boolean, trip: number): Promise<number[]> {
  const session = await ModelSession.create(nodeOrt, model);
  const out = await session.run({
    x: new nodeOrt.Tensor('float32', new Float32Array(x), [2, 3]),
    cond: new nodeOrt.Tensor('bool', new Uint8Array([flag ? 1 : 0]), []),
    trip: new nodeOrt.Tensor('int64', new BigInt64Array([BigInt(trip)]), []),
  });
  await session.release();
  assert.deepEqual(out.y.dims, [2, 3]);
  return [...(out.y.data as Float32Array)];
}

function near(actual: number[], wanted: number[]): void {
  assert.equal(actual.length, wanted.length);
  for (let i = 0; i < wanted.length; i++) assert.ok(Math.abs(actual[i] - wanted[i]) <= 1e-5 * Math.max(1, Math.abs(wanted[i])), `element ${i}: ${actual[i]} vs ${wanted[i]}`);
}

test('a model built in code survives write, read and write unchanged', () => {
  const model = buildFormsModel();
  assert.deepEqual(validateGraph(model), []);
  const bytes = writeModel(model);
  const written = fromBinary(ModelProtoSchema, bytes);
  assert.ok(equals(ModelProtoSchema, written, modelToProto(model)), 'the encoded bytes decode to the proto the IR describes');

  const again = writeModel(readModel(bytes, { source: 'forms.onnx' }));
  assert.ok(equals(ModelProtoSchema, fromBinary(ModelProtoSchema, again), written), 'read + write gives an equal message');
  assert.deepEqual(again, bytes, 'and the same bytes');
});

test('every part of the built model is in the written proto', () => {
  const proto: ModelProto = fromBinary(ModelProtoSchema, writeModel(buildFormsModel()));
  assert.equal(proto.docString, 'a model that uses every storage form');
  assert.equal(proto.modelVersion, 3n);
  assert.equal(proto.domain, 'dev.shrink.tests');
  assert.deepEqual(
    proto.metadataProps.map((e) => [e.key, e.value]),
    [
      ['author', 'shrink tests'],
      ['note', 'ünïcode survives'],
    ],
  );
  assert.deepEqual(
    proto.opsetImport.map((o) => [o.domain, o.version]),
    [
      ['', 17n],
      [FUNCTION_DOMAIN, 1n],
    ],
  );
  assert.equal(proto.functions.length, 1);
  assert.ok(equals(FunctionProtoSchema, proto.functions[0], scaleShiftFunction()));

  const graph = proto.graph;
  assert.ok(graph !== undefined);
  assert.equal(graph.docString, 'the main graph');
  assert.equal(graph.node.find((n) => n.name === 'add_w')?.docString, 'x plus the weights');
  assert.deepEqual(
    graph.valueInfo.map((v) => v.name),
    ['a'],
  );
  const [w, shift] = graph.initializer;
  assert.deepEqual(w.floatData, W);
  assert.equal(w.rawData.byteLength, 0, 'float_data is not rewritten as raw_data');
  assert.equal(w.docString, 'weights');
  assert.deepEqual(shift.int32Data, SHIFT);
  assert.equal(shift.rawData.byteLength, 0);

  const ifNode = graph.node.find((n) => n.opType === 'If');
  const thenGraph = ifNode?.attribute.find((a) => a.name === 'then_branch')?.g;
  const elseGraph = ifNode?.attribute.find((a) => a.name === 'else_branch')?.g;
  assert.deepEqual(
    thenGraph?.node.map((n) => n.opType),
    ['Constant', 'Loop', 'Mul'],
  );
  assert.deepEqual(
    elseGraph?.node.map((n) => n.opType),
    ['Constant', 'Mul'],
  );
  const loop = thenGraph?.node.find((n) => n.opType === 'Loop');
  assert.deepEqual(loop?.input, ['trip', '', 'scaled']);
  assert.deepEqual(
    loop?.attribute[0].g?.node.map((n) => n.opType),
    ['Constant', 'Identity', 'Add'],
  );
});

test('onnxruntime runs the built model and its round trip with the same, right numbers', async () => {
  const model = buildFormsModel();
  const roundTripped = writeModel(readModel(writeModel(model)));
  const x = [1, 2, 3, -4, 5.5, -6];
  for (const [flag, trip] of [
    [true, 3],
    [true, 0],
    [false, 2],
  ] as const) {
    const want = expected(x, flag, trip);
    near(await runForms(model, x, flag, trip), want);
    near(await runForms(roundTripped, x, flag, trip), want);
  }
});

for (const { file } of REAL_MODELS) {
  const name = file.split('/').pop() ?? file;
  test(`${name}: readModel then writeModel gives an equal message, and the graph validates`, () => {
    const original = readFileSync(file);
    const model = readModel(original, { source: name });
    const written = writeModel(model);
    assert.ok(equals(ModelProtoSchema, fromBinary(ModelProtoSchema, written), fromBinary(ModelProtoSchema, original)), name);
    const errors = validateGraph(model).filter((i) => i.severity === 'error');
    assert.deepEqual(errors, []);
  });
}
