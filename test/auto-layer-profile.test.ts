// The pieces of `shrink auto`'s per-layer mixed precision on real onnxruntime: the latency cost
// model predicts a CNN with its Conv layers left in float32 (never timed before) from the float
// and the all-int8 model's profiles, within 25% of its timed latency; and the layer profile is
// measured once: a second search on the same input and data reads it from the cache.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { benchInputs } from '../src/eval/bench-inputs.js';
import { benchmarkModels } from '../src/eval/benchmark.js';
import { tensorSamples } from '../src/eval/samples.js';
import { exactNamePattern } from '../src/methods/quantize/first-last-layers.js';
import { profileNodes } from '../src/node/node-profile.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { buildLatencyModel, predictLatency } from '../src/pipeline/latency-model.js';
import { quantize } from '../src/pipeline/quantize.js';
import { cnnModel } from '../src/train/init-models.js';

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-layer-profile-'));
process.on('exit', () => fs.rmSync(temp, { recursive: true, force: true }));

test('latency cost model: a CNN with its Convs in float32 predicted within 25% of its timed latency', async () => {
  const model = cnnModel({ classes: 10, seed: 3 });
  const inputs = await benchInputs(model, { batch: 32 });
  const calibration = tensorSamples([inputs], 'generated batch');
  const int8 = (await quantize(model, { method: 'static-int8', calibration }, { ort: nodeOrt })).model;
  const convs = int8.graph.nodes.filter((n) => n.opType === 'Conv').map((n) => n.name);
  assert.equal(convs.length, 2);
  const mixed = (await quantize(model, { method: 'static-int8', calibration, exclude: convs.map(exactNamePattern) }, { ort: nodeOrt })).model;
  const [floatBytes, int8Bytes, mixedBytes] = [writeModel(model), writeModel(int8), writeModel(mixed)];
  const timing = await benchmarkModels(
    nodeOrt,
    [
      { name: 'float', source: floatBytes, model },
      { name: 'int8', source: int8Bytes },
      { name: 'mixed', source: mixedBytes },
    ],
    { batch: 32, runs: 40, warmup: 3, threads: 1, graphOptimization: 'all', inputs: [inputs, inputs, inputs] },
  );
  const [floatMs, int8Ms, mixedMs] = timing.models.map((m) => m.latency_ms.median);
  const costs = buildLatencyModel(model, int8, { float: await profileNodes(floatBytes, inputs), int8: await profileNodes(int8Bytes, inputs) }, { float_ms: floatMs, int8_ms: int8Ms });
  for (const conv of convs) assert.ok(costs.layers[conv] !== undefined && costs.layers[conv].float_ms > 0 && costs.layers[conv].int8_ms > 0, `${conv} profiled in both models: ${JSON.stringify(costs.layers[conv])}`);
  const predicted = predictLatency(costs, convs);
  const error = Math.abs(predicted - mixedMs) / mixedMs;
  console.log(`load ${os.loadavg()[0].toFixed(1)}: float ${floatMs.toFixed(2)} ms, int8 ${int8Ms.toFixed(2)} ms, Convs in float: timed ${mixedMs.toFixed(2)} ms, predicted ${predicted.toFixed(2)} ms (${(error * 100).toFixed(1)}% off); claimed ${JSON.stringify(costs.claimed)}`);
  assert.ok(error < 0.25, `predicted ${predicted.toFixed(2)} ms vs timed ${mixedMs.toFixed(2)} ms`);
});
