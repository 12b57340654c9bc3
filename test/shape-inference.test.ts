// Shape inference against onnxruntime: every value of the main graph of the real models and of
// the conformance models ORT runs is exposed as an extra output, and the shapes ORT actually
// produces are the oracle. Inference runs twice per model: with the fed inputs' concrete shapes
// (every value inferred as fully static must match ORT's dims and dtype exactly) and with the
// declared, symbolic inputs (concrete dims must match; symbols and expressions must evaluate to
// the actual sizes under one consistent binding). Values it could not infer are counted per op.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { bindTestData } from '../src/eval/onnx-test-data.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { type TensorType, tensorTypeOf } from '../src/ir/value-info.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel } from '../src/onnx/model-io.js';
import { type Dim, evaluateDim, inferShapes } from '../src/optimize/shape-inference/index.js';
import { dataTypeFromOrt, type OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession, toOrtTensor } from '../src/runtime/session.js';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { writeModel } from '../src/onnx/model-io.js';
import { LIBONNX_TESTDATA, listTestModels, readBytes, readDataSet } from './helpers/onnx-test-data.js';
import { CLS, DET, REC, VAD_LEGACY, VAD_V5, VAD_V6, sampleRate } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';
import { zeros } from './helpers/tensors.js';

ort.env.logLevel = 'fatal';

const SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'];

class Tally {
  models = 0;
  compared = 0;
  agreed = 0;
  /** Values not inferred as fully static in the concrete run. */
  unknown = 0;
  symbolicDims = 0;
  /** Values the symbolic run gave a full shape (every dim a size, symbol or expression). */
  symbolicComplete = 0;
  readonly disagreements: string[] = [];
  readonly unknownByOp = new Map<string, number>();

  summary(label: string): string {
    const ops = [...this.unknownByOp].sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`);
    const share = this.compared === 0 ? 0 : (100 * this.agreed) / this.compared;
    return (
      `${label}: models=${this.models} values compared=${this.compared} agreed=${this.agreed} (${share.toFixed(1)}%) ` +
      `unknown=${this.unknown} disagreements=${this.disagreements.length} symbolic: complete=${this.symbolicComplete} dims checked=${this.symbolicDims}; ` +
      `unknown by op: ${ops.join(', ') || 'none'}`
    );
  }
}

/** Every named node output of the main graph, in node order. */
function mainGraphValues(model: Model): string[] {
  const names = new Set<string>();
  for (const node of model.graph.nodes) for (const out of node.outputs) if (out !== '') names.add(out);
  return [...names];
}

/** Runs the model once with `names` exposed; values that are not tensors (sequences) are left out. */
async function actualTypes(bytes: Uint8Array, feeds: Tensor[], names: string[]): Promise<Map<string, TensorType> | Error> {
  let session: ModelSession;
  try {
    session = await ModelSession.create(nodeOrt, bytes, { extraOutputs: names, threads: 1 });
  } catch (error) {
    return error as Error;
  }
  try {
    const result = await session.run(Object.fromEntries(feeds.map((t) => [t.name, toOrtTensor(nodeOrt, t)])));
    const types = new Map<string, TensorType>();
    for (const name of names) {
      const tensor = result[name] as OrtTensor | undefined;
      const elemType = tensor?.type === undefined ? undefined : dataTypeFromOrt(tensor.type);
      if (tensor?.dims !== undefined && elemType !== undefined) types.set(name, { elemType, shape: [...tensor.dims] });
    }
    return types;
  } catch (error) {
    return error as Error;
  } finally {
    await session.release();
  }
}

/** Checks one model's inferred types against ORT's; returns false when ORT cannot run it. */
async function checkModel(
  id: string,
  bytes: Uint8Array,
  model: Model,
  feeds: Tensor[],
  tally: Tally,
  inputValues?: Record<string, number[]>,
): Promise<boolean> {
  const producers = new Map(model.graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n.opType] as const)));
  const names = mainGraphValues(model);
  let actual = await actualTypes(bytes, feeds, names);
  if (actual instanceof Error) {
    // Sequence and optional values cannot always be graph outputs; expose the rest.
    const tensorsOnly = names.filter((n) => !/Sequence|Optional/.test(producers.get(n) ?? ''));
    actual = await actualTypes(bytes, feeds, tensorsOnly);
    if (actual instanceof Error) return false;
  }
  tally.models++;

  const fed = Object.fromEntries(feeds.map((t) => [t.name, [...t.dims] as Dim[]]));
  const concrete = inferShapes(model, { inputShapes: fed, inputValues }).main;
  const symbolic = inferShapes(model);
  // Symbols of the inputs take the fed sizes; any other symbol is bound where first met.
  const bindings = new Map<string, number>();
  for (const input of model.graph.inputs) {
    const shape = symbolic.main.get(input.name)?.shape;
    const feed = fed[input.name];
    shape?.forEach((d, i) => {
      if (typeof d === 'string' && feed !== undefined) bindings.set(d, feed[i] as number);
    });
  }

  for (const [name, got] of actual) {
    tally.compared++;
    const op = producers.get(name) ?? '?';
    const inferred = concrete.get(name);
    const shape = inferred?.shape;
    if (inferred === undefined || shape === undefined || !shape.every((d) => typeof d === 'number')) {
      tally.unknown++;
      tally.unknownByOp.set(op, (tally.unknownByOp.get(op) ?? 0) + 1);
    } else if (inferred.elemType !== got.elemType || shape.join(',') !== got.shape?.join(',')) {
      tally.disagreements.push(`${id}: ${op} '${name}' inferred ${inferred.elemType}[${shape}], onnxruntime ${got.elemType}[${got.shape}]`);
    } else {
      tally.agreed++;
    }
    const symbolicShape = symbolic.main.get(name)?.shape;
    if (symbolicShape?.every((d) => d !== null)) tally.symbolicComplete++;
    const problem = symbolicMismatch(symbolic.main.get(name), got, bindings, tally);
    if (problem !== undefined) tally.disagreements.push(`${id}: ${op} '${name}' (symbolic) ${problem}`);
  }
  return true;
}

/** Why a symbolic inference contradicts the actual type, or undefined when it is consistent. */
function symbolicMismatch(inferred: TensorType | undefined, got: TensorType, bindings: Map<string, number>, tally: Tally): string | undefined {
  if (inferred === undefined) return undefined;
  if (inferred.elemType !== got.elemType) return `type ${inferred.elemType}, onnxruntime ${got.elemType}`;
  if (inferred.shape === undefined) return undefined;
  const actual = got.shape as number[];
  if (inferred.shape.length !== actual.length) return `rank ${inferred.shape.length}, onnxruntime [${actual}]`;
  for (let i = 0; i < actual.length; i++) {
    const d = inferred.shape[i];
    if (d === null) continue;
    if (typeof d === 'string') tally.symbolicDims++;
    let value = evaluateDim(d, bindings);
    if (value === undefined && typeof d === 'string') {
      // A symbol met for the first time (a data-dependent size) binds to what ORT produced.
      bindings.set(d, actual[i]);
      value = actual[i];
    }
    if (value !== actual[i]) return `dim ${i} '${d}' = ${value}, onnxruntime ${actual[i]} ([${inferred.shape}] vs [${actual}])`;
  }
  return undefined;
}

/** Deterministic values in [low, high), so every run feeds the same inputs. */
function floats(name: string, dims: number[], low = -1, high = 1): Tensor {
  const count = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = low + ((high - low) * ((i * 7919) % 1000)) / 1000;
  return Tensor.fromArray(name, DataType.FLOAT, dims, data);
}

/**
 * The real models, fed as real-models.test.ts feeds them. Silero's `sr` selects the 16 kHz or
 * 8 kHz branch of an If; the concrete inference is told its value, as a caller who fixes the
 * sample rate would.
 */
const REAL_MODELS: { name: string; file: string; feeds: () => Tensor[]; values?: Record<string, number[]> }[] = [
  { name: 'PP-OCRv4 det', file: DET, feeds: () => [floats('x', [1, 3, 320, 320])] },
  { name: 'PP-OCRv4 rec', file: REC, feeds: () => [floats('x', [1, 3, 48, 320])] },
  { name: 'PP-OCR cls', file: CLS, feeds: () => [floats('x', [1, 3, 48, 192])] },
  {
    name: 'Silero VAD v5',
    file: VAD_V5,
    feeds: () => [floats('input', [1, 512], -0.5, 0.5), zeros('state', [2, 1, 128]), sampleRate()],
    values: { sr: [16000] },
  },
  {
    name: 'Silero VAD v6',
    file: VAD_V6,
    feeds: () => [floats('input', [1, 576], -0.5, 0.5), zeros('state', [2, 1, 128]), sampleRate()],
    values: { sr: [16000] },
  },
  {
    name: 'Silero VAD legacy',
    file: VAD_LEGACY,
    feeds: () => [floats('input', [1, 512], -0.5, 0.5), sampleRate(), zeros('h', [2, 1, 64]), zeros('c', [2, 1, 64])],
  },
];

test('shape inference agrees with onnxruntime on every value of the real models', async (t) => {
  const total = new Tally();
  for (const spec of REAL_MODELS) {
    const tally = new Tally();
    const model = loadModel(spec.file);
    const ran = await checkModel(spec.name, readBytes(spec.file), model, spec.feeds(), tally, spec.values);
    assert.ok(ran, `${spec.file}: onnxruntime did not run it with every value exposed`);
    t.diagnostic(tally.summary(spec.name));
    total.models += tally.models;
    total.compared += tally.compared;
    total.agreed += tally.agreed;
    total.unknown += tally.unknown;
    total.symbolicDims += tally.symbolicDims;
    total.symbolicComplete += tally.symbolicComplete;
    total.disagreements.push(...tally.disagreements);
    for (const [op, n] of tally.unknownByOp) total.unknownByOp.set(op, (total.unknownByOp.get(op) ?? 0) + n);
  }
  t.diagnostic(total.summary('real models'));
  assert.deepEqual(total.disagreements, []);
  assert.ok(total.agreed >= REAL_COVERAGE * total.compared, `only ${total.agreed} of ${total.compared} values inferred`);
});

/** Measured share of real-model values inferred fully static (100% measured; a floor, not a target). */
const REAL_COVERAGE = 0.99;
/** Measured share of conformance-model values inferred fully static (91.5% measured). */
const CONFORMANCE_COVERAGE = 0.9;

test('shape inference agrees with onnxruntime on every value of the conformance models it runs', async (t) => {
  const started = performance.now();
  const tally = new Tally();
  let skipped = 0;
  for (const testCase of listTestModels(LIBONNX_TESTDATA, SUITES)) {
    const folder = testCase.dataSets[0];
    if (folder === undefined) continue;
    const bytes = readBytes(testCase.modelFile);
    const model = readModel(bytes, { source: testCase.modelFile });
    const bound = bindTestData(model.graph, readDataSet(folder), testCase.id);
    if ('skip' in bound || bound.feeds.some((f) => f.dataType === DataType.STRING || tensorTypeOf(model.graph.inputs[0]) === undefined)) {
      skipped++;
      continue;
    }
    let ran = false;
    try {
      ran = await checkModel(testCase.id, bytes, model, bound.feeds, tally);
    } catch {
      ran = false;
    }
    if (!ran) skipped++;
  }
  t.diagnostic(`${tally.summary('conformance')}; skipped ${skipped} models ORT cannot run; ${((performance.now() - started) / 1000).toFixed(1)} s`);
  assert.ok(tally.models > 800, `only ${tally.models} conformance models ran`);
  assert.deepEqual(tally.disagreements, []);
  assert.ok(tally.agreed >= CONFORMANCE_COVERAGE * tally.compared, `only ${tally.agreed} of ${tally.compared} values inferred`);
});

test('symbolic dims become expressions that evaluate to the real sizes', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 3, 'H', 'W']);
  const weight = b.initializer('w', DataType.FLOAT, [8, 3, 3, 3], new Float32Array(8 * 27));
  const y = b.node('Conv', [x, weight], [attr.ints('strides', [2, 2]), attr.ints('pads', [1, 1, 1, 1])]);
  const shape = b.node('Shape', [y]);
  const batch = b.node('Gather', [shape, b.initializer('zero', DataType.INT64, [1], new BigInt64Array([0n]))], [attr.int('axis', 0)]);
  const target = b.node('Concat', [batch, b.initializer('rest', DataType.INT64, [1], new BigInt64Array([-1n]))], [attr.int('axis', 0)]);
  const flat = b.node('Reshape', [y, target]);
  b.output(flat);
  const result = inferShapes(buildModel(b.graph));
  assert.deepEqual(result.main.get(y)?.shape, ['N', 8, 'floor((H-1)/2)+1', 'floor((W-1)/2)+1']);
  const flatShape = result.main.get(flat)?.shape as Dim[];
  assert.equal(flatShape[0], 'N');
  const bindings = new Map([['N', 2], ['H', 48], ['W', 35]]);
  assert.equal(evaluateDim(flatShape[1], bindings), 8 * 24 * 18);
  assert.deepEqual(result.values.get(target), ['N', -1]);
  assert.deepEqual(result.unknown, []);
});

test('ops without a rule are listed with node, op and reason; If branches merge dim by dim', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, ['N', 4]);
  const cond = b.input('cond', DataType.BOOL, []);
  const fused = b.node('FusedMatMul', [x, x], [], { domain: 'com.microsoft', name: 'fused' });
  const after = b.node('Relu', [fused], [], { name: 'relu' });
  const branch = (name: string, width: number) =>
    b.subgraph(name, (sub) => {
      const pads = sub.initializer(`${name}_pads`, DataType.INT64, [4], new BigInt64Array([0n, 0n, 0n, BigInt(width - 4)]));
      sub.output(sub.node('Pad', [x, pads]));
    });
  const merged = b.node('If', [cond], [attr.graph('then_branch', branch('then', 6)), attr.graph('else_branch', branch('else', 9))]);
  b.output(after);
  b.output(merged);
  const result = inferShapes(buildModel(b.graph));
  assert.deepEqual(result.unknown, [
    { node: 'fused', op: 'com.microsoft.FusedMatMul', graph: 'main', reason: 'no shape rule for com.microsoft.FusedMatMul' },
    { node: 'relu', op: 'Relu', graph: 'main', reason: `type of input '${fused}' is unknown` },
  ]);
  const mergedShape = result.main.get(merged)?.shape as Dim[];
  assert.equal(mergedShape[0], 'N');
  assert.equal(typeof mergedShape[1], 'string', 'widths 6 and 9 merge into a fresh symbol');
  // With the condition known, the If is its branch.
  const known = inferShapes(buildModel(b.graph), { inputValues: { cond: [0] } });
  assert.deepEqual(known.main.get(merged)?.shape, ['N', 9]);
});

test('written value_info is accepted by onnxruntime, which checks it against its own inference', async () => {
  for (const spec of REAL_MODELS) {
    const model = loadModel(spec.file);
    const result = inferShapes(model, { write: true });
    const intermediate = model.graph.nodes.flatMap((n) => n.outputs).filter((o) => o !== '' && !model.graph.isGraphOutput(o));
    const written = new Set(model.graph.valueInfo.map((v) => v.name));
    assert.ok(intermediate.every((name) => written.has(name) || !result.main.has(name)), `${spec.name}: value_info incomplete`);
    const outputs = await runModel(writeModel(model), spec.feeds());
    assert.ok(outputs.length > 0);
  }
});

test('contrib ops shrink writes (MatMulNBits, DynamicQuantizeMatMul) are inferred and agree with onnxruntime', async (t) => {
  const { quantizeWeightsOnly } = await import('../src/methods/quantize/weight-only.js');
  const { quantizeDynamicInt8 } = await import('../src/methods/quantize/dynamic-int8.js');
  const total = new Tally();
  for (const [label, quantize] of [
    ['int4', (m: Model) => quantizeWeightsOnly(m, { method: 'int4' })],
    ['dynamic-int8', (m: Model) => quantizeDynamicInt8(m)],
  ] as const) {
    const model = loadModel(REC);
    quantize(model);
    const ops = new Set(model.graph.nodes.filter((n) => n.domain === 'com.microsoft').map((n) => n.opType));
    assert.ok(ops.size > 0, `${label}: no contrib op written`);
    const bytes = writeModel(model);
    const tally = new Tally();
    const ran = await checkModel(`rec ${label}`, bytes, readModel(bytes), [floats('x', [1, 3, 48, 320])], tally);
    assert.ok(ran);
    t.diagnostic(tally.summary(`PP-OCRv4 rec ${label} (${[...ops].join(', ')})`));
    assert.equal(tally.unknownByOp.get('MatMulNBits') ?? 0, 0);
    assert.equal(tally.unknownByOp.get('DynamicQuantizeMatMul') ?? 0, 0);
    total.disagreements.push(...tally.disagreements);
  }
  assert.deepEqual(total.disagreements, []);
});
