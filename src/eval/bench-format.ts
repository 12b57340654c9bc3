// `shrink bench` as terminal text: one table of absolute figures, one of ratios to the first
// model. The ratios come first in importance (a single run on a shared machine drifts, the ratio
// between interleaved models much less), but absolute numbers are what people look up, so both.
import { formatBytes, renderTable } from '../inspect/table.js';
import type { BenchReport } from './benchmark.js';

export function formatBenchReport(report: BenchReport): string {
  const names = displayNames(report.models.map((m) => m.name));
  const threads = report.threads === 0 ? 'default threads' : `${report.threads} thread${report.threads === 1 ? '' : 's'}`;
  const lines = [
    `backend ${report.backend}, ${threads}, graph optimization '${report.graph_optimization}', batch ${report.batch}: ${report.runs} timed runs per model after ${report.warmup} warm-up, interleaved`,
    '',
  ];
  const hasMemory = report.models.some((m) => m.memory !== undefined);
  const columns = [
    { header: 'model' },
    { header: 'size', align: 'right' as const },
    { header: 'load ms', align: 'right' as const },
    { header: 'median ms', align: 'right' as const },
    { header: 'p90 ms', align: 'right' as const },
    { header: 'p99 ms', align: 'right' as const },
    { header: 'samples/s', align: 'right' as const },
    ...(hasMemory ? [{ header: 'peak RSS', align: 'right' as const }, { header: 'model RSS', align: 'right' as const }] : []),
  ];
  const rows = report.models.map((m, i) => [
    names[i]!,
    formatBytes(m.size_bytes),
    ms(m.load_ms),
    ms(m.latency_ms.median),
    ms(m.latency_ms.p90),
    ms(m.latency_ms.p99),
    m.throughput.toFixed(m.throughput >= 100 ? 0 : 1),
    ...(hasMemory ? [m.memory ? formatBytes(m.memory.peak_rss_bytes) : '-', m.memory ? formatBytes(m.memory.model_rss_bytes) : '-'] : []),
  ]);
  lines.push(...renderTable(columns, rows));
  if (report.models.length > 1) {
    lines.push('', `ratios to ${names[0]} (below 1: smaller or faster; throughput above 1: faster)`);
    const ratioColumns = [
      { header: 'model' },
      ...['size', 'load', 'median', 'p90', 'p99', 'throughput', ...(hasMemory ? ['memory'] : [])].map((header) => ({ header, align: 'right' as const })),
    ];
    const ratioRows = report.models.map((m, i) => {
      const r = m.ratios;
      return [names[i]!, ...[r.size, r.load, r.median, r.p90, r.p99, r.throughput, ...(hasMemory ? [r.memory] : [])].map(ratio)];
    });
    lines.push(...renderTable(ratioColumns, ratioRows));
  }
  lines.push('', 'inputs:');
  report.models.forEach((m, i) => lines.push(`  ${names[i]}: ${m.inputs.join(', ')}`));
  if (hasMemory) lines.push('', 'peak RSS: max resident memory of a child process that loaded and ran the model; model RSS: minus the same process on a one-node model');
  if (report.warnings.length > 0) lines.push('', ...report.warnings.map((w) => `warning: ${w.message}`));
  return `${lines.join('\n')}\n`;
}

function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function ratio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '-' : `${value.toFixed(2)}x`;
}

/** File names without their common folder, so the table stays narrow; full paths when names clash. */
export function displayNames(paths: readonly string[]): string[] {
  const base = paths.map((p) => p.split(/[\\/]/).pop() ?? p);
  return new Set(base).size === base.length ? base : [...paths];
}
