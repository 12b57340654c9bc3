// Which pass moved the outputs? Every optimizer pass is meant to be exact, so when an optimized
// model's outputs differ from the original's, one pass is wrong. This replays the optimization on
// a fresh copy of the original, exactly as optimizeModel ran it (same registry, options and
// rounds), comparing outputs after every single pass run; the first run after which an output
// moves beyond the tolerance, or the model no longer runs, names the culprit. It runs only after
// a failed check, so comparing after every pass costs nothing on the normal path.
import type { EvalReport } from '../eval/eval-report.js';
import { numberFromJson } from '../eval/eval-report.js';
import { compareModels } from '../eval/compare.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import type { PassContext } from '../pipeline/pass.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { type OptimizeOptions, optimizeModel, selectPasses } from './optimize.js';

/**
 * Relative L2 error (||a - b|| / ||a||) above which an output counts as changed. Exact rewrites
 * and fusions move float32 outputs by ~1e-7 relative (summation order); a broken rewrite by far more.
 */
export const CHANGED_OUTPUT_RELATIVE_ERROR = 1e-4;

/** How far one output of a candidate is from the original's. */
export interface OutputDifference {
  output: string;
  /** ||a - b|| / ||a||; Infinity or NaN when that is all that can be said. */
  relative: number;
  maxAbs: number;
  /** Elements where one side is NaN or infinite and the other differs. */
  nonFinite: number;
}

/** Measures every output of `candidate` against `original` (on the caller's samples). */
export type CompareOutputs = (original: Model, candidate: Model) => Promise<OutputDifference[]>;

/** The per-output numbers of a compareModels report. */
export function outputDifferences(report: EvalReport): OutputDifference[] {
  return Object.entries(report.outputs).map(([output, o]) => ({
    output,
    relative: numberFromJson(o.relative),
    maxAbs: numberFromJson(o.max_abs),
    nonFinite: o.non_finite,
  }));
}

/** The outputs that moved beyond `tolerance` (relative error), or gained non-finite values. */
export function changedOutputs(differences: readonly OutputDifference[], tolerance = CHANGED_OUTPUT_RELATIVE_ERROR): OutputDifference[] {
  // NaN compares false with everything, so test "within" and negate: an unmeasurable error counts as changed.
  return differences.filter((d) => d.nonFinite > 0 || !(d.relative <= tolerance));
}

/** `'y': relative error 1.00e-2, max abs 3.10e-1` for each difference, joined by '; '. */
export function describeDifferences(differences: readonly OutputDifference[]): string {
  const number = (v: number) => (Number.isFinite(v) ? (v === 0 ? '0' : v.toExponential(2)) : String(v));
  return differences
    .map((d) => `'${d.output}': relative error ${number(d.relative)}, max abs ${number(d.maxAbs)}${d.nonFinite > 0 ? `, ${d.nonFinite} non-finite` : ''}`)
    .join('; ');
}

/** A CompareOutputs that runs both models in onnxruntime on `samples` (compareModels, ORT at 'basic'). */
export function compareOnSamples(ort: OrtModule, samples: SampleSource, options: { threads?: number; limit?: number } = {}): CompareOutputs {
  return async (original, candidate) => outputDifferences(await compareModels(ort, original, candidate, samples, options));
}

/** The pass found to move the outputs, and by how much. */
export interface PassBlame {
  pass: string;
  /** Which pass run it was, counting from 1 over every run of every round. */
  run: number;
  /** The optimizer round it ran in, from 1. */
  round: number;
  /** Every output measured after that run; `changed` holds those beyond the tolerance. */
  outputs: OutputDifference[];
  changed: OutputDifference[];
  /** Set when the model no longer loads or runs after that pass: the comparison's error. */
  failure?: string;
}

export interface BlameOptions {
  /** The options the optimization ran with (registry, level, passes, skip, maxRounds); onPass is ignored. */
  optimize?: OptimizeOptions;
  /** The context passes ran with (onnxruntime for constant folding). */
  ctx?: PassContext;
  /** Relative error beyond which an output counts as changed (default CHANGED_OUTPUT_RELATIVE_ERROR). */
  tolerance?: number;
  /** A fresh copy of the original to replay on (default: `original` encoded and decoded). */
  copy?: () => Model | Promise<Model>;
}

/** Thrown from the onPass hook to stop the replay once the culprit is known. */
class Found extends Error {
  constructor(readonly blame: PassBlame) {
    super(`pass '${blame.pass}' changed the outputs`);
  }
}

/**
 * Replays the optimization of `original` pass by pass and returns the first pass after which
 * `compare` finds an output beyond the tolerance (or fails); undefined when none does. `original`
 * itself is not changed.
 */
export async function blamePass(original: Model, compare: CompareOutputs, options: BlameOptions = {}): Promise<PassBlame | undefined> {
  const tolerance = options.tolerance ?? CHANGED_OUTPUT_RELATIVE_ERROR;
  const model = options.copy === undefined ? original.clone() : await options.copy();
  const passesPerRound = selectPasses(options.optimize ?? {}).length;
  let run = 0;
  const onPass = async (report: { pass: string }, candidate: Model): Promise<void> => {
    run++;
    const where = { pass: report.pass, run, round: Math.ceil(run / passesPerRound) };
    let outputs: OutputDifference[];
    try {
      outputs = await compare(original, candidate);
    } catch (error) {
      throw new Found({ ...where, outputs: [], changed: [], failure: (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ') });
    }
    const changed = changedOutputs(outputs, tolerance);
    if (changed.length > 0) throw new Found({ ...where, outputs, changed });
  };
  try {
    await optimizeModel(model, { ...options.optimize, onPass }, options.ctx ?? {});
  } catch (error) {
    if (error instanceof Found) return error.blame;
    throw error;
  }
  return undefined;
}
