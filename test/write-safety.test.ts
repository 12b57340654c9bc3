// Nothing written before it is verified, and nothing lost (issue 10, section 2), through the real
// CLI on real models: a failing run leaves an existing output as it was; a result onnxruntime
// cannot load is not written; an output that is an input (the model, its external data, a sample
// file) is refused with exit 2; a missing folder is reported before any work; an interrupted write
// leaves no temporary files, and temporary files of dead processes are removed by the next run;
// usage mistakes exit 2; a damaged result gets a verdict that says what to try.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { REPO_ROOT, SHRINK_BIN, spawnShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';
import { CLS } from './helpers/real-models.js';
import { floats } from './helpers/tensors.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const CLS_DIMS = 'p2o.DynamicDimension.0=1,p2o.DynamicDimension.1=48,p2o.DynamicDimension.2=192';
const work = fs.mkdtempSync(path.join(tmpdir(), 'shrink-safety-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

const shrink = (...args: string[]) => spawnShrink([...args, '--no-progress'], { timeout: 120_000 });
const hidden = (folder: string) => fs.readdirSync(folder).filter((f) => f.startsWith('.'));

function oneLine(result: ReturnType<typeof shrink>, code: number, pattern: RegExp): void {
  assert.equal(result.status, code, result.stderr);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], pattern);
}

test('a failing quantize leaves an existing output as it was (missing --data, bad samples)', () => {
  const output = path.join(work, 'kept.onnx');
  fs.writeFileSync(output, 'the previous result');
  oneLine(shrink('quantize', CLS, '-o', output, '--method', 'fp16', '--data', path.join(work, 'missing.npy')), 1, /missing\.npy: no such file/);
  const wrong = path.join(work, 'wrong.json');
  fs.writeFileSync(wrong, JSON.stringify({ x: [[1, 2, 3]] }));
  const bad = shrink('quantize', CLS, '-o', output, '--method', 'fp16', '--data', wrong);
  assert.equal(bad.status, 1, bad.stderr);
  assert.equal(fs.readFileSync(output, 'utf8'), 'the previous result');
  assert.deepEqual(hidden(work), []);
});

test('a result onnxruntime cannot load is not written (exit 1, one line)', () => {
  // A weight-only-quantizable MatMul feeding an op no runtime implements: the method runs, the
  // check that the result loads does not pass.
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 64]);
  const y = b.node('MatMul', [x, b.tensor(floats('W', [64, 64], 1))], [], { name: 'mm' });
  const [z] = b.node('Blend', [y], [], { name: 'blend', domain: 'com.example', outputs: ['z'] });
  b.output(z, DataType.FLOAT);
  const file = path.join(work, 'custom-op.onnx');
  saveModel(buildModel(b.graph, [{ domain: '', version: 17 }, { domain: 'com.example', version: 1 }]), file);
  const output = path.join(work, 'custom-op-q8.onnx');
  const run = shrink('quantize', file, '-o', output, '--method', 'int8-weight', '--samples', '0');
  oneLine(run, 1, /custom-op-q8\.onnx: onnxruntime cannot load the result \(.*Blend.*\); nothing was written$/);
  assert.equal(fs.existsSync(output), false);
  assert.deepEqual(hidden(work), []);
  // eval names the file onnxruntime cannot load, and the cause, in one line.
  oneLine(shrink('eval', file, file, '--samples', '1'), 1, /^shrink: original model .*custom-op\.onnx: onnxruntime cannot load it \(.*com\.example:Blend.*\)$/);
});

test('an output that is an input is refused with exit 2 and the input is untouched', () => {
  const model = path.join(work, 'mlp.onnx');
  fs.copyFileSync(MLP, model);
  const before = fs.readFileSync(model);
  oneLine(shrink('quantize', model, '-o', model, '--method', 'fp16'), 2, /-o .*mlp\.onnx is the input .*: writing it would destroy the input; choose another output$/);
  // Into the input's own folder: the output keeps the input's name with the method's suffix.
  const folder = path.join(work, 'in-folder');
  fs.mkdirSync(folder);
  fs.copyFileSync(MLP, path.join(folder, 'model.onnx'));
  assert.equal(shrink('quantize', path.join(folder, 'model.onnx'), '-o', `${folder}/`, '--method', 'fp16', '--samples', '0').status, 0);
  assert.deepEqual(fs.readdirSync(folder).sort(), ['model.onnx', 'model_fp16.onnx']);
  assert.deepEqual(fs.readFileSync(path.join(folder, 'model.onnx')), fs.readFileSync(MLP));
  // The external data file of the input.
  const external = path.join(work, 'external.onnx');
  saveModel(loadModel(MLP), external, { externalData: { threshold: 0 } });
  oneLine(shrink('quantize', external, '-o', `${external}.data`, '--method', 'fp16'), 2, /is the external data file of .*external\.onnx/);
  // eval --report over a model, optimize over its --data.
  oneLine(shrink('eval', MLP, model, '--report', model), 2, /--report .*mlp\.onnx is the input/);
  const data = writeFashionFiles(work, 4).images;
  oneLine(shrink('optimize', MLP, '-o', data, '--data', data), 2, /-o .*images-0-4\.npy is the input/);
  assert.deepEqual(fs.readFileSync(model), before);
  assert.equal(loadModel(external).graph.initializers.every((t) => t.isExternal), true);
});

test('a missing output folder is reported before any work', () => {
  const started = Date.now();
  for (const args of [
    ['quantize', CLS, '-o', path.join(work, 'nope', 'q.onnx'), '--method', 'fp16'],
    ['optimize', CLS, '-o', path.join(work, 'nope', 'o.onnx')],
    ['eval', CLS, CLS, '--report', path.join(work, 'nope', 'r.html')],
  ]) {
    oneLine(shrink(...args), 1, /folder '.*nope' does not exist$/);
  }
  console.log(`# three refusals in ${Date.now() - started} ms`);
});

test('an interrupted write (SIGINT) removes its temporary files and keeps the old model', async () => {
  const target = path.join(work, 'interrupted.onnx');
  saveModel(loadModel(MLP), target, { externalData: { threshold: 0 } });
  const before = fs.readFileSync(target);
  // A child saving over `target` whose check waits: it is interrupted with its files written.
  const script = `
    import { loadModel, saveModelVerified } from './src/node/model-files.ts';
    await saveModelVerified(loadModel(${JSON.stringify(MLP)}), ${JSON.stringify(target)}, {
      externalData: { threshold: 0 },
      verify: async () => { process.stdout.write('verifying\\n'); await new Promise((r) => setTimeout(r, 60000)); },
    });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  await new Promise<void>((resolve) => child.stdout.on('data', (d) => String(d).includes('verifying') && resolve()));
  assert.ok(hidden(work).length > 0 || fs.readdirSync(work).some((f) => f.startsWith('interrupted.onnx.1')), 'temporary files exist while writing');
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted \(SIGINT\)/);
  assert.deepEqual(hidden(work), []);
  assert.deepEqual(fs.readdirSync(work).filter((f) => f.startsWith('interrupted')).sort(), ['interrupted.onnx', 'interrupted.onnx.data']);
  assert.deepEqual(fs.readFileSync(target), before);
});

test('temporary files of dead processes are removed by the next run; those of live ones are not', () => {
  const folder = path.join(work, 'stale');
  fs.mkdirSync(folder);
  const stale = path.join(folder, '.out.onnx.shrink-999999999-1.tmp');
  const live = path.join(folder, `.out.onnx.shrink-${process.pid}-1.tmp`);
  fs.writeFileSync(stale, Buffer.alloc(1024));
  fs.writeFileSync(live, Buffer.alloc(1024));
  const run = shrink('quantize', CLS, '-o', path.join(folder, 'out.onnx'), '--method', 'fp16', '--samples', '0');
  assert.equal(run.status, 0, run.stderr);
  assert.equal(fs.existsSync(stale), false);
  assert.equal(fs.existsSync(live), true);
});

test('usage mistakes exit 2: bad block size, options the method ignores, contradictions', () => {
  oneLine(shrink('quantize', CLS, '-o', work, '--method', 'int4', '--block-size', '7'), 2, /--block-size must be 16, 32, 64, 128 or 256, got 7$/);
  oneLine(shrink('quantize', CLS, '-o', work, '--method', 'fp16', '--block-size', '32'), 2, /--block-size has no effect with --method fp16/);
  oneLine(shrink('quantize', CLS, '-o', work, '--method', 'dynamic-int8', '--per-tensor', '--per-channel'), 2, /--per-tensor and --per-channel contradict each other$/);
  oneLine(shrink('quantize', CLS, '-o', work, '--method', 'int4', '--calib', MLP), 2, /--calib has no effect with --method int4 .*give fidelity samples with --data$/);
  oneLine(shrink('quantize', CLS, '-o', work, '--method', 'fp16', '--min-cosine', '2'), 2, /--min-cosine must be a number from -1 to 1/);
  oneLine(shrink('quantize', CLS, '-o', work, '--method', 'fp16', '--max-drop', '1'), 2, /--max-drop measures accuracy: give --labels/);
  // A config rule that matches no node is not an error, but it is said.
  const config = path.join(work, 'typo.json');
  fs.writeFileSync(config, JSON.stringify({ nodes: [{ match: 'Cnov', precision: 'fp32' }] }));
  const run = shrink('quantize', CLS, '-o', path.join(work, 'typo.onnx'), '--method', 'fp16', '--config', config, '--samples', '0', '--json');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /warning: 'Cnov' matches no node of /);
});

test('a damaged result says so, with what to try; a gate on it exits 3 and writes nothing', () => {
  const data = writeFashionFiles(work, 500, 5000);
  const output = path.join(work, 'mlp-int2.onnx');
  const run = shrink('quantize', MLP, '-o', output, '--method', 'int2', '--data', data.images, '--json');
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.verdict.status, 'damaged');
  assert.ok(report.verdict.hints.includes('--block-size 16') && report.verdict.hints.includes('--asymmetric'), report.verdict.hints.join(', '));
  assert.match(run.stderr, /warning: the result differs from the original on 500 samples: output 'logits' (cosine 0\.\d+ < 0\.99|top-1 agreement)/);
  const gated = path.join(work, 'mlp-int2-gated.onnx');
  const gate = shrink('quantize', MLP, '-o', gated, '--method', 'int2', '--data', data.images, '--labels', data.labels, '--max-drop', '0.5');
  oneLine(gate, 3, /^shrink: quantize gate failed: max_accuracy_drop 0\.5 points: is [\d.]+ points \([\d.]+ points over\); nothing was written$/);
  assert.equal(fs.existsSync(gated), false);
  // eval as a CI gate: the numbers on stdout, one line and exit 3 on stderr.
  const evaluated = shrink('eval', MLP, output, '--data', data.images, '--min-cosine', '0.999');
  assert.equal(evaluated.status, 3, evaluated.stderr);
  assert.match(evaluated.stdout, /gate: failed \(min_cosine 0\.999: output 'logits' is/);
  assert.match(evaluated.stderr.trimEnd(), /^shrink: eval gate failed: min_cosine 0\.999: output 'logits' is 0\.\d+ \([\d.e-]+ short\)$/);
  assert.equal(shrink('eval', MLP, MLP, '--data', data.images, '--min-cosine', '0.999999').status, 0);
});

test('a model too large for this machine: the comparison and the load check are skipped, and the report says why', () => {
  // SHRINK_MEMORY_BUDGET shrinks "this machine" to 400 KB, less than the classifier and its result.
  const output = path.join(work, 'budget.onnx');
  const run = spawnSync(process.execPath, [SHRINK_BIN, 'quantize', CLS, '-o', output, '--method', 'fp16', '--dims', CLS_DIMS, '--json', '--no-progress'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, SHRINK_MEMORY_BUDGET: '400000' },
  });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.fidelity, undefined);
  assert.match(report.fidelity_skipped, /^the original \(565 KiB\) and the result \(\d+ KiB\) would need about [\d.]+ KiB in onnxruntime together, more than the 391 KiB this machine can give them/);
  assert.equal(report.verdict.status, 'unchecked');
  assert.match(report.verdict.message, /^not verified: fidelity was not measured \(the original/);
  assert.ok(report.warnings.some((w: { code: string; message: string }) => w.code === 'not-load-checked' && /was not loaded in onnxruntime before it was written/.test(w.message)));
  assert.ok(fs.statSync(output).size > 0);
});
