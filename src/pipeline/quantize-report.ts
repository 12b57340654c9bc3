// The quantize report: what a method did to a model and what it cost. Bytes before and after
// (the whole file and each weight), which nodes were quantized and which were left alone and why,
// each weight's SQNR, and output fidelity against the original (eval's compareModels). One
// JSON-able object, and a terminal formatter for people.
import type { OutputBiasReport } from './fit-output-bias.js';
import type { LatencyPlacementReport } from './latency-placement.js';
import type { EvalReport, JsonNumber } from '../eval/eval-report.js';
import { jsonNumber } from '../eval/eval-report.js';
import { formatBytes, groupDigits, renderTable } from '../inspect/table.js';
import type { PassReport, PassWarning } from './pass.js';
import type { NodeDecision, QuantizeDetails } from '../methods/quantize/details.js';
import { FLOAT_PREFIX_MAC_SHARE } from '../methods/quantize/float-prefix.js';
import type { Fp32SearchRound } from './fp32-search.js';
import type { GateMiss } from './gate.js';
import { formatSizeChange, type SizeChange, sizeChange } from './size-change.js';
import { type ReportEnvelope, snakeCaseKeys } from './report-envelope.js';
import type { Verdict } from './verdict.js';

export interface QuantizeTensorEntry {
  name: string;
  graph?: string;
  /** The node that reads it, when the pass names one. */
  node?: string;
  from?: string;
  to?: string;
  bytes_before: number;
  bytes_after: number;
  sqnr_db: JsonNumber;
  overflow?: number;
  note?: string;
}

export interface QuantizeReport {
  method: string;
  pass: string;
  ms: number;
  /** Bytes of the model before and after, weights counted wherever they are stored (after / before). */
  size: SizeChange;
  weights: {
    tensors: number;
    bytes_before: number;
    bytes_after: number;
    min_sqnr_db: JsonNumber;
    median_sqnr_db: JsonNumber;
  };
  tensors: QuantizeTensorEntry[];
  nodes: {
    quantized: number;
    skipped: number;
    skipped_by_reason: Record<string, number>;
    list: NodeDecision[];
  };
  stats: Record<string, number>;
  warnings: PassWarning[];
  /** Output fidelity of the quantized model against the original; absent when not measured. */
  fidelity?: EvalReport;
  /** Why fidelity was not measured. */
  fidelity_skipped?: string;
  /** Whether the result stays close to the original, and what to try when it does not. */
  verdict: Verdict;
  /** The gate the result had to pass, when one was given. */
  gate?: { passed: boolean; misses: GateMiss[] };
  /** Nodes --fp32-search kept in float32 in the written model (a config's fp32 rules reproduce it). */
  fp32_kept?: string[];
  /** static-int8 latency placement: layers profiled slower in int8, what was timed, what stays float32. */
  placement?: LatencyPlacementReport;
  /** --fit-output-bias: offsets fitted on the calibration samples and written into the logits' bias (pipeline/fit-output-bias.ts). */
  output_bias?: OutputBiasReport;
  /** Rounds of --fp32-search: nodes kept in float32 and the output SQNR each gave. */
  fp32_search?: { kept: number; output_sqnr_db: JsonNumber; output_cosine: JsonNumber; boundary?: { value: string; op: string; sqnr_db: JsonNumber } }[];
}

/** The shapes pass results come in: `details` (fp16) or a top-level `tensors` list (weight-only). */
type PassOutcome = Omit<PassReport, 'tensors'> & {
  details?: QuantizeDetails;
  tensors?: {
    name: string;
    op?: string;
    node?: string;
    bytesBefore: number;
    bytesAfter: number;
    sqnrDb: number;
  }[];
};

export function buildQuantizeReport(init: {
  method: string;
  bytesBefore: number;
  bytesAfter: number;
  outcome: PassReport;
  /** Passes run for other precisions of a precision config (mixed-precision.ts). */
  extra?: readonly PassReport[];
  fidelity?: EvalReport;
  fidelitySkipped?: string;
  search?: readonly Fp32SearchRound[];
  searchKept?: readonly string[];
  placement?: LatencyPlacementReport;
  verdict: Verdict;
}): QuantizeReport {
  const outcome = init.outcome as unknown as PassOutcome;
  const extra = (init.extra ?? []) as unknown as PassOutcome[];
  const tensors = [outcome, ...extra].flatMap(tensorEntries);
  // Extra passes saw only their own nodes: what they left alone is the main pass's business.
  const list = mergeDecisions([outcome.details?.nodes ?? nodesFromWarnings(outcome), ...extra.map((o) => (o.details?.nodes ?? nodesFromWarnings(o)).filter((n) => n.quantized))]);
  const stats = { ...outcome.stats };
  for (const o of extra) for (const [key, value] of Object.entries(o.stats)) stats[`${o.pass}.${key}`] = value;
  const warnings = [...outcome.warnings, ...extra.flatMap((o) => o.warnings)];
  const pass = [outcome, ...extra].map((o) => o.pass).join(' + ');
  const ms = [outcome, ...extra].reduce((t, o) => t + o.ms, 0);
  const skippedByReason: Record<string, number> = {};
  for (const n of list) if (!n.quantized) skippedByReason[n.reason ?? 'unknown'] = (skippedByReason[n.reason ?? 'unknown'] ?? 0) + 1;
  const changed = tensors.filter((t) => t.bytes_after !== t.bytes_before || t.to !== t.from);
  const sqnrs = changed
    .map((t) => (typeof t.sqnr_db === 'number' ? t.sqnr_db : t.sqnr_db === 'inf' ? Infinity : Number.NaN))
    .filter((x) => !Number.isNaN(x))
    .sort((a, b) => a - b);
  return {
    method: init.method,
    pass,
    ms: Math.round(ms),
    size: sizeChange(init.bytesBefore, init.bytesAfter),
    weights: {
      tensors: changed.length,
      bytes_before: sum(changed.map((t) => t.bytes_before)),
      bytes_after: sum(changed.map((t) => t.bytes_after)),
      min_sqnr_db: sqnrs.length === 0 ? null : jsonNumber(sqnrs[0]),
      median_sqnr_db: sqnrs.length === 0 ? null : jsonNumber(sqnrs[Math.floor(sqnrs.length / 2)]),
    },
    tensors,
    nodes: {
      quantized: list.filter((n) => n.quantized).length,
      skipped: list.filter((n) => !n.quantized).length,
      skipped_by_reason: skippedByReason,
      list,
    },
    stats: snakeCaseKeys(stats),
    warnings,
    ...(init.fidelity === undefined ? {} : { fidelity: init.fidelity }),
    ...(init.fidelitySkipped === undefined ? {} : { fidelity_skipped: init.fidelitySkipped }),
    verdict: init.verdict,
    ...(init.searchKept === undefined ? {} : { fp32_kept: [...init.searchKept] }),
    ...(init.placement === undefined ? {} : { placement: init.placement }),
    ...(init.search === undefined
      ? {}
      : {
          fp32_search: init.search.map((r) => ({
            kept: r.kept,
            output_sqnr_db: jsonNumber(r.outputSqnrDb),
            output_cosine: jsonNumber(r.outputCosine),
            ...(r.boundary === undefined ? {} : { boundary: { value: r.boundary.value, op: r.boundary.op, sqnr_db: jsonNumber(r.boundary.sqnrDb) } }),
          })),
        }),
  };
}

/**
 * One decision per node over several passes: a node any pass quantized counts as quantized (by
 * that pass), otherwise the first pass's decision stands.
 */
function mergeDecisions(lists: readonly NodeDecision[][]): NodeDecision[] {
  const byNode = new Map<string, NodeDecision>();
  for (const list of lists) {
    for (const decision of list) {
      const known = byNode.get(decision.node);
      if (known === undefined || (!known.quantized && decision.quantized)) byNode.set(decision.node, decision);
    }
  }
  return [...byNode.values()];
}

function tensorEntries(outcome: PassOutcome): QuantizeTensorEntry[] {
  return (
    outcome.details?.tensors.map((t) => ({
      name: t.name,
      graph: t.graph,
      from: t.from,
      to: t.to,
      bytes_before: t.bytesBefore,
      bytes_after: t.bytesAfter,
      sqnr_db: jsonNumber(t.sqnrDb),
      overflow: t.overflow,
      ...(t.note === undefined ? {} : { note: t.note }),
    })) ??
    (outcome.tensors ?? []).map((t) => ({
      name: t.name,
      node: t.node,
      bytes_before: t.bytesBefore,
      bytes_after: t.bytesAfter,
      sqnr_db: jsonNumber(t.sqnrDb),
    }))
  );
}

/** Weight-only passes report skipped nodes as warnings naming the node; quantized ones by tensor. */
function nodesFromWarnings(outcome: PassOutcome): NodeDecision[] {
  const quantized = (outcome.tensors ?? []).map(
    (t): NodeDecision => ({
      node: t.node ?? t.name,
      op: t.op ?? '',
      graph: '',
      precision: outcome.pass,
      quantized: true,
    }),
  );
  const skipped = outcome.warnings
    .filter((w) => w.node !== undefined)
    .map(
      (w): NodeDecision => ({
        node: w.node as string,
        op: '',
        graph: '',
        precision: 'float32',
        quantized: false,
        reason: w.message,
      }),
    );
  return [...quantized, ...skipped];
}

/** The report as terminal text: size, weights, nodes, fidelity, the weakest weights, warnings. */
export function formatQuantizeReport(report: QuantizeReport, top = 8): string {
  const lines: string[] = [];
  const w = report.weights;
  lines.push(`method     ${report.method} (${report.pass}, ${report.ms} ms)`);
  lines.push(`size       ${formatSizeChange(report.size)}`);
  lines.push(
    `weights    ${groupDigits(w.tensors)} tensors, ${formatBytes(w.bytes_before)} -> ${formatBytes(w.bytes_after)}; SQNR min ${db(w.min_sqnr_db)}, median ${db(w.median_sqnr_db)}`,
  );
  lines.push(`nodes      ${groupDigits(report.nodes.quantized)} quantized, ${groupDigits(report.nodes.skipped)} left as they were`);
  if (report.stats.gptq_layers !== undefined) {
    lines.push(`gptq       ${report.stats.gptq_layers} layers solved from ${report.stats.calibration_samples} calibration samples in ${report.stats.gptq_rounds} rounds (each on the model quantized before it)${Number(report.stats.gptq_pieces) > 1 ? `, the model run in ${report.stats.gptq_pieces} pieces` : ''}`);
  }
  if (report.stats.awq_layers !== undefined) {
    lines.push(`awq        ${report.stats.awq_layers} layers scaled from ${report.stats.calibration_samples} calibration samples; 1/s of ${report.stats.awq_folded} of ${report.stats.awq_groups} layer inputs folded into their producer, ${report.stats.awq_mul} by an inserted Mul`);
  }
  const st = report.stats;
  if (st.smooth_groups !== undefined) {
    lines.push(`smooth     alpha ${st.smooth_alpha} on ${st.smooth_groups} MatMul/Gemm inputs (${st.calibration_samples} calibration samples): 1/s folded into the producer for ${st.smooth_folded}, an inserted Mul for ${st.smooth_mul}, ${st.smooth_skipped} left; largest max|x| over median per input ${num(st.smooth_outlier_ratio_max)}`);
  }
  if (st.bias_corrected !== undefined) {
    // When the default ('auto') chose it, say why and how to skip it.
    const why = st.bias_correction_auto === 1 ? `; on by default: ${st.calibration_samples} real calibration samples (--no-bias-correction skips it)` : '';
    lines.push(`bias       ${st.bias_corrected} layer biases corrected in ${st.bias_correction_rounds} rounds by depth (${st.bias_created} created) on ${st.bias_correction_samples} samples; largest channel mean shift ${num(st.bias_shift_max)}${why}`);
  } else if (st.bias_correction_auto === 1) {
    lines.push(`bias       not corrected: bias correction is on by default only with at least 4 real (not generated) calibration samples and layers at most 48 deep (one pass each); this run had ${st.calibration_samples} samples, ${st.bias_correction_depth} deep (--bias-correction forces it)`);
  }
  if (Number(st.float_prefix_layers) > 0) {
    const share = st.float_prefix_mac_share === undefined ? '' : ` (${(Number(st.float_prefix_mac_share) * 100).toFixed(1)}% of the multiply-accumulates; by default as many as hold at most ${percent(FLOAT_PREFIX_MAC_SHARE)})`;
    lines.push(`prefix     the first ${st.float_prefix_layers} weighted layers and the nodes before the next stay float32${share}: the start of the network sees the raw input, its ranges move most with the samples (--float-prefix N sets it, 0 quantizes every layer)`);
  } else if (st.float_prefix_mac_share !== undefined) {
    lines.push(`prefix     none: the first weighted layer alone holds more than ${percent(FLOAT_PREFIX_MAC_SHARE)} of the multiply-accumulates (--float-prefix N keeps the first N float32)`);
  }
  if (st.calibrators_measured !== undefined) {
    const chosen = ['minmax', 'expected-minmax', 'percentile', 'entropy', 'mse'].map((name) => `${name} ${st[`chose_${name.replace('-', '_')}`] ?? 0}`).join(', ');
    lines.push(`ranges     per activation by measured output error (--calibrator measured): ${chosen}; ${st.calibrators_measured} with differing candidates measured on ${st.calibrator_choice_samples} held-back calibration samples (${st.calibrator_choice_runs} runs)`);
  }
  if (report.placement !== undefined) lines.push(`placement  ${placementLine(report.placement)}`);
  if (report.output_bias !== undefined) {
    const b = report.output_bias;
    const offsets = Object.entries(b.offsets).map(([c, v]) => `class ${c} ${v >= 0 ? '+' : ''}${v.toFixed(3)}`);
    lines.push(`offsets    ${offsets.length === 0 ? 'none' : offsets.join(', ')} on '${b.value}' (${b.written === 'nothing' ? 'nothing written' : b.written === 'bias' ? 'into its bias' : 'a new Add'}): top-1 agreement with the original on the calibration samples ${(100 * b.agreementBefore).toFixed(2)}% -> ${(100 * b.agreementAfter).toFixed(2)}% of ${b.rows} rows`);
  }
  const reasons = Object.entries(report.nodes.skipped_by_reason).sort((a, b) => b[1] - a[1]);
  for (const [reason, count] of reasons.slice(0, top)) lines.push(`  ${String(count).padStart(5)}  ${reason}`);
  if (reasons.length > top) lines.push(`  (${reasons.length - top} more reasons in --json)`);
  if (report.fidelity !== undefined) {
    lines.push('', `fidelity on ${report.fidelity.samples} sample${report.fidelity.samples === 1 ? '' : 's'} (${report.fidelity.data}):`);
    const rows = Object.entries(report.fidelity.outputs).map(([name, o]) => [
      name,
      cosine(o.cosine),
      db(o.sqnr_db),
      num(o.max_abs),
      o.top1_agreement === undefined ? '' : `${(o.top1_agreement * 100).toFixed(2)}%`,
    ]);
    lines.push(
      ...renderTable(
        [
          { header: 'output' },
          { header: 'cosine', align: 'right' },
          { header: 'SQNR', align: 'right' },
          { header: 'max abs', align: 'right' },
          { header: 'top-1', align: 'right' },
        ],
        rows,
      ),
    );
  }
  if (report.fp32_search !== undefined) {
    lines.push('', 'fp32 search (per-layer: where error starts, kept float with everything before it):');
    for (const [i, r] of report.fp32_search.entries()) {
      const start = r.boundary === undefined ? 'no layer below the tolerance' : `error starts at '${r.boundary.value}' (${r.boundary.op}, ${db(r.boundary.sqnr_db)})`;
      lines.push(`  round ${i}: ${r.kept} nodes kept in float32, output SQNR ${db(r.output_sqnr_db)}; ${start}`);
    }
  }
  if (report.fidelity === undefined && report.fidelity_skipped !== undefined) {
    lines.push('', `fidelity   not measured: ${report.fidelity_skipped}`);
  }
  const weakest = report.tensors
    .filter((t) => t.note === undefined && typeof t.sqnr_db === 'number')
    .sort((a, b) => (a.sqnr_db as number) - (b.sqnr_db as number))
    .slice(0, top);
  if (weakest.length > 0) {
    lines.push('', 'weights with the lowest SQNR:');
    lines.push(
      ...renderTable(
        [{ header: 'tensor' }, { header: 'type' }, { header: 'bytes', align: 'right' }, { header: 'SQNR', align: 'right' }],
        weakest.map((t) => [
          t.name,
          t.from === undefined ? '' : `${t.from} -> ${t.to}`,
          `${formatBytes(t.bytes_before)} -> ${formatBytes(t.bytes_after)}`,
          db(t.sqnr_db),
        ]),
      ),
    );
  }
  for (const warning of report.warnings.slice(0, top)) lines.push(`warning: ${warning.message}`);
  if (report.warnings.length > top) lines.push(`(${report.warnings.length - top} more warnings in --json)`);
  lines.push('', `verdict    ${report.verdict.message}`);
  return `${lines.join('\n')}\n`;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function db(value: JsonNumber): string {
  if (value === null) return '?';
  return typeof value === 'string' ? `${value} dB` : `${value.toFixed(1)} dB`;
}

function cosine(value: JsonNumber): string {
  if (value === null || typeof value === 'string') return String(value ?? '?');
  const six = value.toFixed(6);
  return six === '1.000000' && value !== 1 ? value.toFixed(9) : six;
}

function num(value: JsonNumber): string {
  if (value === null || typeof value === 'string') return String(value ?? '?');
  return value === 0 ? '0' : Math.abs(value) >= 1e-3 && Math.abs(value) < 1e5 ? value.toPrecision(4) : value.toExponential(2);
}

/** What `shrink quantize --json` prints: the report in the common envelope (files, size on disk, environment). */
export type QuantizeCommandReport = ReportEnvelope & QuantizeReport;

/** What the latency placement did, in one line. */
function placementLine(p: LatencyPlacementReport): string {
  const timed = p.timed === undefined ? '' : ` (timed: all-int8 ${p.timed.int8_ms.toPrecision(3)} ms, mixed ${p.timed.mixed_ms.toPrecision(3)} ms)`;
  if (p.kept_float.length > 0) {
    const names = p.kept_float.slice(0, 4).join(', ') + (p.kept_float.length > 4 ? `, ${p.kept_float.length - 4} more` : '');
    const which = p.kept_candidate === undefined ? '' : `: ${p.kept_candidate}`;
    return `${p.kept_float.length} layers kept in float32 for speed, their int8 kernels being slower here${which} (${names})${timed}; --no-placement keeps every layer int8`;
  }
  return `every layer int8: ${p.reason ?? ''}${timed}${p.proposed.length > 0 ? `; profiled slower in int8: ${p.proposed.length} layers` : ''}`;
}

const percent = (share: number): string => `${Math.round(share * 100)}%`;
