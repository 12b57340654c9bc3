// The cluster report: per weight its bits, codebooks, centroids, SQNR, and bytes dense (float32)
// against codes + codebook (as written: a uint8 per code; and packed at `bits` per code, what the
// pack stores before entropy coding); the file before and after, dense and gzip -9 (uint8 codes of
// few distinct values compress well, so gzip shows most of what clustering buys without the pack);
// centroid fine-tuning; fidelity and the verdict, as every command reports them.
import type { EvalReport, JsonNumber } from '../eval/eval-report.js';
import { formatBytes, groupDigits, renderTable } from '../inspect/table.js';
import type { Model } from '../ir/model.js';
import type { ClusterDetails } from '../methods/cluster/cluster.js';
import { modelBytes } from '../onnx/model-size.js';
import type { ClusterStepOptions } from './cluster.js';
import type { GateMiss } from './gate.js';
import type { PassReport, PassWarning } from './pass.js';
import { gzipChange } from './prune-report.js';
import { formatSizeChange, type SizeChange, sizeChange } from './size-change.js';
import type { Verdict } from './verdict.js';

export interface ClusterTensorEntry {
  name: string;
  node: string;
  op: string;
  dims: number[];
  bits: number;
  codebooks: number;
  centroids: number;
  sqnr_db: JsonNumber;
  bytes_dense: number;
  bytes_stored: number;
  bytes_packed: number;
  /** Exact zeros kept exact (pruned tensor), and the share of zeros before and after. */
  zeros_kept: boolean;
  sparsity_before: number;
  sparsity_after: number;
  importance: boolean;
  /** Codes chosen by the OBS sweep (codes 'obs'), not the nearest centroid. */
  obs?: boolean;
  /** 'gather' (codes + codebook) or 'dequantize-linear' (a uniform codebook). */
  form: string;
  codes: string;
  codebook: string;
}

export interface ClusterFinetuneReport {
  kind: 'fine-tune' | 'distill';
  loss: 'cross-entropy' | 'kl' | 'mse';
  /** The inner value distilled (a graph output while training), when not the model's output. */
  value?: string;
  /** Codebooks trained and the centroids in them. */
  codebooks: number;
  centroids: number;
  /** Weights trained under fake quantization (uniform codes). */
  weights?: number;
  epochs: number;
  steps: number;
  samples: number;
  /** Per epoch; with `runs`, the mean over the runs. */
  mean_loss: number[];
  /** Trainings averaged (average_runs), and each one's loss per epoch. */
  runs?: number;
  run_losses?: number[][];
  seconds: number;
  /** Top-1 accuracy (percent) before and after, on the training data (fine-tune only). */
  accuracy?: { before: number; after: number };
}

export interface ClusterReport {
  method: 'cluster';
  settings: Record<string, string | number | boolean>;
  pass: string;
  ms: number;
  size: SizeChange;
  /** gzip -9 of the whole file, before and after; absent above 512 MiB. */
  gzip?: SizeChange;
  /** Over the clustered weights. */
  weights: { dense: number; stored: number; packed: number; sqnr_db: JsonNumber };
  tensors: ClusterTensorEntry[];
  skipped: { node: string; reason: string }[];
  importance?: { samples: number; unmeasured: { tensor: string; reason: string }[] };
  finetune?: ClusterFinetuneReport;
  stats: Record<string, number>;
  warnings: PassWarning[];
  fidelity?: EvalReport;
  fidelity_skipped?: string;
  verdict: Verdict;
  gate?: { passed: boolean; misses: GateMiss[] };
}

const db = (x: number): JsonNumber => (Number.isFinite(x) ? Number(x.toFixed(2)) : x > 0 ? 'inf' : '-inf');
const share = (zeros: number, n: number) => Number((zeros / Math.max(1, n)).toFixed(4));

export function buildClusterReport(before: Model, after: Model, options: ClusterStepOptions, outcome: PassReport & { details: ClusterDetails }): ClusterReport {
  const details = outcome.details;
  const grouping = options.grouping === 'channel' ? 'channel' : options.channelsPerGroup !== undefined && options.channelsPerGroup > 1 ? 'group' : 'tensor';
  const settings: Record<string, string | number | boolean> = { bits: options.bits, grouping, init: options.init ?? 'linear', importance: options.importance === true };
  if (grouping === 'group') settings.channels_per_group = options.channelsPerGroup as number;
  if (options.keepZeros !== undefined && options.keepZeros !== 'auto') settings.keep_zeros = options.keepZeros;
  if (options.halfCodebooks === true) settings.half_codebooks = true;
  if (options.codebookMantissaBits !== undefined) settings.codebook_mantissa_bits = options.codebookMantissaBits;
  if (options.step !== undefined) settings.step = options.step;
  if (options.codes === 'obs') settings.codes = 'obs';
  // Per-layer settings as the command line spells them: 'PATTERN bits 5 step 0.2 group 64; ...'.
  if (options.layers !== undefined && options.layers.length > 0) settings.layers = options.layers.map((l) => [l.pattern, l.bits === undefined ? '' : ` bits ${l.bits}`, l.step === undefined ? '' : ` step ${l.step}`, l.group === undefined ? '' : ` group ${l.group}`, l.mantissaBits === undefined ? '' : ` mantissa ${l.mantissaBits}`].join('')).join('; ');
  // Whole-weight SQNR: energies add up over tensors (from each tensor's SQNR and its energy is not
  // recoverable, so weigh by dense size: a fair summary for a table, exact per tensor below).
  const tensors = details.tensors.map((t): ClusterTensorEntry => {
    const n = t.dims.reduce((a, b) => a * b, 1);
    return {
      name: t.name,
      node: t.node,
      op: t.op,
      dims: t.dims,
      bits: t.bits,
      codebooks: t.groups,
      centroids: t.centroids,
      sqnr_db: db(t.sqnrDb),
      bytes_dense: t.bytesDense,
      bytes_stored: t.bytesStored,
      bytes_packed: t.bytesPacked,
      zeros_kept: t.zerosKept,
      sparsity_before: share(t.zerosBefore, n),
      sparsity_after: share(t.zerosAfter, n),
      importance: t.importance,
      ...(t.obs === true ? { obs: true } : {}),
      form: t.form,
      codes: t.codes,
      codebook: t.codebook,
    };
  });
  const dense = details.tensors.reduce((n, t) => n + t.bytesDense, 0);
  const finite = details.tensors.filter((t) => Number.isFinite(t.sqnrDb));
  const meanDb = finite.length === 0 ? Infinity : finite.reduce((s, t) => s + t.sqnrDb * t.bytesDense, 0) / Math.max(1, finite.reduce((n, t) => n + t.bytesDense, 0));
  return {
    method: 'cluster',
    settings,
    pass: outcome.pass,
    ms: Math.round(outcome.ms),
    size: sizeChange(modelBytes(before), modelBytes(after)),
    ...optional('gzip', gzipChange(before, after)),
    weights: { dense, stored: details.tensors.reduce((n, t) => n + t.bytesStored, 0), packed: details.tensors.reduce((n, t) => n + t.bytesPacked, 0), sqnr_db: db(meanDb) },
    tensors,
    skipped: details.skipped,
    ...(details.importance === undefined ? {} : { importance: details.importance }),
    stats: Object.fromEntries(Object.entries(outcome.stats).map(([k, v]) => [k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase(), v])),
    warnings: outcome.warnings,
    verdict: { status: 'unchecked', message: '', hints: [] },
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;
const cosine = (v: JsonNumber) => (typeof v === 'number' ? v.toFixed(6) : String(v));
const dbText = (v: JsonNumber) => (typeof v === 'number' ? `${v.toFixed(2)} dB` : `${v} dB`);

/** '4 bits', or the spread of mixed precision: '3-6 bits'. */
function bitsText(tensors: readonly { bits: number }[], fallback: unknown): string {
  if (tensors.length === 0) return `${fallback} bits`;
  const low = Math.min(...tensors.map((t) => t.bits));
  const high = Math.max(...tensors.map((t) => t.bits));
  return low === high ? `${low} bits` : `${low}-${high} bits`;
}

/** The report as terminal text. */
export function formatClusterReport(report: ClusterReport, top = 8): string {
  const lines: string[] = [];
  const settings = Object.entries(report.settings).map(([k, v]) => `${k} ${v}`).join(', ');
  lines.push(`method     cluster (${settings}; ${report.ms} ms)`);
  lines.push(`size       ${formatSizeChange(report.size)}`);
  if (report.gzip !== undefined) lines.push(`gzip -9    ${formatSizeChange(report.gzip)}`);
  const w = report.weights;
  lines.push(`weights    ${report.tensors.length} clustered: ${formatBytes(w.dense)} float32 -> ${formatBytes(w.stored)} uint8 codes + codebooks (${formatBytes(w.packed)} with codes at ${bitsText(report.tensors, report.settings.bits)}); SQNR ${dbText(w.sqnr_db)} (size-weighted mean)${report.skipped.length === 0 ? '' : `; ${report.skipped.length} layers left alone`}`);
  const rows = [...report.tensors]
    .sort((a, b) => b.bytes_dense - a.bytes_dense)
    .slice(0, top)
    .map((t) => [t.name, t.op, `[${t.dims}]`, String(t.codebooks), String(t.centroids), dbText(t.sqnr_db), `${formatBytes(t.bytes_dense)} -> ${formatBytes(t.bytes_stored)}`, t.zeros_kept ? `${percent(t.sparsity_before)} -> ${percent(t.sparsity_after)}` : '', t.form === 'gather' ? '' : 'DequantizeLinear']);
  lines.push(
    ...renderTable(
      [{ header: 'weight' }, { header: 'op' }, { header: 'dims' }, { header: 'books', align: 'right' }, { header: 'centroids', align: 'right' }, { header: 'SQNR', align: 'right' }, { header: 'bytes', align: 'right' }, { header: 'zeros kept' }, { header: 'form' }],
      rows,
    ),
  );
  if (report.tensors.length > top) lines.push(`  (${report.tensors.length - top} more in --json)`);
  for (const s of report.skipped.slice(0, 4)) lines.push(`  left alone: ${s.node}: ${s.reason}`);
  if (report.skipped.length > 4) lines.push(`  (${report.skipped.length - 4} more left alone in --json)`);
  if (report.importance !== undefined) lines.push(`importance activation mean squares on ${report.importance.samples} samples${report.importance.unmeasured.length === 0 ? '' : ` (${report.importance.unmeasured.length} weights with equal weights)`}`);
  const obs = report.stats.obs_layers;
  if (obs !== undefined) lines.push(`codes      OBS sweep (GPTQ's) on ${report.stats.obs_samples} calibration samples: ${obs} of ${report.tensors.length} weights in ${report.stats.obs_rounds} rounds by depth${report.stats.obs_asymmetric === 1 ? ", each fitted to the original model's outputs of its layer" : ''} (the SQNR above is of the weights, which the sweep trades for the layers' outputs)${obs < report.tensors.length ? '; the rest nearest' : ''}`);
  if (report.finetune !== undefined) {
    const f = report.finetune;
    const acc = f.accuracy === undefined ? '' : `; accuracy ${f.accuracy.before.toFixed(2)}% -> ${f.accuracy.after.toFixed(2)}%`;
    lines.push(`centroids  ${f.kind} (${f.loss}${f.value === undefined ? '' : ` on '${f.value}'`}) of ${groupDigits(f.centroids)} centroids in ${f.codebooks} codebooks, ${f.epochs} epoch${f.epochs === 1 ? '' : 's'}${f.runs === undefined ? '' : ` x ${f.runs} runs averaged`}, ${f.steps} steps on ${groupDigits(f.samples)} samples, ${f.seconds.toFixed(1)} s; mean loss ${f.mean_loss.map((l) => l.toFixed(4)).join(', ')}${acc}`);
  }
  if (report.fidelity !== undefined) {
    const f = report.fidelity;
    lines.push('', `fidelity on ${f.samples} sample${f.samples === 1 ? '' : 's'} (${f.data}):`);
    const outputs = Object.entries(f.outputs).map(([name, o]) => [name, cosine(o.cosine), dbText(o.sqnr_db), o.top1_agreement === undefined ? '' : percent(o.top1_agreement)]);
    lines.push(...renderTable([{ header: 'output' }, { header: 'cosine', align: 'right' }, { header: 'SQNR', align: 'right' }, { header: 'top-1', align: 'right' }], outputs));
    if (f.accuracy !== undefined) lines.push(`  accuracy ${percent(f.accuracy.original)} -> ${percent(f.accuracy.candidate)} on ${f.accuracy.total} labelled samples`);
  } else if (report.fidelity_skipped !== undefined) lines.push('', `fidelity   not measured: ${report.fidelity_skipped}`);
  lines.push(`verdict    ${report.verdict.message}`);
  for (const warning of report.warnings) lines.push(`warning    ${warning.message}`);
  return `${lines.join('\n')}\n`;
}
