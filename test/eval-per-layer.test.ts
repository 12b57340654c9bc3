// Per-layer error on real models: a copy of PP-OCRv4 det with one Conv's weights scaled by 1.5 has
// that Conv ranked first, with the SQNR a direct onnxruntime computation gives, and every other
// layer exact in isolation; on dynamic int8 det the first layer (exact inputs) is no longer on top;
// the isolated error of a layer behind a damaged one equals what the same damage alone gives;
// renamed values are followed through `renames`; Silero's If-body values are skipped with a note;
// the CLI table lists the damaged layer first.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../src/cli/main.js';
import { compareModels } from '../src/eval/compare.js';
import { numberFromJson } from '../src/eval/eval-report.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { planLayers } from '../src/eval/per-layer.js';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { Graph } from '../src/ir/graph.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { nodeOrder } from '../src/ir/toposort.js';
import { quantizeDynamicInt8 } from '../src/methods/quantize/dynamic-int8.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import { sampleFeeds } from '../src/eval/samples.js';
import { DET, VAD_V5 } from './helpers/real-models.js';

const DET_DIMS = { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 160, 'p2o.DynamicDimension.2': 160 };

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-per-layer-'));
process.on('exit', () => fs.rmSync(temp, { recursive: true, force: true }));

/**
 * PP-OCRv4 det with the weights of the middle Conv (in network order) scaled by 1.5. With `rename`,
 * the Conv's output is also renamed (as a pass might), consumers included.
 */
function damagedDet(rename?: string): { model: Model; conv: string; convOut: string } {
  const model = loadModel(DET);
  const graph = model.graph;
  const convs = nodeOrder(graph).order.filter((n) => n.opType === 'Conv');
  const conv = convs[Math.floor(convs.length / 2)];
  const weight = constantValue(graph, conv.inputs[1]);
  assert.ok(weight !== undefined && weight.dataType === DataType.FLOAT, 'the Conv weight is a float constant');
  const scaled = Tensor.fromArray(weight.name, DataType.FLOAT, weight.dims, (weight.data() as Float32Array).map((v) => v * 1.5));
  // PP-OCR keeps weights in Constant nodes; the one feeding this Conv feeds nothing else.
  const producer = graph.producer(conv.inputs[1]);
  assert.equal(producer?.opType, 'Constant');
  assert.equal(graph.consumers(conv.inputs[1]).length, 1);
  producer.setAttribute(attr.tensor('value', scaled));
  const convOut = conv.outputs[0];
  if (rename !== undefined) {
    for (const node of graph.nodes) node.inputs = node.inputs.map((v) => (v === convOut ? rename : v));
    conv.outputs[0] = rename;
  }
  graph.changed();
  return { model, conv: conv.name, convOut };
}

function detSamples(model: Model) {
  return generatedSamples(modelSignature(model).inputs, { count: 2, dims: DET_DIMS, seed: 7 });
}

/** SQNR of one value computed here: both models run with that value exposed, sums in float64. */
async function directSqnr(original: Model, candidate: Model, value: string, candidateValue = value): Promise<number> {
  const a = await ModelSession.create(nodeOrt, original, { threads: 1, extraOutputs: [value] });
  const b = await ModelSession.create(nodeOrt, candidate, { threads: 1, extraOutputs: [candidateValue] });
  let signal = 0;
  let noise = 0;
  for await (const sample of detSamples(original)) {
    const feeds = sampleFeeds(nodeOrt, sample);
    const x = (await a.run(feeds, [value]))[value].data as Float32Array;
    const y = (await b.run(feeds, [candidateValue]))[candidateValue].data as Float32Array;
    for (let i = 0; i < x.length; i++) {
      signal += x[i] * x[i];
      noise += (x[i] - y[i]) ** 2;
    }
  }
  await a.release();
  await b.release();
  return 10 * Math.log10(signal / noise);
}

test('PP-OCRv4 det with one Conv scaled by 1.5: per-layer ranks that Conv first, with the SQNR a direct computation gives', async () => {
  const original = loadModel(DET);
  const { model: damaged, conv, convOut } = damagedDet();
  const report = await compareModels(nodeOrt, original, damaged, detSamples(original), { threads: 1, perLayer: true });
  const layers = report.layers ?? [];
  assert.ok(layers.length > 300, `${layers.length} layers compared`);
  assert.deepEqual(report.layer_notes, []);
  const [first, second] = layers;
  assert.equal(first.value, convOut);
  assert.equal(first.node, conv);
  assert.equal(first.op, 'Conv');
  assert.equal(first.input_sqnr_db, 'inf', 'nothing upstream of the damaged Conv changed');
  const sqnr = numberFromJson(first.sqnr_db);
  const expected = await directSqnr(original, damaged, convOut);
  assert.ok(Math.abs(sqnr - expected) < 1e-6, `SQNR ${sqnr} vs direct ${expected}`);
  // Scaling the weights (not the bias) by 1.5 leaves an error of half the weighted sum: about 6 dB.
  assert.ok(sqnr > 3 && sqnr < 12, `damaged Conv SQNR ${sqnr}`);
  // Its inputs are exact, so computing it from the original's activations changes nothing.
  assert.equal(first.isolated_sqnr_db, first.sqnr_db);
  assert.equal(first.drop_db, 150 - sqnr);
  // Every other layer computes exactly what the original does from the same inputs, however much
  // error reaches it (the sigmoid after the damage amplifies it by ~40 dB).
  assert.equal(second.isolated_sqnr_db, 'inf');
  for (const layer of layers.slice(1)) assert.equal(layer.isolated_sqnr_db, 'inf', layer.value);
  // Layers before the damaged one are exact; the model output is not.
  for (const layer of layers.filter((l) => l.order < first.order)) assert.equal(layer.sqnr_db, 'inf', layer.value);
  assert.ok(layers.filter((l) => l.order > first.order).some((l) => l.sqnr_db !== 'inf'));
  const output = report.outputs['sigmoid_0.tmp_0'];
  assert.ok(typeof output.sqnr_db === 'number' && output.sqnr_db < 40, `output SQNR ${output.sqnr_db}`);
});

test('renamed values are followed through renames; without the record they are noted as unmatched', async () => {
  const original = loadModel(DET);
  const { model: damaged, convOut } = damagedDet('renamed_by_a_pass');
  const plan = planLayers(original, damaged);
  assert.equal(plan.notes.length, 1);
  assert.match(plan.notes[0], new RegExp(`^1 value of the original has no counterpart in the candidate .*'${convOut.replace(/\./g, '\\.')}'$`));
  const report = await compareModels(nodeOrt, original, damaged, detSamples(original), {
    threads: 1,
    perLayer: true,
    renames: { [convOut]: 'renamed_by_a_pass' },
  });
  const first = (report.layers ?? [])[0];
  assert.equal(first.value, convOut);
  assert.equal(first.candidate_value, 'renamed_by_a_pass');
  const expected = await directSqnr(original, damaged, convOut, 'renamed_by_a_pass');
  assert.ok(Math.abs(numberFromJson(first.sqnr_db) - expected) < 1e-6);
  assert.deepEqual(report.layer_notes, []);
});

test('Silero VAD v5 against itself (candidate as bytes): main-graph values exact, values inside If bodies skipped with a note', async () => {
  const model = loadModel(VAD_V5);
  const samples = generatedSamples(modelSignature(model).inputs, { count: 2, dims: { 'input[0]': 1, 'input[1]': 512, 'state[1]': 1 }, ranges: { sr: [16000, 16000] } });
  // The candidate as encoded bytes, the way a browser page hands over a file.
  const report = await compareModels(nodeOrt, model, new Uint8Array(fs.readFileSync(VAD_V5)), samples, { threads: 1, perLayer: true });
  const layers = report.layers ?? [];
  assert.ok(layers.length >= 1);
  for (const layer of layers) {
    assert.equal(layer.sqnr_db, 'inf', layer.value);
    assert.equal(layer.isolated_sqnr_db, 'inf', layer.value);
    // The If node reads the audio and state inside its bodies: exact inputs, so no drop.
    assert.equal(layer.drop_db, 0, layer.value);
  }
  assert.ok((report.layer_notes ?? []).some((n) => /integer or boolean values? .* all are identical in both models$/.test(n)), `notes: ${report.layer_notes}`);
  const nested = (report.layer_notes ?? []).find((n) => n.includes('inside If/Loop/Scan bodies'));
  assert.ok(nested !== undefined, `notes: ${report.layer_notes}`);
  assert.ok(Number(nested.split(' ')[0]) > 20, nested);
});

test('shrink eval --per-layer (CLI) lists the damaged Conv first in its table', async () => {
  const { model, convOut } = damagedDet();
  const file = path.join(temp, 'det-damaged.onnx');
  saveModel(model, file);
  let stdout = '';
  let stderr = '';
  const dims = Object.entries(DET_DIMS).map(([k, v]) => `${k}=${v}`).join(',');
  const code = await main(['eval', DET, file, '--per-layer', '--samples', '2', '--seed', '7', '--dims', dims, '--threads', '1', '--top', '3'], {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
  });
  assert.equal(code, 0, stderr);
  const lines = stdout.split('\n');
  const heading = lines.findIndex((l) => l.startsWith('layers ranked by the error they add'));
  assert.ok(heading > 0, stdout);
  assert.match(lines[heading], /, 3 of \d+:$/);
  // Isolated SQNR and SQNR are the same for a layer reading exact inputs.
  const row = new RegExp(`^1  ${convOut.replace(/\./g, '\\.')} +Conv +(\\d+\\.\\d\\d) +(\\d+\\.\\d\\d) +inf +0\\.\\d+$`).exec(lines[heading + 3]);
  assert.ok(row !== null, lines[heading + 3]);
  assert.equal(row[1], row[2]);
  assert.match(lines[heading + 4], / inf +-?\d+\.\d\d +/, 'the second layer makes no error of its own');
  assert.match(stdout, /^warning: inputs are random numbers/m);
});

/**
 * x -> Mul(w) -> a -> Add(c) -> b -> Mul(v) -> y, where the candidate scales w and gives b another
 * name with no record (as BatchNorm folding does to a Conv output). The last Mul reads b only
 * through the unmatched name: its input error is the one measured upstream at a, not "exact".
 */
function chain(weight: number, middle: string): Model {
  const b = new GraphBuilder(new Graph('chain'));
  const x = b.input('x', DataType.FLOAT, [4, 8]);
  const w = b.initializer('w', DataType.FLOAT, [], new Float32Array([weight]));
  const c = b.initializer('c', DataType.FLOAT, [], new Float32Array([0.5]));
  const v = b.initializer('v', DataType.FLOAT, [], new Float32Array([3]));
  const a = b.node('Mul', [x, w], [], { name: 'scale', outputs: ['a'] })[0];
  const m = b.node('Add', [a, c], [], { name: 'shift', outputs: [middle] })[0];
  b.node('Mul', [m, v], [], { name: 'gain', outputs: ['y'] });
  b.output('y', DataType.FLOAT, [4, 8]);
  return buildModel(b.graph);
}

test('an input with no counterpart in the candidate takes the error measured upstream of it, not an exact input', async () => {
  const original = chain(2, 'b');
  const candidate = chain(2.02, 'b_folded');
  const samples = generatedSamples(modelSignature(original).inputs, { count: 2, seed: 3 });
  const report = await compareModels(nodeOrt, original, candidate, samples, { threads: 1, perLayer: true });
  const byValue = new Map((report.layers ?? []).map((l) => [l.value, l]));
  const a = byValue.get('a');
  const y = byValue.get('y');
  assert.ok(a !== undefined && y !== undefined && !byValue.has('b'));
  assert.equal(a.input_sqnr_db, 'inf', 'the first Mul reads the graph input and a constant');
  assert.equal(typeof a.sqnr_db, 'number');
  assert.equal(y.input_sqnr_db, a.sqnr_db, "y's input traced back through the unmatched 'b' to 'a'");
  assert.ok(Math.abs(y.drop_db ?? Number.NaN) < 10, `y adds little error of its own (drop ${y.drop_db})`);
  // Cut at 'a', the candidate computes b_folded and y from the original's 'a': exact.
  assert.equal(y.isolated_sqnr_db, 'inf');
  assert.equal(a.isolated_sqnr_db, a.sqnr_db);
  assert.equal(report.layers?.[0].value, 'a', 'the scaled weight is ranked first');
});

test('PP-OCRv4 det, dynamic int8: the first layer reads the exact image and is no longer ranked first', async () => {
  const original = loadModel(DET);
  const candidate = loadModel(DET);
  quantizeDynamicInt8(candidate, {});
  const report = await compareModels(nodeOrt, original, candidate, detSamples(original), { threads: 1, perLayer: true });
  const layers = report.layers ?? [];
  const firstConv = nodeOrder(original.graph).order.find((n) => n.opType === 'Conv');
  const first = layers.find((l) => l.node === firstConv?.name);
  assert.ok(first !== undefined && typeof first.isolated_sqnr_db === 'number');
  assert.equal(first.input_sqnr_db, 'inf');
  assert.equal(first.isolated_sqnr_db, first.sqnr_db, 'exact inputs: isolated and accumulated error are one');
  const rank = layers.indexOf(first);
  assert.ok(rank >= 10, `first Conv ranked ${rank + 1} (isolated SQNR ${first.isolated_sqnr_db} dB)`);
  // Ranked by isolated SQNR, lowest first, over every layer measured in isolation.
  const isolated = layers.map((l) => numberFromJson(l.isolated_sqnr_db));
  assert.ok(isolated.every((x) => !Number.isNaN(x)));
  for (let i = 1; i < isolated.length; i++) assert.ok(isolated[i - 1] <= isolated[i], `rank ${i}: ${isolated[i - 1]} > ${isolated[i]}`);
  // Ranked by SQNR drop, the exact input's 150 dB put the first Conv on top.
  const byDrop = await compareModels(nodeOrt, original, candidate, detSamples(original), { threads: 1, perLayer: true, isolateLayers: false });
  assert.equal(byDrop.layers?.[0].node, firstConv?.name);
  assert.ok(byDrop.layers?.every((l) => l.isolated_sqnr_db === null));
  console.log(
    `# det dynamic int8 on 2 random 160x160 images: worst layer in isolation ${layers[0].value} (${layers[0].op}, ${Number(layers[0].isolated_sqnr_db).toFixed(1)} dB alone, ` +
      `${Number(layers[0].sqnr_db).toFixed(1)} dB accumulated); first Conv ranked ${rank + 1} of ${layers.length} (${Number(first.sqnr_db).toFixed(1)} dB), first by SQNR drop`,
  );
});

test("isolated error is the layer's own: behind a damaged layer it equals what the same damage alone gives", async () => {
  const MLP = 'models/fashion-mnist/mlp.onnx';
  /** The MLP with its Gemm `name`'s weights scaled by `factor` (each entry of `scales`). */
  const scaled = (scales: Record<string, number>): Model => {
    const model = loadModel(MLP);
    for (const [name, factor] of Object.entries(scales)) {
      const gemm = model.graph.nodes.find((n) => n.name === name);
      assert.ok(gemm !== undefined);
      const weight = constantValue(model.graph, gemm.inputs[1]);
      assert.ok(weight !== undefined);
      const at = model.graph.initializers.findIndex((t) => t.name === weight.name);
      model.graph.replaceInitializer(at, Tensor.fromArray(weight.name, DataType.FLOAT, weight.dims, (weight.data() as Float32Array).map((v) => v * factor)));
    }
    return model;
  };
  const original = loadModel(MLP);
  const samples = () => generatedSamples(modelSignature(original).inputs, { count: 4, dims: { N: 8 }, ranges: { image: [0, 1] }, seed: 5 });
  const both = await compareModels(nodeOrt, original, scaled({ fc1: 1.5, fc2: 1.01 }), samples(), { threads: 1, perLayer: true });
  const alone = await compareModels(nodeOrt, original, scaled({ fc2: 1.01 }), samples(), { threads: 1, perLayer: true });
  const at = (r: typeof both, node: string) => (r.layers ?? []).find((l) => l.node === node && l.op === 'Gemm');
  const fc2 = at(both, 'fc2');
  const fc2Alone = at(alone, 'fc2');
  assert.ok(fc2 !== undefined && fc2Alone !== undefined);
  const isolated = numberFromJson(fc2.isolated_sqnr_db);
  assert.ok(Math.abs(isolated - numberFromJson(fc2Alone.sqnr_db)) < 1e-3, `isolated ${isolated} vs alone ${fc2Alone.sqnr_db}`);
  assert.ok(numberFromJson(fc2.sqnr_db) < isolated - 20, `accumulated ${fc2.sqnr_db}: fc1's damage dominates`);
  assert.deepEqual((both.layers ?? []).slice(0, 2).map((l) => l.node), ['fc1', 'fc2']);
  assert.equal(at(both, 'fc3')?.isolated_sqnr_db, 'inf');
});
