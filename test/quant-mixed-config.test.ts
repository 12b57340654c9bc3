// Mixed precision by configuration: one config gives nodes of the Fashion-MNIST MLP three
// precisions (int8, int4, fp16); each is realised by its own pass and the model still classifies.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { QuantizeCommandReport as QuantizeReport } from '../src/pipeline/quantize-report.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { runShrink } from './helpers/cli.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-mixed-'));
after(() => fs.rmSync(temp, { recursive: true, force: true }));

test('config: fc1 int8, fc2 int4 (the method), fc3 fp16 -> each node in its format; accuracy within 0.5 points', async () => {
  const config = path.join(temp, 'mixed.json');
  fs.writeFileSync(config, JSON.stringify({ method: 'int4', nodes: [{ match: 'fc1', precision: 'int8' }, { match: '^fc3$', precision: 'fp16' }] }));
  const output = path.join(temp, 'mixed.onnx');
  const run = await runShrink(['quantize', MLP, '-o', output, '--config', config, '--json', '--dims', 'N=2']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as QuantizeReport;
  assert.deepEqual(report.nodes.list.filter((n) => n.quantized).map((n) => n.node).sort(), ['fc1', 'fc2', 'fc3']);
  assert.equal(report.nodes.skipped, 0);

  const model = loadModel(output);
  const graph = model.graph;
  const fc2 = graph.nodes.find((n) => n.name === 'fc2');
  assert.equal(fc2?.opType, 'MatMulNBits');
  assert.equal(fc2?.attrInt('bits'), 4);
  // fc1 keeps its Gemm and reads an int8 weight through DequantizeLinear (int8-weight on Gemm below opset 21).
  const fc1 = graph.nodes.find((n) => n.name === 'fc1');
  const fc1Weight = fc1 === undefined ? undefined : graph.producer(fc1.inputs[1]);
  assert.ok(fc1?.opType === 'MatMulNBits' ? fc1.attrInt('bits') === 8 : fc1Weight?.opType === 'DequantizeLinear', `fc1 is ${fc1?.opType}`);
  if (fc1Weight?.opType === 'DequantizeLinear') assert.equal(constantValue(graph, fc1Weight.inputs[0])?.dataType, DataType.INT8);
  // fc3 computes in float16: its weight is stored in float16.
  const fc3 = graph.nodes.find((n) => n.name === 'fc3');
  assert.equal(constantValue(graph, fc3?.inputs[1] ?? '')?.dataType, DataType.FLOAT16);

  const test10k = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const float = await classifierAccuracy(nodeOrt, loadModel(MLP), test10k, { threads: 1 });
  const mixed = await classifierAccuracy(nodeOrt, model, test10k, { threads: 1 });
  console.log(`# Fashion-MNIST MLP: float ${float.toFixed(2)}%, mixed int8/int4/fp16 ${mixed.toFixed(2)}%`);
  assert.ok(float - mixed <= 0.5, `lost ${float - mixed} points`);
});
