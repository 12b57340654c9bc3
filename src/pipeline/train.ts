// The train recipe step: fine-tunes (or trains) a classifier's weights with cross-entropy on
// labelled data, in onnxruntime, and measures top-1 accuracy before and after on the model in
// memory. Takes a Model and data already read (no files), returns the trained model (the original
// graph with new weights) and a JSON-able report; the caller writes it. Checkpoints are the
// caller's too: `afterEpoch` sees the trainer after every epoch.
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import { dataAccuracy } from '../train/qat-accuracy.js';
import type { Schedule } from '../train/schedules.js';
import { type EpochRecord, Trainer, type TrainerState, type TrainingData } from '../train/trainer.js';
import { LABEL_INPUT } from '../train/training-graph.js';
import type { RecipeContext } from './context.js';
import { debugPhase } from './debug-phase.js';

export { LABEL_INPUT };

export interface TrainStepOptions {
  /** Feeds for the model's inputs and int64 class ids under LABEL_INPUT ('train/labels'). */
  data: TrainingData;
  /** Where accuracy is measured before and after, in the same form (default: `data`). */
  evaluation?: TrainingData;
  /** The logits output trained with cross-entropy (default: the first output). */
  logits?: string;
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  optimizer: OptimizerSpec;
  /** Share of the target spread over all classes (default 0). */
  labelSmoothing?: number;
  /** Clip gradients to this global L2 norm. */
  clipNorm?: number;
  /** Weights kept as they are (names or patterns). */
  frozen?: readonly (string | RegExp)[];
  /** Pruning masks by weight name: masked weights stay exactly zero while the rest train. */
  masks?: ReadonlyMap<string, Tensor>;
  /** Shuffling seed (default 0). */
  seed?: number;
  /** Stop after this many steps in total. */
  maxSteps?: number;
  /** A saved trainer state (of the same model and settings) to continue from. */
  resume?: TrainerState;
  /** Called after every epoch, e.g. to write a checkpoint of `trainer`. */
  afterEpoch?: (epoch: number, trainer: Trainer) => Promise<void> | void;
}

/** One epoch in a training report (snake_case, as the other reports). */
export interface EpochSummary {
  epoch: number;
  steps: number;
  mean_loss: number;
  seconds: number;
}

export interface TrainStepReport {
  samples: number;
  trained_weights: number;
  parameters: number;
  epochs: EpochSummary[];
  /** Optimizer steps in total, those of a resumed run included. */
  steps: number;
  /** Top-1 accuracy (percent) on the evaluation data, of the input and of the trained model. */
  accuracy: { before: number; after: number };
}

export interface TrainStepResult {
  model: Model;
  report: TrainStepReport;
}

/**
 * A failure that concerns one of a step's input models rather than the data or the training run:
 * onnxruntime cannot load it, or no training graph can be built from it. The CLI names the
 * model's file; `error` is what went wrong.
 */
export class InputModelError extends Error {
  constructor(
    /** Which model: 'model' (train, qat), 'teacher' or 'student' (distill). */
    readonly model: 'model' | 'teacher' | 'student',
    readonly error: unknown,
  ) {
    super(error instanceof Error ? error.message : String(error));
    this.name = 'InputModelError';
    if (error instanceof Error && error.stack !== undefined) this.stack = error.stack;
  }
}

/** Trains a copy of `model`'s weights; the input is not changed. */
export async function train(model: Model, options: TrainStepOptions, ctx: RecipeContext): Promise<TrainStepResult> {
  const logits = options.logits ?? model.graph.outputs[0]?.name;
  if (logits === undefined || !model.graph.isGraphOutput(logits)) {
    throw new InputModelError('model', new Error(`no output '${options.logits}' (outputs: ${model.graph.outputs.map((o) => o.name).join(', ')})`));
  }
  const evaluation = options.evaluation ?? options.data;
  const accuracy = (m: Model, which: string) =>
    debugPhase(ctx.debug, `train: accuracy ${which}`, () => dataAccuracy(ctx.ort, m, evaluation, { labels: LABEL_INPUT, output: logits, threads: ctx.threads }));

  // Failures to load the model or to build and load its training graph are about the model.
  let before: number;
  let trainer: Trainer;
  try {
    before = await accuracy(model, 'before');
    trainer = await Trainer.create(
      ctx.ort,
      model,
      { loss: { kind: 'cross-entropy', output: logits, labelSmoothing: options.labelSmoothing }, optimizer: options.optimizer, clipNorm: options.clipNorm, frozen: options.frozen, masks: options.masks },
      { threads: ctx.threads },
    );
  } catch (error) {
    throw new InputModelError('model', error);
  }
  let history: EpochRecord[];
  let trained: Model;
  try {
    if (options.resume !== undefined) trainer.restore(options.resume);
    history = await trainer.fit(options.data, {
      epochs: options.epochs,
      batchSize: options.batchSize,
      schedule: options.schedule,
      seed: options.seed,
      maxSteps: options.maxSteps,
      progress: ctx.progress,
      afterEpoch: async (epoch, t) => {
        ctx.debug?.(1, `train: epoch ${epoch + 1} done at step ${t.stepCount}`);
        await options.afterEpoch?.(epoch, t);
        return {};
      },
    });
    trained = trainer.exportModel();
  } finally {
    await trainer.release();
  }
  // Measured on the model in memory, before anyone writes it.
  const after = await accuracy(trained, 'after');
  const report: TrainStepReport = {
    samples: options.data.size,
    trained_weights: trainer.training.weights.length,
    parameters: trainer.training.weights.reduce((n, w) => n + w.initial.elementCount, 0),
    epochs: epochSummaries(history),
    steps: trainer.stepCount,
    accuracy: { before, after },
  };
  return { model: trained, report };
}

export function epochSummaries(history: readonly EpochRecord[]): EpochSummary[] {
  return history.map((h) => ({ epoch: h.epoch, steps: h.steps, mean_loss: h.meanLoss, seconds: h.seconds }));
}
