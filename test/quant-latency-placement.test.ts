// Latency placement for static int8 (src/pipeline/latency-placement.ts): which layers the profile
// proposes to leave in float32, and on PP-OCR cls with onnxruntime's real profiler, that the model
// written keeps exactly those layers in float32, still agrees with the all-int8 one, and that the
// report holds what was timed. Which layers are slower in int8 depends on the CPU, so the real-model
// test checks consistency, not a list.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import type { Model } from '../src/ir/model.js';
import { loadModel } from '../src/node/model-files.js';
import { profileNodes } from '../src/node/node-profile.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { slowInt8Layers } from '../src/pipeline/latency-placement.js';
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
  const settings = { method: 'static-int8' as const, calibration, biasCorrection: false as const };
  const plain = await quantize(original, settings, ctx);
  // Thresholds off, so whatever the profile proposes is built and kept: the test is of the build.
  const placed = await quantize(original, { ...settings, latencyPlacement: { inputs, profile: (m, feeds) => profileNodes(m, feeds, { runs: 3 }), tryBelowSpeedup: Infinity, minPredictedGain: -Infinity, minTimedGain: -Infinity } }, ctx);
  const report = placed.report.placement;
  assert.ok(report !== undefined, 'the report has the placement');
  assert.ok(report.predicted_int8_ms > 0);
  process.stderr.write(`cls placement: proposed ${report.proposed.map((p) => `${p.node} (${p.op})`).join(', ') || 'none'}; timed ${JSON.stringify(report.timed)}\n`);
  const floatLayers = (m: Model) => new Set(m.graph.nodes.filter((n) => ['Conv', 'Gemm', 'MatMul'].includes(n.opType) && m.graph.producer(n.inputs[1])?.opType !== 'DequantizeLinear').map((n) => n.name));
  if (report.proposed.length === 0) {
    assert.match(report.reason ?? '', /no layer is predicted faster/);
    assert.deepEqual(report.kept_float, []);
  } else {
    assert.deepEqual([...report.kept_float].sort(), report.proposed.map((p) => p.node).sort());
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
