// --round-to N --round-mode nearest: kept channel counts go to the nearest multiple of N, some
// groups down and some up, while the total removed stays at or above the unrounded plan's (rounding
// every count up gives channels back: 30% of 24 channels rounds to none removed at N = 16).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { analyzeChannels } from '../src/graph-edit/channel-groups.js';
import { planChannels } from '../src/methods/prune/channels.js';
import { nearestRoundedRemovals } from '../src/methods/prune/round-counts.js';
import { saveModel } from '../src/node/model-files.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { cnnModel } from '../src/train/init-models.js';
import { runShrink } from './helpers/cli.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-round-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

test('nearest multiples, then the total held: down where short, back up where over', () => {
  // PP-OCR det's widths at 30% (7, 10, 14, 29 removed: 60). Nearest to 16 keeps 16, 16, 32, 64
  // (72 removed); giving back what overshoots: the 24-channel group stays whole (64 >= 60).
  const groups = [24, 32, 48, 96].map((count, i) => ({ count, removed: [7, 10, 14, 29][i], cap: count - 1 }));
  assert.deepEqual(nearestRoundedRemovals(groups, 16), [0, 16, 16, 32]);
  // 45 of 64 kept is nearer 48 (16 removed), short of 19: rounded down instead, unless the cap forbids it.
  assert.deepEqual(nearestRoundedRemovals([{ count: 64, removed: 19, cap: 63 }], 16), [32]);
  assert.deepEqual(nearestRoundedRemovals([{ count: 64, removed: 19, cap: 20 }], 16), [16]);
  // Groups smaller than N, or losing nothing, are left as planned.
  assert.deepEqual(nearestRoundedRemovals([{ count: 6, removed: 2, cap: 5 }, { count: 64, removed: 0, cap: 63 }], 16), [2, 0]);
});

test('planChannels with roundMode nearest: multiples of 8, at least the unrounded total removed', () => {
  const cnn = () => analyzeChannels(cnnModel({ classes: 10, seed: 2 }), { inputShapes: { input: [1, 1, 28, 28] } });
  const unrounded = planChannels(cnn(), { sparsity: 0.3 });
  const nearest = planChannels(cnn(), { sparsity: 0.3, roundTo: 8, roundMode: 'nearest' });
  const removed = (plan: ReturnType<typeof planChannels>) => plan.groups.reduce((n, g) => n + g.channelsBefore - g.channelsAfter, 0);
  assert.deepEqual(nearest.groups.map((g) => g.channelsAfter), [16, 48, 88, 10]);
  assert.ok(removed(nearest) >= removed(unrounded), `${removed(nearest)} >= ${removed(unrounded)}`);
  // Rounding up alone gives channels back (24, 48, 96).
  assert.ok(removed(planChannels(cnn(), { sparsity: 0.3, roundTo: 8 })) < removed(unrounded));
});

test('shrink prune --round-mode nearest: reported and applied; without --round-to it is refused', async () => {
  const cnn = path.join(work, 'cnn.onnx');
  saveModel(cnnModel({ classes: 10, seed: 2 }), cnn);
  const run = await runShrink(['prune', cnn, '-o', path.join(work, 'out.onnx'), '--method', 'channels', '--sparsity', '0.3', '--round-to', '8', '--round-mode', 'nearest', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.settings.round_mode, 'nearest');
  assert.deepEqual(report.groups.map((g: { channels_after: number }) => g.channels_after), [16, 48, 88, 10]);
  const bad = await runShrink(['prune', cnn, '-o', path.join(work, 'bad.onnx'), '--method', 'channels', '--sparsity', '0.3', '--round-mode', 'nearest']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--round-mode says how --round-to rounds: give --round-to N/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.equal(fs.existsSync(path.join(work, 'bad.onnx')), false);
});

test('recipe key round_mode: parsed for channels, refused elsewhere', () => {
  const step = parseRecipe('steps:\n  - prune: {method: channels, sparsity: 0.3, round_to: 16, round_mode: nearest}\n', 'r.yaml').steps[0];
  assert.equal((step as { options: { roundMode?: string } }).options.roundMode, 'nearest');
  assert.throws(() => parseRecipe('steps:\n  - prune: {method: magnitude, sparsity: 0.3, round_mode: nearest}\n', 'r.yaml'), /'round_mode' has no effect with method magnitude/);
});
