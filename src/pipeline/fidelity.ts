// How a recipe step checks its result: the candidate against the original on the same samples,
// with task accuracy when labels are given. One place, so quantize, optimize, gates and the
// automatic search measure alike.
import { compareModels } from '../eval/compare.js';
import type { EvalReport } from '../eval/eval-report.js';
import type { Labels } from '../eval/labels.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import type { RecipeContext } from './context.js';

export interface FidelityOptions {
  /** Samples both models run on (re-iterable; the caller closes it). */
  samples: SampleSource;
  /** Compare at most this many (default: all). */
  limit?: number;
  /** Samples stacked along axis 0 per run (default 1). */
  batch?: number;
  /** Class ids, one per prediction row: adds accuracy of both models. */
  labels?: Labels;
  /** The output read for accuracy (default: the first). */
  labelOutput?: string;
}

export async function measureFidelity(original: Model, candidate: Model, options: FidelityOptions, ctx: RecipeContext): Promise<EvalReport> {
  return compareModels(ctx.ort, original, candidate, options.samples, {
    limit: options.limit,
    batch: options.batch,
    labels: options.labels,
    labelOutput: options.labelOutput,
    threads: ctx.threads,
    progress: ctx.progress,
  });
}
