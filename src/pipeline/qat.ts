// The qat recipe step: quantization-aware training for the weight-only methods (int8-weight, int4,
// int2; src/train/qat.ts plans fake quantization from PTQ's own forms, trains, then runs the PTQ
// pass `quantize` runs). Top-1 accuracy of the float model, of plain PTQ and of the QAT result is
// measured on the training data, on models in memory. Takes a Model and data already read,
// returns the quantized model and a JSON-able report; the caller writes it.
import type { Model } from '../ir/model.js';
import { dataAccuracy } from '../train/qat-accuracy.js';
import type { WeightGrouping } from '../train/qat-plan.js';
import { type QatMethod, type QatOptions, quantizationAwareTraining } from '../train/qat.js';
import { LABEL_INPUT } from '../train/training-graph.js';
import type { RecipeContext } from './context.js';
import { debugPhase } from './debug-phase.js';
import type { PassWarning } from './pass.js';
import { type EpochSummary, epochSummaries, InputModelError } from './train.js';

/** The QAT options a recipe step takes: the data and schedule; the loss, threads and progress come from the context. */
export type QatStepOptions = Pick<QatOptions, 'method' | 'blockSize' | 'symmetric' | 'exclude' | 'data' | 'epochs' | 'batchSize' | 'schedule' | 'optimizer' | 'seed' | 'maxSteps'>;

export interface QatStepReport {
  method: QatMethod;
  samples: number;
  epochs: EpochSummary[];
  steps: number;
  /** The weights trained under fake quantization and the format each is written in. */
  weights: {
    name: string;
    format: string;
    bits: number;
    symmetric: boolean;
    grouping: WeightGrouping;
  }[];
  /** Top-1 accuracy (percent) on the training data. */
  accuracy: { float: number; ptq: number; qat: number };
  /** The plan's and the final PTQ pass's warnings. */
  warnings: PassWarning[];
}

export interface QatStepResult {
  /** The quantized model, in the format PTQ writes. */
  model: Model;
  report: QatStepReport;
}

/** Fine-tunes a copy of `model` under fake quantization and quantizes it; the input is not changed. */
export async function qat(model: Model, options: QatStepOptions, ctx: RecipeContext): Promise<QatStepResult> {
  const accuracy = (m: Model) => debugPhase(ctx.debug, 'qat: accuracy', () => dataAccuracy(ctx.ort, m, options.data, { labels: LABEL_INPUT, threads: ctx.threads }));
  let result: Awaited<ReturnType<typeof quantizationAwareTraining>>;
  try {
    result = await quantizationAwareTraining(ctx.ort, model, {
      method: options.method,
      blockSize: options.blockSize,
      symmetric: options.symmetric,
      exclude: options.exclude,
      data: options.data,
      epochs: options.epochs,
      batchSize: options.batchSize,
      schedule: options.schedule,
      optimizer: options.optimizer,
      seed: options.seed,
      maxSteps: options.maxSteps,
      threads: ctx.threads,
      progress: ctx.progress,
      evaluate: accuracy,
    });
  } catch (error) {
    // Loading, planning, training and quantizing all start from the model: its file is named.
    throw new InputModelError('model', error);
  }
  const { report } = result;
  if (report.metric === undefined) throw new Error('qat: accuracy was not measured');
  return {
    model: result.model,
    report: {
      method: options.method,
      samples: options.data.size,
      epochs: epochSummaries(report.history),
      steps: report.steps,
      weights: report.targets.map((t) => ({ name: t.weight, format: t.format, bits: t.bits, symmetric: t.symmetric, grouping: t.grouping })),
      accuracy: report.metric,
      warnings: [...report.warnings, ...report.quantization.warnings],
    },
  };
}
