// Model.clone(): a copy that passes can change without touching the original, sharing weight
// bytes (so it is cheap), on real models with Constant-node weights and If subgraphs, and on a
// model whose weights stay in an external file.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { allConstants } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { REC, VAD_V5 } from './helpers/real-models.js';

const work = mkdtempSync(join(tmpdir(), 'shrink-clone-'));
after(() => rmSync(work, { recursive: true, force: true }));

for (const file of [REC, VAD_V5]) {
  test(`clone of ${file.split('/').pop()}: encodes like the original; optimizing the clone leaves the original byte-identical`, async () => {
    const original = loadModel(file);
    const copy = original.clone();
    assert.deepEqual(writeModel(copy), new Uint8Array(readFileSync(file)));
    const before = writeModel(original);
    const reports = await optimizeModel(copy, { level: 'full' });
    assert.ok(reports.some((r) => Object.values(r.stats).some((v) => v > 0)), 'the optimizer changed the clone');
    assert.ok(copy.graph.nodes.length < original.graph.nodes.length, `${copy.graph.nodes.length} vs ${original.graph.nodes.length} nodes`);
    assert.deepEqual(writeModel(original), before);
    // Subgraphs of the copy hang below the copy's graphs, not the original's.
    copy.graph.visit((g) => {
      let root = g;
      while (root.parent !== undefined) root = root.parent;
      assert.equal(root, copy.graph);
    });
  });
}

test('clone shares weight bytes (no copy) and keeps external tensors external', () => {
  const model = loadModel(REC);
  const copy = model.clone();
  const a = [...allConstants(model.graph)].map((c) => c.tensor);
  const b = [...allConstants(copy.graph)].map((c) => c.tensor);
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.notEqual(a[i], b[i]);
    if (a[i].dataType !== DataType.STRING) assert.equal(a[i].bytes().buffer, b[i].bytes().buffer);
  }
  // Renaming a tensor of the copy leaves the original's name alone.
  b[0].name = 'renamed';
  assert.notEqual(a[0].name, 'renamed');

  const file = join(work, 'external.onnx');
  const built = loadModel(REC);
  built.graph.initializers.push(Tensor.fromArray('big', DataType.FLOAT, [4096], new Float32Array(4096).fill(0.5)));
  built.graph.changed();
  saveModel(built, file, { externalData: true });
  const external = loadModel(file);
  const externalCopy = external.clone();
  const tensor = externalCopy.graph.initializer('big');
  assert.ok(tensor?.isExternal);
  assert.equal((tensor.data() as Float32Array)[4095], 0.5);
});
