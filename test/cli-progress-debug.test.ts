// The options every command honours: --no-progress (the program's, before or after the command
// name) silences progress that a command would print, and SHRINK_DEBUG=1 prints a debug line per
// pass (optimize) or per phase (other commands). Run in-process. Progress appears only once a task
// has lasted 2 s (src/cli/recipe-context.ts), so the tests that expect it move the clock that
// delay reads (Date.now) 2.5 s per call: every task then counts as long, deterministically.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { writeNpz } from '../src/eval/npz.js';
import { DataType } from '../src/ir/dtype.js';
import { saveModel } from '../src/node/model-files.js';
import { mlpModel } from '../src/train/init-models.js';
import { CLS } from './helpers/real-models.js';
import { REPO_ROOT, runShrink } from './helpers/cli.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-progress-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

const model = path.join(work, 'mlp.onnx');
saveModel(mlpModel({ imageDims: [1, 8, 8], hidden: [8], classes: 3, seed: 1 }), model);
const data = path.join(work, 'train.npz');
fs.writeFileSync(
  data,
  writeNpz({
    input: { dataType: DataType.UINT8, dims: [64, 1, 8, 8], data: Uint8Array.from({ length: 64 * 64 }, (_, i) => (i * 37) % 256) },
    labels: { dataType: DataType.INT64, dims: [64], data: new Uint8Array(BigInt64Array.from({ length: 64 }, (_, i) => BigInt(i % 3)).buffer) },
  }),
);
const cls = path.join(REPO_ROOT, CLS);

/** Runs shrink with a clock that advances 2.5 s per Date.now() call. */
async function withSlowClock(args: string[]) {
  const realNow = Date.now;
  let now = realNow();
  Date.now = () => (now += 2500);
  try {
    return await runShrink(args);
  } finally {
    Date.now = realNow;
  }
}

/** Runs shrink with SHRINK_DEBUG set to `level` (or unset). */
async function withDebug(level: string | undefined, args: string[]) {
  const saved = process.env.SHRINK_DEBUG;
  if (level === undefined) delete process.env.SHRINK_DEBUG;
  else process.env.SHRINK_DEBUG = level;
  try {
    return await runShrink(args);
  } finally {
    if (saved === undefined) delete process.env.SHRINK_DEBUG;
    else process.env.SHRINK_DEBUG = saved;
  }
}

const progressLine = /^[\w -]+(?:\/\d+)?: (?:started|\d+\/\d+|done)/;

test('--no-progress silences the progress train and bench print, before or after the command name', async () => {
  const train = ['train', model, '-o', path.join(work, 'trained.onnx'), '--data', data, '--scale', '1/255', '--batch-size', '16', '--threads', '1', '--json'];
  const shown = await withSlowClock(train);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stderr, /^epoch 1\/1: started \(4 steps\)$/m);
  assert.match(shown.stderr, /^epoch 1\/1: done, 4 steps/m);
  for (const line of shown.stderr.trimEnd().split('\n')) assert.match(line, progressLine, 'only progress on stderr');
  assert.equal(JSON.parse(shown.stdout).steps, 4, 'stdout stays one JSON object');
  for (const args of [[...train, '--no-progress'], ['--no-progress', ...train]]) {
    const quiet = await withSlowClock(args);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '', args.join(' '));
    assert.equal(JSON.parse(quiet.stdout).steps, 4);
  }

  const bench = ['bench', cls, '--runs', '2', '--warmup', '1', '--no-memory', '--dims', 'p2o.DynamicDimension.1=48,p2o.DynamicDimension.2=96'];
  const benchShown = await withSlowClock(bench);
  assert.equal(benchShown.code, 0, benchShown.stderr);
  assert.deepEqual(
    benchShown.stderr.trimEnd().split('\n').filter((l) => /: started/.test(l)),
    ['loading: started (1 steps)', 'warm-up: started (1 steps)', 'timing: started (2 steps)'],
  );
  const benchQuiet = await withSlowClock([...bench, '--no-progress']);
  assert.equal(benchQuiet.code, 0, benchQuiet.stderr);
  assert.equal(benchQuiet.stderr, '');
  assert.match(benchQuiet.stdout, /^backend onnxruntime-node, 1 thread, graph optimization 'all', batch 1: 2 timed runs per model after 1 warm-up, interleaved$/m);
});

test('SHRINK_DEBUG=1 prints a line per optimizer pass on optimize (none without it); other commands print their phases', async () => {
  const args = ['optimize', model, '-o', path.join(work, 'optimized.onnx'), '--json', '--no-progress'];
  const quiet = await withDebug(undefined, args);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /debug/);

  const debug = await withDebug('1', args);
  assert.equal(debug.code, 0, debug.stderr);
  const report = JSON.parse(debug.stdout) as { passes: { pass: string; runs: number }[] };
  // Besides optimize's warning about generated inputs, only debug lines.
  const lines = debug.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('shrink: warning: '));
  for (const line of lines) assert.match(line, /^shrink: debug: /, 'debug lines only');
  // runPass writes `<pass>: <ms> ms {stats}` each time a pass runs.
  const perPass = new Map<string, number>();
  for (const line of lines) {
    const match = /^shrink: debug: ([a-z0-9-]+): [\d.]+ ms \{.*\}$/.exec(line);
    if (match !== null) perPass.set(match[1]!, (perPass.get(match[1]!) ?? 0) + 1);
  }
  assert.ok(report.passes.length >= 5, `${report.passes.length} passes`);
  for (const { pass, runs } of report.passes) assert.equal(perPass.get(pass), runs, `debug lines of ${pass}`);

  // The commands this session converted report their phases too.
  const inspect = await withDebug('1', ['inspect', model, '--json']);
  assert.match(inspect.stderr, /^shrink: debug: inspect: read \S+mlp\.onnx in [\d.]+ ms$/m);
  const bench = await withDebug('1', ['bench', model, '--runs', '1', '--warmup', '0', '--no-memory', '--json', '--no-progress']);
  assert.match(bench.stderr, /^shrink: debug: bench: loaded \S+mlp\.onnx in [\d.]+ ms \(from its path\), inputs input float32\[1,1,8,8\]$/m);
  const train = await withDebug('1', ['train', model, '-o', path.join(work, 'trained2.onnx'), '--data', data, '--batch-size', '16', '--json', '--no-progress']);
  assert.match(train.stderr, /^shrink: debug: train: accuracy before: [\d.]+ ms$/m);
  assert.match(train.stderr, /^shrink: debug: train: epoch 1 done at step 4$/m);
});
