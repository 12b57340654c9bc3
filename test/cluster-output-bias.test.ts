// The cluster step's `fit_output_bias` recipe key: after the centroids, offsets on the logits'
// classes fitted against the recipe's input on --calib (never the training or judging samples),
// written into the graph before a pack step so the pack still decodes to the model byte for byte.
// The model is built so that 2-bit k-means pulls one class by a known amount: every weight sits on
// the 4-level grid -3, -1, 1, 3, except the weight that gives class 2 a constant 1 + 0.9 (its input
// feature is always 1, the other classes' weights there are 1); it snaps to the centroid at 1, so
// class 2's logit falls by ~0.9 and a fitted offset near +0.9 should give the answers back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeNpy } from '../src/eval/npy.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { mulberry32 } from '../src/kernels/random.js';
import { rowArgmax } from '../src/methods/quantize/output-offsets.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { unpack } from '../src/onnx/pack-decode.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runRecipe } from '../src/pipeline/run-recipe.js';
import { spawnShrink } from './helpers/cli.js';

const [F, C, PULLED, PULL] = [9, 5, 2, 0.9];

/** x [N, 9] (feature 8 always 1) -> MatMul W -> logits -> Softmax. */
function classifier(): Model {
  const next = mulberry32(11);
  // No zeros: keep_zeros would give 0 a centroid of its own.
  const grid = [-3, -1, 1, 3];
  const w = Float32Array.from({ length: F * C }, (_, i) => (Math.floor(i / C) === F - 1 ? 1 : grid[Math.floor(next() * 4)]));
  w[(F - 1) * C + PULLED] = 1 + PULL;
  const b = new GraphBuilder(new Graph('classifier'));
  b.input('x', DataType.FLOAT, ['N', F]);
  b.node('MatMul', ['x', b.initializer('w', DataType.FLOAT, [F, C], w)], [], {
    outputs: ['logits'],
  });
  b.node('Softmax', ['logits'], [], { outputs: ['y'] });
  b.output('y');
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

function samples(count: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: count * F }, (_, i) => (i % F === F - 1 ? 1 : (next() * 2 - 1) * 0.6));
}

async function top1(model: Model | Uint8Array, x: Float32Array): Promise<Int32Array> {
  const session = await nodeOrt.InferenceSession.create(model instanceof Uint8Array ? model : writeModel(model));
  try {
    return rowArgmax(
      (
        await session.run({
          x: new nodeOrt.Tensor('float32', x, [x.length / F, F]),
        })
      ).y.data as Float32Array,
      C,
    );
  } finally {
    await session.release();
  }
}

const agreement = (a: Int32Array, b: Int32Array) => a.filter((v, i) => v === b[i]).length / a.length;
const field = (x: Float32Array) => ({
  x: { data: x, sampleDims: [F], dataType: DataType.FLOAT },
});

test('recipe cluster fit_output_bias: the known pull on one class comes back as its offset, before a byte-identical pack', async () => {
  const original = classifier();
  const calib = samples(300, 5);
  const fresh = samples(400, 9);
  const recipe = parseRecipe(`steps:\n  - cluster: {bits: 2, fit_output_bias: {value: logits, classes: [${PULLED}]}}\n  - pack: {}\n`, 'test');
  const withOffsets = await runRecipe(original, recipe, { calibration: arraySamples(field(calib), 'calib') }, { ort: nodeOrt });
  const plain = await runRecipe(original, parseRecipe('steps:\n  - cluster: {bits: 2}\n', 'test'), {}, { ort: nodeOrt });
  const step = withOffsets.report.steps[0];
  assert.ok(step.step === 'cluster' && step.output_bias !== undefined, 'the cluster step reports its offsets');
  const fitted = step.output_bias;
  assert.deepEqual(fitted.classes, [PULLED]);
  assert.ok(Math.abs((fitted.offsets[String(PULLED)] ?? 0) - PULL) < 0.3, `offset ${JSON.stringify(fitted.offsets)} near +${PULL}`);
  assert.ok(fitted.agreementBefore < 0.95 && fitted.agreementAfter > fitted.agreementBefore, JSON.stringify(fitted));
  // New samples: the clustered model alone misses answers, with the offsets it reads as the original.
  const want = await top1(original, fresh);
  const before = agreement(await top1(plain.model, fresh), want);
  const after = agreement(await top1(withOffsets.model, fresh), want);
  assert.ok(before < 0.95 && after >= 0.98, `new samples: ${before} -> ${after}`);
  // The offsets are part of the graph the pack stores: it decodes to the model's bytes, offsets and all.
  const pack = withOffsets.pack as Uint8Array;
  assert.deepEqual(unpack(pack), writeModel(withOffsets.model));
  assert.equal(agreement(await top1(readModel(unpack(pack)), fresh), want), after);
});

test('recipe cluster fit_output_bias: the value alone finds the classes; --calib is required; bad keys are one line', async () => {
  const original = classifier();
  const found = await runRecipe(original, parseRecipe('steps:\n  - cluster: {bits: 2, fit_output_bias: logits}\n', 'test'), { calibration: arraySamples(field(samples(300, 5)), 'calib') }, { ort: nodeOrt });
  const step = found.report.steps[0];
  assert.ok(step.step === 'cluster' && step.output_bias?.classes.includes(PULLED), JSON.stringify(step.step === 'cluster' ? step.output_bias : step));
  // Training samples are not calibration samples: without --calib the recipe stops before any work.
  await assert.rejects(
    runRecipe(original, parseRecipe('steps:\n  - cluster: {bits: 2, fit_output_bias: logits}\n', 'test'), { training: { inputs: field(samples(8, 1)) } }, { ort: nodeOrt }),
    /recipe step 1 \(cluster\): 'fit_output_bias' fits on the calibration samples: give --calib/,
  );
  assert.throws(
    () => parseRecipe('steps:\n  - cluster: {bits: 2, fit_output_bias: {value: logits, classes: [1], max_classes: 2}}\n', 'r.yaml'),
    /^Error: r\.yaml: .*give 'classes' \(fit these\) or 'max_classes' \(find them\), not both/,
  );
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 2, fit_output_bias: {value: logits, clases: [1]}}\n', 'r.yaml'), /^Error: r\.yaml: .*clases/);
  assert.throws(() => parseRecipe('steps:\n  - cluster: {bits: 2, fit_output_bias: {classes: [1]}}\n', 'r.yaml'), /^Error: r\.yaml: /);
  await assert.rejects(
    runRecipe(original, parseRecipe('steps:\n  - cluster: {bits: 2, fit_output_bias: nope}\n', 'test'), { calibration: arraySamples(field(samples(8, 5)), 'calib') }, { ort: nodeOrt }),
    /has no value 'nope'/,
  );
});

test('shrink run: cluster fit_output_bias fits on --calib before the pack; without --calib it refuses', () => {
  const work = mkdtempSync(join(tmpdir(), 'shrink-cluster-output-bias-'));
  try {
    const input = join(work, 'classifier.onnx');
    writeFileSync(input, writeModel(classifier()));
    const calib = join(work, 'calib.npy');
    writeFileSync(
      calib,
      writeNpy({
        dataType: DataType.FLOAT,
        dims: [300, F],
        data: new Uint8Array(samples(300, 5).buffer),
      }),
    );
    const recipe = join(work, 'offsets.yaml');
    writeFileSync(recipe, `steps:\n  - cluster: {bits: 2, fit_output_bias: {value: logits, classes: [${PULLED}]}}\n  - pack: {}\n`);
    const run = spawnShrink(['run', recipe, input, '-o', join(work, 'classifier.shrink'), '--calib', calib, '--json', '--no-progress'], { timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const bias = JSON.parse(run.stdout).steps[0].output_bias;
    assert.ok(bias?.value === 'logits' && bias.rows === 300 && Math.abs(bias.offsets[String(PULLED)] - PULL) < 0.3, JSON.stringify(bias));
    const refused = spawnShrink(['run', recipe, input, '-o', join(work, 'refused.shrink'), '--no-progress'], { timeout: 60_000 });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /'fit_output_bias' fits on the calibration samples: give --calib/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
