// The HTML report, end to end: real benchmark figures (PP-OCRv4 det and rec in onnxruntime-node)
// and an eval result with per-layer rows go through renderReportHtml; the page is opened from
// file:// in headless Chromium (Debian's /usr/bin/chromium via playwright-core) with every network
// request refused, and each chart must be drawn by Observable Plot with the marks its data calls
// for. `shrink bench --compare --report` on the Fashion-MNIST MLP and three quantized versions
// draws accuracy against size and latency, sizes by op type and dtype, and weight bytes joined to
// the original's layers. A screenshot is kept in the temp folder (its path is printed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { benchmarkModels } from '../src/eval/benchmark.js';
import type { EvalReport } from '../src/eval/eval-report.js';
import { inspectModel } from '../src/inspect/inspect.js';
import { readBenchModel } from '../src/node/bench-model-file.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readReportAssets, reportModelFromFile, reportModelOf, writeEvalReportFile, writeReportFile } from '../src/node/report-assets.js';
import { compareModels } from '../src/eval/compare.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { loadModel } from '../src/node/model-files.js';
import { jsonInScript, renderReportHtml, scriptSafe } from '../src/report/html.js';
import { MAX_LAYER_BARS, type ReportInput, reportCharts } from '../src/report/report-input.js';
import type { BenchCommandReport } from '../src/cli/bench-command.js';
import { runShrink, spawnShrink } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';
import { CHROMIUM, launchChromium } from './helpers/chromium.js';
import { CLS as REAL_CLS, DET as REAL_DET, REC as REAL_REC } from './helpers/real-models.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const DET = join(root, REAL_DET);
const REC = join(root, REAL_REC);
const CLS = join(root, REAL_CLS);
const RUNS = 4;

/** An eval result in the shape `shrink eval --json` prints: two outputs, accuracy, ranked layers. */
function evalResult(): EvalReport {
  const layers = Array.from({ length: 40 }, (_, i) => ({
    value: `conv_${i}.out`,
    node: `Conv_${i}`,
    op: 'Conv',
    order: i,
    elements: 1000,
    cosine: 1 - i * 1e-4,
    sqnr_db: i === 0 ? ('inf' as const) : 60 - i,
    max_abs: i * 1e-3,
    mean_abs: i * 1e-4,
    relative: i * 1e-3,
    input_sqnr_db: 70,
    drop_db: i === 39 ? null : 40 - i,
    isolated_sqnr_db: i === 39 ? null : 20 + i,
  }));
  return {
    samples: 16,
    data: 'generated (16 random samples, seed 0)',
    warnings: ['inputs are random numbers <b>not</b> real data'],
    outputs: {
      logits: { elements: 160, cosine: 0.9991, sqnr_db: 27.5, max_abs: 0.08, mean_abs: 0.01, relative: 0.04, non_finite: 0, top1_agreement: 0.9375 },
      'probs</script><script>alert(1)</script>': { elements: 160, cosine: 1, sqnr_db: 'inf', max_abs: 0, mean_abs: 0, relative: 0, non_finite: 0 },
    },
    accuracy: { original: 0.8921, candidate: 0.8874, correct_original: 8921, correct_candidate: 8874, total: 10000, output: 'logits', labels: 'labels.npy' },
    layers,
  };
}

test('report text: chart rows follow the data, and nothing in the data can end a <script>', async () => {
  const models = [readBenchModel(DET), readBenchModel(REC)];
  const input: ReportInput = {
    title: 'det vs rec',
    models: models.map((m) => reportModelOf(m.model, m.name, m.size)),
    eval: evalResult(),
  };
  const charts = reportCharts(input);
  assert.deepEqual(charts.map((c) => c.kind), ['size', 'fidelity', 'accuracy', 'tradeoff', 'size-by-op', 'layer-error', 'layer-sqnr', 'layer-bytes']);
  const size = charts.find((c) => c.kind === 'size')!;
  assert.equal(size.rows[0]!.mib, statSync(DET).size / 1048576);
  // With labels both models have a figure: the original's accuracy and the candidate's.
  const tradeoff = charts.find((c) => c.kind === 'tradeoff')!;
  assert.deepEqual(tradeoff.rows.map((r) => r.quality), [0.8921, 0.8874]);
  assert.equal(tradeoff.axes?.quality, 'accuracy');
  // Without labels the candidate's SQNR would be a single dot (the original is exact): no chart.
  const unlabelled = reportCharts({ ...input, eval: { ...evalResult(), accuracy: undefined } });
  assert.equal(unlabelled.find((c) => c.kind === 'tradeoff'), undefined);
  // Layer error: ranked as given (by isolated SQNR), the unisolated layer left out, capped at MAX_LAYER_BARS.
  const layerError = charts.find((c) => c.kind === 'layer-error')!;
  assert.equal(layerError.rows.length, MAX_LAYER_BARS);
  assert.deepEqual(layerError.rows.slice(0, 2).map((r) => r.db), [20, 21]);
  assert.equal(layerError.axes?.db, 'isolated');
  // SQNR along the network: every finite SQNR in network order, and each layer's own error.
  const along = charts.find((c) => c.kind === 'layer-sqnr')!;
  assert.deepEqual(along.rows.filter((r) => r.series === 'SQNR').map((r) => r.position), Array.from({ length: 39 }, (_, i) => i + 1));
  assert.equal(along.rows.filter((r) => r.series === 'made by the layer alone').length, 39);
  // Size by op type and dtype: both models hold float32 Conv weights, each tensor counted once.
  const byOp = charts.find((c) => c.kind === 'size-by-op')!;
  const detConvs = byOp.rows.find((r) => r.model === DET && r.op === 'Conv' && r.dtype === 'float32')!;
  const detTotal = byOp.rows.filter((r) => r.model === DET).reduce((n, r) => n + (r.kib as number), 0);
  assert.ok((detConvs.kib as number) > 0.9 * detTotal, `Conv ${detConvs.kib} of ${detTotal} KiB`);
  assert.ok(Math.abs(detTotal * 1024 - inspectModel(models[0]!.model).parameters.bytes) < 1, 'every parameter once');
  // Infinite SQNR is drawn at the cap, not dropped.
  const fidelity = charts.find((c) => c.kind === 'fidelity')!;
  assert.equal(fidelity.rows[1]!.sqnr_db, 150);
  // Layer bytes: the 30 largest layers over both models, each with its real weight bytes.
  const bytes = charts.find((c) => c.kind === 'layer-bytes')!;
  assert.equal(new Set(bytes.rows.map((r) => r.layer)).size, MAX_LAYER_BARS);
  // Both models name layers p2o.Conv.N, so a layer ranks by its largest size in either model.
  const largest = new Map<string, number>();
  for (const l of input.models.flatMap((m) => m.layers!)) largest.set(l.name, Math.max(largest.get(l.name) ?? 0, l.bytes));
  const thirtieth = [...largest.values()].sort((a, b) => b - a)[MAX_LAYER_BARS - 1]!;
  for (const row of bytes.rows) assert.ok(largest.get(row.layer as string)! >= thirtieth, `${row.layer} is among the largest`);
  const detConv = inspectModel(models[0]!.model).layers.find((l) => l.node === bytes.rows[0]!.layer)!;
  assert.equal(bytes.rows[0]!.kib, detConv.bytes / 1024, 'rows carry the inspected weight bytes');

  const html = renderReportHtml(input, readReportAssets());
  assert.equal(html.match(/<\/script>/g)!.length, 4, 'exactly the four script elements close');
  assert.ok(!/\b(?:src|href)\s*=\s*["']?https?:/i.test(html), 'no external resources');
  assert.equal(scriptSafe('a="</script>"'), 'a="<\\/script>"');
  assert.equal(JSON.parse(jsonInScript({ s: '</script><!--' })).s, '</script><!--');
});

test('the HTML report opens offline in headless Chromium and draws every chart', { timeout: 120_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `Chromium is not installed at ${CHROMIUM} (Debian: apt-get install chromium)`);
  const dir = mkdtempSync(join(tmpdir(), 'shrink-report-'));
  let browser: Browser | undefined;
  try {
    const files = [readBenchModel(DET), readBenchModel(REC)];
    const bench = await benchmarkModels(nodeOrt, files, { runs: RUNS, warmup: 1, threads: 1, dims: { 'p2o.DynamicDimension.1': 320, 'p2o.DynamicDimension.2': 320 } });
    const input: ReportInput = {
      title: 'PP-OCRv4 det vs rec',
      models: files.map((m) => reportModelOf(m.model, m.name.split('/').pop()!, m.size)),
      bench: { ...bench, models: bench.models.map((m) => ({ ...m, name: m.name.split('/').pop()! })) },
      eval: evalResult(),
    };
    const file = join(dir, 'report.html');
    writeReportFile(file, input);
    const html = readFileSync(file, 'utf8');
    t.diagnostic(`report: ${(html.length / 1024).toFixed(0)} KiB`);

    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const pageUrl = pathToFileURL(file).href;
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    // The network is off: anything but the report itself is refused.
    await page.route('**/*', (route) => (route.request().url() === pageUrl ? route.continue() : route.abort()));
    await page.goto(pageUrl);
    await page.waitForFunction(() => document.body.dataset.charts !== undefined || document.body.dataset.chartsError !== undefined, undefined, {
      timeout: 20_000,
    });
    assert.equal(await page.evaluate(() => document.body.dataset.chartsError), undefined);
    assert.deepEqual(problems, []);
    assert.deepEqual(requests, [pageUrl], 'the page loads nothing but itself');
    assert.equal(await page.title(), 'PP-OCRv4 det vs rec');
    // Where the figures were measured: shrink, onnxruntime and Node versions and the CPU, read here
    // from their own sources.
    const environment = (await page.evaluate(`Object.fromEntries([...document.querySelectorAll('.environment [data-env]')].map((e) => [e.dataset.env, e.textContent]))`)) as Record<string, string>;
    const version = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    assert.deepEqual(environment, {
      shrink: `shrink ${version(join(root, 'package.json'))}`,
      runtime: `onnxruntime-node ${version(join(root, 'node_modules/onnxruntime-node/package.json'))}`,
      host: `node ${process.version}`,
      cpu: `${cpus()[0]!.model} (${cpus().length} cores, ${process.platform} ${process.arch})`,
    });
    // The injected output name stayed text: no script ran from it, and it is shown literally.
    assert.equal(await page.evaluate(() => document.querySelectorAll('script').length), 4);

    // A string, not a function: tsx compiles functions with a __name helper the page lacks.
    const counts = (await page.evaluate(`[...document.querySelectorAll('figure.chart')].map((figure) => ({
      id: figure.dataset.chart,
      svgs: figure.querySelectorAll('.plot svg').length,
      rects: figure.querySelectorAll('.plot svg rect').length,
      paths: figure.querySelectorAll('.plot svg path').length,
      circles: figure.querySelectorAll('.plot svg circle').length,
      runDots: figure.querySelectorAll('.plot svg g[aria-description="timed runs"] circle').length,
      modelDots: figure.querySelectorAll('.plot svg g[aria-description="models"] circle').length,
      isolatedDots: figure.querySelectorAll('.plot svg g[aria-description="isolated layers"] circle').length,
      texts: figure.querySelectorAll('.plot svg text').length,
      width: Math.max(0, ...[...figure.querySelectorAll('.plot svg')].map((svg) => svg.getBoundingClientRect().width)),
    }))`)) as { id: string; svgs: number; rects: number; paths: number; circles: number; runDots: number; modelDots: number; isolatedDots: number; texts: number; width: number }[];
    t.diagnostic(JSON.stringify(counts));
    const byId = Object.fromEntries(counts.map((c) => [c.id, c]));
    assert.deepEqual(Object.keys(byId), ['size', 'latency', 'throughput', 'fidelity', 'accuracy', 'tradeoff', 'size-by-op', 'layer-error', 'layer-sqnr', 'layer-bytes']);
    for (const chart of counts) {
      assert.ok(chart.svgs >= 1, `${chart.id}: an SVG was drawn`);
      assert.ok(chart.rects + chart.paths + chart.circles > 0, `${chart.id}: the SVG has marks`);
      assert.ok(chart.width >= 300, `${chart.id}: drawn at a readable width (${chart.width}px)`);
    }
    // One bar per model, per output, per ranked layer; one dot per timed run.
    assert.equal(byId.size!.rects, 2);
    assert.equal(byId.throughput!.rects, 2);
    assert.equal(byId.fidelity!.rects, 2);
    assert.equal(byId.accuracy!.rects, 2);
    assert.equal(byId['layer-error']!.rects, MAX_LAYER_BARS);
    assert.equal(byId.latency!.runDots, RUNS * 2, 'a dot per timed run (outlier dots of the box plot aside)');
    assert.equal(byId.latency!.rects, 2, 'one box per model');
    assert.ok(byId['layer-bytes']!.rects >= MAX_LAYER_BARS, 'a bar per shown layer and model');
    // Accuracy against size and against latency: two panels, a dot per model in each.
    assert.equal(byId.tradeoff!.svgs, 2);
    assert.equal(byId.tradeoff!.modelDots, 4);
    // SQNR along the network: a line, and a dot per layer measured in isolation.
    assert.ok(byId['layer-sqnr']!.paths >= 1);
    assert.equal(byId['layer-sqnr']!.isolatedDots, 39);
    // The numbers table carries the measured median.
    const tableText = await page.evaluate(() => document.querySelector('section.numbers')!.textContent!);
    assert.ok(tableText.includes(bench.models[0]!.latency_ms.median.toFixed(2)));
    assert.ok(tableText.includes('probs</script><script>alert(1)</script>'));

    const screenshot = join(dir, 'report.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    assert.ok(statSync(screenshot).size > 20_000, 'the screenshot holds a drawn page');
    if (process.env.SHRINK_KEEP_REPORT) {
      // For a human look: SHRINK_KEEP_REPORT=/some/folder keeps the page and its screenshot.
      writeReportFile(join(process.env.SHRINK_KEEP_REPORT, 'report.html'), input);
      await page.screenshot({ path: join(process.env.SHRINK_KEEP_REPORT, 'report.png'), fullPage: true });
    }
    t.diagnostic(`screenshot ${screenshot}`);
  } finally {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an eval result (real compareModels, per layer) becomes a report with fidelity and per-layer charts', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shrink-eval-report-'));
  try {
    const model = loadModel(CLS);
    const samples = generatedSamples(modelSignature(model).inputs, {
      count: 2,
      dims: { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 },
    });
    const report = await compareModels(nodeOrt, model, loadModel(CLS), samples, { perLayer: true, threads: 1 });
    const file = join(dir, 'eval.html');
    writeEvalReportFile(file, CLS, CLS, report);
    const html = readFileSync(file, 'utf8');
    const data = JSON.parse(/<script type="application\/json" id="shrink-report-data">(.*?)<\/script>/s.exec(html)![1]!.replace(/\\u003c/g, '<'));
    // Same file twice: the names fall back to the paths so the two stay apart.
    assert.deepEqual(data.models, [CLS, CLS]);
    const kinds = data.charts.map((c: { kind: string }) => c.kind);
    // No SQNR-along-the-network chart: every value is exact, nothing to draw.
    assert.deepEqual(kinds, ['size', 'fidelity', 'size-by-op', 'layer-error', 'layer-bytes']);
    const fidelity = data.charts[1];
    // A model against itself: identical outputs, drawn at the SQNR cap with cosine 1.
    assert.deepEqual(fidelity.rows.map((r: { sqnr_db: number; cosine: number }) => [r.sqnr_db, r.cosine]), [[150, 1]]);
    const layerError = data.charts[3];
    assert.equal(layerError.rows.length, Math.min(MAX_LAYER_BARS, report.layers!.length));
    for (const row of layerError.rows) assert.equal(row.db, 150, `${row.layer}: exact in isolation, drawn at the cap`);
    assert.equal(data.charts[0].rows[0].mib, statSync(CLS).size / 1048576);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink bench --compare --report: accuracy against size and latency for four MLPs, size by op type and dtype, bytes under the original layers', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shrink-bench-report-'));
  let browser: Browser | undefined;
  try {
    const MLP = 'models/fashion-mnist/mlp.onnx';
    const fashion = writeFashionFiles(dir, 500, 2000);
    const variants: [string, string[]][] = [
      ['int4', []],
      ['dynamic-int8', []],
      ['static-int8', ['--calib', fashion.images]],
    ];
    const files: string[] = [];
    for (const [method, extra] of variants) {
      const file = join(dir, `mlp-${method}.onnx`);
      const run = await runShrink(['quantize', MLP, '-o', file, '--method', method, '--samples', '0', ...extra]);
      assert.equal(run.code, 0, run.stderr);
      files.push(file);
    }
    const page = join(dir, 'bench.html');
    const run = spawnShrink(['bench', MLP, ...files, '--runs', '10', '--warmup', '2', '--no-memory', '--compare', '--data', fashion.images, '--labels', fashion.labels, '--report', page, '--json'], { timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const json = JSON.parse(run.stdout) as BenchCommandReport;
    const comparisons = json.comparisons!;
    assert.deepEqual(comparisons.map((c) => c.model), files.map((f) => f.split('/').pop()));
    for (const c of comparisons) {
      assert.equal(c.report.accuracy?.total, 500);
      assert.equal(c.report.accuracy?.original, comparisons[0]!.report.accuracy?.original);
    }

    const html = readFileSync(page, 'utf8');
    const data = JSON.parse(/<script type="application\/json" id="shrink-report-data">(.*?)<\/script>/s.exec(html)![1]!.replace(/\\u003c/g, '<'));
    const chart = (kind: string) => data.charts.find((c: { kind: string }) => c.kind === kind);
    // One dot per model: accuracy (the original at its own), size, and median latency.
    const tradeoff = chart('tradeoff');
    assert.equal(tradeoff.axes.quality, 'accuracy');
    assert.deepEqual(
      tradeoff.rows.map((r: { model: string; quality: number; ms: number; mib: number }) => [r.model, r.quality, r.ms, r.mib]),
      json.models.map((m, i) => [m.name.split('/').pop(), i === 0 ? comparisons[0]!.report.accuracy!.original : comparisons[i - 1]!.report.accuracy!.candidate, m.latency_ms.median, m.size_bytes / 1048576]),
    );
    // Quantized weights (MatMulNBits' fc1.weight_q4, DynamicQuantizeMatMul nodes, QDQ weights) count under fc1..fc3.
    const bytes = chart('layer-bytes');
    assert.deepEqual([...new Set(bytes.rows.map((r: { layer: string }) => r.layer))].sort(), ['fc1', 'fc2', 'fc3']);
    assert.equal(bytes.rows.length, 12);
    const kib = (model: string, layer: string) => bytes.rows.find((r: { model: string; layer: string }) => r.model === model && r.layer === layer).kib;
    assert.ok(kib('mlp-int4.onnx', 'fc1') < kib('mlp.onnx', 'fc1') / 6, 'int4 fc1 is under a sixth of float32');
    // Size by op type and dtype: every model's weights under Gemm, in the dtypes its method writes.
    const byOp = chart('size-by-op');
    const dtypes = (model: string) => byOp.rows.filter((r: { model: string }) => r.model === model).map((r: { op: string; dtype: string }) => `${r.op}/${r.dtype}`).sort();
    assert.deepEqual(dtypes('mlp.onnx'), ['Gemm/float32']);
    assert.deepEqual(dtypes('mlp-int4.onnx'), ['Gemm/float32', 'Gemm/uint8']);
    assert.deepEqual(dtypes('mlp-dynamic-int8.onnx'), ['Gemm/float32', 'Gemm/int8']);
    assert.ok(dtypes('mlp-static-int8.onnx').includes('Gemm/int32'), 'static int8 biases are int32');
    const total = (model: string) => byOp.rows.filter((r: { model: string }) => r.model === model).reduce((n: number, r: { kib: number }) => n + r.kib, 0);
    assert.ok(Math.abs(total('mlp.onnx') * 1024 - reportModelFromFile(MLP).parameters! * 4) < 1, 'every float32 parameter once');

    browser = await launchChromium();
    const tab = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const problems: string[] = [];
    tab.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await tab.goto(pathToFileURL(page).href);
    await tab.waitForFunction(() => document.body.dataset.charts !== undefined || document.body.dataset.chartsError !== undefined, undefined, { timeout: 20_000 });
    assert.equal(await tab.evaluate(() => document.body.dataset.chartsError), undefined);
    assert.deepEqual(problems, []);
    const drawn = (await tab.evaluate(`Object.fromEntries([...document.querySelectorAll('figure.chart')].map((f) => [f.dataset.chart, {
      svgs: f.querySelectorAll('.plot svg').length,
      dots: f.querySelectorAll('.plot svg g[aria-description="models"] circle').length,
      rects: f.querySelectorAll('.plot svg rect').length,
    }]))`)) as Record<string, { svgs: number; dots: number; rects: number }>;
    // Two panels (accuracy against size, against latency), four dots each.
    assert.deepEqual(drawn.tradeoff, { svgs: 2, dots: 8, rects: 0 });
    assert.ok(drawn['size-by-op']!.rects >= byOp.rows.length, JSON.stringify(drawn['size-by-op']));
    await tab.screenshot({ path: join(dir, 'bench.png'), fullPage: true });
    if (process.env.SHRINK_KEEP_REPORT) await tab.screenshot({ path: join(process.env.SHRINK_KEEP_REPORT, 'bench-compare.png'), fullPage: true });
    console.log(
      `# MLP on 500 held-out images: ${tradeoff.rows.map((r: { model: string; quality: number; mib: number; ms: number }) => `${r.model} ${(100 * r.quality).toFixed(1)}% ${r.mib.toFixed(2)} MiB ${r.ms.toFixed(3)} ms`).join('; ')}`,
    );
  } finally {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
