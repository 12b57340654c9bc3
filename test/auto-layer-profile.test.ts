// The pieces of `shrink auto`'s per-layer mixed precision on real onnxruntime: the latency cost
// model (the float and all-int8 model's profiles, one timed variant per op type) predicts a CNN
// with its Convs and Gemms left in float32, a model it never timed, within a factor of 2 of its
// timed latency (quiet, it is within 5-35%: the log line says by how much; a tighter bound failed
// a CI run when other work shared the cores, and speed claims belong in bench/); and the layer
// profile is measured once: a second search on the same input and data
// reads it from the cache and measures nothing.
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
import { buildLatencyModel, calibrateByOpType, layersByOpType, predictLatency } from '../src/pipeline/latency-model.js';
import { quantize } from '../src/pipeline/quantize.js';
import { cnnModel } from '../src/train/init-models.js';
import { spawnShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-layer-profile-'));
process.on('exit', () => fs.rmSync(temp, { recursive: true, force: true }));

test('latency cost model: a CNN with its Convs and Gemms in float32 predicted within a factor of 2 of its timed latency', async () => {
  const model = cnnModel({ classes: 10, seed: 3 });
  const inputs = await benchInputs(model, { batch: 32 });
  const calibration = tensorSamples([inputs], 'generated batch');
  const quantizeKeeping = async (keep: readonly string[]) => writeModel((await quantize(model, { method: 'static-int8', calibration, exclude: keep.map(exactNamePattern) }, { ort: nodeOrt })).model);
  const int8 = (await quantize(model, { method: 'static-int8', calibration }, { ort: nodeOrt })).model;
  const [floatBytes, int8Bytes] = [writeModel(model), writeModel(int8)];
  const profiled = buildLatencyModel(model, int8, { float: await profileNodes(floatBytes, inputs), int8: await profileNodes(int8Bytes, inputs) }, { float_ms: 1, int8_ms: 1 });
  const groups = [...layersByOpType(profiled)];
  const byOp = Object.fromEntries(groups);
  // conv1 (1 input channel) is float in the int8 model already (float-stem.ts): conv2 is the Conv group.
  assert.equal(byOp.Conv?.length, 1, JSON.stringify(byOp));
  assert.ok((byOp.Gemm?.length ?? 0) >= 1, JSON.stringify(byOp));
  // Two op types at once, a model never timed: the prediction adds each type's timed difference.
  const keep = [...byOp.Conv, ...byOp.Gemm];
  const variants = await Promise.all(groups.map(([, names]) => quantizeKeeping(names)));
  const timing = await benchmarkModels(
    nodeOrt,
    [
      { name: 'float', source: floatBytes, model },
      { name: 'int8', source: int8Bytes },
      { name: 'mixed', source: await quantizeKeeping(keep) },
      ...groups.map(([op], i) => ({ name: `every ${op} in float`, source: variants[i] })),
    ],
    { batch: 32, runs: 30, warmup: 3, threads: 1, graphOptimization: 'all', inputs: Array.from({ length: 3 + groups.length }, () => inputs) },
  );
  const ms = timing.models.map((m) => m.latency_ms.median);
  const [floatMs, int8Ms, mixedMs] = ms;
  const costs = buildLatencyModel(model, int8, { float: await profileNodes(floatBytes, inputs), int8: await profileNodes(int8Bytes, inputs) }, { float_ms: floatMs, int8_ms: int8Ms });
  for (const name of keep) assert.ok(costs.layers[name].float_ms > 0 && costs.layers[name].int8_ms > 0, `${name} profiled in both models: ${JSON.stringify(costs.layers[name])}`);
  const calibrated = calibrateByOpType(costs, Object.fromEntries(groups.map(([op], i) => [op, ms[3 + i]])));
  const predicted = predictLatency(calibrated, keep);
  const error = Math.abs(predicted - mixedMs) / mixedMs;
  console.log(`load ${os.loadavg()[0].toFixed(1)}: float ${floatMs.toFixed(2)} ms, int8 ${int8Ms.toFixed(2)} ms, ${keep.join(' + ')} in float: timed ${mixedMs.toFixed(2)} ms, predicted ${predicted.toFixed(2)} ms (${(error * 100).toFixed(1)}% off; from the profile alone ${predictLatency(costs, keep).toFixed(2)} ms)`);
  assert.ok(predicted > mixedMs / 2 && predicted < mixedMs * 2, `predicted ${predicted.toFixed(2)} ms vs timed ${mixedMs.toFixed(2)} ms`);
});

test('shrink auto: the layer profile (sensitivity, cost model) is measured once and read from the cache by a second run', () => {
  const data = writeFashionFiles(temp, 200, 0);
  const out = path.join(temp, 'out');
  // Static int8 misses a cosine of 0.99999 on the MLP, so the per-layer search runs (dynamic int8 may still win).
  const args = ['auto', 'models/fashion-mnist/mlp.onnx', '-o', out, '--data', data.images, '--min-cosine', '0.99999', '--target', 'latency', '--batch', '64', '--json', '--no-progress'];
  const first = spawnShrink(args, { timeout: 120_000 });
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /measuring the layer profile of static-int8/);
  const profiles = Object.values(JSON.parse(fs.readFileSync(path.join(out, '.shrink-auto-layers.json'), 'utf8'))) as { sensitivity: { node: string; isolated_sqnr_db: number }[]; latency: { layers: Record<string, { timed_delta_ms?: number }> } }[];
  assert.equal(profiles.length, 1);
  assert.deepEqual(profiles[0].sensitivity.map((s) => s.node).sort(), ['fc1', 'fc2', 'fc3']);
  // Worst first, each a measured SQNR (an int8 Gemm's own error: neither exact nor noise).
  const sqnr = profiles[0].sensitivity.map((s) => s.isolated_sqnr_db);
  assert.ok(sqnr.every((db, i) => db > 5 && db < 90 && (i === 0 || db >= sqnr[i - 1])), JSON.stringify(profiles[0].sensitivity));
  assert.ok(Object.values(profiles[0].latency.layers).every((l) => typeof l.timed_delta_ms === 'number'));
  const mixed = (JSON.parse(first.stdout).candidates as { name: string; latency_predicted?: boolean }[]).filter((c) => c.name.startsWith('static-int8-mixed-'));
  assert.ok(mixed.length >= 1, 'mixed candidates');

  const second = spawnShrink(args, { timeout: 120_000 });
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, /layer profile of static-int8: cached/);
  assert.doesNotMatch(second.stderr, /measuring the layer profile|: running/);
  const again = (JSON.parse(second.stdout).candidates as { name: string; cached?: boolean }[]).filter((c) => c.name.startsWith('static-int8-mixed-'));
  assert.deepEqual(again.map((c) => c.name), mixed.map((c) => c.name));
  assert.ok(again.every((c) => c.cached === true));
});
