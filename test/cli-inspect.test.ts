// `shrink inspect` end to end: the real CLI in a child process on the real models, its JSON
// checked against facts read here, independently, from the decoded ModelProto (producer, opsets,
// interface, and weight totals counted by walking every graph's initializers and Constant nodes).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProto_AttributeType as AT,
  type GraphProto,
  type ModelProto,
  ModelProtoSchema,
  type TensorProto,
  type ValueInfoProto,
} from '../src/onnx/onnx_pb.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { CLS, DET, REC, VAD_LEGACY, VAD_V5, VAD_V6 } from './helpers/real-models.js';
import { REPO_ROOT, SHRINK_BIN, spawnShrink } from './helpers/cli.js';

const MODELS = { rec: REC, det: DET, cls: CLS, silero_v5: VAD_V5, silero_v6: VAD_V6, silero_legacy: VAD_LEGACY };

// Each run starts Node and tsx (about a second), so JSON reports are shared between tests.
const reports = new Map<string, any>();
function inspectJson(file: string) {
  let report = reports.get(file);
  if (report === undefined) {
    const run = shrink('inspect', file, '--json');
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
    report = JSON.parse(run.stdout);
    reports.set(file, report);
  }
  return report;
}

const shrink = (...args: string[]) => spawnShrink(args);

// Element types this test calls parameters: every floating-point type and the narrow integers
// quantized weights use. Written out here rather than taken from the code under test.
const FLOAT_TYPES = new Set([1, 10, 11, 14, 15, 16, 17, 18, 19, 20, 23, 24]);
const NARROW_INT_TYPES = new Set([2, 3, 4, 5, 21, 22, 25, 26]);
const isParameter = (dataType: number) => FLOAT_TYPES.has(dataType) || NARROW_INT_TYPES.has(dataType);

interface Count {
  tensors: number;
  elements: number;
}

/** Walks every graph in the proto (subgraphs through GRAPH/GRAPHS attributes). */
function* graphsOf(graph: GraphProto, inSubgraph = false): Generator<{ graph: GraphProto; inSubgraph: boolean }> {
  yield { graph, inSubgraph };
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.g !== undefined) yield* graphsOf(a.g, true);
      for (const g of a.graphs) yield* graphsOf(g, true);
    }
  }
}

const product = (dims: bigint[]) => dims.reduce((n, d) => n * Number(d), 1);

/** Every key of every object in a JSON value. */
function objectKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(objectKeys);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) => [key, ...objectKeys(inner)]);
}

/** Every constant's element type and count: initializers and the value of each Constant node. */
function constantsOf(proto: ModelProto): { dataType: number; elements: number }[] {
  const out: { dataType: number; elements: number }[] = [];
  const tensor = (t: TensorProto) => out.push({ dataType: t.dataType, elements: product(t.dims) });
  for (const { graph } of graphsOf(proto.graph!)) {
    graph.initializer.forEach(tensor);
    for (const node of graph.node) {
      if (node.opType !== 'Constant' || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
      const a = node.attribute[0] as AttributeProto;
      if (a.name === 'value') tensor(a.t!);
      else if (a.name === 'value_float') out.push({ dataType: 1, elements: 1 });
      else if (a.name === 'value_floats') out.push({ dataType: 1, elements: a.floats.length });
      else if (a.name === 'value_int') out.push({ dataType: 7, elements: 1 });
      else if (a.name === 'value_ints') out.push({ dataType: 7, elements: a.ints.length });
      else assert.fail(`test does not count Constant attribute ${a.name} (type ${AT[a.type]})`);
    }
  }
  return out;
}

function sum(list: { elements: number }[]): Count {
  return { tensors: list.length, elements: list.reduce((n, c) => n + c.elements, 0) };
}

/** `float32[N,3,48,W]`, built from the proto here: dim_value, dim_param, or `?`. */
function typeText(v: ValueInfoProto): string {
  const t = v.type!.value;
  assert.equal(t.case, 'tensorType');
  const names: Record<number, string> = { 1: 'float32', 7: 'int64' };
  const dims = t.value.shape!.dim.map((d) => (d.value.case === undefined ? '?' : String(d.value.value)));
  return `${names[t.value.elemType]}[${dims.join(',')}]`;
}

for (const [label, file] of Object.entries(MODELS)) {
  test(`inspect --json on ${label} matches the decoded ModelProto`, () => {
    const report = inspectJson(file);
    const proto = fromBinary(ModelProtoSchema, readFileSync(`${REPO_ROOT}/${file}`));

    // The common envelope around the report (src/pipeline/report-envelope.ts).
    assert.equal(report.command, 'inspect');
    assert.equal(report.input, file);
    assert.equal(report.output, null);
    assert.deepEqual(report.warnings, []);
    assert.equal(report.environment.host, `node ${process.version}`);
    assert.match(report.environment.runtime, /^onnxruntime-node \d+\.\d+\.\d+$/);
    assert.equal(report.source, file);
    assert.equal(report.file_bytes, statSync(`${REPO_ROOT}/${file}`).size);
    assert.equal(report.model_version, Number(proto.modelVersion));
    assert.equal(report.doc_string, proto.docString);
    // Every key, at any depth, is snake_case (dims and metadata values are data, not keys).
    for (const key of objectKeys(report)) assert.match(key, /^[a-z][a-z0-9_]*$/, `key '${key}'`);
    assert.equal(report.producer.name, proto.producerName);
    assert.equal(report.producer.version, proto.producerVersion);
    assert.equal(report.ir_version, Number(proto.irVersion));
    assert.deepEqual(
      report.opsets,
      proto.opsetImport.map((o) => ({ domain: o.domain, version: Number(o.version) })),
    );
    // None of these models lists initializers among its inputs, so every graph input is an input.
    const graph = proto.graph!;
    assert.deepEqual(
      report.inputs.map((v: { name: string; type: string }) => [v.name, v.type]),
      graph.input.map((v) => [v.name, typeText(v)]),
    );
    assert.deepEqual(
      report.outputs.map((v: { name: string; type: string }) => [v.name, v.type]),
      graph.output.map((v) => [v.name, typeText(v)]),
    );

    const constants = constantsOf(proto);
    const all = sum(constants);
    const parameters = sum(constants.filter((c) => isParameter(c.dataType)));
    assert.ok(parameters.elements > 100_000, `${label}: ${parameters.elements} parameters`);
    assert.equal(report.total.tensors, all.tensors);
    assert.equal(report.total.elements, all.elements);
    assert.equal(report.parameters.tensors, parameters.tensors);
    assert.equal(report.parameters.elements, parameters.elements);
    assert.equal(report.parameters.elements + report.constants.elements, all.elements);
    const byDtypeElements = report.by_dtype.reduce((n: number, d: { elements: number }) => n + d.elements, 0);
    assert.equal(byDtypeElements, all.elements);

    // Op histogram: every node of every graph, counted once.
    const ops = new Map<string, number>();
    for (const { graph: g } of graphsOf(graph)) for (const n of g.node) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
    assert.deepEqual(
      new Map(report.ops.map((o: { op: string; count: number }) => [o.op, o.count])),
      ops,
    );
    assert.equal(report.largest.length, Math.min(20, all.tensors));
    assert.ok(report.layers.length > 0);
  });
}

test('inspect counts Silero v5 weights and ops that live only inside If subgraphs', () => {
  const report = inspectJson(MODELS.silero_v5);
  const proto = fromBinary(ModelProtoSchema, readFileSync(`${REPO_ROOT}/${MODELS.silero_v5}`));

  const mainOps = new Set(proto.graph!.node.map((n) => n.opType));
  const subgraphOnly = new Set<string>();
  let subgraphParameters = 0;
  for (const { graph, inSubgraph } of graphsOf(proto.graph!)) {
    if (!inSubgraph) continue;
    for (const n of graph.node) {
      if (!mainOps.has(n.opType)) subgraphOnly.add(n.opType);
      const value = n.opType === 'Constant' ? n.attribute.find((a) => a.name === 'value')?.t : undefined;
      if (value !== undefined && isParameter(value.dataType)) subgraphParameters += product(value.dims);
    }
  }
  assert.ok(subgraphOnly.has('Conv') && subgraphOnly.has('LSTM'), [...subgraphOnly].join(','));
  const reported = new Set(report.ops.map((o: { op: string }) => o.op));
  for (const op of subgraphOnly) assert.ok(reported.has(op), `op ${op} (only inside subgraphs) missing from the histogram`);
  const conv = report.ops.find((o: { op: string }) => o.op === 'Conv');
  assert.equal(conv.in_subgraphs, conv.count);

  // v5 keeps every weight in Constant nodes inside If branches.
  assert.ok(subgraphParameters > 300_000, `${subgraphParameters}`);
  assert.equal(report.parameters.elements, subgraphParameters + sum(mainGraphParameters(proto)).elements);
  assert.equal(report.storage.constant_node.elements, report.total.elements);
  assert.ok(report.largest.every((t: { graph: string }) => t.graph.includes('/')));
  // Layer rows inside subgraphs carry their path (the LSTM weights reach it through Slice nodes).
  assert.ok(report.layers.some((l: { node: string; op_type: string }) => l.op_type === 'Conv' && /^If_0\/(then|else)_branch\/./.test(l.node)));
});

function mainGraphParameters(proto: ModelProto) {
  const out: { elements: number }[] = [];
  for (const n of proto.graph!.node) {
    const t = n.opType === 'Constant' ? n.attribute.find((a) => a.name === 'value')?.t : undefined;
    if (t !== undefined && isParameter(t.dataType)) out.push({ elements: product(t.dims) });
  }
  for (const t of proto.graph!.initializer) if (isParameter(t.dataType)) out.push({ elements: product(t.dims) });
  return out;
}

test('inspect keeps the detector symbolic dims as strings', () => {
  const report = inspectJson(MODELS.det);
  const [x] = report.inputs;
  assert.equal(x.name, 'x');
  assert.equal(x.shape.length, 4);
  assert.equal(x.shape[1], 3);
  for (const i of [0, 2, 3]) {
    assert.equal(typeof x.shape[i], 'string');
    assert.match(x.shape[i], /^p2o\.DynamicDimension/);
  }
  // PP-OCR keeps all its weights in Constant nodes.
  assert.equal(report.storage.initializer.tensors, 0);
  assert.equal(report.storage.constant_node.tensors, report.total.tensors);
});

test('inspect prints readable tables with every section and the largest tensor', () => {
  const json = inspectJson(MODELS.rec);
  const run = shrink('inspect', MODELS.rec);
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.split('\n');
  for (const heading of ['Model', 'Inputs', 'Outputs', 'Parameters', 'Weights by dtype', 'Weight storage', 'Ops', 'Largest tensors', 'Layers']) {
    assert.ok(lines.includes(heading), `missing section '${heading}'`);
  }
  const largest = json.largest[0];
  assert.equal(largest.name, 'linear_85.w_0');
  assert.deepEqual(largest.shape, [120, 6625]);
  assert.ok(run.stdout.includes(largest.name));
  assert.ok(run.stdout.includes('float32[p2o.DynamicDimension.0,3,48,p2o.DynamicDimension.1]'));
  // Column alignment: the header and rule of the dtype table have the same width.
  const header = lines.indexOf('Weights by dtype') + 1;
  assert.equal(lines[header].length, lines[header + 1].length);
});

test('inspect without MODEL uses the bundled PP-OCRv4 recogniser and says so', () => {
  const run = shrink('inspect', '--json');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /bundled default .*ch_PP-OCRv4_rec_infer\.onnx/);
  assert.equal(run.stderr.trim().split('\n').length, 1);
  const report = JSON.parse(run.stdout);
  assert.match(report.source, /ch_PP-OCRv4_rec_infer\.onnx$/);
  assert.equal(report.file_bytes, statSync(`${REPO_ROOT}/${MODELS.rec}`).size);
  assert.equal(report.inputs[0].name, 'x');

  // From another working folder too: the default is found from the package, not the cwd.
  const elsewhere = spawnSync(process.execPath, [SHRINK_BIN, 'inspect'], { cwd: '/', encoding: 'utf8', timeout: 60_000 });
  assert.equal(elsewhere.status, 0, elsewhere.stderr);
  assert.match(elsewhere.stdout, /^shrink: no MODEL given, inspecting the bundled default /);
  assert.ok(elsewhere.stdout.includes('linear_85.w_0'));
});

test('inspect reports weights kept in external data, with the data file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shrink-inspect-'));
  try {
    const file = join(dir, 'legacy.onnx');
    saveModel(loadModel(`${REPO_ROOT}/${MODELS.silero_legacy}`), file, { externalData: true });
    const run = shrink('inspect', file, '--json');
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    // Independent count: initializers (any graph) of the original with at least 1024 bytes of data
    // (saveModel's default threshold) now live in legacy.onnx.data.
    const original = fromBinary(ModelProtoSchema, readFileSync(`${REPO_ROOT}/${MODELS.silero_legacy}`));
    const width: Record<number, number> = { 1: 4, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8 };
    const initializers = [...graphsOf(original.graph!)].flatMap(({ graph }) => graph.initializer);
    const moved = initializers.filter((t) => product(t.dims) * width[t.dataType] >= 1024);
    assert.ok(moved.length > 10);
    assert.equal(report.storage.external.tensors, moved.length);
    assert.equal(report.storage.external.elements, moved.reduce((n, t) => n + product(t.dims), 0));
    assert.deepEqual(report.storage.external.files, ['legacy.onnx.data']);
    assert.equal(report.total.elements, inspectJson(MODELS.silero_legacy).total.elements);
    assert.equal(report.file_bytes, statSync(file).size);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--version and --help exit 0', () => {
  const version = shrink('--version');
  assert.equal(version.status, 0);
  assert.equal(version.stdout.trim(), JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, 'utf8')).version);
  const help = shrink('inspect', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--json/);
});
