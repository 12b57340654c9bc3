// The optimizer against ONNX's own backend tests (Debian's libonnx-testdata): every model whose
// original runs in onnxruntime and matches its reference outputs is optimized at level 'full'
// (through the library, with onnxruntime for constant folding) and must still run, still match
// the references (rtol 1e-3, atol 1e-7, as ONNX's backend tests compare), and stay within 1e-5 of
// the unoptimized model's outputs (exact rewrites move float results only by rounding; a fusion
// may reorder arithmetic, no more).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { bindTestData } from '../src/eval/onnx-test-data.js';
import type { Tensor } from '../src/ir/tensor.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { totalNodes } from '../src/optimize/util/graph-queries.js';
import { type Feeds, ModelSession, fromOrtTensor, toOrtTensor } from '../src/runtime/session.js';
import { ONNX_TOLERANCE, type Tolerance, allClose } from './helpers/compare.js';
import { LIBONNX_TESTDATA, type TestModelCase, listTestModels, readBytes, readDataSet } from './helpers/onnx-test-data.js';

const SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'];
/** Optimized against unoptimized outputs: |a - b| <= 1e-5 + 1e-5 * |b|. */
const UNOPTIMIZED_TOLERANCE: Tolerance = { rtol: 1e-5, atol: 1e-5 };

// Many originals fail in onnxruntime by design (error tests, missing kernels); they are counted,
// and onnxruntime's own multi-line logs would bury the summary.
ort.env.logLevel = 'fatal';

type Outcome =
  | { kind: 'not-eligible'; reason: string }
  | { kind: 'checked'; nodesBefore: number; nodesAfter: number; failure?: string };

interface DataSet {
  name: string;
  feeds: Feeds;
  expected: Tensor[];
}

async function session(bytes: Uint8Array): Promise<ModelSession | Error> {
  try {
    return await ModelSession.create(nodeOrt, bytes, { threads: 1, logSeverityLevel: 4 });
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

async function outputs(s: ModelSession, feeds: Feeds): Promise<Tensor[] | Error> {
  try {
    const result = await s.run(feeds);
    return s.outputNames.map((name) => fromOrtTensor(result[name], name));
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Each expected output is close to the same-named one of `actual`; the first mismatch otherwise. */
function mismatch(actual: Tensor[], names: readonly string[], expected: Tensor[], tolerance: Tolerance): string | undefined {
  for (const e of expected) {
    const index = names.indexOf(e.name);
    if (index < 0) return `no output '${e.name}'`;
    const comparison = allClose(actual[index], e, tolerance);
    if (!comparison.ok) return comparison.detail;
  }
  return undefined;
}

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ').slice(0, 300);
}

async function checkModel(testCase: TestModelCase): Promise<Outcome> {
  if (testCase.dataSets.length === 0) return { kind: 'not-eligible', reason: 'no test data' };
  const bytes = readBytes(testCase.modelFile);
  const model = readModel(bytes, { source: testCase.modelFile });
  const dataSets: DataSet[] = [];
  for (const folder of testCase.dataSets) {
    const bound = bindTestData(model.graph, readDataSet(folder), testCase.id);
    if ('skip' in bound) return { kind: 'not-eligible', reason: bound.skip.split(':')[0] };
    try {
      dataSets.push({ name: folder.name, feeds: Object.fromEntries(bound.feeds.map((t) => [t.name, toOrtTensor(nodeOrt, t)])), expected: bound.expected });
    } catch {
      return { kind: 'not-eligible', reason: "input type onnxruntime's JS API lacks" };
    }
  }

  // Eligible: the original loads, runs every data set, and matches every reference output.
  const original = await session(bytes);
  if (original instanceof Error) return { kind: 'not-eligible', reason: 'ORT cannot load the original' };
  const unoptimized: Tensor[][] = [];
  try {
    for (const set of dataSets) {
      const result = await outputs(original, set.feeds);
      if (result instanceof Error) return { kind: 'not-eligible', reason: 'ORT cannot run the original' };
      if (mismatch(result, original.outputNames, set.expected, ONNX_TOLERANCE) !== undefined) return { kind: 'not-eligible', reason: 'original misses its references in ORT' };
      unoptimized.push(result);
    }
  } finally {
    await original.release();
  }

  const nodesBefore = totalNodes(model.graph);
  const checked = (failure?: string): Outcome => ({ kind: 'checked', nodesBefore, nodesAfter: totalNodes(model.graph), failure });
  let optimizedBytes: Uint8Array;
  try {
    await optimizeModel(model, { level: 'full' }, { ort: nodeOrt });
    optimizedBytes = writeModel(model);
  } catch (error) {
    return checked(`optimizeModel failed: ${oneLine(error)}`);
  }
  const optimized = await session(optimizedBytes);
  if (optimized instanceof Error) return checked(`optimized model does not load in ORT: ${oneLine(optimized)}`);
  try {
    for (const [k, set] of dataSets.entries()) {
      const result = await outputs(optimized, set.feeds);
      if (result instanceof Error) return checked(`${set.name}: optimized model fails in ORT: ${oneLine(result)}`);
      const offReference = mismatch(result, optimized.outputNames, set.expected, ONNX_TOLERANCE);
      if (offReference !== undefined) return checked(`${set.name}: misses the reference outputs: ${offReference}`);
      // Graph outputs keep their names through every pass, so outputs pair up by name.
      const offOriginal = mismatch(result, optimized.outputNames, unoptimized[k], UNOPTIMIZED_TOLERANCE);
      if (offOriginal !== undefined) return checked(`${set.name}: more than 1e-5 from the unoptimized outputs: ${offOriginal}`);
    }
  } finally {
    await optimized.release();
  }
  return checked();
}

test('optimizeModel at level full keeps every conformance model that onnxruntime runs on its reference outputs', async (t) => {
  const started = performance.now();
  const cases = listTestModels(LIBONNX_TESTDATA, SUITES);
  assert.ok(cases.length > 1000, `expected over 1000 models under ${LIBONNX_TESTDATA}, found ${cases.length}`);
  const notEligible = new Map<string, number>();
  const failures: string[] = [];
  let checked = 0;
  let changed = 0;
  let nodesBefore = 0;
  let nodesAfter = 0;
  for (const testCase of cases) {
    const outcome = await checkModel(testCase);
    if (outcome.kind === 'not-eligible') {
      notEligible.set(outcome.reason, (notEligible.get(outcome.reason) ?? 0) + 1);
      continue;
    }
    checked++;
    nodesBefore += outcome.nodesBefore;
    nodesAfter += outcome.nodesAfter;
    if (outcome.nodesAfter !== outcome.nodesBefore) changed++;
    if (outcome.failure !== undefined) failures.push(`${testCase.id}: ${outcome.failure}`);
  }
  const seconds = (performance.now() - started) / 1000;
  const reasons = [...notEligible].sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${reason}: ${n}`);
  t.diagnostic(
    `optimize conformance: models=${cases.length} eligible=${checked} (original runs in ORT and matches its references) ` +
      `passed=${checked - failures.length} failed=${failures.length}; node count changed in ${changed} (${nodesBefore} -> ${nodesAfter} nodes); ` +
      `not eligible: ${reasons.join('; ')}; ${seconds.toFixed(1)} s`,
  );
  for (const failure of failures) t.diagnostic(`FAIL ${failure}`);

  // Guards against the suite silently checking nothing (959 originals matched when this was written).
  assert.ok(checked > 900, `only ${checked} models were eligible`);
  assert.deepEqual(failures, []);
});
