// `shrink qat IN -o OUT --method static-int8 --data FILE.npz [--calib D] [--distill-value NAME]
// [--teacher FILE] [--schedule-span run|epoch] [--temperature T]`: quantization-aware training of
// static int8 (src/pipeline/qat-static.ts). The PTQ pass runs as `shrink quantize --method
// static-int8` runs it (calibrated on --calib, else on --data), then its QDQ graph trains under fake
// quantization by distillation from the float model (or --teacher) on the unlabelled --data, the
// rate schedule spanning all epochs (or restarted each with --schedule-span epoch), and the written
// model is PTQ's graph with the trained codes. After every epoch the int8
// model's first output is compared with float32's on the calibration samples, or on every --tune
// sample (a split neither calibrated nor trained on) when given (SQNR, or the user's --metric
// module, e.g. a text-mask IoU or src/eval/ctc-words-metric.ts, when given); the best epoch, PTQ alone counted as epoch 0, is written (only once it loads in onnxruntime).
// --fit-output-bias: every epoch is also scored with fitted output offsets on the distilled value
// (pipeline/fit-output-bias.ts, fitted on --data) and keeps them when they score higher.
import { modelSignature } from '../eval/match-inputs.js';
import type { Model } from '../ir/model.js';
import { outputFileName, quantizeMethod } from '../methods/quantize/registry.js';
import { loadCustomMetric } from '../node/custom-metric.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import { openSampleFile } from '../node/sample-files.js';
import type { RecipeContext } from '../pipeline/context.js';
import { debugPhase } from '../pipeline/debug-phase.js';
import { measureFidelity } from '../pipeline/fidelity.js';
import { staticInt8Qat, type StaticQatEpoch } from '../pipeline/qat-static.js';
import { DEFAULT_BLANK_WEIGHT, distillLossOf } from '../pipeline/recovery.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { formatSizeChange, sizeChange } from '../pipeline/size-change.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile } from './input-files.js';
import { outputFile, writeModelOutput } from './model-output.js';
import { checkOutput } from './output-checks.js';
import { parseTrainingOptions, type TrainingFlags } from './training-options.js';
import { readLabelledArrays } from './training-data.js';

export interface StaticQatFlags extends TrainingFlags {
  output: string;
  data: string;
  calib?: string;
  distillValue?: string;
  distillLoss?: 'mse' | 'kl';
  /** KL's softmax temperature (default 1). */
  temperature?: number;
  /** KL: the CTC blank's class, each position weighted by the original's 1 - p(blank) (pipeline/recovery.ts CtcBlank). */
  distillBlank?: number;
  /** With distillBlank: a confident blank's weight (default 0.1). */
  distillBlankWeight?: number;
  /** The float model distilled from (default the input), e.g. the original of a pruned input. */
  teacher?: string;
  scheduleSpan?: 'run' | 'epoch';
  maxSteps?: number;
  /** A user metric module ((reference, candidate, sample) => number, higher is better): it chooses the epoch kept instead of SQNR. */
  metric?: string;
  /** Samples the epoch is chosen on (all of them) instead of the first calibration samples. */
  tune?: string;
  /** Fitted output offsets on the distilled value's classes after every epoch (pipeline/fit-output-bias.ts), kept when they score higher. */
  fitOutputBias?: boolean;
}

/** Calibration samples the SQNR of each epoch is measured on (the first ones) when there is no --tune. */
const SQNR_SAMPLES = 64;

export interface StaticQatBody {
  method: 'static-int8';
  samples: number;
  /** The value distilled and how; teacher: the model distilled from when not the input. */
  distilled: { value: string; loss: 'mse' | 'kl'; temperature?: number; blank?: { index: number; weight: number }; teacher?: string };
  /** The rate schedule and what it spans (all epochs' steps, or each epoch's). */
  schedule: { kind: string; rate: number; span: 'run' | 'epoch' };
  /** Weights and biases whose codes were trained. */
  weights: number;
  biases: number;
  /** Epoch 0 is PTQ alone; sqnr_db: the first output against float32's on the samples of `chosen_on`; metric: --metric's mean there. */
  epochs: { epoch: number; steps: number; mean_loss: number | null; seconds: number; sqnr_db: number; metric?: number; output_bias?: { offsets: Record<string, number>; kept: boolean; agreement_before: number; agreement_after: number } }[];
  kept: number;
  /** What chose the epoch kept: 'sqnr', or --metric's name. */
  kept_by: string;
  /** The samples each epoch is measured on: the --tune file's, or the first calibration samples. */
  chosen_on: { file: string; samples: number; tune: boolean };
}

export type StaticQatCommandReport = ReportEnvelope & StaticQatBody;

export async function runStaticQat(input: string, flags: StaticQatFlags, ctx: RecipeContext): Promise<StaticQatCommandReport> {
  const { epochs, batchSize, schedule, scale, seed } = parseTrainingOptions(flags);
  const inputs = [input, flags.data, flags.calib, flags.tune, flags.teacher];
  checkOutput({ output: flags.output, flag: '-o', inputs, models: flags.teacher === undefined ? [input] : [input, flags.teacher], folderAllowed: true });
  const output = outputFile(flags.output, outputFileName(input, quantizeMethod('static-int8'), {}), inputs);
  const model = await debugPhase(ctx.debug, `qat: read ${input}`, () => loadModelFile(input));
  const value = flags.distillValue ?? model.graph.outputs[0]?.name;
  if (value === undefined) throw inFile(input, new Error('the model has no outputs to distil'));
  if (!model.graph.isGraphOutput(value) && model.graph.producer(value) === undefined) throw inFile(input, new Error(`--distill-value: the model computes no value '${value}'`));
  const teacherFile = flags.teacher;
  const teacher = teacherFile === undefined ? undefined : await debugPhase(ctx.debug, `qat: read ${teacherFile}`, () => loadModelFile(teacherFile));
  if (teacher !== undefined && teacherFile !== undefined && !teacher.graph.isGraphOutput(value) && teacher.graph.producer(value) === undefined) {
    throw inFile(teacherFile, new Error(`--teacher: the teacher computes no value '${value}' to distil (name it with --distill-value)`));
  }
  if (flags.temperature !== undefined && flags.distillLoss === 'mse') throw new UsageError('--temperature: only with --distill-loss kl');
  const temperature = flags.temperature ?? 1;
  const span = flags.scheduleSpan ?? 'run';
  const data = await debugPhase(ctx.debug, `qat: read ${flags.data}`, () => readLabelledArrays({ data: flags.data, models: [model], scale, requireLabels: false }));
  if (batchSize > data.count) throw new UsageError(`--batch-size ${batchSize} is larger than the ${data.count} samples in ${flags.data}`);
  const calibration = await openSampleFile(flags.calib ?? flags.data, modelSignature(model));
  const tuning = flags.tune === undefined ? undefined : await openSampleFile(flags.tune, modelSignature(model));
  const chosenOn = tuning === undefined ? { file: flags.calib ?? flags.data, samples: Math.min(SQNR_SAMPLES, calibration.count ?? SQNR_SAMPLES), tune: false } : { file: flags.tune as string, samples: tuning.count ?? Number.NaN, tune: true };
  const loss = flags.distillLoss ?? 'kl';
  const custom = flags.metric === undefined ? undefined : await loadCustomMetric(flags.metric);
  const measured = async (candidate: Model) => {
    const report = await measureFidelity(model, candidate, { samples: tuning ?? calibration, limit: tuning === undefined ? SQNR_SAMPLES : undefined, ...(custom === undefined ? {} : { metric: custom }) }, { ...ctx, progress: undefined });
    const mean = report.custom?.mean;
    // The report writes infinities as strings (JSON has none).
    const metric = mean === undefined ? undefined : typeof mean === 'number' ? mean : mean === 'inf' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    return { sqnr: Number(Object.values(report.outputs)[0]?.sqnr_db ?? Number.NaN), metric };
  };
  // Keyed by epoch and whether the model carries fitted output offsets.
  const scores = new Map<string, { sqnr: number; metric?: number }>();
  let result: Awaited<ReturnType<typeof staticInt8Qat>>;
  try {
    result = await staticInt8Qat(
      model,
      {
        calibration,
        // The command's PTQ defaults (the quantize registry's): bias correction when the calibration allows it.
        ptq: { biasCorrection: 'auto' },
        inputs: data.inputs,
        value,
        loss: distillLossOf(loss, temperature, flags.distillBlank, flags.distillBlankWeight),
        teacher,
        epochs,
        batchSize,
        schedule,
        scheduleSpan: span,
        optimizer: flags.optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9 } : undefined,
        seed,
        maxSteps: flags.maxSteps,
        // The epoch kept: the best --metric mean (higher is better), else the best SQNR, on the --tune or calibration samples.
        outputBias: flags.fitOutputBias === true ? {} : undefined,
        evaluate: async (int8, epoch, withOutputBias) => {
          const score = await measured(int8);
          scores.set(`${epoch}:${withOutputBias}`, score);
          return custom === undefined ? score.sqnr : (score.metric ?? Number.NEGATIVE_INFINITY);
        },
      },
      ctx,
    );
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw inFile(input, error);
  }
  const saved = await debugPhase(ctx.debug, `qat: save ${output}`, () => writeModelOutput(result.model, output));
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  const body: StaticQatBody = {
    method: 'static-int8',
    samples: data.count,
    distilled: { value, loss, ...(loss === 'kl' ? { temperature } : {}), ...(flags.distillBlank === undefined ? {} : { blank: { index: flags.distillBlank, weight: flags.distillBlankWeight ?? DEFAULT_BLANK_WEIGHT } }), ...(flags.teacher === undefined ? {} : { teacher: flags.teacher }) },
    schedule: { kind: schedule.kind, rate: 'rate' in schedule ? schedule.rate : Number.NaN, span },
    weights: result.report.weights,
    biases: result.report.biases,
    epochs: result.report.epochs.map((e: StaticQatEpoch) => {
      const bias = e.outputBias;
      const score = scores.get(`${e.epoch}:${bias?.kept === true}`);
      const outputBias = bias === undefined ? {} : { output_bias: { offsets: bias.offsets, kept: bias.kept, agreement_before: round(bias.agreementBefore), agreement_after: round(bias.agreementAfter) } };
      return { epoch: e.epoch, steps: e.steps, mean_loss: e.meanLoss === undefined ? null : round(e.meanLoss), seconds: round(e.seconds), sqnr_db: round(score?.sqnr ?? Number.NaN), ...(score?.metric === undefined ? {} : { metric: round(score.metric) }), ...outputBias };
    }),
    kept: result.report.kept,
    kept_by: custom?.name ?? 'sqnr',
    chosen_on: chosenOn,
  };
  return envelope({ command: 'qat', input, output: saved.file, size: sizeChange(modelFileBytes(input, model), saved.bytes), warnings: saved.warnings }, body, nodeEnvironment());
}

export function formatStaticQatReport(r: StaticQatCommandReport): string {
  return [
    `qat static-int8: ${r.weights} weights and ${r.biases} biases of the PTQ graph trained under fake quantization (activations at their calibrated scales), distilling '${r.distilled.value}' (${r.distilled.loss}${r.distilled.temperature === undefined || r.distilled.temperature === 1 ? '' : `, T = ${r.distilled.temperature}`}) of ${r.distilled.teacher ?? 'the float model'} on ${r.samples} samples, rate ${r.schedule.rate} ${r.schedule.kind} over ${r.schedule.span === 'run' ? 'the whole run' : 'each epoch'}`,
    ...r.epochs.map((e) => {
      const bias = e.output_bias === undefined ? '' : `; output offsets ${JSON.stringify(e.output_bias.offsets)} (top-1 agreement on --data ${(100 * e.output_bias.agreement_before).toFixed(2)}% -> ${(100 * e.output_bias.agreement_after).toFixed(2)}%) ${e.output_bias.kept ? 'kept' : 'not kept'}`;
      const metric = `${e.metric === undefined ? '' : `, ${r.kept_by} ${e.metric}`}${bias}`;
      return e.epoch === 0 ? `  PTQ: SQNR ${e.sqnr_db.toFixed(2)} dB${metric}, ${e.seconds.toFixed(1)} s` : `  epoch ${e.epoch}: ${e.steps} steps, mean loss ${(e.mean_loss ?? Number.NaN).toFixed(4)}, SQNR ${e.sqnr_db.toFixed(2)} dB${metric}, ${e.seconds.toFixed(1)} s`;
    }),
    `kept ${r.kept === 0 ? 'PTQ alone (no epoch beat it)' : `epoch ${r.kept}`} (${r.kept_by === 'sqnr' ? 'SQNR of the first output' : `the mean of ${r.kept_by}`} against float32 on ${r.chosen_on.tune ? `the ${r.chosen_on.samples} --tune samples` : `the first ${r.chosen_on.samples} calibration samples`})`,
    ...r.warnings.map((w) => `  warning: ${w.message}`),
    `wrote ${r.output}: ${r.size === undefined ? '' : formatSizeChange(r.size)}`,
    '',
  ].join('\n');
}
