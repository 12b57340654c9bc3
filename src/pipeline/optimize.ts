// The optimize recipe step: checks the input (a broken graph, or with validation an op onnxruntime
// cannot load, fails with one line naming the node), runs the optimizer registry on a copy
// crediting each pass with the nodes and weight bytes it removed, then proves the result: both
// models run on the same samples and every output must agree within the exact-rewrite tolerance.
// A result whose outputs moved is refused, naming the pass that moved them (blame-pass.ts).
import type { EvalReport, JsonNumber } from '../eval/eval-report.js';
import type { SampleSource } from '../eval/samples.js';
import { allConstants } from '../ir/constants.js';
import type { Model } from '../ir/model.js';
import { modelBytes } from '../onnx/model-size.js';
import { blamePass, changedOutputs, compareOnSamples, describeDifferences, outputDifferences } from '../optimize/blame-pass.js';
import { checkModelForOptimize, ModelLoadError } from '../optimize/check-model.js';
import { optimizeModel } from '../optimize/optimize.js';
import type { OptimizeLevel } from '../optimize/passes.js';
import { totalNodes } from '../optimize/util/graph-queries.js';
import { ortCause } from '../runtime/ort-errors.js';
import type { RecipeContext } from './context.js';
import { comparisonWontFit, measureFidelity } from './fidelity.js';
import type { PassReport, PassWarning } from './pass.js';
import { snakeCaseKeys } from './report-envelope.js';
import { type SizeChange, sizeChange } from './size-change.js';

export interface OptimizeStepOptions {
  /** 'basic' (remove what does nothing) or 'full' (also fold and fuse; default). */
  level?: OptimizeLevel;
  /** Exactly these passes (registry names). */
  passes?: readonly string[];
  /** Leave these passes out. */
  skip?: readonly string[];
  /** Samples to validate on; without them the result is not run (a warning says so). */
  validate?: { samples: SampleSource; limit?: number };
  /**
   * What onnxruntime loads to check the input: by default the model itself; the CLI passes the
   * input's path, which spares staging it again.
   */
  source?: string;
}

/** What one pass did, summed over the optimizer's rounds. */
export interface PassSummary {
  pass: string;
  /** Times the pass ran (once per round). */
  runs: number;
  ms: number;
  nodes_removed: number;
  /** Bytes of constant tensors (initializers and Constant nodes) the pass removed. */
  bytes_saved: number;
  /** The pass's own non-zero counters (batch_norms_folded, ...). */
  stats: Record<string, number>;
  warnings: PassWarning[];
}

export interface OutputsFidelity {
  samples: number;
  data: string;
  /** Worst over outputs. */
  max_abs: JsonNumber;
  /** Lowest over outputs. */
  cosine: JsonNumber;
  outputs: Record<string, { max_abs: JsonNumber; cosine: JsonNumber; relative: JsonNumber }>;
}

export interface OptimizeReport {
  level: OptimizeLevel | 'custom';
  passes: PassSummary[];
  nodes: { before: number; after: number };
  size: SizeChange;
  /** null when the result was not validated. */
  fidelity: OutputsFidelity | null;
  warnings: PassWarning[];
}

export interface OptimizeResult {
  model: Model;
  report: OptimizeReport;
}

/** Optimizes a copy of `model`; throws (naming the pass) when the result's outputs moved. */
export async function optimize(model: Model, options: OptimizeStepOptions, ctx: RecipeContext): Promise<OptimizeResult> {
  const warnings: PassWarning[] = [];
  // The optimizer removes and folds, so the result is at most the input's size: twice the input must fit.
  const tooLarge = options.validate === undefined ? undefined : comparisonWontFit(model, model, ctx);
  if (tooLarge !== undefined) warnings.push({ code: 'too-large-to-validate', message: `the optimized model was not run against the original: ${tooLarge}` });
  const validate = tooLarge === undefined ? options.validate : undefined;
  try {
    warnings.push(...(await checkModelForOptimize(model, validate === undefined ? {} : { ort: ctx.ort, source: options.source ?? model })));
  } catch (error) {
    // Without the check the model is optimized but never run: the way to clean a custom-op model.
    if (error instanceof ModelLoadError) throw new Error(`${error.message}; to optimize it without running it, use --no-validate`);
    throw error;
  }
  const candidate = model.clone();
  const optimizeOptions = { level: options.level ?? 'full', passes: options.passes === undefined ? undefined : [...options.passes], skip: options.skip === undefined ? undefined : [...options.skip] };
  const credit = creditPasses(candidate);
  const reports = await optimizeModel(candidate, { ...optimizeOptions, onPass: credit.onPass }, ctx);
  if (options.validate === undefined) {
    warnings.push({ code: 'not-validated', message: 'the optimized model was not run against the original (no samples to validate on)' });
  }
  let fidelity: OutputsFidelity | null = null;
  if (validate !== undefined) {
    const outcome = await compareOptimized(model, candidate, validate, ctx);
    if ('broken' in outcome) throw await changedError(model, outcome.broken, optimizeOptions, validate.samples, ctx);
    warnings.push(...outcome.report.warnings.map((message) => ({ code: 'validation', message })));
    fidelity = fidelityOf(outcome.report);
    const changed = changedOutputs(outputDifferences(outcome.report));
    if (changed.length > 0) throw await changedError(model, `optimized model's outputs changed (${describeDifferences(changed)})`, optimizeOptions, validate.samples, ctx);
  }
  return {
    model: candidate,
    report: {
      level: options.passes === undefined ? optimizeOptions.level : 'custom',
      passes: summarize(reports, credit.deltas, credit.order),
      nodes: { before: totalNodes(model.graph), after: totalNodes(candidate.graph) },
      size: sizeChange(modelBytes(model), modelBytes(candidate)),
      fidelity,
      warnings,
    },
  };
}

/** Weight bytes in all scopes: what a pass saves shows up here. */
function constantBytes(model: Model): number {
  let bytes = 0;
  for (const { tensor } of allConstants(model.graph)) bytes += tensor.byteLength;
  return bytes;
}

interface Delta {
  nodes: number;
  bytes: number;
}

/** An onPass hook that measures the model after every pass run, crediting the pass with what it removed. */
function creditPasses(model: Model): { onPass: (report: PassReport) => void; deltas: Map<string, Delta>; order: string[] } {
  const deltas = new Map<string, Delta>();
  const order: string[] = [];
  let last = { nodes: totalNodes(model.graph), bytes: constantBytes(model) };
  const onPass = (report: PassReport) => {
    const now = { nodes: totalNodes(model.graph), bytes: constantBytes(model) };
    const delta = deltas.get(report.pass) ?? { nodes: 0, bytes: 0 };
    delta.nodes += last.nodes - now.nodes;
    delta.bytes += last.bytes - now.bytes;
    deltas.set(report.pass, delta);
    order.push(report.pass);
    last = now;
  };
  return { onPass, deltas, order };
}

function summarize(reports: PassReport[], deltas: Map<string, Delta>, order: readonly string[]): PassSummary[] {
  return reports.map((r) => ({
    pass: r.pass,
    runs: order.filter((name) => name === r.pass).length,
    ms: Number(r.ms.toFixed(2)),
    nodes_removed: deltas.get(r.pass)?.nodes ?? 0,
    bytes_saved: deltas.get(r.pass)?.bytes ?? 0,
    stats: snakeCaseKeys(Object.fromEntries(Object.entries(r.stats).filter(([, v]) => v !== 0))),
    warnings: r.warnings,
  }));
}

function fidelityOf(report: EvalReport): OutputsFidelity {
  const outputs: OutputsFidelity['outputs'] = {};
  let maxAbs: JsonNumber = 0;
  let cosine: JsonNumber = 1;
  for (const [name, o] of Object.entries(report.outputs)) {
    outputs[name] = { max_abs: o.max_abs, cosine: o.cosine, relative: o.relative };
    maxAbs = worse(maxAbs, o.max_abs, (a, b) => a > b);
    cosine = worse(cosine, o.cosine, (a, b) => a < b);
  }
  return { samples: report.samples, data: report.data, max_abs: maxAbs, cosine, outputs };
}

/** The worse of two metric values; null (undefined) and infinities count as worst. */
function worse(current: JsonNumber, next: JsonNumber, isWorse: (a: number, b: number) => boolean): JsonNumber {
  if (current === null || typeof current === 'string') return current;
  if (next === null || typeof next === 'string') return next;
  return isWorse(next, current) ? next : current;
}

/**
 * The original against the optimized model. The original was loaded in onnxruntime by the input
 * check, so a failure to load or run the optimized one is the optimizer's doing (`broken`), and a
 * failure of the original is the samples'.
 */
async function compareOptimized(original: Model, candidate: Model, validate: NonNullable<OptimizeStepOptions['validate']>, ctx: RecipeContext): Promise<{ report: EvalReport } | { broken: string }> {
  try {
    return { report: await measureFidelity(original, candidate, validate, ctx) };
  } catch (error) {
    const message = ortCause(error);
    if (!/^(candidate model|.*the candidate model failed)/.test(message)) {
      // Most often generated inputs the model cannot take (a sample rate, token ids out of range).
      throw new Error(`validation: ${message} (give real samples with --data, or skip the check with --no-validate)`);
    }
    return { broken: `onnxruntime cannot run the optimized model (${message})` };
  }
}

/**
 * The error for an optimized model that moved or broke: replays the passes one at a time on a
 * fresh copy (blame-pass.ts) and names the first pass after which outputs moved, with its numbers.
 * Runs only when the whole optimization failed validation, so its cost does not matter.
 */
async function changedError(original: Model, what: string, options: { level: OptimizeLevel; passes?: string[]; skip?: string[] }, samples: SampleSource, ctx: RecipeContext): Promise<Error> {
  const compareOne = compareOnSamples(ctx.ort, samples, { limit: 1, threads: ctx.threads });
  const blame = await blamePass(original, compareOne, { optimize: options, ctx: { ort: ctx.ort } });
  let culprit = '';
  if (blame !== undefined) {
    let after = `after it on 1 sample: ${describeDifferences(blame.changed)}`;
    if (blame.failure !== undefined) after = `after it the model no longer runs${what.includes('onnxruntime cannot') ? '' : ` (${blame.failure})`}`;
    culprit = `; pass '${blame.pass}' did it (run ${blame.run}, round ${blame.round}; ${after})`;
  }
  const hint = blame === undefined ? 'no single pass moved them past the tolerance on 1 sample' : `use --skip ${blame.pass} to leave that pass out`;
  return new Error(`${what}${culprit}; nothing was written (${hint})`);
}
