// `shrink bench` end to end: the real CLI in a child process on PP-OCRv4 det and rec (small inputs,
// few runs), on the direction classifier with onnxruntime-web (wasm), and on bad command lines.
// The JSON is checked for internal consistency (ratios recomputed here from the absolute figures,
// percentiles ordered, sizes equal to the files on disk, memory = peak - baseline), for the common
// report envelope, and the report file for having been written whole. A model with external data
// is timed from its path; --report may not name a model or its data, and its folder must exist.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BenchCommandReport } from '../src/cli/bench-command.js';
import type { BenchModelResult } from '../src/eval/benchmark.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { saveModel } from '../src/node/model-files.js';
import { CLS, DET, REC } from './helpers/real-models.js';
import { REPO_ROOT, spawnShrink } from './helpers/cli.js';

// det and cls take [N,3,H,W] with H, W symbolic (p2o.DynamicDimension.1/.2); rec [N,3,48,W] with W as .1.
const SMALL_DIMS = 'p2o.DynamicDimension.1=320,p2o.DynamicDimension.2=320';
const CLS_DIMS = 'p2o.DynamicDimension.1=48,p2o.DynamicDimension.2=192';

const work = mkdtempSync(join(tmpdir(), 'shrink-bench-'));
after(() => rmSync(work, { recursive: true, force: true }));

const shrink = (...args: string[]) => spawnShrink(args, { timeout: 120_000 });

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

function checkModel(m: BenchModelResult, file: string, runs: number): void {
  assert.equal(m.name, file);
  assert.equal(m.size_bytes, statSync(join(REPO_ROOT, file)).size, `${file}: size is the file size`);
  assert.equal(m.runs_ms.length, runs);
  for (const v of [m.load_ms, m.throughput, ...Object.values(m.latency_ms), ...m.runs_ms]) {
    assert.ok(typeof v === 'number' && v > 0 && Number.isFinite(v), `${file}: ${v} is a positive number`);
  }
  const l = m.latency_ms;
  assert.ok(l.min <= l.median && l.median <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max, `${file}: percentiles in order ${JSON.stringify(l)}`);
  assert.equal(l.min, Math.min(...m.runs_ms));
  assert.equal(l.max, Math.max(...m.runs_ms));
  close(l.mean, m.runs_ms.reduce((a, b) => a + b, 0) / runs, `${file} mean`);
  close(m.throughput, 1000 / l.mean, `${file} throughput at batch 1`);
}

test('bench det and rec: latency, throughput, memory, sizes and ratios to the first model; HTML report written', { timeout: 120_000 }, () => {
  const report = join(work, 'bench.html');
  const run = shrink('bench', DET, REC, '--runs', '5', '--warmup', '1', '--dims', SMALL_DIMS, '--json', '--report', report);
  assert.equal(run.status, 0, run.stderr);
  const json = JSON.parse(run.stdout) as BenchCommandReport;
  // The envelope every command's --json shares: the models in order, the report written, no warnings (every dim was sized).
  assert.equal(json.command, 'bench');
  assert.deepEqual(json.input, { model_1: DET, model_2: REC });
  assert.equal(json.output, report);
  assert.deepEqual(json.warnings, []);
  assert.equal(json.environment.host, `node ${process.version}`);
  assert.equal(json.backend, 'onnxruntime-node');
  assert.deepEqual([json.runs, json.warmup, json.threads, json.batch], [5, 1, 1, 1]);
  const [det, rec] = json.models;
  assert.ok(det !== undefined && rec !== undefined && json.models.length === 2);
  checkModel(det, DET, 5);
  checkModel(rec, REC, 5);
  assert.deepEqual(det.inputs, ['x float32[1,3,320,320]']);
  assert.deepEqual(rec.inputs, ['x float32[1,3,48,320]']);

  // Ratios: exactly 1 for the first model, the quotient of the absolute figures for the second.
  assert.deepEqual(det.ratios, { size: 1, load: 1, median: 1, p90: 1, p99: 1, throughput: 1, memory: 1 });
  close(rec.ratios.size, rec.size_bytes / det.size_bytes, 'size ratio');
  close(rec.ratios.load, rec.load_ms / det.load_ms, 'load ratio');
  close(rec.ratios.median, rec.latency_ms.median / det.latency_ms.median, 'median ratio');
  close(rec.ratios.p99, rec.latency_ms.p99 / det.latency_ms.p99, 'p99 ratio');
  close(rec.ratios.throughput, rec.throughput / det.throughput, 'throughput ratio');

  // Memory: one shared baseline child, a child per model; the model's share is the difference.
  for (const m of [det, rec]) {
    const memory = m.memory!;
    assert.ok(memory.baseline_rss_bytes > 10 * 2 ** 20, `baseline ${memory.baseline_rss_bytes} B is a whole Node process`);
    assert.ok(memory.peak_rss_bytes > memory.baseline_rss_bytes, `${m.name}: running the model raised the peak`);
    assert.equal(memory.model_rss_bytes, memory.peak_rss_bytes - memory.baseline_rss_bytes);
    // A session holds at least its weights (all in Constant nodes here) once.
    assert.ok(memory.model_rss_bytes > m.size_bytes, `${m.name}: model RSS ${memory.model_rss_bytes} B >= file ${m.size_bytes} B`);
  }
  assert.equal(det.memory!.baseline_rss_bytes, rec.memory!.baseline_rss_bytes);
  close(rec.ratios.memory!, rec.memory!.model_rss_bytes / det.memory!.model_rss_bytes, 'memory ratio');

  // Progress (shown only for phases that last) went to stderr as plain lines, never into the JSON.
  for (const line of run.stderr.trimEnd().split('\n').filter((l) => l !== '')) {
    assert.match(line, /^(loading|warm-up|timing|memory): (started|\d+\/\d+|done)/, `stderr holds only progress: ${run.stderr}`);
  }

  const html = readFileSync(report, 'utf8');
  assert.ok(html.startsWith('<!doctype html>') && html.trimEnd().endsWith('</html>'));
  const data = JSON.parse(/<script type="application\/json" id="shrink-report-data">(.*?)<\/script>/s.exec(html)![1]!);
  const latency = data.charts.find((c: { kind: string }) => c.kind === 'latency');
  assert.deepEqual(latency.rows.map((r: { ms: number }) => r.ms), [...det.runs_ms, ...rec.runs_ms], 'the report carries every timed run');
  assert.ok(html.includes('data-chart="latency"') && html.includes('data-chart="memory"') && html.includes('data-chart="layer-bytes"'));
  assert.deepEqual(readdirSync(work).filter((f) => f.includes('bench.html')), ['bench.html'], 'no temporary file left beside the report');
});

test('bench table output names both models and their ratios', { timeout: 60_000 }, () => {
  // The names mean different dims in the two models: cls gets H=160 and W=320 (the default), rec W=160.
  const run = shrink('bench', CLS, REC, '--runs', '3', '--warmup', '1', '--no-memory', '--dims', 'p2o.DynamicDimension.1=160');
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.split('\n');
  assert.match(lines[0]!, /^backend onnxruntime-node, 1 thread, graph optimization 'all', batch 1: 3 timed runs per model after 1 warm-up, interleaved$/);
  assert.ok(lines.some((l) => /^\s+model\s+size\s+load ms\s+median ms\s+p90 ms\s+p99 ms\s+samples\/s$/.test(l)));
  assert.ok(lines.some((l) => /^\s+ch_ppocr_mobile_v2\.0_cls_infer\.onnx\s+1\.00x\s+1\.00x\s+1\.00x\s+1\.00x\s+1\.00x\s+1\.00x$/.test(l)));
  assert.ok(lines.includes('  ch_PP-OCRv4_rec_infer.onnx: x float32[1,3,48,160]'));
  assert.ok(lines.includes('  ch_ppocr_mobile_v2.0_cls_infer.onnx: x float32[1,3,160,320]'));
  // cls's W took the default size: said, since latency depends on it.
  assert.ok(lines.includes(`warning: ${CLS}: symbolic dim 'p2o.DynamicDimension.2' (x[3]) has no size given; timed at 320`), run.stdout);
});

test('bench times a model with external data from its path; --report may not overwrite a model or its data', { timeout: 60_000 }, () => {
  // y = x·W with W [256,256] in model.onnx.data beside model.onnx.
  const builder = new GraphBuilder();
  const x = builder.input('x', DataType.FLOAT, ['N', 256]);
  const weights = Float32Array.from({ length: 256 * 256 }, (_, i) => ((i % 17) - 8) / 16);
  builder.output(builder.node('MatMul', [x, builder.initializer('W', DataType.FLOAT, [256, 256], weights)]) as string, DataType.FLOAT, ['N', 256]);
  const folder = mkdtempSync(join(work, 'external-'));
  const model = join(folder, 'model.onnx');
  saveModel(buildModel(builder.graph), model, { externalData: true });
  const data = join(folder, 'model.onnx.data');
  assert.ok(statSync(data).size >= 256 * 256 * 4, 'the weights are in the data file');

  const run = shrink('bench', model, '--runs', '2', '--warmup', '0', '--no-memory', '--batch', '4', '--json');
  assert.equal(run.status, 0, run.stderr);
  const [m] = (JSON.parse(run.stdout) as BenchCommandReport).models;
  assert.equal(m!.size_bytes, statSync(model).size + statSync(data).size, 'size counts the external data file');
  assert.deepEqual(m!.inputs, ['x float32[4,256]']);
  assert.equal(m!.runs_ms.length, 2);
  assert.deepEqual(readdirSync(folder).sort(), ['model.onnx', 'model.onnx.data'], 'loaded from its path: nothing staged beside it');

  // Refused before any work: a report path that is a model or its data (exit 2), or in a missing folder (exit 1).
  const refusals: [string, number, RegExp][] = [
    [model, 2, /^shrink: --report \S+model\.onnx is the input \S+model\.onnx: writing it would destroy the input; choose another output$/],
    [data, 2, /^shrink: --report \S+model\.onnx\.data is the external data file of \S+model\.onnx: writing it would destroy the input; choose another output$/],
    [join(folder, 'missing', 'report.html'), 1, /^shrink: \S+report\.html: folder '\S+missing' does not exist$/],
  ];
  for (const [target, status, message] of refusals) {
    const before = existsSync(target) ? readFileSync(target) : undefined;
    const refused = shrink('bench', CLS, model, '--report', target);
    assert.equal(refused.status, status, refused.stderr);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr.trimEnd(), message);
    assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
    if (before !== undefined) assert.deepEqual(readFileSync(target), before, `${target} unchanged`);
  }
});

test('bench --backend wasm runs the classifier in onnxruntime-web', { timeout: 120_000 }, () => {
  const run = shrink('bench', CLS, '--backend', 'wasm', '--runs', '3', '--warmup', '1', '--dims', CLS_DIMS, '--json');
  assert.equal(run.status, 0, run.stderr);
  const json = JSON.parse(run.stdout) as BenchCommandReport;
  assert.equal(json.backend, 'onnxruntime-web (wasm, 1 thread)');
  const [cls] = json.models;
  checkModel(cls!, CLS, 3);
  assert.deepEqual(cls!.inputs, ['x float32[1,3,48,192]']);
  assert.ok(cls!.memory!.model_rss_bytes > 0);
  assert.deepEqual(cls!.ratios, { size: 1, load: 1, median: 1, p90: 1, p99: 1, throughput: 1, memory: 1 });
});

test('bench bad input: one line, exit 1 for a bad model, exit 2 for a bad command line', { timeout: 60_000 }, () => {
  const cases: { args: string[]; status: number; message: RegExp }[] = [
    { args: ['bench', 'no-such-model.onnx'], status: 1, message: /^shrink: no-such-model\.onnx: no such file$/ },
    { args: ['bench', CLS, '--runs', '0'], status: 2, message: /^shrink: --runs must be a whole number >= 1, got '0'$/ },
    { args: ['bench', CLS, '--runs', '2.5'], status: 2, message: /^shrink: --runs must be a whole number >= 1, got '2\.5'$/ },
    { args: ['bench', CLS, '--backend', 'cuda'], status: 2, message: /^shrink: --backend must be one of node, wasm, got 'cuda'$/ },
    { args: ['bench', CLS, '--dims', 'W'], status: 2, message: /^shrink: --dims: 'W' is not name=value/ },
    { args: ['bench'], status: 2, message: /^shrink: missing required argument 'model'$/ },
  ];
  const notOnnx = join(work, 'notes.onnx');
  writeFileSync(notOnnx, 'these are notes, not a model\n');
  cases.push({ args: ['bench', CLS, notOnnx], status: 1, message: new RegExp(`^shrink: ${notOnnx}: `) });
  for (const { args, status, message } of cases) {
    const run = shrink(...args);
    assert.equal(run.status, status, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${run.stderr}`);
    assert.match(lines[0]!, message);
  }
});
