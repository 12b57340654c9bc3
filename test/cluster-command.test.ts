// `shrink cluster` end to end on the Fashion-MNIST MLP with real test images: the JSON report
// (bits, codebooks, centroids, SQNR, bytes dense vs codes + codebook, gzip -9, fidelity, verdict);
// a magnitude-pruned model (shrink prune) keeps exactly its zeros, also through centroid
// fine-tuning; --importance; bad input: one line, exit 1 or 2, nothing written.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { constantValue } from '../src/ir/constants.js';
import type { Model } from '../src/ir/model.js';
import type { Tensor } from '../src/ir/tensor.js';
import { findClusters } from '../src/methods/cluster/decode-graph.js';
import { loadModel } from '../src/node/model-files.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-cluster-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));
const file = (name: string) => path.join(work, name);
const fashion = writeFashionFiles(work, 512);

async function clusterJson(args: string[]) {
  const run = await runShrink(['cluster', ...args, '--json']);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

/** Each clustered weight decoded from its codes and codebook, by weight name. */
function decodedWeights(model: Model): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const f of findClusters(model)) {
    const codes = constantValue(f.graph, f.codes) as Tensor;
    const book = constantValue(f.graph, f.codebook)?.data() as Float32Array;
    const offsets = f.offsets === undefined ? undefined : (constantValue(f.graph, f.offsets) as Tensor);
    const axis = offsets?.dims.findIndex((d) => d > 1) ?? -1;
    const inner = codes.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const offset = (i: number) => (offsets === undefined ? 0 : (offsets.data() as Int32Array)[Math.floor(i / inner) % codes.dims[axis]]);
    out.set(f.codes.replace(/_codes$/, ''), Float32Array.from(codes.data() as Uint8Array, (c, i) => book[offset(i) + c]));
  }
  return out;
}

test('shrink cluster --bits 4: report per tensor, gzip of the file, fidelity and verdict on --data; the file holds uint8 codes and codebooks', async () => {
  const out = file('c4.onnx');
  const report = await clusterJson([MLP, '-o', out, '--bits', '4', '--data', fashion.images, '--labels', fashion.labels]);
  assert.equal(report.command, 'cluster');
  assert.deepEqual(report.settings, { bits: 4, grouping: 'tensor', init: 'linear', importance: false });
  assert.deepEqual(
    report.tensors.map((t: { name: string; codebooks: number; centroids: number; bytes_dense: number; bytes_stored: number; codes: string; codebook: string }) => [t.name, t.codebooks, t.centroids, t.bytes_dense, t.bytes_stored, t.codes, t.codebook]),
    [
      ['fc1.weight', 1, 16, 784 * 256 * 4, 784 * 256 + 64, 'fc1.weight_codes', 'fc1.weight_codebook'],
      ['fc2.weight', 1, 16, 256 * 128 * 4, 256 * 128 + 64, 'fc2.weight_codes', 'fc2.weight_codebook'],
      ['fc3.weight', 1, 16, 128 * 10 * 4, 128 * 10 + 64, 'fc3.weight_codes', 'fc3.weight_codebook'],
    ],
  );
  assert.equal(report.tensors[0].bytes_packed, (784 * 256) / 2 + 64);
  // gzip -9 of the written file (fflate's deflate in the report, isomorphic; zlib's here: a few % apart).
  const zlib9 = gzipSync(fs.readFileSync(out), { level: 9 }).byteLength;
  assert.ok(Math.abs(report.gzip.after / zlib9 - 1) < 0.04, `report ${report.gzip.after}, zlib ${zlib9}`);
  assert.ok(report.gzip.ratio < 0.15 && report.size.ratio < 0.26);
  assert.equal(report.fidelity.samples, 256);
  assert.ok(report.fidelity.outputs.logits.cosine > 0.99);
  assert.ok(Math.abs(report.fidelity.accuracy.candidate - report.fidelity.accuracy.original) < 0.03);
  assert.ok(['close', 'damaged'].includes(report.verdict.status));
  const model = loadModel(out);
  assert.equal(model.graph.initializer('fc1.weight'), undefined);
  assert.equal(model.graph.initializer('fc1.weight_codes')?.dataType, 2 /* UINT8 */);

  // The text report names what it did.
  const text = await runShrink(['cluster', MLP, '-o', file('c3.onnx'), '--bits', '3', '--per-channel']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /method {5}cluster \(bits 3, grouping channel/);
  assert.match(text.stdout, /gzip -9/);
  assert.match(text.stdout, /fc1\.weight {2}Gemm {2}\[256,784\] +256 +2048/);
});

test('a magnitude-pruned model keeps exactly its zeros: clustered, with centroid fine-tuning, and with OBS codes', async () => {
  const pruned = file('pruned.onnx');
  const prune = await runShrink(['prune', MLP, '-o', pruned, '--method', 'magnitude', '--sparsity', '0.7', '--samples', '0']);
  assert.equal(prune.code, 0, prune.stderr);
  const original = loadModel(pruned);
  // Also with OBS codes: the sweep spreads each rounding error over the later weights but keeps the pruned zeros.
  for (const extra of [[], ['--epochs', '1', '--batch-size', '32'], ['--codes', 'obs']]) {
    const out = file(`pruned-c3-${extra.join('')}.onnx`);
    const report = await clusterJson([pruned, '-o', out, '--bits', '3', '--data', fashion.images, '--labels', fashion.labels, ...extra]);
    const decoded = decodedWeights(loadModel(out));
    for (const t of report.tensors) {
      assert.equal(t.zeros_kept, true);
      assert.equal(t.sparsity_after, t.sparsity_before, t.name);
      const before = original.graph.initializer(t.name)?.data() as Float32Array;
      const after = decoded.get(t.name) as Float32Array;
      for (let i = 0; i < before.length; i++) assert.equal(after[i] === 0, before[i] === 0, `${t.name}[${i}]: ${before[i]} -> ${after[i]}`);
      // 3 bits: 7 centroids for the nonzero weights plus the exact zero.
      assert.equal(t.centroids, 8);
    }
    if (extra.includes('--epochs')) assert.equal(report.finetune.kind, 'fine-tune');
    if (extra.includes('--codes')) assert.equal(report.stats.obs_layers, 3);
    assert.ok(report.fidelity.accuracy.candidate > 0.75, JSON.stringify(report.fidelity.accuracy));
  }
});

test('--importance weighs by the activations of --data; --group N shares a codebook among N channels; --init kmeans++', async () => {
  const report = await clusterJson([MLP, '-o', file('imp.onnx'), '--bits', '3', '--importance', '--group', '16', '--init', 'kmeans++', '--data', fashion.images]);
  assert.deepEqual(report.settings, { bits: 3, grouping: 'group', init: 'kmeans++', importance: true, channels_per_group: 16 });
  assert.equal(report.importance.samples, 64);
  assert.deepEqual(report.tensors.map((t: { importance: boolean; codebooks: number }) => [t.importance, t.codebooks]), [
    [true, 16],
    [true, 8],
    [true, 1],
  ]);
});

test('recipes: a cluster step parses with its keys (wrong ones are one line), and shrink run prunes then clusters keeping the zeros', async () => {
  const recipe = parseRecipe('steps:\n  - cluster: {bits: 3, group: 16, init: kmeans++, keep_zeros: true}\n', 'r.yaml');
  assert.deepEqual(recipe.steps[0], { kind: 'cluster', options: { bits: 3, grouping: 'tensor', channelsPerGroup: 16, init: 'kmeans++', seed: undefined, keepZeros: true, importance: undefined, exclude: undefined, only: undefined, layers: undefined, halfCodebooks: undefined } });
  for (const [text, message] of [
    ['{"steps": [{"cluster": {"bits": 9}}]}', /'steps\.0\.cluster\.bits': Too big/],
    ['{"steps": [{"cluster": {}}]}', /steps\.0\.cluster': give 'bits'/],
    ['{"steps": [{"cluster": {"bits": 4, "per_channel": true, "group": 4}}]}', /'per_channel' and 'group' are two groupings/],
    ['{"steps": [{"cluster": {"bits": 4, "lr": 0.1}}]}', /steps\.0\.cluster: 'lr' goes with 'epochs'/],
  ] as const) assert.throws(() => parseRecipe(text, 'r.json'), message, text);

  const file_ = file('deep.json');
  fs.writeFileSync(file_, JSON.stringify({ steps: [{ prune: { method: 'magnitude', sparsity: 0.6 } }, { cluster: { bits: 4 } }] }));
  const out = file('deep.onnx');
  const run = await runShrink(['run', file_, MLP, '-o', out, '--data', fashion.images, '--labels', fashion.labels, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.deepEqual(report.steps.map((s: { step: string }) => s.step), ['prune', 'cluster']);
  const clustered = report.steps[1].report;
  assert.ok(clustered.tensors.every((t: { zeros_kept: boolean; sparsity_after: number }) => t.zeros_kept && Math.abs(t.sparsity_after - 0.6) < 1e-3));
  assert.ok(clustered.gzip.after < 0.6 * report.steps[0].report.gzip.after, 'clustering the pruned model shrinks its gzip further');
  const text = await runShrink(['run', file_, MLP, '-o', file('deep2.onnx'), '--data', fashion.images]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /4-bit codebooks per tensor on 3 weights/);
});

test('bad input: one line, exit 2 for usage and 1 for failures, nothing written', async () => {
  const out = file('never.onnx');
  const cases: [string[], number, RegExp][] = [
    [[MLP, '-o', out, '--bits', '1'], 2, /--bits must be a whole number from 2 to 8, got '1'/],
    [[MLP, '-o', out, '--bits', '9'], 2, /--bits must be a whole number from 2 to 8, got '9'/],
    [[MLP, '-o', out, '--bits', '4.5'], 2, /--bits must be/],
    [[MLP, '-o', out, '--bits', 'x'], 2, /--bits must be/],
    [[MLP, '-o', out], 2, /give --bits \(k-means codebooks\) or --step/],
    [[MLP, '-o', out, '--bits', '4', '--per-channel', '--group', '8'], 2, /--per-channel and --group/],
    [[MLP, '-o', out, '--bits', '4', '--group', '0'], 2, /--group/],
    [[MLP, '-o', out, '--bits', '4', '--epochs', '1'], 2, /--epochs trains the centroids on --data/],
    [[MLP, '-o', out, '--bits', '4', '--labels', fashion.labels], 2, /--labels go with --data/],
    [[MLP, '-o', out, '--bits', '4', '--init', 'random'], 2, /--init/],
    [[MLP, '-o', out, '--bits', '4', '--exclude', '('], 2, /not a valid regular expression/],
    [[MLP, '-o', MLP, '--bits', '4'], 2, /.+/],
    [[file('missing.onnx'), '-o', out, '--bits', '4'], 1, /missing\.onnx/],
    [[MLP, '-o', out, '--bits', '4', '--data', fashion.labels], 1, /.+/],
  ];
  for (const [args, code, message] of cases) {
    const run = await runShrink(['cluster', ...args]);
    assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split('\n').filter((l) => !l.includes('dist/ is older')).length, 1, run.stderr);
    assert.equal(fs.existsSync(out), false, args.join(' '));
  }
});
