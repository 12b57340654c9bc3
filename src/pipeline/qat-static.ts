// Quantization-aware training for static int8 (QDQ): weights AND activations trained through fake
// quantization, by distillation from the float model on unlabelled inputs.
//   1. The static int8 PTQ pass runs on a copy (calibration as `shrink quantize` takes it); its QDQ
//      output, before onnxruntime fuses anything, is the graph trained and the graph written.
//   2. Its training copy (train/qat-static-graph.ts) reads each weight's codes through fake
//      quantization of a trainable float at the same scale, zero point and axis; biases train as
//      floats; activation Q/DQ pairs stay at their calibrated scales (straight-through gradients).
//   3. Each epoch distils `value` of the float model (or of `teacher`) into the copy (recovery.ts's
//      distillValue: KL per position, e.g. each time step of CTC logits, or MSE) with
//      BatchNormalization frozen (PTQ folded it into the Convs anyway) and every scale frozen. The
//      rate schedule spans the whole run by default (a cosine decays over all epochs' steps, so late
//      epochs settle instead of restarting at the peak rate).
//   4. After each epoch the trained floats are quantized again on the PTQ scales into the PTQ
//      model's initializers (requantize): the PTQ graph with new codes. With `evaluate`, the best
//      epoch (PTQ itself counted as epoch 0) is the one returned: distilling on data unlike the
//      held-out data can pull held-out readings away from the float model's.
//   5. With `outputBias`, each epoch's model also gets fitted output offsets on the logits
//      (fit-output-bias.ts: e.g. rec's space against its blank, the decision int8 moves most),
//      fitted on the training inputs and kept for the epoch only when `evaluate` scores them higher.
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { optimizeModel } from '../optimize/optimize.js';
import { quantizeStaticInt8, type StaticInt8Options } from '../methods/quantize/static-int8.js';
import type { TrainingArrays } from '../train/array-data.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import { requantize, type StaticFakeQuantModel, type StaticQatUnits, staticFakeQuant } from '../train/qat-static-graph.js';
import type { Schedule } from '../train/schedules.js';
import type { RecipeContext } from './context.js';
import type { OutputOffsetFitOptions } from '../methods/quantize/output-offsets.js';
import { fitOutputBias, type OutputBiasReport } from './fit-output-bias.js';
import { type DistillLoss, distillValue } from './recovery.js';

export interface StaticQatOptions {
  /** Calibration samples of the PTQ pass. */
  calibration: SampleSource;
  /** Other PTQ settings, as `shrink quantize --method static-int8` takes them. */
  ptq?: Omit<StaticInt8Options, 'calibration'>;
  /** Unlabelled training inputs, one field per model input. */
  inputs: TrainingArrays['inputs'];
  /** The value distilled (default the model's first output): e.g. the logits before a softmax. */
  value?: string;
  /** Default KL per position at temperature 1 (each row of the value's last axis a distribution). */
  loss?: DistillLoss;
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  /**
   * What the schedule spans: 'run' (default: all epochs' steps, e.g. a cosine decays once to its
   * end) or 'epoch' (restarted every epoch; on rec at a constant 0.01 the held-out words rose then
   * fell epoch by epoch as the loss kept falling).
   */
  scheduleSpan?: 'run' | 'epoch';
  /**
   * The float model distilled from (default the model quantized): e.g. the original when the model
   * quantized is a pruned student of it. Its `value` must have the quantized model's shape.
   */
  teacher?: Model;
  /**
   * What the trained values are measured in (train/qat-static-graph.ts): 'steps' (default; the rate
   * is then a share of each weight's own quantization step per step) or 'float'.
   */
  units?: StaticQatUnits;
  /**
   * Start the weights at the float values PTQ rounded instead of at their codes. Default false: on
   * a small Conv model (test/train-qat-static.test.ts's) it made the held-out error erratic (codes
   * of weights near a bin edge flip at the first move; 18.7e-6 -> 17.5..19.8e-6 at 1/100 step per
   * step, against 16.7e-6 from the codes, where the biases did most of the work).
   */
  startFromFloat?: boolean;
  /** Default Adam (AdamW without weight decay: decay would pull the weights off PTQ's grid towards 0). */
  optimizer?: OptimizerSpec;
  seed?: number;
  /** Steps per epoch at most. */
  maxSteps?: number;
  /**
   * Scores an int8 model (higher is better); the best epoch is kept. `withOutputBias`: the model
   * carries the epoch's fitted output offsets (called once without and once with them).
   */
  evaluate?: (int8: Model, epoch: number, withOutputBias: boolean) => Promise<number>;
  /**
   * Fitted output offsets (pipeline/fit-output-bias.ts) on `value`'s classes: after every epoch
   * (PTQ included), offsets fitted on `inputs` against the teacher's top-1 are written into a copy;
   * with `evaluate` the epoch's model is the better of the two by it (so the choice is made on the
   * caller's tuning samples), without it the copy whenever the fit gains rows.
   */
  outputBias?: OutputOffsetFitOptions;
}

export interface StaticQatEpoch {
  epoch: number;
  meanLoss?: number;
  steps: number;
  seconds: number;
  metric?: number;
  /** The fitted output offsets of this epoch, whether they were kept, and the metric without them. */
  outputBias?: OutputBiasReport & { kept: boolean; metricWithout?: number };
}

export interface StaticQatReport {
  /** Weights and biases trained (their codes rewritten). */
  weights: number;
  biases: number;
  /** Of those, how many started at the float values PTQ rounded (the rest at their codes). */
  fromFloat: number;
  /** Epoch 0 is the PTQ model itself. */
  epochs: StaticQatEpoch[];
  /** The epoch whose model is returned (the last one without `evaluate`). */
  kept: number;
  steps: number;
  ptqSeconds: number;
}

export interface StaticQatResult {
  /** The PTQ model's graph with the kept epoch's codes. */
  model: Model;
  /** The PTQ model itself. */
  ptq: Model;
  /** The training copy with the kept epoch's floats, biases as written (computes what `model` does, less any fitted output offsets). */
  fake: Model;
  plan: StaticFakeQuantModel;
  report: StaticQatReport;
}

/** Static int8 PTQ of a copy of `float`, then QAT of that QDQ graph; `float` is not changed. */
export async function staticInt8Qat(float: Model, options: StaticQatOptions, ctx: RecipeContext): Promise<StaticQatResult> {
  if (options.epochs < 1) throw new Error('qat: static-int8 needs at least one epoch');
  const value = options.value ?? float.graph.outputs[0]?.name;
  if (value === undefined) throw new Error('qat: the model has no outputs to distil');
  const started = performance.now();
  const ptq = float.clone();
  await quantizeStaticInt8(ptq, { threads: ctx.threads, ...options.ptq, calibration: options.calibration }, { ort: ctx.ort });
  const ptqSeconds = (performance.now() - started) / 1000;
  // The float weights PTQ rounded, for the copy to start from: the model as PTQ optimizes it.
  let before: Model | undefined;
  if (options.startFromFloat === true) {
    before = float.clone();
    if (options.ptq?.optimize ?? true) await optimizeModel(before, { level: 'full' }, { ort: ctx.ort });
  }
  const plan = staticFakeQuant(ptq, options.units, before);
  if (plan.weights.length === 0) throw new Error('qat: static int8 quantized no weight of this model (no DequantizeLinear of int8 codes)');

  const teacher = options.teacher ?? float;
  // An epoch's int8 model, scored; with outputBias, it or its copy with fitted offsets, whichever scores higher.
  const judged = async (int8: Model, epoch: number): Promise<{ model: Model; metric?: number; outputBias?: StaticQatEpoch['outputBias'] }> => {
    const metric = options.evaluate === undefined ? undefined : await options.evaluate(int8, epoch, false);
    if (options.outputBias === undefined) return { model: int8, metric };
    const fitted = await fitOutputBias(teacher, int8, options.inputs, value, ctx, options.outputBias);
    if (fitted.report.written === 'nothing') return { model: int8, metric, outputBias: { ...fitted.report, kept: false, metricWithout: metric } };
    if (options.evaluate === undefined || metric === undefined) return { model: fitted.model, outputBias: { ...fitted.report, kept: true } };
    const withBias = await options.evaluate(fitted.model, epoch, true);
    const kept = withBias > metric;
    return { model: kept ? fitted.model : int8, metric: kept ? withBias : metric, outputBias: { ...fitted.report, kept, metricWithout: metric } };
  };
  const first = await judged(ptq, 0);
  const epochs: StaticQatEpoch[] = [{ epoch: 0, steps: 0, seconds: ptqSeconds, metric: first.metric, ...(first.outputBias === undefined ? {} : { outputBias: first.outputBias }) }];
  let best = { epoch: 0, model: first.model, fake: plan.model, metric: epochs[0].metric ?? Number.NEGATIVE_INFINITY };
  let current = plan.model;
  let steps = 0;
  // Each epoch is one distillation run (its own trainer): a schedule over the whole run is handed
  // to each as its window of the run's steps.
  const samples = Object.values(options.inputs)[0];
  const count = samples === undefined ? 0 : samples.data.length / samples.sampleDims.reduce((a, b) => a * b, 1);
  const perEpoch = Math.min(Math.floor(count / options.batchSize), options.maxSteps ?? Number.POSITIVE_INFINITY);
  const scheduleOf = (epoch: number): Schedule =>
    (options.scheduleSpan ?? 'run') === 'epoch' ? options.schedule : { kind: 'window', schedule: options.schedule, offset: (epoch - 1) * perEpoch, total: perEpoch * options.epochs };
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    const t0 = performance.now();
    const run = await distillValue(
      teacher,
      current,
      options.inputs,
      value,
      {
        epochs: 1,
        batchSize: options.batchSize,
        schedule: scheduleOf(epoch),
        optimizer: options.optimizer ?? { kind: 'adamw', weightDecay: 0 },
        seed: (options.seed ?? 0) + epoch - 1,
        maxSteps: options.maxSteps,
        frozen: plan.frozen,
        loss: options.loss ?? { kind: 'kl', temperature: 1 },
        batchNorm: 'frozen',
      },
      ctx,
      'qat',
    );
    current = run.model;
    steps += run.steps;
    const trained = new Map<string, Tensor>();
    for (const t of [...plan.weights, ...plan.biases]) {
      const tensor = current.graph.initializer(t.float);
      if (tensor === undefined) throw new Error(`qat: the trained copy lost weight '${t.float}'`);
      trained.set(t.float, tensor);
    }
    const { model: requantized, written } = requantize(ptq, plan, trained);
    const { model, metric, outputBias } = await judged(requantized, epoch);
    epochs.push({ epoch, meanLoss: run.meanLoss[0], steps: run.steps, seconds: (performance.now() - t0) / 1000, metric, ...(outputBias === undefined ? {} : { outputBias }) });
    if (options.evaluate === undefined || (metric as number) > best.metric) {
      best = { epoch, model, fake: withFloats(current, written), metric: metric ?? Number.NEGATIVE_INFINITY };
    }
  }
  return { model: best.model, ptq, fake: best.fake, plan, report: { weights: plan.weights.length, biases: plan.biases.length, fromFloat: plan.fromFloat, epochs, kept: best.epoch, steps, ptqSeconds } };
}

/** `model` with the float initializers of `values` replaced. */
function withFloats(model: Model, values: ReadonlyMap<string, Tensor>): Model {
  const copy = model.clone();
  for (const [name, tensor] of values) {
    const at = copy.graph.initializers.findIndex((t) => t.name === name);
    copy.graph.replaceInitializer(at, tensor);
  }
  return copy;
}
