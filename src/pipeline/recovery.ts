// Training a compressed model back towards the original, for the steps that change weights and
// shapes (prune, low-rank). With labels it fine-tunes with cross-entropy (`train`); without, it distils from
// the original: KL on softened logits for a classifier's [N, classes] output, MSE on the output
// otherwise, or MSE on a chosen inner value (`distillValue`: e.g. the logits before a softmax
// output, a far stronger signal than saturated probabilities). The settings and the report have
// the shapes of the prune step's. `distillValueByMse` is shared with the cluster step.
import { DataType, type TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { makeValueInfo, tensorTypeOf } from '../ir/value-info.js';
import { inferShapes } from '../optimize/shape-inference/index.js';
import { arrayTrainingData, type TrainingArrays } from '../train/array-data.js';
import { type PrecomputedValue, precomputedField, precomputeTeacher } from '../train/distill-teacher.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import type { Schedule } from '../train/schedules.js';
import { Trainer } from '../train/trainer.js';
import { blankWeightedKl, distillationKl } from '../train/losses.js';
import { LABEL_INPUT, type LossSpec, TARGETS } from '../train/training-graph.js';
import type { RecipeContext } from './context.js';
import { distill } from './distill.js';
import type { PruneData, PruneRecovery } from './prune.js';
import type { PruneRecoveryReport } from './prune-report.js';
import { train } from './train.js';
import { WeightAverage } from '../train/weight-average.js';

export type RecoveryData = PruneData;
export type RecoverySettings = PruneRecovery;
export type RecoveryReport = PruneRecoveryReport;

/** The inputs with their class ids under LABEL_INPUT, as the training step reads them. */
export function labelledData(data: RecoveryData) {
  return arrayTrainingData({ ...data.inputs, [LABEL_INPUT]: { data: data.labels as TypedArray, sampleDims: [], dataType: DataType.INT64 } });
}

/** Fine-tunes `student` with labels, or distils it from `teacher` without them. `masks` keep zeroed weights at zero. */
export async function recoverByTraining(
  teacher: Model,
  student: Model,
  data: RecoveryData,
  recovery: RecoverySettings,
  output: string | undefined,
  ctx: RecipeContext,
  masks?: Map<string, Tensor>,
): Promise<{ model: Model; report: RecoveryReport }> {
  const started = performance.now();
  const fit = { epochs: recovery.epochs, batchSize: recovery.batchSize, schedule: recovery.schedule, optimizer: recovery.optimizer, seed: recovery.seed, maxSteps: recovery.maxSteps };
  const samples = Object.values(data.inputs)[0];
  const count = samples.data.length / samples.sampleDims.reduce((a, b) => a * b, 1);
  const seconds = () => (performance.now() - started) / 1000;
  if (data.labels !== undefined) {
    const { model, report } = await train(student, { ...fit, data: labelledData(data), logits: output, masks }, ctx);
    return {
      model,
      report: { kind: 'fine-tune', loss: 'cross-entropy', epochs: report.epochs.length, steps: report.steps, samples: count, mean_loss: report.epochs.map((e) => e.mean_loss), seconds: seconds(), accuracy: report.accuracy },
    };
  }
  const rank = output === undefined ? undefined : inferShapes(teacher).main.get(output)?.shape?.length;
  if (rank === 2 && recovery.distillValue === undefined) {
    const { model, report } = await distill(teacher, student, { ...fit, data: { inputs: data.inputs }, alpha: 0, temperature: recovery.temperature ?? 4, teacherOutput: output, studentOutput: output, masks }, ctx);
    return { model, report: { kind: 'distill', loss: 'kl', epochs: report.epochs.length, steps: report.steps, samples: report.samples, mean_loss: report.epochs.map((e) => e.mean_loss), seconds: seconds() } };
  }
  const value = recovery.distillValue ?? output;
  if (value === undefined) throw new Error('recovery: the model has no output to distil');
  const loss = distillLossOf(recovery.distillLoss, recovery.temperature, recovery.distillBlank, recovery.distillBlankWeight);
  const trained = await distillValue(teacher, student, data.inputs, value, { ...fit, optimizer: recovery.optimizer, masks, loss, batchNorm: recovery.batchNorm }, ctx, 'recovery');
  return {
    model: trained.model,
    report: { kind: 'distill', loss: loss.kind, ...(trained.inner ? { value } : {}), epochs: trained.meanLoss.length, steps: trained.steps, samples: count, mean_loss: trained.meanLoss, seconds: seconds() },
  };
}

/**
 * How a value is matched to the original's: mean squared error over every element, KL of the
 * softened distributions over the last axis at every other position (T² · mean KL; e.g. a CTC
 * recogniser's logits [N, T, classes]: each time step's classes, as the decoder reads them), or
 * 'bce': each element is the logit of a sigmoid (a detector's map), matched by the binary
 * cross-entropy of the two sigmoids less the original's entropy (the Bernoulli KL, 0 when they
 * agree). Unlike MSE on logits it spends nothing on background logits of -8 against -6 that
 * threshold alike, and unlike MSE on the probabilities its gradient, sigmoid(s) - sigmoid(t), does
 * not vanish where the student's map is saturated.
 */
export type DistillLoss = { kind: 'mse' } | { kind: 'kl'; temperature: number; blank?: CtcBlank } | { kind: 'bce' };

/**
 * KL per position weighted for a CTC recogniser (train/losses.ts blankWeightedKl): each position
 * counts blankWeight + (1 - blankWeight) * (1 - p_original(blank)), so time steps where the
 * original reads a character or a space count fully and confident blanks count `weight`.
 */
export interface CtcBlank {
  /** The blank's index on the last axis (PP-OCR: 0). */
  index: number;
  /** Weight of a confident-blank position, in [0, 1] (default DEFAULT_BLANK_WEIGHT; 1: plain KL). */
  weight?: number;
  /** A class whose positions count more (weight gains focus.weight * p_original(focus.index); PP-OCR's space, its last class) and a top-1 term (train/losses.ts CtcKlExtras). */
  focus?: { index: number; weight: number };
  /** Weight of the top-1 term: each position's cross-entropy against the original's arg-max class, beside its KL. */
  top1?: number;
}

/** The CTC additions of the settings (CtcBlank's focus and top1): a focus class and its weight, and the top-1 weight. */
export interface CtcExtrasSettings {
  distillFocus?: number;
  distillFocusWeight?: number;
  distillTop1?: number;
}

/** A confident blank's weight in the blank-weighted KL. */
export const DEFAULT_BLANK_WEIGHT = 0.1;

/** The DistillLoss of the settings' `distillLoss` name, temperature and CTC blank (kl only) with its extras (a focus class, a top-1 weight; they go with a blank). */
export function distillLossOf<Name extends DistillLoss['kind']>(name: Name | undefined, temperature: number | undefined, blank?: number, blankWeight?: number, extras: CtcExtrasSettings = {}): Extract<DistillLoss, { kind: Name | 'mse' }> {
  if ((blank !== undefined || blankWeight !== undefined) && name !== 'kl') throw new Error("a CTC blank (distill blank) goes with the 'kl' distillation loss");
  if (blankWeight !== undefined && blank === undefined) throw new Error('a blank weight goes with a blank class (distill blank)');
  const { distillFocus: focus, distillFocusWeight: focusWeight, distillTop1: top1 } = extras;
  if ((focus !== undefined || top1 !== undefined) && blank === undefined) throw new Error('a focus class or a top-1 weight goes with a blank class (distill blank)');
  if ((focus === undefined) !== (focusWeight === undefined)) throw new Error('a focus class (distill focus) and its weight go together');
  const more = { ...(focus === undefined || focusWeight === undefined ? {} : { focus: { index: focus, weight: focusWeight } }), ...(top1 === undefined ? {} : { top1 }) };
  const loss: DistillLoss =
    name === 'kl' ? { kind: 'kl', temperature: temperature ?? 1, ...(blank === undefined ? {} : { blank: { index: blank, ...(blankWeight === undefined ? {} : { weight: blankWeight }), ...more } }) } : name === 'bce' ? { kind: 'bce' } : { kind: 'mse' };
  return loss as Extract<DistillLoss, { kind: Name | 'mse' }>;
}

export interface ValueDistillSettings {
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  optimizer: OptimizerSpec;
  seed?: number;
  maxSteps?: number;
  /** Float constants left as they are. */
  frozen?: string[];
  /** 0/1 masks that keep zeroed weights at zero. */
  masks?: Map<string, Tensor>;
  /** Default MSE. */
  loss?: DistillLoss;
  /** BatchNormalization while training: 'batch' statistics (default), or 'frozen' at the running ones, as deployed. */
  batchNorm?: 'batch' | 'frozen';
  /**
   * The model returned has the mean of the weights at the end of each of the last N epochs
   * (stochastic weight averaging, Izmailov et al. 2018): solutions averaged along the run tend to
   * hold better on inputs training never saw than its last point. Default 1: the last weights.
   */
  averageEpochs?: number;
  /**
   * Trains N times from the same start, with seeds seed, seed + 1, ... (the batches' order
   * differs), and returns the mean of the runs' weights (each run's own average with
   * averageEpochs): a model soup (Wortsman et al. 2022). Runs from one start stay in one basin, so
   * their mean is a model too, often better on new inputs than any one run. Default 1.
   */
  averageRuns?: number;
}

/**
 * The teacher's `value` on every sample, run once per teacher, inputs and value: gradual pruning
 * distils from the same original on the same data after every round (PP-OCRv4 rec: 800 lines,
 * ~2 minutes a round under load). Both are the caller's and are not changed while it holds them.
 */
const teacherValues = new WeakMap<Model, WeakMap<object, Map<string, Promise<PrecomputedValue | undefined>>>>();
export function teacherValue(teacher: Model, inputs: TrainingArrays['inputs'], value: string, ctx: RecipeContext): Promise<PrecomputedValue | undefined> {
  let byInputs = teacherValues.get(teacher);
  if (byInputs === undefined) teacherValues.set(teacher, (byInputs = new WeakMap()));
  let byValue = byInputs.get(inputs);
  if (byValue === undefined) byInputs.set(inputs, (byValue = new Map()));
  let targets = byValue.get(value);
  if (targets === undefined) {
    targets = precomputeTeacher(ctx.ort, teacher, inputs, [value], { threads: ctx.threads, progress: ctx.progress, maxBytes: ctx.teacherMemory }).then((all) => all.get(value));
    // A failed run is not kept: the next call tries again (and throws its own error).
    targets.catch(() => byValue.delete(value));
    byValue.set(value, targets);
  }
  return targets;
}

/**
 * Trains `student` so that its `value` matches the teacher's on `inputs` (MSE, or KL per position).
 * The loss reads graph outputs: an inner value is one while training, and only then. The training
 * graph needs static sizes (an AveragePool's divisor; PP-OCR rec's width is symbolic), so the
 * inputs take the data's sample dims while training; the model returned keeps its own.
 */
export async function distillValue(
  teacher: Model,
  student: Model,
  inputs: TrainingArrays['inputs'],
  value: string,
  settings: ValueDistillSettings,
  ctx: RecipeContext,
  who: string,
): Promise<{ model: Model; meanLoss: number[]; steps: number; inner: boolean; runLosses?: number[][] }> {
  if (!student.graph.isGraphOutput(value) && student.graph.producer(value) === undefined) throw new Error(`${who}: the model has no value '${value}' to distil`);
  const targets = await teacherValue(teacher, inputs, value, ctx);
  if (targets === undefined) throw new Error(`${who}: the original gave no '${value}'`);
  const inner = !student.graph.isGraphOutput(value);
  const trainee = student.clone();
  if (inner) trainee.graph.addOutput(value);
  pinInputDims(trainee, inputs);
  // A value whose channels were pruned cannot match the original's.
  const studentDims = inferShapes(trainee).main.get(value)?.shape?.slice(1);
  if (studentDims !== undefined && (studentDims.length !== targets.sampleDims.length || studentDims.some((d, i) => typeof d === 'number' && d !== targets.sampleDims[i]))) {
    throw new Error(`${who}: '${value}' is [${studentDims.join(', ')}] per sample in the trained model but [${targets.sampleDims.join(', ')}] in the original: distil a value whose size the compression keeps (e.g. the logits before an output)`);
  }
  const loss: LossSpec =
    settings.loss?.kind === 'kl'
      ? { kind: 'custom', build: klPerPosition(value, settings.loss.temperature, settings.loss.blank, who) }
      : settings.loss?.kind === 'bce'
        ? { kind: 'custom', build: bernoulliKl(value, who) }
        : { kind: 'mse', output: value };
  const runs = settings.averageRuns ?? 1;
  if (!(Number.isInteger(runs) && runs >= 1)) throw new Error(`${who}: runs to average must be a whole number >= 1, got ${runs}`);
  const soup = runs > 1 ? new WeightAverage() : undefined;
  const data = arrayTrainingData({ ...inputs, [TARGETS]: precomputedField(targets, DataType.FLOAT) });
  const losses: number[][] = [];
  let steps = 0;
  let model: Model | undefined;
  for (let run = 0; run < runs; run++) {
    const trainer = await Trainer.create(ctx.ort, trainee, { loss, optimizer: settings.optimizer, frozen: settings.frozen, masks: settings.masks, batchNorm: settings.batchNorm }, { threads: ctx.threads });
    try {
      // Only a run that averages copies its weights after each epoch.
      const average = (settings.averageEpochs ?? 1) > 1 ? new WeightAverage(settings.epochs - (settings.averageEpochs as number)) : undefined;
      const seed = (settings.seed ?? 0) + run;
      const fit = { epochs: settings.epochs, batchSize: settings.batchSize, schedule: settings.schedule, seed, maxSteps: settings.maxSteps, progress: ctx.progress, afterEpoch: average?.afterEpoch };
      const history = await trainer.fit(data, fit);
      losses.push(history.map((h) => h.meanLoss));
      steps += trainer.stepCount;
      const weights = average?.weights() ?? trainer.currentWeights();
      soup?.add(weights);
      // The last run's graph carries the soup's weights: every run trains the same tensors.
      if (run === runs - 1) model = trainer.exportModel(soup?.weights() ?? weights);
    } finally {
      await trainer.release();
    }
  }
  const trained = model as Model;
  trained.graph.inputs = student.clone().graph.inputs;
  trained.graph.outputs = trained.graph.outputs.filter((o) => !inner || o.name !== value);
  trained.graph.changed();
  // Per epoch, the mean over the runs.
  const meanLoss = losses[0].map((_, epoch) => losses.reduce((sum, run) => sum + run[epoch], 0) / runs);
  return { model: trained, meanLoss, steps, inner, ...(runs > 1 ? { runLosses: losses } : {}) };
}

/** The KL loss of `value` [..., classes] against the teacher's logits fed as TARGETS, every position a row (weighted by the original's blank probability with `blank`). */
function klPerPosition(value: string, temperature: number, blank: CtcBlank | undefined, who: string): Extract<LossSpec, { kind: 'custom' }>['build'] {
  return (e, model) => {
    const type = inferShapes(model).main.get(value);
    const classes = type?.shape?.[type.shape.length - 1];
    if (type?.shape === undefined || type.shape.length < 2 || typeof classes !== 'number') throw new Error(`${who}: KL distillation needs '${value}' with a fixed last axis (classes), got ${JSON.stringify(type?.shape)}`);
    e.builder.input(TARGETS, type.elemType as DataType, type.shape);
    if (blank !== undefined && !(Number.isInteger(blank.index) && blank.index >= 0 && blank.index < classes)) throw new Error(`${who}: the blank class ${blank.index} is not one of '${value}''s ${classes} classes`);
    if (blank?.focus !== undefined && !(blank.focus.index < classes)) throw new Error(`${who}: the focus class ${blank.focus.index} is not one of '${value}''s ${classes} classes`);
    const rows = e.int64s([-1, classes]);
    const student = e.op('Reshape', [value, rows]);
    const teacher = e.op('Reshape', [TARGETS, rows]);
    const loss =
      blank === undefined
        ? distillationKl(e, student, teacher, temperature, type.elemType as DataType)
        : blankWeightedKl(e, student, teacher, temperature, type.elemType as DataType, blank.index, blank.weight ?? DEFAULT_BLANK_WEIGHT, { focus: blank.focus, top1: blank.top1 });
    return { loss, inputs: [TARGETS] };
  };
}

/** The Bernoulli KL of sigmoid(`value`) from sigmoid(TARGETS), the teacher's logits, averaged over every element. */
function bernoulliKl(value: string, who: string): Extract<LossSpec, { kind: 'custom' }>['build'] {
  return (e, model) => {
    const type = inferShapes(model).main.get(value);
    if (type?.shape === undefined) throw new Error(`${who}: bce distillation needs the rank of '${value}'`);
    e.builder.input(TARGETS, type.elemType as DataType, type.shape);
    const p = e.op('Sigmoid', [TARGETS]);
    // softplus(x) - p·x is the cross-entropy of sigmoid(x) against p, up to the sign convention.
    const crossEntropy = (x: string) => e.op('Sub', [e.op('Softplus', [x]), e.op('Mul', [p, x])]);
    const kl = e.op('Sub', [crossEntropy(value), crossEntropy(TARGETS)]);
    return { loss: e.reduce('ReduceMean', kl, type.shape.map((_, i) => i), false), inputs: [TARGETS] };
  };
}

/** Gives each graph input fed by `fields` the dims [batch, ...sample dims], its batch dim kept as declared. */
function pinInputDims(model: Model, fields: TrainingArrays['inputs']): void {
  model.graph.inputs = model.graph.inputs.map((input) => {
    const field = fields[input.name];
    const type = tensorTypeOf(input);
    if (field === undefined || type?.shape === undefined || type.shape.length !== field.sampleDims.length + 1) return input;
    return makeValueInfo(input.name, { elemType: type.elemType, shape: [type.shape[0], ...field.sampleDims] });
  });
  model.graph.changed();
}
