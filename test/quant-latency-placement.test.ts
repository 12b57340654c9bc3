// Latency placement for static int8 (src/pipeline/latency-placement.ts): which layers and groups of
// layers the profile proposes to leave in float32, which timed candidate is kept (fixed timings: no
// timed assertion), how PP-OCR cls's layers group, and on cls with onnxruntime's real profiler, that
// the model written keeps exactly the chosen layers in float32, still agrees with the all-int8 one,
// and that the report holds what was timed. Which layers are slower in int8 depends on the CPU, so
// the real-model test checks consistency, not a list.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import type { Model } from '../src/ir/model.js';
import { loadModel } from '../src/node/model-files.js';
import { profileNodes } from '../src/node/node-profile.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { fastestCandidate, placementCandidates, slowInt8Layers } from '../src/pipeline/latency-placement.js';
import { layerGroups } from '../src/pipeline/layer-groups.js';
import type { LatencyModel } from '../src/pipeline/latency-model.js';
import { quantize } from '../src/pipeline/quantize.js';
import { CLS } from './helpers/real-models.js';
import { runShrink } from './helpers/cli.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';

const layer = (float_ms: number, int8_ms: number, feeds: string[], readers: string[]) => ({ op: 'Conv', float_ms, int8_ms, input_elements: 1000, output_elements: 1000, feeds, readers });

test('the profile proposes layers whose float kernel and converts cost less than their int8 kernel; a chosen neighbour saves its convert', () => {
  // Converts cost 0.1 ms per 1000 elements each way.
  const latency: LatencyModel = {
    float_ms: 10,
    int8_ms: 10,
    claimed: { float: 1, int8: 1 },
    convert_ms: { quantize: 1e-4, dequantize: 1e-4 },
    layers: {
      // 0.9 ms faster in float: worth its two converts.
      a: layer(0.1, 1.0, ['b'], ['c']),
      // 0.15 ms faster in float: not worth two converts (0.2 ms) alone, worth one once a is float.
      c: layer(0.3, 0.45, ['a'], ['d']),
      // 0.05 ms faster: not worth the convert from x, even with a float.
      b: layer(0.5, 0.55, ['x'], ['a']),
      d: layer(1, 0.5, ['c'], []),
      x: layer(1, 0.5, [], ['b']),
    },
  };
  const proposed = slowInt8Layers(latency);
  assert.deepEqual(proposed.map((p) => p.node).sort(), ['a', 'c']);
  assert.ok(proposed.every((p) => p.saves_ms > 0), JSON.stringify(proposed));
});

test('candidates: groups whose kernels are faster in float, added one at a time by gain; unclaimed float kernels gain nothing; all but the int8-faster groups; the per-layer proposal when it differs', () => {
  const latency: LatencyModel = {
    float_ms: 10,
    int8_ms: 10,
    claimed: { float: 1, int8: 1 },
    convert_ms: { quantize: 1e-4, dequantize: 1e-4 },
    layers: {
      dw1: layer(0.2, 1.5, [], []),
      dw2: layer(0.2, 1.5, [], []),
      pool: layer(0.1, 1.0, [], []),
      // Faster in int8: never a candidate.
      pw: layer(2, 1, [], []),
      // Fused into its Conv in the float model (no float kernel): its int8 time is no gain.
      mul: layer(0, 3, [], []),
      // 0.05 ms of 10: under 1% of the int8 latency.
      tiny: layer(0.1, 0.15, [], []),
    },
  };
  const groups = new Map([
    ['Conv depthwise', ['dw1', 'dw2']],
    ['MaxPool', ['pool']],
    ['Conv', ['pw']],
    ['Mul', ['mul']],
    ['Add', ['tiny']],
  ]);
  const candidates = placementCandidates(latency, groups, [{ node: 'pool' }, { node: 'mul' }], 4);
  assert.deepEqual(
    candidates.map((c) => [c.name, c.keep]),
    [
      ['Conv depthwise', ['dw1', 'dw2']],
      ['Conv depthwise + MaxPool', ['dw1', 'dw2', 'pool']],
      // Every group but the one whose kernels are faster in int8, the fused and the tiny ones included.
      ['all but Conv', ['dw1', 'dw2', 'pool', 'mul', 'tiny']],
      ['per-layer proposal', ['pool', 'mul']],
    ],
  );
  assert.ok(Math.abs(candidates[1].predicted_gain_ms - 3.5) < 1e-9, String(candidates[1].predicted_gain_ms));
  // maxGroups bounds the builds; a per-layer proposal equal to a group candidate is not built twice.
  assert.deepEqual(
    placementCandidates(latency, groups, [{ node: 'dw2' }, { node: 'dw1' }], 1).map((c) => c.name),
    ['Conv depthwise', 'all but Conv'],
  );
});

test('the fastest timed candidate is kept only when it beats all-int8 by the margin', () => {
  assert.equal(fastestCandidate(10, [9.8, 8.9, 9.5], 0.03), 1);
  assert.equal(fastestCandidate(10, [9.8, 9.75], 0.03), undefined, 'within 3% of all-int8');
  assert.equal(fastestCandidate(10, [], 0.03), undefined);
  assert.equal(fastestCandidate(10, [10.5], -Infinity), 0, 'no margin: the only candidate');
});

test('PP-OCR cls layer groups: depthwise Convs, the first Conv, squeeze-and-excitation gates on pooled maps, the Mul that applies them', async () => {
  const original = loadModel(CLS);
  const dims = { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 };
  const calibration = generatedSamples(modelSignature(original).inputs, { count: 2, range: [-1, 1], dims });
  // Every layer int8 (no float prefix), so every group is there to find.
  const { model } = await quantize(original, { method: 'static-int8', calibration, biasCorrection: false, floatPrefix: 0 }, { ort: nodeOrt, threads: 1 });
  const groups = layerGroups(model);
  const grouped = (name: string) => Number(model.graph.nodes.find((n) => n.name === name)?.attribute('group')?.value ?? 1);
  assert.deepEqual(groups.get('Conv first'), ['p2o.Conv.0']);
  const depthwise = groups.get('Conv depthwise') ?? [];
  assert.ok(depthwise.length >= 5 && depthwise.every((n) => grouped(n) > 1), depthwise.join(' '));
  assert.ok((groups.get('Conv') ?? []).every((n) => grouped(n) === 1));
  // Each SE block: GlobalAveragePool -> Conv -> Conv -> gate (pooled), then Mul of the map by the gate.
  const pooledConvs = groups.get('Conv pooled') ?? [];
  const broadcastMuls = groups.get('Mul broadcast') ?? [];
  assert.ok(broadcastMuls.length > 0 && pooledConvs.length === 2 * broadcastMuls.length, `${pooledConvs.length} pooled Convs, ${broadcastMuls.length} broadcast Muls`);
  assert.deepEqual(groups.get('MaxPool'), ['p2o.MaxPool.0']);
  const all = [...groups.values()].flat();
  assert.equal(new Set(all).size, all.length, 'each layer in one group');
});

test('PP-OCR cls: the layers kept in float32 for speed are float in the model written, which agrees with all-int8', async () => {
  const original = loadModel(CLS);
  const dims = { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 };
  const calibration = generatedSamples(modelSignature(original).inputs, { count: 4, range: [-1, 1], dims });
  let inputs: Record<string, import('../src/ir/tensor.js').Tensor> | undefined;
  for await (const sample of calibration) {
    inputs = { ...sample.inputs };
    break;
  }
  assert.ok(inputs !== undefined);
  const ctx = { ort: nodeOrt, threads: 1 };
  // All-int8 (no float prefix) is the model the placement starts from here.
  const settings = { method: 'static-int8' as const, calibration, biasCorrection: false as const, floatPrefix: 0 };
  const plain = await quantize(original, settings, ctx);
  // Thresholds off, so whatever the profile proposes is built and kept: the test is of the build.
  const placed = await quantize(original, { ...settings, latencyPlacement: { inputs, profile: (m, feeds) => profileNodes(m, feeds, { runs: 3 }), tryBelowSpeedup: Infinity, minPredictedGain: -Infinity, minTimedGain: -Infinity, maxGroups: 1, buildBudgetMs: Infinity } }, ctx);
  const report = placed.report.placement;
  assert.ok(report !== undefined, 'the report has the placement');
  assert.ok(report.predicted_int8_ms > 0);
  process.stderr.write(`cls placement: candidates ${JSON.stringify(report.candidates)}; kept ${report.kept_candidate}; timed ${JSON.stringify(report.timed)}\n`);
  const floatLayers = (m: Model) => new Set(m.graph.nodes.filter((n) => ['Conv', 'Gemm', 'MatMul'].includes(n.opType) && m.graph.producer(n.inputs[1])?.opType !== 'DequantizeLinear').map((n) => n.name));
  if ((report.candidates ?? []).length === 0) {
    assert.match(report.reason ?? '', /no layer is predicted faster/);
    assert.deepEqual(report.kept_float, []);
  } else {
    // No timed margin: the fastest candidate is kept, and the report says which and what each timed.
    const candidates = report.candidates ?? [];
    assert.ok(candidates.length > 0 && candidates.every((c) => c.timed_ms !== undefined && c.timed_ms > 0), JSON.stringify(candidates));
    const kept = candidates.find((c) => c.name === report.kept_candidate);
    assert.ok(kept !== undefined, `kept ${report.kept_candidate}`);
    assert.equal(kept.timed_ms, Math.min(...candidates.map((c) => c.timed_ms ?? Infinity)));
    assert.equal(report.kept_float.length, kept.layers);
    assert.ok(report.timed !== undefined && report.timed.int8_ms > 0 && report.timed.mixed_ms > 0);
    const weighted = report.kept_float.filter((name) => ['Conv', 'Gemm', 'MatMul'].includes(original.graph.nodes.find((n) => n.name === name)?.opType ?? ''));
    const float = floatLayers(placed.model);
    assert.deepEqual(weighted.filter((name) => !float.has(name)), [], 'kept layers read float weights');
    assert.equal(floatLayers(plain.model).size, 0, 'all-int8 has no float Conv');
  }
  const [a] = await runModel(plain.model, Object.values(inputs));
  const [b] = await runModel(placed.model, Object.values(inputs));
  assert.ok(maxAbsDifference(a, b) < 0.05, `all-int8 and placed agree: ${maxAbsDifference(a, b)}`);
});

test('--no-placement is static-int8 only', async () => {
  const run = await runShrink(['quantize', CLS, '-o', '/tmp/never.onnx', '--method', 'dynamic-int8', '--no-placement']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^shrink: --no-placement goes with --method static-int8\n$/);
});
