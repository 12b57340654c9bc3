// --keep-first-last: the first and last weighted layers (in network order) stay in float32 under
// any method; names are matched exactly, whatever regex characters they hold.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { QuantizeCommandReport as QuantizeReport } from '../src/pipeline/quantize-report.js';
import { exactNamePattern, firstAndLastLayers } from '../src/methods/quantize/first-last-layers.js';
import { nodeSelector } from '../src/methods/quantize/node-selector.js';
import { loadModel } from '../src/node/model-files.js';
import { runShrink } from './helpers/cli.js';
import { DET } from './helpers/real-models.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-first-last-'));
after(() => fs.rmSync(temp, { recursive: true, force: true }));

test('firstAndLastLayers: the MLP ends, PP-OCRv4 det ends (weights in Constant nodes), exact-name patterns', () => {
  const mlp = loadModel(MLP);
  assert.deepEqual(firstAndLastLayers(mlp, 1), ['fc1', 'fc3']);
  assert.deepEqual(firstAndLastLayers(mlp, 5), ['fc1', 'fc2', 'fc3']);
  assert.deepEqual(firstAndLastLayers(mlp, 0), []);
  const det = loadModel(DET);
  const [first, last] = firstAndLastLayers(det, 1);
  const firstNode = det.graph.nodes.find((n) => n.name === first);
  const lastNode = det.graph.nodes.find((n) => n.name === last);
  assert.equal(firstNode?.opType, 'Conv');
  assert.ok(firstNode?.inputs[0] === det.graph.inputs[0].name, 'the first layer reads the image');
  assert.ok(lastNode?.opType === 'ConvTranspose' || lastNode?.opType === 'Conv', `last layer ${last} (${lastNode?.opType})`);
  const pattern = exactNamePattern('p2o.Conv.0');
  assert.ok(nodeSelector(pattern).matches({ name: 'p2o.Conv.0', opType: 'Conv' } as never));
  assert.ok(!nodeSelector(pattern).matches({ name: 'p2o.Conv.01', opType: 'Conv' } as never));
  assert.ok(!nodeSelector(pattern).matches({ name: 'p2oXConv.0', opType: 'Conv' } as never));
});

test('shrink quantize --keep-first-last (flag and config): only the middle layer is quantized', async () => {
  const run = await runShrink(['quantize', MLP, '-o', path.join(temp, 'flag.onnx'), '--method', 'int4', '--keep-first-last', '--json', '--dims', 'N=2']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as QuantizeReport;
  const quantized = report.nodes.list.filter((n) => n.quantized).map((n) => n.node);
  assert.deepEqual(quantized, ['fc2']);
  const config = path.join(temp, 'config.json');
  fs.writeFileSync(config, JSON.stringify({ method: 'int8-weight', keepFirstLast: 1 }));
  const viaConfig = await runShrink(['quantize', MLP, '-o', path.join(temp, 'config.onnx'), '--config', config, '--json', '--dims', 'N=2']);
  assert.equal(viaConfig.code, 0, viaConfig.stderr);
  assert.deepEqual((JSON.parse(viaConfig.stdout) as QuantizeReport).nodes.list.filter((n) => n.quantized).map((n) => n.node), ['fc2']);
  const bad = await runShrink(['quantize', MLP, '-o', path.join(temp, 'bad.onnx'), '--method', 'int4', '--keep-first-last', '-1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--keep-first-last must be a whole number >= 0, got '-1'/);
});
