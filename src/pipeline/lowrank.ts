// The low-rank recipe step: the lowrank pass (methods/lowrank), optionally training afterwards
// (fine-tuning with labels, distillation from the original without, as the prune step recovers),
// then the proof: fidelity against the original with each factored layer's own output error
// (per-layer comparison, the layer fed the original's activations), the verdict and a gate. Takes a
// Model and returns a new one (the input is not changed) with a report. The CLI and a page both
// factor through this function.
import { compareModels } from '../eval/compare.js';
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import { checkLowRankSettings, type LowRankDetails, type LowRankOptions, lowRankPass } from '../methods/lowrank/lowrank.js';
import { modelBytes } from '../onnx/model-size.js';
import type { RecipeContext } from './context.js';
import { debugPhase } from './debug-phase.js';
import { comparisonWontFit, type FidelityOptions } from './fidelity.js';
import { checkGate, type Gate, GateFailedError, isEmptyGate } from './gate.js';
import { LOWRANK_NOTE, type LowRankLayerEntry, type LowRankReport } from './lowrank-report.js';
import { runPass } from './pass.js';
import { type RecoveryData, type RecoveryReport, type RecoverySettings, recoverByTraining } from './recovery.js';
import { sizeChange } from './size-change.js';
import { type VerdictThresholds, verdictOf } from './verdict.js';

export interface LowRankStepOptions extends LowRankOptions {
  /** Training data for `recovery`: one field per model input, class ids optional. */
  data?: RecoveryData;
  /** Train after factoring on `data`. */
  recovery?: RecoverySettings;
  /** The output trained and compared (default the first). */
  output?: string;
  /** Where and how to measure the result; without it fidelity is not measured (`fidelitySkipped` says why). */
  fidelity?: FidelityOptions;
  fidelitySkipped?: string;
  gate?: Gate;
  verdict?: VerdictThresholds;
}

export interface LowRankResult {
  model: Model;
  report: LowRankReport;
}

export { checkLowRankSettings };

/** Factors a copy of `model`; throws on bad settings, and GateFailedError when `options.gate` is missed. */
export async function lowRank(model: Model, options: LowRankStepOptions, ctx: RecipeContext): Promise<LowRankResult> {
  checkLowRankSettings(options);
  const { data, recovery, output: given, fidelity, fidelitySkipped, gate, verdict, ...passOptions } = options;
  if (recovery !== undefined && data === undefined) throw new Error('lowrank: training after factoring needs data: give --data');
  const output = given ?? model.graph.outputs[0]?.name;
  const candidate = model.clone();
  const outcome = await debugPhase(ctx.debug, 'lowrank: factor', () => runPass(lowRankPass, candidate, { threads: ctx.threads, ...passOptions }, ctx));
  const details = (outcome as typeof outcome & { details: LowRankDetails }).details;

  let result = candidate;
  let recovered: RecoveryReport | undefined;
  if (recovery !== undefined && data !== undefined && details.layers.length > 0) {
    const trained = await debugPhase(ctx.debug, 'lowrank: recovery', () => recoverByTraining(model, result, data, recovery, output, ctx));
    result = trained.model;
    recovered = trained.report;
  }

  const tooLarge = fidelity === undefined ? undefined : comparisonWontFit(model, result, ctx);
  const measured = fidelity === undefined || tooLarge !== undefined ? undefined : await measure(model, result, fidelity, details, ctx);
  const skipped = fidelity === undefined ? (fidelitySkipped ?? 'no samples given') : tooLarge;
  const layers: LowRankLayerEntry[] = details.layers.map((l) => {
    const own = measured?.layers.get(l.values[0]);
    return {
      weight: l.weight,
      nodes: l.nodes,
      op: l.op,
      dims: l.dims,
      matrix: l.matrix,
      rank: l.rank,
      full_rank: l.fullRank,
      saving_rank: l.savingRank,
      parameters_before: l.parametersBefore,
      parameters_after: l.parametersAfter,
      energy_kept: round6(l.energyKept),
      relative_error: round6(l.relativeError),
      svd_ms: Math.round(l.svdMs),
      ...(own === undefined ? {} : { isolated_sqnr_db: own.isolated, cosine: own.cosine }),
    };
  });
  const settings: Record<string, number> = options.energy !== undefined ? { energy: options.energy } : options.rank !== undefined ? { rank: options.rank } : { ratio: options.ratio as number };
  const report: LowRankReport = {
    method: 'lowrank',
    settings,
    pass: outcome.pass,
    ms: Math.round(outcome.ms),
    engine: details.engine,
    size: sizeChange(modelBytes(model), modelBytes(result)),
    parameters: { before: details.parameters.before, after: details.parameters.after, ratio: Number((details.parameters.after / Math.max(1, details.parameters.before)).toFixed(4)) },
    ...(details.budget === undefined ? {} : { budget: details.budget }),
    layers,
    skipped: details.skipped,
    note: LOWRANK_NOTE,
    warnings: outcome.warnings,
    verdict: { status: 'unchecked', message: '', hints: [] },
  };
  if (recovered !== undefined) report.recovery = recovered;
  if (measured !== undefined) report.fidelity = measured.report;
  if (skipped !== undefined) report.fidelity_skipped = skipped;
  report.verdict = verdictOf(measured?.report, { thresholds: verdict, hints: lowRankHints(options), why: skipped });
  if (gate !== undefined && !isEmptyGate(gate)) {
    const misses = checkGate(gate, measured?.report, modelBytes(result) / modelBytes(model));
    report.gate = { passed: misses.length === 0, misses };
    if (misses.length > 0) throw new GateFailedError(misses, 'lowrank gate');
  }
  return { model: result, report };
}

/**
 * The comparison with the original, per layer too: each factored layer's output value keeps its
 * name, so the per-layer view gives its own error (isolated) and the cosine it reaches in the
 * whole model. Only the factored layers' entries are kept; the output report is the usual one.
 */
async function measure(original: Model, candidate: Model, fidelity: FidelityOptions, details: LowRankDetails, ctx: RecipeContext): Promise<{ report: EvalReport; layers: Map<string, { isolated: EvalReport['outputs'][string]['cosine']; cosine: EvalReport['outputs'][string]['cosine'] }> }> {
  const report = await compareModels(ctx.ort, original, candidate, fidelity.samples, {
    limit: fidelity.limit,
    batch: fidelity.batch,
    labels: fidelity.labels,
    labelOutput: fidelity.labelOutput,
    threads: ctx.threads,
    progress: ctx.progress,
    perLayer: details.layers.length > 0,
  });
  const wanted = new Set(details.layers.map((l) => l.values[0]));
  const layers = new Map<string, { isolated: EvalReport['outputs'][string]['cosine']; cosine: EvalReport['outputs'][string]['cosine'] }>();
  for (const l of report.layers ?? []) if (wanted.has(l.value)) layers.set(l.value, { isolated: l.isolated_sqnr_db, cosine: l.cosine });
  const { layers: _all, layer_notes: _notes, ...rest } = report;
  return { report: rest, layers };
}

const round6 = (x: number) => Number(x.toFixed(6));

/** Settings worth trying when factoring damaged the model (CLI spelling). */
export function lowRankHints(options: Pick<LowRankStepOptions, 'energy' | 'rank' | 'ratio' | 'recovery' | 'data'>): string[] {
  const hints: string[] = [];
  if (options.recovery === undefined) hints.push(options.data?.labels === undefined ? '--data D --epochs 1 (distil from the original)' : '--epochs 1 (fine-tune on --data)');
  else hints.push(`more --epochs (${options.recovery.epochs} now)`);
  if (options.energy !== undefined && options.energy < 1) hints.push(`--energy ${Number((1 - (1 - options.energy) / 2).toFixed(4))}`);
  if (options.rank !== undefined) hints.push(`--rank ${options.rank * 2}`);
  if (options.ratio !== undefined) hints.push(`--ratio ${Number(Math.min(0.95, options.ratio + (1 - options.ratio) / 2).toFixed(2))}`);
  return hints;
}
