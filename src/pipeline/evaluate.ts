// The evaluate recipe step: a candidate against its original on the same samples (fidelity of
// every output, accuracy against labels, a user's metric, per-layer error), with the verdict and
// an optional gate, so `shrink eval` can serve as a CI check (exit 3 when the gate is missed).
import type { CustomMetric } from '../eval/metrics.js';
import { compareModels } from '../eval/compare.js';
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import type { RecipeContext } from './context.js';
import type { FidelityOptions } from './fidelity.js';
import { checkGate, type Gate, GateFailedError, type GateMiss, isEmptyGate } from './gate.js';
import { type Verdict, type VerdictThresholds, verdictOf } from './verdict.js';

export interface EvaluateOptions extends FidelityOptions {
  /** What to call the two models in errors (the CLI gives their files). */
  names?: { original?: string; candidate?: string };
  /** Compare every intermediate value and rank layers by the error they add. */
  perLayer?: boolean;
  customMetric?: CustomMetric;
  customMetricName?: string;
  gate?: Gate;
  verdict?: VerdictThresholds;
}

export interface EvaluateReport extends EvalReport {
  verdict: Verdict;
  gate?: { passed: boolean; misses: GateMiss[] };
}

/** Measures `candidate` against `original`; throws GateFailedError (with the report) when the gate is missed. */
export async function evaluate(original: Model, candidate: Model, options: EvaluateOptions, ctx: RecipeContext): Promise<EvaluateReport> {
  const measured = await compareModels(ctx.ort, original, candidate, options.samples, {
    limit: options.limit,
    batch: options.batch,
    threads: ctx.threads,
    labels: options.labels,
    labelOutput: options.labelOutput,
    customMetric: options.customMetric,
    customMetricName: options.customMetricName,
    perLayer: options.perLayer,
    names: options.names,
    progress: ctx.progress,
  });
  const report: EvaluateReport = { ...measured, verdict: verdictOf(measured, { thresholds: options.verdict }) };
  if (options.gate !== undefined && !isEmptyGate(options.gate)) {
    const misses = checkGate(options.gate, measured);
    report.gate = { passed: misses.length === 0, misses };
    if (misses.length > 0) throw new EvalGateError(misses, report);
  }
  return report;
}

/** A missed gate, carrying the full report so a CI log can still show the numbers. */
export class EvalGateError extends GateFailedError {
  constructor(
    misses: readonly GateMiss[],
    readonly report: EvaluateReport,
  ) {
    super(misses, 'eval gate');
    this.message = this.message.replace(/; nothing was written$/, '');
  }
}
