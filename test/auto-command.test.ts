// `shrink auto` end to end on the Fashion-MNIST MLP (child processes, as a user runs it): within
// --max-drop 0.5 it writes a model at most 0.3x the input's file whose accuracy on held-out images
// (counted here, independently) matches the report and stays within the budget; the written recipe
// reproduces the model's bytes through `shrink run`; a second run resumes from the cache; a spent
// time budget and an unreachable budget still write the closest model, and say so.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { npyToTensor, parseNpy } from '../src/eval/npy.js';
import { spawnShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-auto-'));
process.on('exit', () => fs.rmSync(temp, { recursive: true, force: true }));

/**
 * Accuracy of `model` on the images and labels, counted here, one image per run as the report
 * runs them (dynamic int8 scales activations by each run's own range, so batches differ).
 */
async function accuracy(model: string, files: { images: string; labels: string }): Promise<number> {
  const images = npyToTensor(parseNpy(fs.readFileSync(files.images), files.images), 'image');
  const labels = npyToTensor(parseNpy(fs.readFileSync(files.labels), files.labels), 'labels').data() as BigInt64Array;
  const pixels = images.data() as Float32Array;
  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  let correct = 0;
  try {
    for (let i = 0; i < labels.length; i++) {
      const image = new nodeOrt.Tensor('float32', pixels.slice(i * 784, (i + 1) * 784), [1, 1, 28, 28]);
      const scores = Object.values(await session.run({ image }))[0].data as Float32Array;
      if (scores.indexOf(Math.max(...scores)) === Number(labels[i])) correct++;
    }
  } finally {
    await session.release();
  }
  return correct / labels.length;
}

test('shrink auto --max-drop 0.5: a small model within the budget on held-out images, its recipe, and a resumed run', async () => {
  const data = writeFashionFiles(temp, 600, 0);
  const heldOut = writeFashionFiles(temp, 1000, 6000);
  const out = path.join(temp, 'out');
  const args = ['auto', MLP, '-o', out, '--data', data.images, '--labels', data.labels, '--max-drop', '0.5', '--batch', '64', '--json'];
  const first = spawnShrink([...args, '--test-data', heldOut.images, '--test-labels', heldOut.labels], { timeout: 180_000 });
  assert.equal(first.status, 0, first.stderr);
  const report = JSON.parse(first.stdout);
  assert.deepEqual(report.split, { calibration: 300, tuning: 300 });
  assert.ok(report.candidates.length >= 5, JSON.stringify(report.candidates.map((c: { name: string }) => c.name)));
  const chosen = report.candidates.find((c: { name: string }) => c.name === report.chosen);
  assert.equal(chosen.feasible, true);
  assert.ok(report.size.ratio <= 0.3, `size ratio ${report.size.ratio}`);

  const model = path.join(out, 'model.onnx');
  const [original, compressed] = [await accuracy(MLP, heldOut), await accuracy(model, heldOut)];
  assert.ok(Math.abs(report.held_out.accuracy.candidate - compressed) < 1e-12, `report ${report.held_out.accuracy.candidate} vs counted ${compressed}`);
  assert.ok(Math.abs(report.held_out.accuracy.original - original) < 1e-12);
  assert.ok((original - compressed) * 100 <= 0.5, `held-out drop ${((original - compressed) * 100).toFixed(2)} points`);
  for (const f of ['recipe.json', 'candidates.json', 'report.html']) assert.ok(fs.statSync(path.join(out, f)).size > 0, f);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(html, /Trade-off/);
  // The search's front: every candidate in the page, the chosen one and the Pareto front as candidates.json marks them.
  const front = (JSON.parse(/<script type="application\/json" id="shrink-report-data">(.*?)<\/script>/s.exec(html)?.[1] ?? '{}').charts as { kind: string; rows: { candidate: string; status: string }[] }[]).find((c) => c.kind === 'front');
  assert.ok(front !== undefined, 'a front chart');
  const marked = JSON.parse(fs.readFileSync(path.join(out, 'candidates.json'), 'utf8')) as { name: string; feasible: boolean; pareto: boolean; bytes: number }[];
  const status = (c: (typeof marked)[number]) => (c.name === report.chosen ? 'chosen' : c.pareto ? 'Pareto front' : c.feasible ? 'within budget' : 'outside budget');
  assert.deepEqual(front.rows.map((r) => `${r.candidate} ${r.status}`).sort(), marked.filter((c) => c.bytes > 0).map((c) => `${c.name} ${status(c)}`).sort());
  assert.ok(marked.some((c) => c.pareto));

  // The recipe reproduces the model: same bytes through shrink run.
  const rerun = path.join(temp, 'rerun.onnx');
  const run = spawnShrink(['run', path.join(out, 'recipe.json'), MLP, '-o', rerun, '--data', data.images, '--calib', data.images, '--samples', '4']);
  assert.equal(run.status, 0, run.stderr);
  if (chosen.recipe.steps.some((s: Record<string, { method?: string }>) => s.quantize?.method === 'static-int8')) {
    // Static int8 calibrates on --calib: the same samples give the same bytes only with the same split, so compare loosely.
    assert.ok(fs.statSync(rerun).size === fs.statSync(model).size);
  } else assert.ok(fs.readFileSync(rerun).equals(fs.readFileSync(model)), 'shrink run of recipe.json gives the same bytes');

  // A second run measures nothing again.
  const second = spawnShrink(args, { timeout: 120_000 });
  assert.equal(second.status, 0, second.stderr);
  const again = JSON.parse(second.stdout);
  assert.ok(again.candidates.every((c: { cached?: boolean }) => c.cached === true));
  assert.equal(again.chosen, report.chosen);
});

test('a spent time budget and an unreachable budget still write the closest model, and say so', () => {
  const data = writeFashionFiles(temp, 200, 0);
  const out = path.join(temp, 'tight');
  const result = spawnShrink(['auto', MLP, '-o', out, '--data', data.images, '--labels', data.labels, '--min-cosine', '0.99999999', '--time-budget', '0s', '--json'], { timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.candidates.length, 1);
  assert.ok(report.skipped.length >= 4);
  const codes = report.warnings.map((w: { code: string }) => w.code);
  assert.ok(codes.includes('budget-missed') && codes.includes('time-budget') && codes.includes('no-held-out'), codes.join(', '));
  assert.ok(fs.existsSync(path.join(out, 'model.onnx')));

  const bad = spawnShrink(['auto', MLP, '-o', path.join(temp, 'bad'), '--data', data.images, '--time-budget', 'soon']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, "shrink: --time-budget must be a duration like 90s, 10m or 1h, got 'soon'\n");
  const noLabels = spawnShrink(['auto', MLP, '-o', path.join(temp, 'bad'), '--data', data.images, '--max-drop', '0.5']);
  assert.equal(noLabels.status, 1);
  assert.match(noLabels.stderr, /^shrink: .*images-0-200\.npy: no 'labels' array of class ids; add one or give --labels FILE\.npy \(--max-drop measures accuracy\)\n$/);
  assert.ok(!fs.existsSync(path.join(temp, 'bad', 'model.onnx')));
});

test('--metric and --min-metric: a user metric decides the budget', () => {
  const data = writeFashionFiles(temp, 200, 300);
  const metric = path.join(temp, 'agree.mjs');
  // 1 when both models pick the same class for the sample, else 0: top-1 agreement.
  fs.writeFileSync(
    metric,
    'const top = (t) => { const d = t.data(); let b = 0; for (let i = 1; i < d.length; i++) if (d[i] > d[b]) b = i; return b; };\n' +
      'export const name = "agreement";\nexport default (reference, candidate) => (top(reference.logits) === top(candidate.logits) ? 1 : 0);\n',
  );
  const out = path.join(temp, 'metric');
  const result = spawnShrink(['auto', MLP, '-o', out, '--data', data.images, '--metric', metric, '--min-metric', '0.98', '--time-budget', '0s', '--json'], { timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  const [first] = JSON.parse(result.stdout).candidates;
  assert.ok(first.metric >= 0 && first.metric <= 1, JSON.stringify(first));
  assert.equal(first.feasible, first.metric >= 0.98);
  const missing = spawnShrink(['auto', MLP, '-o', out, '--data', data.images, '--min-metric', '0.98']);
  assert.equal(missing.status, 2);
  assert.equal(missing.stderr, 'shrink: --min-metric needs --metric MODULE\n');
});
