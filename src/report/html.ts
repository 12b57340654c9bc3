// The HTML report: one self-contained file that opens anywhere, offline, years later. Charts are
// drawn in the page by Observable Plot, whose browser build (and d3, which it needs) is inlined
// into <script> elements; the data travels as JSON in the page; exact numbers are also written
// as plain tables, readable with scripts disabled. This file only builds text: the Node side
// (src/node/report-assets.ts) reads the library bundles and writes the file, and a browser can
// pass the same bundle text fetched from anywhere.
import { numberFromJson } from '../eval/eval-report.js';
import { CHART_SCRIPT } from './chart-script.js';
import type { RunEnvironment } from '../pipeline/report-envelope.js';
import { type ChartSpec, type ReportInput, reportCharts } from './report-input.js';

/** Browser builds to inline: d3's UMD bundle (defines `d3`) and Plot's UMD bundle (reads `d3`, defines `Plot`). */
export interface ReportAssets {
  d3: string;
  plot: string;
}

export function renderReportHtml(input: ReportInput, assets: ReportAssets): string {
  const charts = reportCharts(input);
  const created = input.created ?? new Date().toISOString();
  const payload = { title: input.title, created, environment: input.environment ?? null, models: input.models.map((m) => m.name), charts };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="shrink">
<title>${escapeHtml(input.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(input.title)}</h1>
<p class="meta">${escapeHtml(created)}</p>
${environmentLine(input.environment)}
${warnings(input)}
<section class="charts main">
${charts.filter((c) => !WIDE.has(c.kind)).map(figure).join('\n')}
</section>
<section class="charts layers">
${charts.filter((c) => WIDE.has(c.kind)).map(figure).join('\n')}
</section>
${numbersSection(input)}
</main>
<script type="application/json" id="shrink-report-data">${jsonInScript(payload)}</script>
<script>${scriptSafe(assets.d3)}</script>
<script>${scriptSafe(assets.plot)}</script>
<script>${scriptSafe(CHART_SCRIPT)}</script>
</body>
</html>
`;
}

/** Charts that need a wide cell: scatter panels, stacked bars, long layer names. */
const WIDE: ReadonlySet<ChartSpec['kind']> = new Set(['tradeoff', 'front', 'size-by-op', 'layer-error', 'layer-sqnr', 'layer-bytes']);

function figure(chart: ChartSpec): string {
  return `<figure class="chart" data-chart="${escapeHtml(chart.id)}" data-kind="${escapeHtml(chart.kind)}">
<h2>${escapeHtml(chart.title)}</h2>
<div class="plot"></div>
<figcaption>${escapeHtml(chart.caption)}</figcaption>
</figure>`;
}

/** `shrink 0.1.0 · onnxruntime-node 1.30.0 · node v20.20.2 · CPU (2 cores, linux x64)`: timings mean little without it. */
function environmentLine(environment: RunEnvironment | undefined): string {
  if (environment === undefined) return '';
  const e = environment;
  const parts: [string, string][] = [
    ['shrink', `shrink ${e.shrink}`],
    ['runtime', e.runtime],
    ['host', e.host],
    ['cpu', `${e.cpu} (${e.cores} cores, ${e.platform})`],
  ];
  const items = parts.map(([key, text]) => `<span data-env="${key}">${escapeHtml(text)}</span>`).join(' · ');
  return `<p class="meta environment">${items}</p>`;
}

function warnings(input: ReportInput): string {
  const list = input.eval?.warnings ?? [];
  if (list.length === 0) return '';
  return `<ul class="warnings">${list.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>`;
}

/** The exact figures as tables, so the report is useful without its charts. */
function numbersSection(input: ReportInput): string {
  const parts: string[] = [];
  parts.push(
    table(
      ['model', 'bytes', 'parameters'],
      input.models.map((m) => [m.name, m.bytes.toLocaleString('en-US'), m.parameters?.toLocaleString('en-US') ?? '']),
    ),
  );
  const search = input.search;
  if (search !== undefined) {
    parts.push(`<p>${escapeHtml(`Search: ${search.candidates.length} candidates; quality = ${search.quality}`)}</p>`);
    parts.push(
      table(
        ['candidate', 'quality', 'size ratio', 'speed-up', 'within budget', 'Pareto front', 'chosen', 'why not'],
        search.candidates.map((c) => [
          `${c.name}${c.cached ? ' (cached)' : ''}`,
          c.quality === undefined ? '' : c.quality.toPrecision(6),
          c.size_ratio.toFixed(4),
          c.speedup === undefined ? '' : c.speedup.toFixed(3),
          c.feasible ? 'yes' : 'no',
          c.pareto ? 'yes' : '',
          c.chosen ? 'yes' : '',
          c.why_not ?? '',
        ]),
      ),
    );
  }
  const bench = input.bench;
  if (bench !== undefined) {
    parts.push(`<p>${escapeHtml(`${bench.backend}, threads ${bench.threads === 0 ? 'default' : bench.threads}, batch ${bench.batch}, ${bench.runs} runs after ${bench.warmup} warm-up, interleaved`)}</p>`);
    parts.push(
      table(
        ['model', 'inputs', 'load ms', 'median ms', 'p90 ms', 'p99 ms', 'samples/s', 'model RSS MiB', 'median ratio', 'throughput ratio'],
        bench.models.map((m) => [
          m.name,
          m.inputs.join(', '),
          m.load_ms.toFixed(1),
          m.latency_ms.median.toFixed(2),
          m.latency_ms.p90.toFixed(2),
          m.latency_ms.p99.toFixed(2),
          m.throughput.toFixed(1),
          m.memory === undefined ? '' : (m.memory.model_rss_bytes / 1048576).toFixed(1),
          m.ratios.median.toFixed(3),
          m.ratios.throughput.toFixed(3),
        ]),
      ),
    );
  }
  const evaluation = input.eval;
  if (evaluation !== undefined) {
    const format = (v: Parameters<typeof numberFromJson>[0]) => {
      const n = numberFromJson(v);
      return Number.isFinite(n) ? n.toPrecision(6) : String(n);
    };
    parts.push(`<p>${escapeHtml(`${evaluation.samples} samples: ${evaluation.data}`)}</p>`);
    parts.push(
      table(
        ['output', 'cosine', 'SQNR dB', 'max abs', 'mean abs', 'top-1 agreement'],
        Object.entries(evaluation.outputs).map(([name, o]) => [
          name,
          format(o.cosine),
          format(o.sqnr_db),
          format(o.max_abs),
          format(o.mean_abs),
          o.top1_agreement === undefined ? '' : o.top1_agreement.toFixed(4),
        ]),
      ),
    );
    if (evaluation.accuracy !== undefined) {
      const a = evaluation.accuracy;
      parts.push(table(['accuracy', 'original', 'candidate'], [[`${a.total} labels`, a.original.toFixed(4), a.candidate.toFixed(4)]]));
    }
  }
  if (input.evals !== undefined && input.evals.length > 0) {
    const reference = input.models[0]?.name ?? 'the first model';
    const first = input.evals[0]!.report;
    parts.push(`<p>${escapeHtml(`Each model against ${reference}, ${first.samples} samples: ${first.data}`)}</p>`);
    const worst = (values: Parameters<typeof numberFromJson>[0][]) => {
      const n = Math.min(...values.map(numberFromJson));
      return Number.isFinite(n) ? n.toPrecision(6) : String(n);
    };
    parts.push(
      table(
        ['model', 'lowest cosine', 'lowest SQNR dB', 'top-1 agreement', 'accuracy'],
        input.evals.map(({ model, report }) => {
          const outputs = Object.values(report.outputs);
          const top1 = outputs.find((o) => o.top1_agreement !== undefined)?.top1_agreement;
          return [model, worst(outputs.map((o) => o.cosine)), worst(outputs.map((o) => o.sqnr_db)), top1 === undefined ? '' : top1.toFixed(4), report.accuracy === undefined ? '' : report.accuracy.candidate.toFixed(4)];
        }),
      ),
    );
  }
  return `<section class="numbers"><h2>Numbers</h2>\n${parts.join('\n')}\n</section>`;
}

function table(headers: string[], rows: string[][]): string {
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Code that can sit inside <script> without ending it: the HTML parser closes a script at the first
 * `</script`, whatever the JavaScript means. `<\/script` means the same inside JS strings, template
 * literals and regexes, the only places such text can occur in code.
 */
export function scriptSafe(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1');
}

/**
 * JSON for a <script type="application/json">: every `<` escaped as \u003c (same string once
 * parsed), so no model or layer name can close the element or open an HTML comment in it.
 */
export function jsonInScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

const STYLE = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24; }
body { margin: 0; background: #fafafa; }
main { max-width: 1400px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 0 0 8px; }
.meta { color: #6a737d; margin: 0 0 16px; font-size: 13px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 16px; margin-bottom: 16px; }
.charts.layers { grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); }
figure.chart { margin: 0; padding: 12px; background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; min-width: 0; }
figcaption { color: #586069; font-size: 12px; margin-top: 6px; }
.plot { width: 100%; overflow-x: auto; }
.panels { display: flex; flex-wrap: wrap; gap: 8px; }
.warnings { background: #fff8e1; border: 1px solid #f0d58c; padding: 8px 8px 8px 28px; font-size: 13px; }
.error { color: #b31d28; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; background: #fff; }
th, td { border: 1px solid #e1e4e8; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
`;
