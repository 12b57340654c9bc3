// `shrink eval` and `shrink bench` on a model over 2 GiB whose weights live in an external data
// file, through the real CLI in a child process. eval reaches onnxruntime through staging (hard
// links to the data file in a session folder); bench loads the file from its path, in its own
// process and in the memory child. The model and a candidate with one weight changed are written
// by test/helpers/big-model-files.ts (2.15 GB of data, shared by both), and the expected error is
// computed here in float64 from the closed form of the weights. After every command nothing
// temporary may remain: no staging folder of that process in the temporary folder, nothing beside
// the model.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import type { BenchCommandReport } from '../src/cli/bench-command.js';
import type { EvalCommandReport } from '../src/cli/eval-command.js';
import type { OutputReport } from '../src/eval/eval-report.js';
import { type BigModelFiles, DATA_BYTES, J, K, referenceOutputs, WEIGHT_BYTES, writeBigModel } from './helpers/big-model-files.js';
import { spawnShrink } from './helpers/cli.js';

const SAMPLES = 2;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-large-'));
let files: BigModelFiles;

before(() => {
  const { bavail, bsize } = fs.statfsSync(os.tmpdir());
  const free = bavail * bsize;
  assert.ok(free >= 4 * 2 ** 30, `this test writes a 2.2 GB model to ${os.tmpdir()}: needs 4 GiB free there, has ${(free / 2 ** 30).toFixed(1)} GiB`);
  files = writeBigModel(work, SAMPLES);
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

const shrink = (...args: string[]) => spawnShrink(args, { timeout: 180_000 });
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** Runs shrink and checks that it left nothing temporary behind: no staging folder of its process, nothing beside the model. */
function shrinkClean(...args: string[]): ReturnType<typeof spawnShrink> {
  const started = performance.now();
  const run = shrink(...args);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(run.status, 0, `shrink ${args.join(' ')} (${seconds.toFixed(1)} s): ${run.stderr}`);
  const leftovers = fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith(`.shrink-session-${run.pid}-`));
  assert.deepEqual(leftovers, [], `staging folders left in ${os.tmpdir()}`);
  assert.deepEqual(fs.readdirSync(work).sort(), ['big.onnx', 'big.onnx.data', 'candidate.onnx', 'x.npy'], 'nothing temporary beside the model');
  return run;
}

/** Relative difference. */
const near = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.abs(expected), `${what}: ${actual}, expected ${expected} (relative tolerance ${tolerance})`);

test('the generated model is over 2 GiB, its weights in one external data file', () => {
  assert.ok(WEIGHT_BYTES > 2 ** 31, `${WEIGHT_BYTES} bytes of weights`);
  assert.equal(fs.statSync(files.data).size, DATA_BYTES);
  // The .onnx files hold only V (K x J floats) and the references to the data file.
  for (const file of [files.model, files.candidate]) assert.ok(fs.statSync(file).size < K * J * 4 + 4096);
});

test('shrink eval BIG BIG: identical outputs, exactly', { timeout: 200_000 }, (t) => {
  const started = performance.now();
  const run = shrinkClean('eval', files.model, files.model, '--data', files.samples, '--json');
  const report = JSON.parse(run.stdout) as EvalCommandReport;
  t.diagnostic(`eval BIG BIG: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(report.samples, SAMPLES);
  assert.deepEqual(Object.keys(report.outputs), ['h', 'z']);
  for (const [name, output] of Object.entries(report.outputs)) {
    assert.equal(output.elements, SAMPLES * (name === 'h' ? K : J));
    assert.equal(output.cosine, 1, name);
    assert.equal(output.sqnr_db, 'inf', name);
    assert.equal(output.max_abs, 0, name);
    assert.equal(output.mean_abs, 0, name);
  }
});

test('shrink eval BIG CANDIDATE: the error of one changed weight, as computed here in float64', { timeout: 200_000 }, (t) => {
  const started = performance.now();
  const run = shrinkClean('eval', files.model, files.candidate, '--data', files.samples, '--json');
  const report = JSON.parse(run.stdout) as EvalCommandReport;
  t.diagnostic(`eval BIG CANDIDATE: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  // h comes before V: unchanged, bit for bit.
  assert.equal(report.outputs.h!.max_abs, 0);
  assert.equal(report.outputs.h!.cosine, 1);

  // z differs in one column per sample by h[row] * delta.
  const reference = referenceOutputs(SAMPLES);
  let dot = 0;
  let signal = 0;
  let power = 0;
  let noise = 0;
  let maxAbs = 0;
  let absSum = 0;
  let top1 = 0;
  const argmax = (values: Float64Array) => values.indexOf(Math.max(...values));
  for (let s = 0; s < SAMPLES; s++) {
    const original = reference.z[s]!;
    const candidate = reference.zCandidate[s]!;
    for (let j = 0; j < J; j++) {
      const d = original[j]! - candidate[j]!;
      dot += original[j]! * candidate[j]!;
      signal += original[j]! ** 2;
      power += candidate[j]! ** 2;
      noise += d * d;
      maxAbs = Math.max(maxAbs, Math.abs(d));
      absSum += Math.abs(d);
    }
    if (argmax(original) === argmax(candidate)) top1++;
  }
  const z = report.outputs.z as OutputReport;
  t.diagnostic(`z: cosine ${z.cosine}, SQNR ${z.sqnr_db} dB, max abs ${z.max_abs}; expected ${dot / Math.sqrt(signal * power)}, ${10 * Math.log10(signal / noise)} dB, ${maxAbs}`);
  assert.equal(z.elements, SAMPLES * J);
  // onnxruntime sums 16400 float32 products per value; against float64 that is ~1e-7 relative.
  near(1 - (z.cosine as number), 1 - dot / Math.sqrt(signal * power), 1e-4, 'z 1 - cosine');
  assert.ok(Math.abs((z.sqnr_db as number) - 10 * Math.log10(signal / noise)) < 1e-4, `z SQNR ${z.sqnr_db} dB`);
  near(z.max_abs as number, maxAbs, 1e-5, 'z max abs');
  near(z.mean_abs as number, absSum / (SAMPLES * J), 1e-5, 'z mean abs');
  near(z.relative as number, Math.sqrt(noise / signal), 1e-5, 'z relative');
  assert.equal(z.top1_agreement, top1 / SAMPLES);
  assert.ok((z.cosine as number) < 0.9999 && (z.max_abs as number) > 1e9, 'the change is far above rounding');
});

test('shrink bench BIG: loaded from its path, latency, memory and the size with its data file', { timeout: 200_000 }, (t) => {
  const started = performance.now();
  const run = shrinkClean('bench', files.model, '--runs', '3', '--warmup', '1', '--json');
  const report = JSON.parse(run.stdout) as BenchCommandReport;
  const [m] = report.models;
  assert.ok(m !== undefined && report.models.length === 1);
  const memory = m.memory!;
  t.diagnostic(
    `bench BIG: ${((performance.now() - started) / 1000).toFixed(1)} s; size ${gib(m.size_bytes)}, load ${m.load_ms.toFixed(0)} ms, ` +
      `median ${m.latency_ms.median.toFixed(1)} ms, peak RSS ${gib(memory.peak_rss_bytes)}, model RSS ${gib(memory.model_rss_bytes)}`,
  );
  assert.deepEqual(report.input, { model_1: files.model });
  assert.deepEqual(report.warnings, []);
  assert.equal(m.size_bytes, fs.statSync(files.model).size + DATA_BYTES);
  assert.deepEqual(m.inputs, [`x float32[1,${K}]`]);
  assert.equal(m.runs_ms.length, 3);
  for (const value of [m.load_ms, ...m.runs_ms, ...Object.values(m.latency_ms)]) assert.ok(Number.isFinite(value) && value > 0, `${value} ms`);
  // Two K x K float products per run: at most ~100 GFLOP/s on one thread, so well over 5 ms.
  assert.ok(m.latency_ms.min > (2 * 2 * K * K) / 100e9 * 1000, `${m.latency_ms.min} ms per run`);
  // The memory child ran the whole model: its weights were resident.
  assert.ok(memory.model_rss_bytes > 0.9 * WEIGHT_BYTES, `model RSS ${gib(memory.model_rss_bytes)} for ${gib(WEIGHT_BYTES)} of weights`);
  assert.equal(memory.model_rss_bytes, memory.peak_rss_bytes - memory.baseline_rss_bytes);
});
