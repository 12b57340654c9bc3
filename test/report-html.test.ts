// The HTML report, end to end: real benchmark figures (PP-OCRv4 det and rec in onnxruntime-node)
// and an eval result with per-layer rows go through renderReportHtml; the page is opened from
// file:// in headless Chromium (Debian's /usr/bin/chromium via playwright-core) with every network
// request refused, and each chart must be drawn by Observable Plot with the marks its data calls
// for. A screenshot is kept in the temp folder (its path is printed) for a human look.
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
import { readReportAssets, writeEvalReportFile, writeReportFile } from '../src/node/report-assets.js';
import { compareModels } from '../src/eval/compare.js';
import { modelSignature } from '../src/eval/match-inputs.js';
import { generatedSamples } from '../src/eval/sample-generate.js';
import { loadModel } from '../src/node/model-files.js';
import { jsonInScript, renderReportHtml, scriptSafe } from '../src/report/html.js';
import { MAX_LAYER_BARS, type ReportInput, reportCharts } from '../src/report/report-input.js';
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
    models: models.map((m) => ({ name: m.name, bytes: m.size, layers: inspectModel(m.model).layers.map((l) => ({ name: l.node, bytes: l.bytes })) })),
    eval: evalResult(),
  };
  const charts = reportCharts(input);
  assert.deepEqual(charts.map((c) => c.kind), ['size', 'fidelity', 'accuracy', 'layer-error', 'layer-bytes']);
  const size = charts.find((c) => c.kind === 'size')!;
  assert.equal(size.rows[0]!.mib, statSync(DET).size / 1048576);
  // Layer error: ranked as given, the null drop left out, capped at MAX_LAYER_BARS.
  const layerError = charts.find((c) => c.kind === 'layer-error')!;
  assert.equal(layerError.rows.length, MAX_LAYER_BARS);
  assert.equal(layerError.rows[0]!.drop_db, 40);
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
  const detConv = input.models[0]!.layers!.find((l) => l.name === bytes.rows[0]!.layer)!;
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
      models: files.map((m) => ({ name: m.name.split('/').pop()!, bytes: m.size, layers: inspectModel(m.model).layers.map((l) => ({ name: l.node, bytes: l.bytes })) })),
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
      texts: figure.querySelectorAll('.plot svg text').length,
      width: Math.max(0, ...[...figure.querySelectorAll('.plot svg')].map((svg) => svg.getBoundingClientRect().width)),
    }))`)) as { id: string; svgs: number; rects: number; paths: number; circles: number; runDots: number; texts: number; width: number }[];
    t.diagnostic(JSON.stringify(counts));
    const byId = Object.fromEntries(counts.map((c) => [c.id, c]));
    assert.deepEqual(Object.keys(byId), ['size', 'latency', 'throughput', 'fidelity', 'accuracy', 'layer-error', 'layer-bytes']);
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
    assert.deepEqual(kinds, ['size', 'fidelity', 'layer-error', 'layer-bytes']);
    const fidelity = data.charts[1];
    // A model against itself: identical outputs, drawn at the SQNR cap with cosine 1.
    assert.deepEqual(fidelity.rows.map((r: { sqnr_db: number; cosine: number }) => [r.sqnr_db, r.cosine]), [[150, 1]]);
    const layerError = data.charts[2];
    assert.equal(layerError.rows.length, Math.min(MAX_LAYER_BARS, report.layers!.filter((l) => l.drop_db !== null).length));
    for (const row of layerError.rows) assert.equal(row.drop_db, 0, `${row.layer}: no error added`);
    assert.equal(data.charts[0].rows[0].mib, statSync(CLS).size / 1048576);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
