// The prune report: what pruning removed and what it bought. Sparsity per weight and overall;
// parameters (all, and the nonzero ones) and bytes dense before and after, and the gzip size of
// the file, because zeros from unstructured and N:M pruning only pay off once the file is
// compressed (onnxruntime has no sparse kernels); MACs before and after; the channel groups of
// structured pruning; recovery training; fidelity and the verdict, as every command reports them.
import { gzipSync } from 'fflate';
import type { EvalReport, JsonNumber } from '../eval/eval-report.js';
import { allConstants } from '../ir/constants.js';
import { dataTypeInfo } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { groupDigits, renderTable } from '../inspect/table.js';
import type { ChannelBlock } from '../graph-edit/channel-groups.js';
import { zeroCount } from '../kernels/sparsity.js';
import { writeModel } from '../onnx/model-io.js';
import { modelBytes } from '../onnx/model-size.js';
import type { GateMiss } from './gate.js';
import type { PassWarning } from './pass.js';
import { formatSizeChange, type SizeChange, sizeChange } from './size-change.js';
import type { Verdict } from './verdict.js';

/** Said in every unstructured and N:M report. */
export const SPARSE_NOTE = 'onnxruntime has no sparse kernels: zeroed weights take the same memory and time; they shrink the compressed download only (see gzip)';

/** Models above this are not gzipped for the report (it would hold the whole file in memory twice). */
const GZIP_LIMIT = 512 * 1024 * 1024;

export interface PruneTensorEntry {
  name: string;
  node: string;
  op: string;
  dims_before: number[];
  dims_after: number[];
  /** Share of the original elements that are gone or zero. */
  sparsity: number;
}

export interface PruneGroupEntry {
  id: number;
  sources: string[];
  channels_before: number;
  channels_after: number;
  /** Why the group kept every channel. */
  kept?: string;
  blocked?: ChannelBlock;
}

export interface WeightCounts {
  /** Elements of float weights. */
  parameters: number;
  /** Of those, not zero. */
  nonzero: number;
}

export interface PruneRecoveryReport {
  kind: 'fine-tune' | 'distill';
  /** How the targets were made: class labels (cross-entropy), the original's softened logits (KL), the original's outputs (MSE). */
  loss: 'cross-entropy' | 'kl' | 'mse' | 'bce';
  /** The inner value distilled (MSE), when it is not a graph output. */
  value?: string;
  epochs: number;
  steps: number;
  samples: number;
  /** Mean loss of each epoch. */
  mean_loss: number[];
  seconds: number;
  /** Top-1 accuracy (percent) before and after training, on the labelled data (fine-tune only). */
  accuracy?: { before: number; after: number };
  /** Rounds of pruning and training (gradual pruning), when more than one. */
  rounds?: number;
  /** How the sparsity rose over the rounds. */
  round_schedule?: 'cubic' | 'linear';
}

export interface PruneReport {
  method: string;
  /** Whether the graph got smaller (channels) or only sparser (magnitude, N:M). */
  structured: boolean;
  settings: Record<string, string | number | boolean>;
  pass: string;
  ms: number;
  size: SizeChange;
  /** gzip -9 of the whole file, before and after; absent above 512 MiB. */
  gzip?: SizeChange;
  parameters: { before: number; after: number; nonzero_before: number; nonzero_after: number };
  /** 1 - nonzero after / parameters before, over the pruned weights / over all float weights. */
  sparsity: { pruned_weights: number; model: number };
  macs?: { before: number; after: number; ratio: number; input_shapes: Record<string, number[]>; uncounted?: string[] };
  macs_skipped?: string;
  tensors: PruneTensorEntry[];
  groups?: PruneGroupEntry[];
  skipped: { node: string; reason: string }[];
  /** Channels: layers whose biases absorbed the means of the channels removed from their inputs. */
  compensation?: { layers: number; fitted?: number; samples: number };
  reconstruction?: { layers: number; rounds: number; samples: number };
  /** --method layers: the nodes removed, what kind, and the value their readers read now. */
  dropped?: { node: string; op: string; kind: 'residual' | 'layer'; kept: string }[];
  note?: string;
  stats: Record<string, number>;
  warnings: PassWarning[];
  recovery?: PruneRecoveryReport;
  fidelity?: EvalReport;
  fidelity_skipped?: string;
  verdict: Verdict;
  gate?: { passed: boolean; misses: GateMiss[] };
}

/** Float weight elements of a model and how many are nonzero (every graph, initializers and Constant nodes). */
export function weightCounts(model: Model): WeightCounts {
  let parameters = 0;
  let zeros = 0;
  for (const { tensor } of allConstants(model.graph)) {
    if (!dataTypeInfo(tensor.dataType).isFloat || tensor.isExternal) continue;
    parameters += tensor.elementCount;
    zeros += zeroCount(tensor.data() as Float32Array);
  }
  return { parameters, nonzero: parameters - zeros };
}

/** gzip -9 of the model file, or undefined above 512 MiB. */
export function gzipBytes(model: Model): number | undefined {
  if (modelBytes(model) > GZIP_LIMIT) return undefined;
  return gzipSync(writeModel(model), { level: 9 }).byteLength;
}

export function gzipChange(before: Model, after: Model): SizeChange | undefined {
  const a = gzipBytes(before);
  const b = gzipBytes(after);
  return a === undefined || b === undefined ? undefined : sizeChange(a, b);
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

function cosine(v: JsonNumber): string {
  return typeof v === 'number' ? v.toFixed(6) : String(v);
}

function db(v: JsonNumber): string {
  return typeof v === 'number' ? `${v.toFixed(2)} dB` : v === 'inf' ? 'inf dB' : String(v);
}

function count(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}

/** The report as terminal text. */
/** The report's line for recovery training (prune and lowrank). */
export function recoveryLine(r: PruneRecoveryReport): string {
  const acc = r.accuracy === undefined ? '' : `; accuracy ${r.accuracy.before.toFixed(2)}% -> ${r.accuracy.after.toFixed(2)}%`;
  const rounds = r.rounds === undefined ? '' : ` in ${r.rounds} rounds of pruning (sparsity rising on a ${r.round_schedule ?? 'cubic'} schedule)`;
  return `recovery   ${r.kind} (${r.loss}${r.value === undefined ? '' : ` on '${r.value}'`}) ${r.epochs} epoch${r.epochs === 1 ? '' : 's'}${rounds}, ${r.steps} steps on ${groupDigits(r.samples)} samples, ${r.seconds.toFixed(1)} s; mean loss ${r.mean_loss.map((l) => l.toFixed(4)).join(', ')}${acc}`;
}

export function formatPruneReport(report: PruneReport, top = 8): string {
  const lines: string[] = [];
  const settings = Object.entries(report.settings).map(([k, v]) => `${k} ${v}`).join(', ');
  lines.push(`method     ${report.method} (${settings}; ${report.ms} ms)`);
  lines.push(`size       ${formatSizeChange(report.size)}`);
  if (report.gzip !== undefined) lines.push(`gzip -9    ${formatSizeChange(report.gzip)}`);
  const p = report.parameters;
  lines.push(`parameters ${groupDigits(p.before)} -> ${groupDigits(p.after)}, nonzero ${groupDigits(p.nonzero_before)} -> ${groupDigits(p.nonzero_after)} (pruned weights ${percent(report.sparsity.pruned_weights)} sparse, model ${percent(report.sparsity.model)})`);
  if (report.macs !== undefined) {
    const shapes = Object.entries(report.macs.input_shapes).map(([n, d]) => `${n} [${d}]`).join(', ');
    const uncounted = report.macs.uncounted === undefined ? '' : ` (${report.macs.uncounted.length} layers of unknown size not counted)`;
    lines.push(`MACs       ${count(report.macs.before)} -> ${count(report.macs.after)} (${report.macs.ratio.toFixed(3)}x) for ${shapes}${uncounted}`);
  } else if (report.macs_skipped !== undefined) lines.push(`MACs       not counted: ${report.macs_skipped}`);
  if (report.groups !== undefined) {
    const pruned = report.groups.filter((g) => g.channels_after < g.channels_before);
    const removed = report.groups.reduce((n, g) => n + g.channels_before - g.channels_after, 0);
    const total = report.groups.reduce((n, g) => n + g.channels_before, 0);
    lines.push(`groups     ${pruned.length} of ${report.groups.length} pruned, ${groupDigits(removed)} of ${groupDigits(total)} channels removed`);
    // Every group kept whole is listed (with why); pruned ones up to a screenful.
    const kept = report.groups.filter((g) => g.channels_after === g.channels_before);
    const shown = [...report.groups.filter((g) => g.channels_after < g.channels_before).slice(0, Math.max(4, top * 2 - kept.length)), ...kept].sort((a, b) => a.id - b.id);
    const rows = shown.map((g) => [
      String(g.id),
      g.sources.join(', ').slice(0, 48),
      `${g.channels_before} -> ${g.channels_after}`,
      g.blocked !== undefined ? `${g.blocked.reason} (at '${g.blocked.node}')` : (g.kept ?? ''),
    ]);
    lines.push(...renderTable([{ header: 'group' }, { header: 'layers' }, { header: 'channels', align: 'right' }, { header: 'kept whole because' }], rows));
    if (report.groups.length > shown.length) lines.push(`  (${report.groups.length - shown.length} more pruned groups in --json)`);
    if (report.reconstruction !== undefined) {
      const { layers, rounds, samples } = report.reconstruction;
      lines.push(`reconstructed ${layers} layers by least squares to the original's outputs of each, in ${rounds} rounds by depth (${samples} samples)`);
    }
    if (report.compensation !== undefined) {
      const { layers, fitted = 0, samples } = report.compensation;
      lines.push(
        fitted > 0
          ? `compensated removed channels in ${layers} layers: ${fitted} by least-squares fits from the kept channels (weights and biases), ${layers - fitted} by their means (biases) (${samples} samples)`
          : `compensated the means of removed channels into the biases of ${layers} layers (${samples} samples)`,
      );
    }
  } else if (report.dropped !== undefined) {
    lines.push(`dropped    ${report.dropped.length} layers, ${report.stats.nodes_removed} nodes removed in all`);
    lines.push(...renderTable([{ header: 'node' }, { header: 'op' }, { header: 'removed' }, { header: 'readers now read' }], report.dropped.map((d) => [d.node, d.op, d.kind === 'residual' ? 'the block (its branch)' : 'the layer', d.kept])));
  } else {
    const rows = [...report.tensors]
      .sort((a, b) => b.sparsity - a.sparsity)
      .slice(0, top)
      .map((t) => [t.name, t.op, `[${t.dims_before}]`, percent(t.sparsity)]);
    lines.push(`weights    ${report.tensors.length} pruned${report.skipped.length === 0 ? '' : `, ${report.skipped.length} layers left alone`}`);
    lines.push(...renderTable([{ header: 'weight' }, { header: 'op' }, { header: 'dims' }, { header: 'sparsity', align: 'right' }], rows));
    if (report.tensors.length > top) lines.push(`  (${report.tensors.length - top} more in --json)`);
  }
  if (report.stats.calibration_samples !== undefined) lines.push(`calibrated on ${report.stats.calibration_samples} samples, in ${report.stats.rounds} round${report.stats.rounds === 1 ? '' : 's'} (each layer on the model pruned before it)`);
  if (report.note !== undefined) lines.push(`note       ${report.note}`);
  if (report.recovery !== undefined) lines.push(recoveryLine(report.recovery));
  if (report.fidelity !== undefined) {
    const f = report.fidelity;
    lines.push('', `fidelity on ${f.samples} sample${f.samples === 1 ? '' : 's'} (${f.data}):`);
    const rows = Object.entries(f.outputs).map(([name, o]) => [name, cosine(o.cosine), db(o.sqnr_db), o.top1_agreement === undefined ? '' : percent(o.top1_agreement)]);
    lines.push(...renderTable([{ header: 'output' }, { header: 'cosine', align: 'right' }, { header: 'SQNR', align: 'right' }, { header: 'top-1', align: 'right' }], rows));
    if (f.accuracy !== undefined) lines.push(`  accuracy ${percent(f.accuracy.original)} -> ${percent(f.accuracy.candidate)} on ${f.accuracy.total} labelled samples`);
  } else if (report.fidelity_skipped !== undefined) lines.push('', `fidelity   not measured: ${report.fidelity_skipped}`);
  lines.push(`verdict    ${report.verdict.message}`);
  for (const w of report.warnings) lines.push(`warning    ${w.message}`);
  return `${lines.join('\n')}\n`;
}
