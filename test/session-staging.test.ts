// Models whose weights live in external data files reach onnxruntime-node as files with their data
// beside them (src/node/model-stage.ts), not as bytes: IR loaded from an external-data model, the
// same with weights changed in memory, and with intermediate values exposed as extra outputs. The
// staging files are gone after release, and stale ones of dead processes are swept.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { compareModels } from '../src/eval/compare.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { stageModel } from '../src/node/model-stage.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { maxAbsDifference, runModel } from './helpers/run-model.js';
import { floats } from './helpers/tensors.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(join(tmpdir(), 'shrink-staging-'));
after(() => rmWork());
const rmWork = () => fs.rmSync(work, { recursive: true, force: true });

const sessionFolders = () => fs.readdirSync(tmpdir()).filter((f) => f.startsWith(`.shrink-session-${process.pid}-`));

test('an external-data model as IR runs from a staged file: same outputs, extra outputs, nothing left behind', async () => {
  const file = join(work, 'mlp-external.onnx');
  saveModel(loadModel(MLP), file, { externalData: { threshold: 0 } });
  const external = loadModel(file);
  assert.ok(external.graph.initializers.every((t) => t.isExternal));
  const input = floats(modelSignature(external).inputs[0].name, [1, 1, 28, 28], 7, 0, 1);
  const [expected] = await runModel(MLP, [input]);
  const [actual] = await runModel(external, [input]);
  assert.equal(maxAbsDifference(actual, expected), 0);
  // An intermediate value exposed as an extra output.
  const hidden = external.graph.nodes[0].outputs[0];
  const withHidden = await runModel(external, [input], { threads: 1, extraOutputs: [hidden] });
  assert.equal(withHidden.length, 2);
  assert.ok(withHidden[1].elementCount > 0);
  assert.deepEqual(sessionFolders(), []);
});

test('weights changed in memory beside weights still on disk: the staged model sees both', async () => {
  const file = join(work, 'mlp-mixed.onnx');
  saveModel(loadModel(MLP), file, { externalData: { threshold: 0 } });
  const model = loadModel(file).clone();
  // Zero the last layer's bias in memory; the other weights stay in the file.
  const bias = [...model.graph.initializers].sort((a, b) => a.elementCount - b.elementCount)[0];
  const at = model.graph.initializers.indexOf(bias);
  model.graph.initializers[at] = Tensor.fromArray(bias.name, DataType.FLOAT, bias.dims, new Float32Array(bias.elementCount));
  model.graph.changed();
  const original = loadModel(file);
  const samples = generatedSamples(modelSignature(original).inputs, { count: 2, dims: { N: 1 } });
  const report = await compareModels(nodeOrt, original, model, samples, { threads: 1 });
  const output = Object.values(report.outputs)[0];
  assert.equal(report.samples, 2);
  assert.ok(typeof output.max_abs === 'number' && output.max_abs > 0, 'the in-memory change shows');
  assert.ok(typeof output.cosine === 'number' && output.cosine > 0.5);
  assert.deepEqual(sessionFolders(), []);
});

test('a staging folder left by a dead process is removed by the next staging', async () => {
  const stale = join(tmpdir(), '.shrink-session-999999999-abcdef');
  fs.mkdirSync(stale, { recursive: true });
  fs.writeFileSync(join(stale, 'model.onnx'), 'x');
  // A fresh process stages once: run a child so this process's one-time sweep does not matter.
  const file = join(work, 'sweep.onnx');
  saveModel(loadModel(MLP), file, { externalData: { threshold: 0 } });
  const { spawnSync } = await import('node:child_process');
  const script = `import { loadModel } from './src/node/model-files.ts'; import { nodeOrt } from './src/node/ort-node.ts'; import { ModelSession } from './src/runtime/session.ts'; const s = await ModelSession.create(nodeOrt, loadModel(${JSON.stringify(file)})); await s.release();`;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(fs.existsSync(stale), false);
});

test('where hard links fail (another file system) the model is staged beside its weights, then removed', async () => {
  const file = join(work, 'beside.onnx');
  saveModel(loadModel(MLP), file, { externalData: { threshold: 0 } });
  const model = loadModel(file);
  const staged = await stageModel(model, () => {
    throw Object.assign(new Error('cross-device link'), { code: 'EXDEV' });
  });
  try {
    assert.equal(dirname(staged.path), work);
    assert.match(basename(staged.path), /^\.staged\.onnx\.shrink-\d+-\d+\.tmp$/);
    const input = floats(modelSignature(model).inputs[0].name, [1, 1, 28, 28], 3, 0, 1);
    const [expected] = await runModel(MLP, [input]);
    const [actual] = await runModel(staged.path, [input]);
    assert.equal(maxAbsDifference(actual, expected), 0);
  } finally {
    staged.release();
  }
  assert.deepEqual(fs.readdirSync(work).filter((f) => f.startsWith('.')), []);
});
