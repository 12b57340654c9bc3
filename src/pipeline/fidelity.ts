// How a recipe step checks its result: the candidate against the original on the same samples,
// with task accuracy when labels are given. One place, so quantize, optimize, gates and the
// automatic search measure alike.
import { compareModels } from '../eval/compare.js';
import type { EvalReport } from '../eval/eval-report.js';
import type { Labels } from '../eval/labels.js';
import type { CustomMetric } from '../eval/metrics.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import { formatBytes } from '../inspect/table.js';
import { modelBytes } from '../onnx/model-size.js';
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
  /** A user's metric of each sample's outputs (`--metric`), averaged into the report's `custom`. */
  metric?: { name: string; metric: CustomMetric };
}

/**
 * Why `original` and `candidate` cannot be compared here (their weights together exceed the
 * context's memory budget), or undefined when they can.
 */
export function comparisonWontFit(original: Model, candidate: Model, ctx: RecipeContext): string | undefined {
  if (ctx.memoryBudget === undefined) return undefined;
  const a = modelBytes(original);
  const b = modelBytes(candidate);
  if (a + b <= ctx.memoryBudget) return undefined;
  return `the original (${formatBytes(a)}) and the result (${formatBytes(b)}) would need about ${formatBytes(a + b)} in onnxruntime together, more than the ${formatBytes(ctx.memoryBudget)} this machine can give them; check them on a machine with more memory`;
}

export async function measureFidelity(original: Model, candidate: Model, options: FidelityOptions, ctx: RecipeContext): Promise<EvalReport> {
  return compareModels(ctx.ort, original, candidate, options.samples, {
    limit: options.limit,
    batch: options.batch,
    labels: options.labels,
    labelOutput: options.labelOutput,
    customMetric: options.metric?.metric,
    customMetricName: options.metric?.name,
    threads: ctx.threads,
    progress: ctx.progress,
  });
}
