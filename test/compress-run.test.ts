// Recipe files that fine-tune: prune steps with `epochs` (recovery) and cluster steps with `epochs`
// (centroids) on training arrays given to `shrink run --data` (.npy + --labels, bytes scaled by
// --scale 1/255; without labels the steps distil from the input), the stage table in the report,
// and the new keys checked like the old ones.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeNpy } from '../src/eval/npy.js';
import { DataType } from '../src/ir/dtype.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { unpack } from '../src/onnx/pack-decode.js';
import { writeModel } from '../src/onnx/model-io.js';
import { recipeFromData, parseRecipe } from '../src/pipeline/recipe.js';
import { deepCompressionRecipe } from '../src/pipeline/recipes/deep-compression.js';
import { runRecipe } from '../src/pipeline/run-recipe.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-compress-run-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const file = (name: string) => path.join(work, name);

test('recipe keys: epochs, lr, batch_size on prune; epochs, lr on cluster; pack last; mistakes one line', () => {
  const recipe = parseRecipe('steps:\n  - prune: {method: magnitude, sparsity: 0.8, epochs: 2, lr: 0.01, batch_size: 32}\n  - cluster: {bits: 4, epochs: 1}\n  - pack: {}\n', 'r.yaml');
  assert.deepEqual(recipe.steps.map((s) => s.kind), ['prune', 'cluster', 'pack']);
  assert.deepEqual(recipe.steps[0].kind === 'prune' && recipe.steps[0].training, { epochs: 2, lr: 0.01, batchSize: 32 });
  assert.deepEqual(recipe.steps[1].kind === 'cluster' && recipe.steps[1].training, { epochs: 1 });
  const built = deepCompressionRecipe({ sparsity: 0.8, bits: 4, epochs: 4 });
  assert.deepEqual(built.steps.map((s) => [s.kind, 'training' in s ? s.training?.epochs : undefined]), [['prune', 4], ['cluster', 2], ['pack', undefined]]);
  const bad: [string, RegExp][] = [
    ['{"steps": [{"pack": {}}, {"cluster": {"bits": 4}}]}', /r\.json: steps\.0: 'pack' must be the last step \(it turns the model into a \.shrink file\)$/],
    ['{"steps": [{"prune": {"method": "magnitude", "sparsity": 0.5, "lr": 0.1}}]}', /r\.json: steps\.0\.prune: 'lr' goes with 'epochs' \(recovery training\)$/],
    ['{"steps": [{"cluster": {"bits": 4, "lr": 0.1}}]}', /r\.json: steps\.0\.cluster: 'lr' goes with 'epochs' \(centroid fine-tuning\)$/],
    ['{"steps": [{"cluster": {"bits": 4, "epochs": 0}}]}', /r\.json: 'steps\.0\.cluster\.epochs': Too small/],
    ['{"steps": [{"cluster": {"bits": 4, "batch_size": 8}}]}', /r\.json: steps\.0\.cluster: 'batch_size' goes with 'epochs' \(centroid fine-tuning\)$/],
    ['{"steps": [{"pack": {"level": 9}}]}', /r\.json: 'steps\.0\.pack\.level'/],
  ];
  for (const [text, message] of bad) assert.throws(() => parseRecipe(text, 'r.json'), message, text);
});

test('shrink run: a prune step fine-tunes on --data arrays (bytes scaled by --scale), a cluster step trains its centroids; stages in the report', async () => {
  // The images as bytes 0-255, as datasets often ship them: --scale 1/255 makes them the [0, 1] floats the MLP takes.
  const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const images = file('bytes.npy');
  fs.writeFileSync(images, writeNpy({ dataType: DataType.UINT8, dims: [1000, 1, 28, 28], data: set.images.slice(0, 1000 * 784) as Uint8Array }));
  const labels = writeFashionFiles(work, 1000).labels;
  const recipe = file('finetune.yaml');
  fs.writeFileSync(recipe, 'steps:\n  - prune: {method: magnitude, sparsity: 0.8, epochs: 1, batch_size: 32}\n  - cluster: {bits: 4, epochs: 1}\n');
  const out = file('out.onnx');
  const run = await runShrink(['run', recipe, MLP, '-o', out, '--data', images, '--labels', labels, '--scale', '1/255', '--samples', '500', '--threads', '1', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  const recovery = report.steps[0].report.recovery;
  assert.equal(recovery.kind, 'fine-tune');
  assert.equal(recovery.epochs, 1);
  assert.equal(recovery.steps, Math.floor(1000 / 32));
  assert.equal(report.steps[1].report.finetune.kind, 'fine-tune');
  assert.deepEqual(report.stages.map((s: { label: string }) => s.label), ['original', 'P', 'P+Q']);
  // Scaled right, the input model scores as it does on float images (about 89% on these).
  assert.ok(report.stages[0].accuracy > 0.85, JSON.stringify(report.stages[0]));
  assert.equal(report.fidelity.samples, 500);
  assert.ok(report.stages[2].accuracy > 0.8, JSON.stringify(report.stages[2]));
  assert.equal(report.stages[2].accuracy, report.fidelity.accuracy.candidate);
  // modelBytes counts weights as their bytes, the file writes protobuf tags too: a few bytes apart.
  assert.ok(Math.abs(report.stages[2].bytes - fs.statSync(out).size) < 200, `${report.stages[2].bytes} vs ${fs.statSync(out).size}`);
  assert.ok(fs.statSync(out).size < fs.statSync(MLP).size / 3, 'uint8 codes: about 4x smaller');

  // Without labels the same recipe distils from the input.
  const distilled = await runShrink(['run', recipe, MLP, '-o', file('distilled.onnx'), '--data', images, '--scale', '1/255', '--samples', '200', '--threads', '1', '--json']);
  assert.equal(distilled.code, 0, distilled.stderr);
  const d = JSON.parse(distilled.stdout);
  assert.equal(d.steps[0].report.recovery.kind, 'distill');
  assert.equal(d.steps[1].report.finetune.kind, 'distill');
  assert.equal(d.stages[1].accuracy, undefined);
  assert.ok(d.stages[2].cosine > 0.9, JSON.stringify(d.stages[2]));
});

test('runRecipe (the library): epochs without training arrays is one line before any step runs; a pack step returns the pack of the model', async () => {
  const model = loadModel(MLP);
  const ctx = { ort: nodeOrt, threads: 1 };
  await assert.rejects(runRecipe(model, deepCompressionRecipe(), {}, ctx), /^Error: recipe step 1 \(prune\): 'epochs' fine-tunes on training arrays: give --data as an \.npz or \.npy \(with labels to fine-tune, without to distil\)$/);
  const result = await runRecipe(model, recipeFromData({ steps: [{ cluster: { bits: 4 } }, { pack: {} }] }), {}, ctx);
  assert.ok(result.pack !== undefined);
  assert.deepEqual(Buffer.from(unpack(result.pack)), Buffer.from(writeModel(result.model)));
  assert.deepEqual(result.report.steps.map((s) => s.step), ['cluster', 'pack']);
  assert.equal(result.report.size.after, result.pack.length);
  const last = result.report.stages.at(-1);
  assert.equal(last?.label, 'Q+H');
  assert.equal(last?.pack_bytes, result.pack.length);
  assert.equal(last?.not_measured, 'no data given');
});
