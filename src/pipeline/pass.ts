// The unit of work in shrink: a pass takes a model, changes it, and says what it did. Passes are
// plain objects listed in explicit registries (no registration by import side effects, so a
// browser bundle only carries the passes it uses). Recipes and the CLI compose them.
import type { StatisticsCollector } from '../eval/activation-stats.js';
import type { Model } from '../ir/model.js';
import type { OrtModule } from '../runtime/ort-types.js';
import type { Progress } from './progress.js';

/** Something a pass chose not to do, or did with a caveat; reports keep these structured. */
export interface PassWarning {
  code: string;
  message: string;
  node?: string;
  tensor?: string;
}

export interface PassReport {
  pass: string;
  /** Free-form counters: nodes removed, tensors quantized, bytes saved, ... */
  stats: Record<string, number>;
  warnings: PassWarning[];
  /** Wall time of the pass in milliseconds. */
  ms: number;
}

export interface PassContext {
  /** onnxruntime (node or web) for passes that evaluate subgraphs or read activations. */
  ort?: OrtModule;
  progress?: Progress;
  /** onnxruntime intra-op threads for the sessions a pass opens (default: onnxruntime's choice). */
  threads?: number;
  /** Debug output, enabled by SHRINK_DEBUG in the Node CLI; level 1 per pass, 2 per node. */
  debug?: (level: 1 | 2, message: string) => void;
  /** Calibration statistics collected elsewhere (`shrink quantize --queue`); default: in this process. */
  collectStatistics?: StatisticsCollector;
}

export interface Pass<Options = Record<string, never>> {
  readonly name: string;
  readonly description: string;
  /** Changes `model` in place and returns what it did (without `pass` and `ms`, added by runPass). */
  run(model: Model, options: Options, ctx: PassContext): Promise<Omit<PassReport, 'pass' | 'ms'>> | Omit<PassReport, 'pass' | 'ms'>;
}

/** Runs one pass, timing it and labelling its report. */
export async function runPass<O>(pass: Pass<O>, model: Model, options: O, ctx: PassContext = {}): Promise<PassReport> {
  const start = performance.now();
  const result = await pass.run(model, options, ctx);
  const ms = performance.now() - start;
  ctx.debug?.(1, `${pass.name}: ${ms.toFixed(1)} ms ${JSON.stringify(result.stats)}`);
  return { pass: pass.name, ms, ...result };
}
