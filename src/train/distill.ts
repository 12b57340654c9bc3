// Knowledge distillation (Hinton et al., 2015): a small student learns from a trained teacher's
// softened outputs as well as from the hard labels. The loss per batch is
//   alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
//   + sum_f weight_f * MSE(student value f, teacher value f)      (optional feature matching).
// The teacher runs once over the whole training set before training (distill-teacher.ts); its
// logits and matched values reach each step as extra graph inputs, gathered with the batch.
import { DataType, dataTypeName, type TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/value-info.js';
import { inferShapes } from '../optimize/shape-inference/index.js';
import type { Progress } from '../pipeline/progress.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { type ArrayField, arrayTrainingData } from './array-data.js';
import { precomputedField, precomputeTeacher } from './distill-teacher.js';
import type { Emitter } from './emitter.js';
import { GradientError } from './gradient-error.js';
import { crossEntropy, distillationKl, meanSquaredError } from './losses.js';
import type { OptimizerSpec } from './optimizers.js';
import type { Schedule } from './schedules.js';
import { type EpochRecord, Trainer } from './trainer.js';
import { whyUntyped } from './training-graph.js';

/** Pulls a student's intermediate value towards the teacher's (mean squared error, same shape). */
export interface FeatureMatch {
  /** A value computed by the teacher's main graph. */
  teacher: string;
  /** A value computed by the student's main graph, of the same shape. */
  student: string;
  /** Weight of this term in the loss (default 1). */
  weight?: number;
}

/** The transfer set: inputs fed to teacher and student alike, and the class id of each sample. */
export interface DistillData {
  /** One field per model input (e.g. 'input': images as bytes scaled by 1/255). */
  inputs: Record<string, ArrayField>;
  /** Class ids, one per sample; needed when alpha > 0 (the hard-label term). */
  labels?: TypedArray;
}

export interface DistillOptions {
  teacher: Model;
  student: Model;
  data: DistillData;
  /** Softmax temperature of the distillation term (default 4). */
  temperature?: number;
  /** Weight of the hard-label cross-entropy; the distillation term gets 1 - alpha (default 0.5). */
  alpha?: number;
  features?: readonly FeatureMatch[];
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  optimizer: OptimizerSpec;
  /** Shuffling seed (default 0). */
  seed?: number;
  /** The teacher's / student's logits output (default: the model's only output). */
  teacherOutput?: string;
  studentOutput?: string;
  /** Student weights kept as they are (names or patterns). */
  frozen?: readonly (string | RegExp)[];
  /** Pruning masks by student weight name: masked weights stay exactly zero (see TrainingSpec.masks). */
  masks?: ReadonlyMap<string, Tensor>;
  clipNorm?: number;
  threads?: number;
  progress?: Progress;
  maxSteps?: number;
  afterEpoch?: (epoch: number, trainer: Trainer) => Promise<Record<string, number>> | Record<string, number>;
}

export interface DistillResult {
  /** The student with its distilled weights (inference graph, no training nodes). */
  model: Model;
  history: EpochRecord[];
  steps: number;
  /** Samples in the transfer set. */
  samples: number;
  classes: number;
  /** Time spent running the teacher over the training set. */
  teacherSeconds: number;
}

/** Graph inputs the distillation loss adds to the student's training step. */
export const TEACHER_LOGITS = 'distill/teacher_logits';
export const LABELS = 'train/labels';
const teacherFeatureInput = (index: number, value: string) => `distill/teacher_feature${index}/${value}`;

interface FeaturePlan extends Required<FeatureMatch> {
  input: string;
  studentShape: Dim[];
}

/** What validation found out, so training needs no second look at the models. */
interface DistillPlan {
  teacherOutput: string;
  studentOutput: string;
  classes: number;
  /** Float type the student computes in. */
  type: DataType;
  batchDim: Dim;
  features: FeaturePlan[];
  temperature: number;
  alpha: number;
}

export async function distill(ort: OrtModule, options: DistillOptions): Promise<DistillResult> {
  const plan = planDistillation(options);
  const teacherValues = [...new Set([plan.teacherOutput, ...plan.features.map((f) => f.teacher)])];
  const started = Date.now();
  const teacherInputs = pick(options.data.inputs, modelInputs(options.teacher));
  const precomputed = await precomputeTeacher(ort, options.teacher, teacherInputs, teacherValues, { threads: options.threads, progress: options.progress });
  const teacherSeconds = (Date.now() - started) / 1000;

  const logits = precomputed.get(plan.teacherOutput) as { data: Float32Array; sampleDims: number[] };
  if (logits.sampleDims.length !== 1 || logits.sampleDims[0] !== plan.classes) {
    throw new GradientError(`distill: teacher output '${plan.teacherOutput}' gives [${logits.sampleDims}] per sample, the student's '${plan.studentOutput}' [${plan.classes}]`);
  }
  const fields: Record<string, ArrayField> = pick(options.data.inputs, modelInputs(options.student));
  if (plan.alpha < 1) fields[TEACHER_LOGITS] = precomputedField(logits, plan.type);
  if (plan.alpha > 0) fields[LABELS] = { data: options.data.labels as TypedArray, sampleDims: [], dataType: DataType.INT64 };
  for (const f of plan.features) {
    const value = precomputed.get(f.teacher) as { data: Float32Array; sampleDims: number[] };
    checkFeatureShape(f, value.sampleDims);
    fields[f.input] = precomputedField(value, plan.type);
  }

  const trainer = await Trainer.create(
    ort,
    options.student,
    { loss: { kind: 'custom', build: (e) => distillationLoss(e, plan) }, optimizer: options.optimizer, frozen: options.frozen, clipNorm: options.clipNorm, masks: options.masks },
    { threads: options.threads },
  );
  try {
    const history = await trainer.fit(arrayTrainingData(fields), {
      epochs: options.epochs,
      batchSize: options.batchSize,
      schedule: options.schedule,
      seed: options.seed,
      progress: options.progress,
      maxSteps: options.maxSteps,
      afterEpoch: options.afterEpoch,
    });
    return { model: trainer.exportModel(), history, steps: trainer.stepCount, samples: logits.data.length / plan.classes, classes: plan.classes, teacherSeconds };
  } finally {
    await trainer.release();
  }
}

/** Emits the combined loss; terms with a zero weight are left out of the graph. */
function distillationLoss(e: Emitter, plan: DistillPlan): { loss: string; inputs: string[] } {
  const inputs: string[] = [];
  const terms: string[] = [];
  const weighted = (term: string, weight: number) => terms.push(weight === 1 ? term : e.op('Mul', [term, e.scalarOf(weight, plan.type)]));
  if (plan.alpha > 0) {
    inputs.push(e.builder.input(LABELS, DataType.INT64, [plan.batchDim]));
    weighted(crossEntropy(e, plan.studentOutput, LABELS, plan.type, { classes: plan.classes }), plan.alpha);
  }
  if (plan.alpha < 1) {
    inputs.push(e.builder.input(TEACHER_LOGITS, plan.type, [plan.batchDim, plan.classes]));
    weighted(distillationKl(e, plan.studentOutput, TEACHER_LOGITS, plan.temperature, plan.type), 1 - plan.alpha);
  }
  for (const f of plan.features) {
    inputs.push(e.builder.input(f.input, plan.type, f.studentShape));
    weighted(meanSquaredError(e, f.student, f.input, f.studentShape.length), f.weight);
  }
  if (terms.length === 0) throw new GradientError('distill: every loss term has weight 0');
  return { loss: terms.reduce((sum, term) => e.op('Add', [sum, term])), inputs };
}

/** Checks options, models and data before any session starts: each problem is one line. */
function planDistillation(options: DistillOptions): DistillPlan {
  const { teacher, student, data } = options;
  const temperature = options.temperature ?? 4;
  const alpha = options.alpha ?? 0.5;
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new GradientError(`distill: temperature must be a positive number, not ${temperature}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new GradientError(`distill: alpha must be in [0, 1], not ${alpha}`);

  const teacherOutput = logitsOutput(teacher, options.teacherOutput, 'teacher', 'teacherOutput');
  const studentOutput = logitsOutput(student, options.studentOutput, 'student', 'studentOutput');
  const teacherTypes = inferShapes(teacher).main;
  const studentInference = inferShapes(student);
  const studentTypes = studentInference.main;
  const teacherShape = teacherTypes.get(teacherOutput)?.shape;
  const studentType = studentTypes.get(studentOutput);
  const studentShape = studentType?.shape;
  const shapeText = (s: Dim[] | undefined) => (s === undefined ? 'of unknown shape' : `[${s.map((d) => d ?? '?').join(',')}]`);
  const classes = studentShape?.[1];
  if (studentType === undefined) throw new GradientError(`distill: shape inference cannot type student output '${studentOutput}': ${whyUntyped(studentInference)}`);
  if (studentShape?.length !== 2 || typeof classes !== 'number') {
    throw new GradientError(`distill: student output '${studentOutput}' is ${shapeText(studentShape)}; distillation needs logits [N, classes] with a fixed class count`);
  }
  if (teacherShape !== undefined && (teacherShape.length !== 2 || (typeof teacherShape[1] === 'number' && teacherShape[1] !== classes))) {
    throw new GradientError(`distill: teacher output '${teacherOutput}' is ${shapeText(teacherShape)}, student output '${studentOutput}' is ${shapeText(studentShape)}: they must both be [N, ${classes}]`);
  }
  const type = studentType?.elemType as DataType;
  if (type !== DataType.FLOAT && type !== DataType.DOUBLE) throw new GradientError(`distill: student output '${studentOutput}' is ${dataTypeName(type)}; distillation trains float32 or float64 students`);

  if (Object.keys(data.inputs).length === 0) throw new GradientError('distill: the data has no inputs');
  for (const [who, model] of [['teacher', teacher], ['student', student]] as const) {
    const missing = modelInputs(model).find((name) => data.inputs[name] === undefined);
    if (missing !== undefined) throw new GradientError(`distill: the data has no '${missing}' for the ${who}'s input (data holds ${Object.keys(data.inputs).map((n) => `'${n}'`).join(', ')})`);
  }
  const samples = arrayTrainingData(data.inputs).size;
  if (samples === 0) throw new GradientError('distill: the data holds no samples');
  if (alpha > 0) checkLabels(data.labels, samples, classes, alpha);

  const features = (options.features ?? []).map((f, index): FeaturePlan => {
    const weight = f.weight ?? 1;
    if (!(weight >= 0 && Number.isFinite(weight))) throw new GradientError(`distill: feature '${f.student}' has weight ${weight}; weights must be >= 0`);
    computedValue(teacher, f.teacher, 'teacher');
    computedValue(student, f.student, 'student');
    const shape = studentTypes.get(f.student)?.shape;
    if (shape === undefined || shape.length === 0) throw new GradientError(`distill: the shape of student value '${f.student}' could not be inferred; feature matching needs it`);
    const plan = { teacher: f.teacher, student: f.student, weight, input: teacherFeatureInput(index, f.teacher), studentShape: shape };
    const teacherFeature = teacherTypes.get(f.teacher)?.shape;
    if (teacherFeature !== undefined) checkFeatureShape(plan, teacherFeature.slice(1), teacherFeature.length);
    return plan;
  }).filter((f) => f.weight > 0);
  return { teacherOutput, studentOutput, classes, type, batchDim: studentShape[0], features, temperature, alpha };
}

/** The named output, or the model's only output. */
function logitsOutput(model: Model, named: string | undefined, who: string, option: string): string {
  const outputs = model.graph.outputs.map((o) => o.name);
  if (named !== undefined) {
    if (!outputs.includes(named)) throw new GradientError(`distill: '${named}' is not an output of the ${who} (outputs: ${outputs.join(', ')})`);
    return named;
  }
  if (outputs.length !== 1) throw new GradientError(`distill: the ${who} has ${outputs.length} outputs (${outputs.join(', ')}); name its logits with ${option}`);
  return outputs[0];
}

/** Feature values must be computed by a node of the main graph (a value per sample). */
function computedValue(model: Model, name: string, who: string): void {
  if (model.graph.producer(name) !== undefined) return;
  const examples = model.graph.nodes.slice(0, 4).map((n) => `'${n.outputs[0]}'`);
  throw new GradientError(`distill: the ${who} computes no value '${name}' in its main graph (values are node outputs such as ${examples.join(', ')})`);
}

/** Teacher and student values must agree on every dim after the batch axis where both are known. */
function checkFeatureShape(f: FeaturePlan, teacherSampleDims: readonly Dim[], teacherRank = teacherSampleDims.length + 1): void {
  const student = f.studentShape.slice(1);
  const fits = teacherRank === f.studentShape.length && student.every((d, i) => typeof d !== 'number' || typeof teacherSampleDims[i] !== 'number' || d === teacherSampleDims[i]);
  if (!fits) {
    const text = (dims: readonly Dim[]) => `[N,${dims.map((d) => d ?? '?').join(',')}]`;
    throw new GradientError(`distill: feature shapes differ: teacher '${f.teacher}' is ${text(teacherSampleDims)}, student '${f.student}' is ${text(student)}`);
  }
}

function checkLabels(labels: TypedArray | undefined, samples: number, classes: number, alpha: number): void {
  if (labels === undefined) throw new GradientError(`distill: alpha ${alpha} weights a hard-label loss, but the data has no labels (give labels, or alpha 0 for the teacher alone)`);
  if (labels.length !== samples) throw new GradientError(`distill: ${labels.length} labels for ${samples} samples`);
  for (let i = 0; i < labels.length; i++) {
    const label = Number(labels[i]);
    if (!(Number.isInteger(label) && label >= 0 && label < classes)) throw new GradientError(`distill: label ${label} of sample ${i} is not a class id of the ${classes} classes`);
  }
}

/** Graph inputs that data must feed (initializers listed as inputs are weights, not data). */
function modelInputs(model: Model): string[] {
  return model.graph.inputs.map((i) => i.name).filter((n) => model.graph.initializer(n) === undefined);
}

function pick(fields: Record<string, ArrayField>, names: readonly string[]): Record<string, ArrayField> {
  return Object.fromEntries(names.map((n) => [n, fields[n]]));
}
