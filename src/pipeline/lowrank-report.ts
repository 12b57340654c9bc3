// The low-rank report: per factored layer its shape, the rank kept (of the full rank and of the
// largest rank that still saves), parameters before and after, the energy kept (the relative
// reconstruction error is √(1 − energy)) and, when samples were given, the layer's own output
// error (isolated SQNR: the factored layer fed the original's activations) and the cosine of its
// output in the whole model; then the model's parameters and size, recovery, fidelity, verdict.
import type { EvalReport, JsonNumber } from '../eval/eval-report.js';
import { groupDigits, renderTable } from '../inspect/table.js';
import type { GateMiss } from './gate.js';
import type { PassWarning } from './pass.js';
import { type PruneRecoveryReport, recoveryLine } from './prune-report.js';
import { formatSizeChange, type SizeChange } from './size-change.js';
import type { Verdict } from './verdict.js';

/** Said in every report: what fewer parameters mean for time. */
export const LOWRANK_NOTE =
  'a factored layer does r (p + q) multiply-adds per row (per output pixel for Conv) instead of p q, like its parameters; two smaller products beat one only when r is well below p q / (p + q) (see bench/results/lowrank.md)';

export interface LowRankLayerEntry {
  weight: string;
  nodes: string[];
  op: string;
  dims: number[];
  /** The weight as the matrix decomposed: [p, q]. */
  matrix: [number, number];
  rank: number;
  full_rank: number;
  saving_rank: number;
  parameters_before: number;
  parameters_after: number;
  energy_kept: number;
  relative_error: number;
  svd_ms: number;
  /** The layer's output error of its own (fed the original's activations), dB; with samples. Of the trained result when recovery ran. */
  isolated_sqnr_db?: JsonNumber;
  /** Cosine of the layer's output in the whole factored model against the original's; with samples. */
  cosine?: JsonNumber;
}

export interface LowRankReport {
  method: 'lowrank';
  settings: Record<string, number>;
  pass: string;
  ms: number;
  /** Where the SVD's products ran. */
  engine: string;
  size: SizeChange;
  parameters: { before: number; after: number; ratio: number };
  budget?: { ratio: number; parameters: number; reached: boolean };
  layers: LowRankLayerEntry[];
  skipped: { node: string; reason: string }[];
  note: string;
  warnings: PassWarning[];
  recovery?: PruneRecoveryReport;
  fidelity?: EvalReport;
  fidelity_skipped?: string;
  verdict: Verdict;
  gate?: { passed: boolean; misses: GateMiss[] };
}

const percent = (x: number, digits = 1) => `${(x * 100).toFixed(digits)}%`;

function db(v: JsonNumber | undefined): string {
  return typeof v === 'number' ? `${v.toFixed(1)} dB` : v === 'inf' ? 'inf' : '';
}

function cosine(v: JsonNumber | undefined): string {
  return typeof v === 'number' ? v.toFixed(6) : v === undefined || v === null ? '' : String(v);
}

/** The report as terminal text. */
export function formatLowRankReport(report: LowRankReport, top = 12): string {
  const lines: string[] = [];
  const settings = Object.entries(report.settings).map(([k, v]) => `${k} ${v}`).join(', ');
  lines.push(`method     lowrank (${settings}; ${report.ms} ms, products in ${report.engine === 'ort' ? 'onnxruntime' : report.engine === 'js' ? 'JS' : 'onnxruntime and JS'})`);
  lines.push(`size       ${formatSizeChange(report.size)}`);
  const p = report.parameters;
  const budget = report.budget === undefined ? '' : report.budget.reached ? ` (budget ${groupDigits(report.budget.parameters)})` : ` (budget ${groupDigits(report.budget.parameters)} not reached)`;
  lines.push(`parameters ${groupDigits(p.before)} -> ${groupDigits(p.after)} (${p.ratio.toFixed(3)}x)${budget}`);
  lines.push(`layers     ${report.layers.length} factored${report.skipped.length === 0 ? '' : `, ${report.skipped.length} left alone`}`);
  const measured = report.layers.some((l) => l.isolated_sqnr_db !== undefined);
  const rows = report.layers.slice(0, top).map((l) => [
    l.nodes.join(', ').slice(0, 40),
    l.op,
    `[${l.matrix.join(', ')}]`,
    `${l.rank} / ${l.full_rank}`,
    `${groupDigits(l.parameters_before)} -> ${groupDigits(l.parameters_after)}`,
    percent(l.energy_kept, 2),
    ...(measured ? [db(l.isolated_sqnr_db), cosine(l.cosine)] : []),
  ]);
  lines.push(
    ...renderTable(
      [
        { header: 'layer' },
        { header: 'op' },
        { header: 'matrix' },
        { header: 'rank', align: 'right' },
        { header: 'params', align: 'right' },
        { header: 'energy', align: 'right' },
        ...(measured ? [{ header: 'own SQNR', align: 'right' as const }, { header: 'cosine', align: 'right' as const }] : []),
      ],
      rows,
    ),
  );
  if (report.layers.length > top) lines.push(`  (${report.layers.length - top} more in --json)`);
  if (measured && report.recovery !== undefined) lines.push('  (own SQNR and cosine are of the trained result: training moves every layer, factored or not, away from the original)');
  const reasons = new Map<string, number>();
  for (const s of report.skipped) reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
  for (const [reason, n] of [...reasons].slice(0, 6)) lines.push(`  left alone: ${n === 1 ? (report.skipped.find((s) => s.reason === reason)?.node ?? '') : `${n} layers`}: ${reason}`);
  if (reasons.size > 6) lines.push(`  (${reasons.size - 6} more reasons in --json)`);
  lines.push(`note       ${report.note}`);
  if (report.recovery !== undefined) lines.push(recoveryLine(report.recovery));
  if (report.fidelity !== undefined) {
    const f = report.fidelity;
    lines.push('', `fidelity on ${f.samples} sample${f.samples === 1 ? '' : 's'} (${f.data}):`);
    const out = Object.entries(f.outputs).map(([name, o]) => [name, cosine(o.cosine), typeof o.sqnr_db === 'number' ? `${o.sqnr_db.toFixed(2)} dB` : String(o.sqnr_db), o.top1_agreement === undefined ? '' : percent(o.top1_agreement)]);
    lines.push(...renderTable([{ header: 'output' }, { header: 'cosine', align: 'right' }, { header: 'SQNR', align: 'right' }, { header: 'top-1', align: 'right' }], out));
    if (f.accuracy !== undefined) lines.push(`  accuracy ${percent(f.accuracy.original, 2)} -> ${percent(f.accuracy.candidate, 2)} on ${f.accuracy.total} labelled samples`);
  } else if (report.fidelity_skipped !== undefined) lines.push('', `fidelity   not measured: ${report.fidelity_skipped}`);
  lines.push(`verdict    ${report.verdict.message}`);
  for (const w of report.warnings) lines.push(`warning    ${w.message}`);
  return `${lines.join('\n')}\n`;
}
