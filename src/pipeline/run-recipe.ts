// Runs a recipe: its steps in order, each on the previous step's result, then the proof for the
// whole: the final model against the recipe's input on the data, with the verdict. A gate step
// measures the model so far against the input and stops the recipe (GateFailedError, exit 3 in
// the CLI) when a figure misses. Nothing here touches files, so a page or a worker runs the same
// recipe the CLI runs and gets the same model. prune and cluster steps with `epochs` fine-tune on
// `training` (arrays, like `shrink prune --data`); a last `pack` step turns the model into a
// .shrink pack (checked: it unpacks to the same bytes). After every step the model is measured
// against the input, for the stage table (recipe-stages.ts).
import type { EvalReport } from '../eval/eval-report.js';
import type { Labels } from '../eval/labels.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import { packOnnx } from '../methods/pack/pack.js';
import { writeModel } from '../onnx/model-io.js';
import { bytesEqual } from '../optimize/util/bytes.js';
import { modelBytes } from '../onnx/model-size.js';
import { unpack } from '../onnx/pack-decode.js';
import type { ArrayField } from '../train/array-data.js';
import type { TypedArray } from '../ir/dtype.js';
import type { RecipeContext } from './context.js';
import { comparisonWontFit, type FidelityOptions, measureFidelity } from './fidelity.js';
import { checkGate, GateFailedError, type GateMiss } from './gate.js';
import { type OptimizeReport, optimize } from './optimize.js';
import type { PassWarning } from './pass.js';
import { cluster } from './cluster.js';
import type { ClusterReport } from './cluster-report.js';
import { fitOutputBiasOnSamples, type OutputBiasReport } from './fit-output-bias.js';
import { lowRank } from './lowrank.js';
import type { LowRankReport } from './lowrank-report.js';
import { prune } from './prune.js';
import type { PruneReport } from './prune-report.js';
import { quantize } from './quantize.js';
import type { QuantizeReport } from './quantize-report.js';
import { type Recipe, type StepTraining, stepTrains } from './recipe.js';
import { type RecipeStage, stageLabel, stageRow } from './recipe-stages.js';
import { type SizeChange, sizeChange } from './size-change.js';
import { type Verdict, type VerdictThresholds, verdictOf } from './verdict.js';

export interface RecipeData {
  /** Samples every step checks on, and the calibration data unless `calibration` is given. */
  data?: SampleSource;
  /** Calibration samples for static-int8 steps (default: `data`). */
  calibration?: SampleSource;
  /** Class ids of `data`: accuracy, and gates on it. */
  labels?: Labels;
  /** A user's metric of the outputs, measured with every comparison (`shrink auto --metric`). */
  metric?: FidelityOptions['metric'];
  /** Compare at most this many samples of `data`. */
  limit?: number;
  /** Why there is no data, when there is none (the reports say so). */
  noDataReason?: string;
  verdict?: VerdictThresholds;
  /** Training arrays for steps with `epochs` (the PruneData/ClusterData shape): fine-tuning with labels, distillation without. */
  training?: { inputs: Record<string, ArrayField>; labels?: TypedArray };
  /** Bytes of the input file, for the stage table (default: the model's encoded size). */
  inputBytes?: number;
}

/** Defaults of recipe fine-tuning, as on the command line: prune SGD (momentum 0.9) at 0.05, cluster AdamW at 1e-3 (summed centroid gradients make SGD diverge). */
const RECIPE_TRAINING = { batchSize: 64, pruneRate: 0.05, clusterRate: 0.001, lowRankRate: 0.001 };

export type RecipeStepReport =
  | { step: 'optimize'; report: OptimizeReport }
  | { step: 'quantize'; report: QuantizeReport }
  | { step: 'prune'; report: PruneReport }
  /** output_bias: the offsets fitted after the centroids (recipe key fit_output_bias); `report` is the model before them. */
  | { step: 'cluster'; report: ClusterReport; output_bias?: OutputBiasReport }
  | { step: 'lowrank'; report: LowRankReport }
  | { step: 'gate'; report: { passed: boolean; misses: GateMiss[]; fidelity: EvalReport; size_ratio: number } }
  | { step: 'pack'; report: PackStepReport };

export interface PackStepReport {
  onnx_bytes: number;
  pack_bytes: number;
  /** ONNX bytes / pack bytes. */
  pack_ratio: number;
  ms: number;
}

export interface RecipeReport {
  description?: string;
  steps: RecipeStepReport[];
  /** The recipe's input against its final model (the pack, after a pack step). */
  size: SizeChange;
  /** The input, then the model after every step but gates: accuracy or fidelity, bytes, compression. */
  stages: RecipeStage[];
  /** The final model against the input on the data; absent without data. */
  fidelity?: EvalReport;
  fidelity_skipped?: string;
  verdict: Verdict;
  warnings: PassWarning[];
}

export interface RecipeResult {
  model: Model;
  /** The .shrink pack of `model`, when the recipe ends with a pack step. */
  pack?: Uint8Array;
  report: RecipeReport;
}

/** A step's progress report: which step of how many is running. */
export type StepListener = (index: number, total: number, name: string) => void;

export async function runRecipe(model: Model, recipe: Recipe, data: RecipeData, ctx: RecipeContext, onStep?: StepListener): Promise<RecipeResult> {
  for (const [i, step] of recipe.steps.entries()) {
    if (stepTrains(step) && data.training === undefined) throw new Error(`recipe step ${i + 1} (${step.kind}): 'epochs' fine-tunes on training arrays: give --data as an .npz or .npy (with labels to fine-tune, without to distil)`);
    if (step.kind === 'pack' && i !== recipe.steps.length - 1) throw new Error(`recipe step ${i + 1} (pack): pack must be the last step`);
    if (step.kind === 'cluster' && step.outputBias !== undefined && data.calibration === undefined) throw new Error(`recipe step ${i + 1} (cluster): 'fit_output_bias' fits on the calibration samples: give --calib (samples neither trained on nor judged on)`);
  }
  const steps: RecipeStepReport[] = [];
  const warnings: PassWarning[] = [];
  const fidelity = data.data === undefined ? undefined : { samples: data.data, limit: data.limit, labels: data.labels, metric: data.metric };
  // The last measurement of the current model against the input, reused when nothing changed since.
  let measured: { model: Model; report: EvalReport } | undefined;
  let current = model;
  let pack: Uint8Array | undefined;
  const inputBytes = data.inputBytes ?? modelBytes(model);
  const stages: RecipeStage[] = [];
  const kinds: string[] = [];
  const notMeasuredWhy = () => (fidelity === undefined ? (data.noDataReason ?? 'no data given') : comparisonWontFit(model, current, ctx));
  const measureStage = async (): Promise<EvalReport | undefined> => {
    if (measured?.model === current) return measured.report;
    if (fidelity === undefined || comparisonWontFit(model, current, ctx) !== undefined) return undefined;
    const report = await measureFidelity(model, current, fidelity, ctx);
    measured = { model: current, report };
    return report;
  };
  for (const [i, step] of recipe.steps.entries()) {
    onStep?.(i, recipe.steps.length, step.kind);
    ctx.debug?.(1, `recipe step ${i + 1}/${recipe.steps.length}: ${step.kind}`);
    if (step.kind === 'optimize') {
      const result = await optimize(current, { ...step.options, validate: fidelity }, ctx);
      current = result.model;
      warnings.push(...result.report.warnings.filter((w) => w.code !== 'not-validated'));
      steps.push({ step: 'optimize', report: result.report });
    } else if (step.kind === 'quantize') {
      const calibration = data.calibration ?? data.data;
      const { fitOutputBias, ...options } = step.options;
      // Offsets fitted on the samples that judge the result would flatter it: calibration only.
      if (fitOutputBias !== undefined && data.calibration === undefined) throw new Error("recipe quantize: 'fit_output_bias' fits on the calibration samples: give --calib");
      const outputBias = fitOutputBias === undefined || data.calibration === undefined ? undefined : { value: fitOutputBias, samples: data.calibration };
      const result = await quantize(current, { ...options, calibration, fidelity, fidelitySkipped: data.noDataReason, verdict: data.verdict, outputBias }, ctx);
      current = result.model;
      warnings.push(...result.report.warnings);
      steps.push({ step: 'quantize', report: result.report });
    } else if (step.kind === 'prune') {
      // Wanda/SparseGPT calibrate (and channel compensation measures means) on --calib, else on --data.
      const calibration = data.calibration ?? (data.data?.warning === undefined ? data.data : undefined);
      const t = step.training;
      const recovery =
        t === undefined
          ? undefined
          : {
              epochs: t.epochs,
              batchSize: t.batchSize ?? RECIPE_TRAINING.batchSize,
              schedule: schedule(t, RECIPE_TRAINING.pruneRate),
              optimizer: t.optimizer === 'adamw' ? { kind: 'adamw' as const } : { kind: 'sgd' as const, momentum: 0.9 },
              seed: 0,
              rounds: t.rounds,
              roundSchedule: t.roundSchedule,
              ...(t.distillValue === undefined ? {} : { distillValue: t.distillValue }),
              ...(t.distillLoss === undefined ? {} : { distillLoss: t.distillLoss }),
              ...(t.batchNorm === undefined ? {} : { batchNorm: t.batchNorm }),
              ...(t.distillBlank === undefined ? {} : { distillBlank: t.distillBlank }),
              ...(t.distillBlankWeight === undefined ? {} : { distillBlankWeight: t.distillBlankWeight }),
            };
      const result = await prune(current, { ...step.options, calibration, data: data.training, recovery, fidelity, fidelitySkipped: data.noDataReason, verdict: data.verdict }, ctx);
      current = result.model;
      warnings.push(...result.report.warnings);
      steps.push({ step: 'prune', report: result.report });
    } else if (step.kind === 'cluster') {
      // Activation importance and OBS codes read --calib, else --data (real samples only).
      const measures = step.options.importance === true || step.options.codes === 'obs';
      const calibration = measures ? (data.calibration ?? (data.data?.warning === undefined ? data.data : undefined)) : undefined;
      if (measures && calibration === undefined) throw new Error(`recipe step ${i + 1} (cluster): ${step.options.importance === true ? 'importance measures activations' : 'OBS codes calibrate each layer'}: give --data or --calib`);
      const t = step.training;
      const finetune = t === undefined ? undefined : { epochs: t.epochs, batchSize: t.batchSize ?? RECIPE_TRAINING.batchSize, schedule: schedule(t, RECIPE_TRAINING.clusterRate), optimizer: { kind: 'adamw' as const }, seed: step.options.seed ?? 0, distillValue: t.distillValue, ...(t.distillLoss === undefined ? {} : { distillLoss: t.distillLoss }), ...(t.batchNorm === undefined ? {} : { batchNorm: t.batchNorm }), ...(t.distillBlank === undefined ? {} : { distillBlank: t.distillBlank }), ...(t.distillBlankWeight === undefined ? {} : { distillBlankWeight: t.distillBlankWeight }), ...(t.distillFocus === undefined ? {} : { distillFocus: t.distillFocus, distillFocusWeight: t.distillFocusWeight }), ...(t.distillTop1 === undefined ? {} : { distillTop1: t.distillTop1 }), ...(t.averageEpochs === undefined ? {} : { averageEpochs: t.averageEpochs }), ...(t.averageRuns === undefined ? {} : { averageRuns: t.averageRuns }) };
      const result = await cluster(current, { ...step.options, calibration, data: data.training, finetune, fidelity, fidelitySkipped: data.noDataReason, verdict: data.verdict }, ctx);
      current = result.model;
      warnings.push(...result.report.warnings);
      let outputBias: OutputBiasReport | undefined;
      if (step.outputBias !== undefined) {
        // Fitted against the recipe's input on --calib (checked above): samples the centroids did not train on and that do not judge the result.
        const { value, ...fit } = step.outputBias;
        ({ model: current, report: outputBias } = await fitOutputBiasOnSamples(model, current, data.calibration as SampleSource, value, ctx, fit));
      }
      steps.push({ step: 'cluster', report: result.report, ...(outputBias === undefined ? {} : { output_bias: outputBias }) });
    } else if (step.kind === 'lowrank') {
      const t = step.training;
      // AdamW 1e-3, as `shrink lowrank` trains: SGD at 0.05 cost the MLP 1.2 points there.
      const recovery = t === undefined ? undefined : { epochs: t.epochs, batchSize: t.batchSize ?? RECIPE_TRAINING.batchSize, schedule: schedule(t, RECIPE_TRAINING.lowRankRate), optimizer: { kind: 'adamw' as const }, seed: 0 };
      const result = await lowRank(current, { ...step.options, data: data.training, recovery, fidelity, fidelitySkipped: data.noDataReason, verdict: data.verdict }, ctx);
      current = result.model;
      warnings.push(...result.report.warnings);
      steps.push({ step: 'lowrank', report: result.report });
    } else if (step.kind === 'pack') {
      const started = performance.now();
      const onnx = writeModel(current);
      pack = packOnnx(onnx).pack;
      // The pack is the result: it must give back the model's bytes exactly.
      const back = unpack(pack);
      if (!bytesEqual(back, onnx)) throw new Error(`recipe step ${i + 1} (pack): the pack does not unpack to the model's bytes`);
      steps.push({ step: 'pack', report: { onnx_bytes: onnx.length, pack_bytes: pack.length, pack_ratio: Number((onnx.length / pack.length).toFixed(4)), ms: Math.round(performance.now() - started) } });
      kinds.push('pack');
      const report = await measureStage();
      stages.push(stageRow('pack', stageLabel(kinds), inputBytes, onnx.length, report, { packBytes: pack.length, why: notMeasuredWhy() }));
      continue;
    } else {
      if (fidelity === undefined) throw new Error(`recipe step ${i + 1} (gate): gates compare with the input on data: give --data${data.noDataReason === undefined ? '' : ` (${data.noDataReason})`}`);
      const tooLarge = comparisonWontFit(model, current, ctx);
      if (tooLarge !== undefined) throw new Error(`recipe step ${i + 1} (gate) cannot be checked: ${tooLarge}`);
      const report = measured?.model === current ? measured.report : await measureFidelity(model, current, fidelity, ctx);
      measured = { model: current, report };
      const sizeRatio = modelBytes(current) / modelBytes(model);
      const misses = checkGate(step.gate, report, sizeRatio);
      steps.push({ step: 'gate', report: { passed: misses.length === 0, misses, fidelity: report, size_ratio: Number(sizeRatio.toFixed(4)) } });
      if (misses.length > 0) throw new GateFailedError(misses, `recipe step ${i + 1} (gate)`);
      continue;
    }
    kinds.push(step.kind);
    const report = await measureStage();
    stages.push(stageRow(step.kind, stageLabel(kinds), inputBytes, modelBytes(current), report, { why: notMeasuredWhy() }));
  }
  // Every measurement compares with the input, so any of them holds the input's own accuracy.
  stages.unshift(stageRow('input', 'original', inputBytes, inputBytes, measured?.report, { original: true, why: fidelity === undefined ? (data.noDataReason ?? 'no data given') : undefined }));
  let final: EvalReport | undefined;
  const tooLarge = fidelity === undefined ? undefined : comparisonWontFit(model, current, ctx);
  if (fidelity !== undefined && tooLarge === undefined) final = measured?.model === current ? measured.report : await measureFidelity(model, current, fidelity, ctx);
  const notMeasured = tooLarge ?? data.noDataReason ?? 'no data given';
  return {
    model: current,
    ...(pack === undefined ? {} : { pack }),
    report: {
      ...(recipe.description === undefined ? {} : { description: recipe.description }),
      steps,
      size: sizeChange(inputBytes, pack?.length ?? modelBytes(current)),
      stages,
      ...(final === undefined ? { fidelity_skipped: notMeasured } : { fidelity: final }),
      verdict: verdictOf(final, { thresholds: data.verdict, why: notMeasured }),
      warnings,
    },
  };
}

function schedule(training: StepTraining, rate: number) {
  return { kind: 'cosine' as const, rate: training.lr ?? rate, ...(training.warmup === undefined ? {} : { warmup: training.warmup }) };
}
