// The distill recipe step: a student learns from a teacher's softened outputs and the hard labels
// (src/train/distill.ts: the teacher runs once over the data, then the student trains). Takes the
// two Models and data already read, returns the student with its new weights and a JSON-able
// report; the caller writes it.
import { inspectModel } from '../inspect/inspect.js';
import type { Model } from '../ir/model.js';
import { SessionLoadError } from '../runtime/ort-errors.js';
import { type DistillOptions, distill as distillStudent } from '../train/distill.js';
import type { Trainer } from '../train/trainer.js';
import type { RecipeContext } from './context.js';
import { debugPhase } from './debug-phase.js';
import { type EpochSummary, epochSummaries, InputModelError } from './train.js';

/** distillStudent's options without the models and what the context supplies, plus an epoch hook. */
export interface DistillStepOptions extends Omit<DistillOptions, 'teacher' | 'student' | 'threads' | 'progress' | 'afterEpoch'> {
  /** Called after every epoch, e.g. to write a checkpoint of `trainer`. */
  afterEpoch?: (epoch: number, trainer: Trainer) => Promise<void> | void;
}

export interface DistillStepReport {
  samples: number;
  classes: number;
  temperature: number;
  alpha: number;
  epochs: EpochSummary[];
  steps: number;
  /** Time spent running the teacher over the data. */
  teacher_seconds: number;
  /** Parameter counts (elements of the weights) and the student's share of the teacher's. */
  parameters: { teacher: number; student: number; ratio: number };
}

export interface DistillStepResult {
  /** The student with its distilled weights (inference graph, no training nodes). */
  model: Model;
  report: DistillStepReport;
}

const DEFAULT_TEMPERATURE = 4;
const DEFAULT_ALPHA = 0.5;

/** Distils `teacher` into a copy of `student`; neither input is changed. */
export async function distill(teacher: Model, student: Model, options: DistillStepOptions, ctx: RecipeContext): Promise<DistillStepResult> {
  const temperature = options.temperature ?? DEFAULT_TEMPERATURE;
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  let result: Awaited<ReturnType<typeof distillStudent>>;
  try {
    result = await debugPhase(ctx.debug, 'distill: teacher outputs and training', () =>
      distillStudent(ctx.ort, {
        teacher,
        student,
        data: options.data,
        temperature,
        alpha,
        features: options.features,
        epochs: options.epochs,
        batchSize: options.batchSize,
        schedule: options.schedule,
        optimizer: options.optimizer,
        seed: options.seed,
        teacherOutput: options.teacherOutput,
        studentOutput: options.studentOutput,
        frozen: options.frozen,
        masks: options.masks,
        clipNorm: options.clipNorm,
        maxSteps: options.maxSteps,
        threads: ctx.threads,
        progress: ctx.progress,
        afterEpoch:
          options.afterEpoch === undefined
            ? undefined
            : async (epoch, trainer) => {
                await options.afterEpoch?.(epoch, trainer);
                return {};
              },
      }),
    );
  } catch (error) {
    // onnxruntime failing to load the teacher, or the student's training graph, is about that model.
    if (error instanceof SessionLoadError) throw new InputModelError(error.subject === 'the teacher' ? 'teacher' : 'student', error);
    throw error;
  }
  const teacherParameters = inspectModel(teacher).parameters.elements;
  const studentParameters = inspectModel(result.model).parameters.elements;
  return {
    model: result.model,
    report: {
      samples: result.samples,
      classes: result.classes,
      temperature,
      alpha,
      epochs: epochSummaries(result.history),
      steps: result.steps,
      teacher_seconds: result.teacherSeconds,
      parameters: { teacher: teacherParameters, student: studentParameters, ratio: studentParameters / teacherParameters },
    },
  };
}
