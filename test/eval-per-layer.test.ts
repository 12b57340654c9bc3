// Per-layer error on real models: a copy of PP-OCRv4 det with one Conv's weights scaled by 1.5 has
// that Conv ranked first, with the SQNR a direct onnxruntime computation gives; renamed values are
// followed through `renames`; Silero's If-body values are skipped with a note; the CLI table
// lists the damaged layer first.
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
  assert.equal(first.drop_db, 150 - sqnr);
  assert.ok((second.drop_db ?? 0) < first.drop_db / 2, `next largest drop ${second.drop_db} (${second.value})`);
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
  assert.match(lines[heading + 3], new RegExp(`^1  ${convOut.replace(/\./g, '\\.')} +Conv +1[34]\\d\\.\\d\\d +\\d\\.\\d\\d +inf +0\\.\\d+$`));
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
  assert.equal(report.layers?.[0].value, 'a', 'the scaled weight is ranked first');
});
