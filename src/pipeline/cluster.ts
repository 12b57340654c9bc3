// The cluster recipe step (weight sharing): k-means codebooks for the weights (methods/cluster),
// optionally fine-tuning of the centroids, then the proof: fidelity against the original, the
// verdict, a gate. Takes a Model and returns a new one (the input is not changed) with a report of
// bits, centroids, SQNR and bytes per tensor, and the gzip -9 size of the file.
// Fine-tuning trains only the codebooks, through the Gather that decodes them: autodiff's Gather
// rule scatters-adds each weight's gradient into its centroid, so a centroid moves by the sum of
// the gradients of the weights that share it (Deep Compression, section 3.3). The zero centroid of
// pruned tensors and unused codebook slots are masked, so zeros stay exactly zero. With labels it
// fine-tunes with cross-entropy; without, it distils from the original (softened logits for a
// classifier, mean squared error on other outputs).
import type { SampleSource } from '../eval/samples.js';
import { constantValue } from '../ir/constants.js';
import { DataType, } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { replaceConstant } from '../graph-edit/replace-constant.js';
import { addSqnrTerms, sqnrFromSums } from '../kernels/sqnr.js';
import { type ClusterDetails, type ClusterOptions, clusterPass, clusterSettingsError } from '../methods/cluster/cluster.js';
import { roundCentroids } from '../methods/cluster/codebook.js';
import { findClusters } from '../methods/cluster/decode-graph.js';
import { modelBytes } from '../onnx/model-size.js';
import { inferShapes } from '../optimize/shape-inference/index.js';
import { arrayTrainingData, type TrainingArrays } from '../train/array-data.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import type { Schedule } from '../train/schedules.js';
import { LABEL_INPUT } from '../train/training-graph.js';
import { type ClusterFinetuneReport, type ClusterReport, buildClusterReport } from './cluster-report.js';
import type { RecipeContext } from './context.js';
import { debugPhase } from './debug-phase.js';
import { distill } from './distill.js';
import { comparisonWontFit, type FidelityOptions, measureFidelity } from './fidelity.js';
import { checkGate, type Gate, GateFailedError, isEmptyGate } from './gate.js';
import { type PassReport, runPass } from './pass.js';
import { distillLossOf, distillValue } from './recovery.js';
import { isUniform, trainUniform } from './cluster-uniform-training.js';
import { train } from './train.js';
import { type VerdictThresholds, verdictOf } from './verdict.js';

/** Training data for centroid fine-tuning. */
export type ClusterData = TrainingArrays;

export interface ClusterFinetune {
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  optimizer: OptimizerSpec;
  seed?: number;
  /** Distillation temperature without labels (default 4). */
  temperature?: number;
  /**
   * Without labels: a value of the model (e.g. the logits before a softmax output) matched to the
   * original's by mean squared error instead of the output. Softmax outputs are a weak signal
   * (saturated probabilities hardly move); the logits before them are not.
   */
  distillValue?: string;
  /** How `distillValue` is matched (default mse; kl: per position over the last axis, at temperature 1). */
  distillLoss?: 'mse' | 'kl';
  /** With distillLoss 'kl': the CTC blank's class; positions are weighted by the original's 1 - p(blank) (pipeline/recovery.ts CtcBlank). */
  distillBlank?: number;
  /** With distillBlank: a confident blank's weight (default 0.1). */
  distillBlankWeight?: number;
  /** With distillBlank: a class whose positions count more (PP-OCR's space, its last class), by distillFocusWeight * p_original(class). */
  distillFocus?: number;
  /** With distillFocus: its weight (>= 0). */
  distillFocusWeight?: number;
  /** With distillBlank: weight of a top-1 term, each position's cross-entropy against the original's arg-max class (train/losses.ts CtcKlExtras). */
  distillTop1?: number;
  /**
   * BatchNormalization while distilling a value: 'batch' statistics (default) or 'frozen' at the
   * running ones. Only the centroids train, so frozen statistics are the deployed model's own.
   */
  batchNorm?: 'batch' | 'frozen';
  /** Distilling a value: the centroids averaged over the ends of the last N epochs (default 1, the last). */
  averageEpochs?: number;
  /** Distilling a value: N trainings from the same codes and centroids (seeds seed, seed + 1, ...), their centroids averaged (default 1). */
  averageRuns?: number;
  maxSteps?: number;
}

export interface ClusterStepOptions extends Omit<ClusterOptions, 'calibration' | 'codeCalibration' | 'foldUniform' | 'threads'> {
  /** Weigh values by activation importance measured on `calibration` (default: the fidelity samples); OBS codes (`codes: 'obs'`) calibrate on the same samples. */
  importance?: boolean;
  calibration?: SampleSource;
  data?: ClusterData;
  /** Fine-tune the centroids on `data`. */
  finetune?: ClusterFinetune;
  /** The output trained and compared (default the first). */
  output?: string;
  fidelity?: FidelityOptions;
  fidelitySkipped?: string;
  gate?: Gate;
  verdict?: VerdictThresholds;
}

export interface ClusterResult {
  model: Model;
  report: ClusterReport;
}

/** Checks settings that cannot work (one-line errors; the CLI checks them before reading files). */
export function checkClusterSettings(options: Pick<ClusterStepOptions, 'bits' | 'channelsPerGroup' | 'layers' | 'step' | 'codebookMantissaBits'>): void {
  const error = clusterSettingsError(options);
  if (error !== undefined) throw new Error(`cluster: ${error}`);
}

/** Clusters a copy of `model`; throws on bad settings, and GateFailedError when `options.gate` is missed. */
export async function cluster(model: Model, options: ClusterStepOptions, ctx: RecipeContext): Promise<ClusterResult> {
  checkClusterSettings(options);
  const output = options.output ?? model.graph.outputs[0]?.name;
  const { data, finetune, fidelity, fidelitySkipped, gate, verdict, importance, calibration: given, output: _o, ...settings } = options;
  const calibration = importance === true ? (given ?? fidelity?.samples) : undefined;
  if (importance === true && calibration === undefined) throw new Error('cluster: activation importance needs samples: give --data');
  // Without samples the pass refuses OBS codes before any work.
  const codeCalibration = settings.codes === 'obs' ? (given ?? fidelity?.samples) : undefined;
  const candidate = model.clone();
  const firstCut = (await debugPhase(ctx.debug, 'cluster: k-means', () =>
    runPass(clusterPass, candidate, { ...settings, calibration, codeCalibration, foldUniform: finetune === undefined, threads: ctx.threads }, ctx),
  )) as PassReport & { details: ClusterDetails };

  let result = candidate;
  let tuned: ClusterFinetuneReport | undefined;
  let outcome = firstCut;
  const uniform = firstCut.details.tensors.filter(isUniform);
  if (finetune !== undefined && uniform.length > 0) {
    if (data === undefined) throw new Error('cluster: fine-tuning needs data: give --data');
    if (uniform.length < firstCut.details.tensors.length) throw new Error('cluster: fine-tuning trains uniform codes (step) and k-means codebooks differently: give every clustered layer a step, or none');
    if (data.labels !== undefined) throw new Error('cluster: uniform codes (step) are fine-tuned by distillation from the original: give --data without labels');
    const value = finetune.distillValue ?? output;
    if (value === undefined) throw new Error('cluster: the model has no output to distil');
    const started = performance.now();
    const loss = distillLossOf(finetune.distillLoss, finetune.temperature, finetune.distillBlank, finetune.distillBlankWeight, finetune);
    const trained = await debugPhase(ctx.debug, 'cluster: train under fake quantization', () =>
      trainUniform(model, uniform, data.inputs, value, { epochs: finetune.epochs, batchSize: finetune.batchSize, schedule: finetune.schedule, optimizer: finetune.optimizer, seed: finetune.seed, maxSteps: finetune.maxSteps, loss }, ctx),
    );
    // The trained weights cut again on the steps training saw.
    result = trained.model.clone();
    const fixedSteps = new Map(uniform.map((t) => [t.name, t.uniform.steps]));
    outcome = (await runPass(clusterPass, result, { ...settings, calibration, codeCalibration, fixedSteps, threads: ctx.threads }, ctx)) as PassReport & { details: ClusterDetails };
    const samples = Object.values(data.inputs)[0];
    tuned = {
      kind: 'distill',
      loss: loss.kind,
      ...(trained.inner ? { value } : {}),
      codebooks: 0,
      centroids: 0,
      weights: uniform.length,
      epochs: trained.meanLoss.length,
      steps: trained.steps,
      samples: samples.data.length / samples.sampleDims.reduce((a, b) => a * b, 1),
      mean_loss: trained.meanLoss,
      seconds: (performance.now() - started) / 1000,
    };
  } else if (finetune !== undefined && outcome.details.tensors.length > 0) {
    if (data === undefined) throw new Error('cluster: centroid fine-tuning needs data: give --data');
    const trained = await debugPhase(ctx.debug, 'cluster: fine-tune centroids', () => finetuneCentroids(model, result, outcome.details, data, finetune, output, ctx));
    result = trained.model;
    tuned = trained.report;
    refreshSqnr(model, result, outcome.details, options.halfCodebooks === true);
  }

  const tooLarge = fidelity === undefined ? undefined : comparisonWontFit(model, result, ctx);
  const measured = fidelity === undefined || tooLarge !== undefined ? undefined : await measureFidelity(model, result, fidelity, ctx);
  const skipped = fidelity === undefined ? (fidelitySkipped ?? 'no samples given') : tooLarge;
  const report = buildClusterReport(model, result, options, outcome);
  if (tuned !== undefined) report.finetune = tuned;
  if (measured !== undefined) report.fidelity = measured;
  if (skipped !== undefined) report.fidelity_skipped = skipped;
  report.verdict = verdictOf(measured, { thresholds: verdict, hints: clusterHints(options), why: skipped });
  if (gate !== undefined && !isEmptyGate(gate)) {
    const misses = checkGate(gate, measured, modelBytes(result) / modelBytes(model));
    report.gate = { passed: misses.length === 0, misses };
    if (misses.length > 0) throw new GateFailedError(misses, 'cluster gate');
  }
  return { model: result, report };
}

/** Settings worth trying when clustering damaged the model (CLI spelling). */
export function clusterHints(options: Pick<ClusterStepOptions, 'bits' | 'grouping' | 'channelsPerGroup' | 'finetune' | 'data' | 'importance' | 'codes'>): string[] {
  const hints: string[] = [];
  if (options.bits < 8) hints.push(`--bits ${options.bits + 1}`);
  if (options.grouping !== 'channel' && options.channelsPerGroup === undefined) hints.push('--per-channel');
  if (options.finetune === undefined) hints.push(options.data?.labels === undefined ? '--data D --epochs 1 (distil the centroids from the original)' : '--epochs 1 (fine-tune the centroids on --data)');
  else hints.push(`more --epochs (${options.finetune.epochs} now)`);
  if (options.codes !== 'obs') hints.push('--codes obs (codes that keep each layer\'s outputs, calibrated on --calib or --data)');
  else if (options.importance !== true) hints.push('--importance (weigh by activations of --data)');
  return hints;
}

/** The codebooks of the Gather-form tensors, with masks that hold the zero centroid and unused slots still. */
function codebookMasks(result: Model, details: ClusterDetails): { names: string[]; masks: Map<string, Tensor> } {
  const names: string[] = [];
  const masks = new Map<string, Tensor>();
  const found = new Map(findClusters(result).filter((f) => f.graph === result.graph).map((f) => [f.codebook, f]));
  for (const t of details.tensors) {
    const f = found.get(t.codebook);
    if (t.form !== 'gather' || f === undefined) continue;
    names.push(t.codebook);
    const book = constantValue(result.graph, t.codebook) as Tensor;
    const values = book.data() as Float32Array;
    // The zero centroid of a pruned tensor stays 0 (a masked weight is multiplied by its mask
    // after every step). Unused slots get no gradient: no code points at them.
    const mask = Float32Array.from(values, (v) => (v === 0 ? 0 : 1));
    masks.set(t.codebook, Tensor.fromArray(`${t.codebook}/mask`, DataType.FLOAT, book.dims, mask));
  }
  return { names, masks };
}

/** Trains the codebooks of `student` (clustered from `teacher`) and nothing else. */
async function finetuneCentroids(teacher: Model, student: Model, details: ClusterDetails, data: ClusterData, options: ClusterFinetune, output: string | undefined, ctx: RecipeContext): Promise<{ model: Model; report: ClusterFinetuneReport }> {
  const started = performance.now();
  const { names, masks } = codebookMasks(student, details);
  if (names.length === 0) throw new Error('cluster: no codebook in the main graph to fine-tune (weights inside If/Loop bodies cannot be trained)');
  const trainable = new Set(names);
  // Everything else stays as it is: every other float constant of the main graph is frozen.
  const frozen: string[] = [];
  for (const t of student.graph.initializers) if (!trainable.has(t.name)) frozen.push(t.name);
  for (const n of student.graph.nodes) if (n.opType === 'Constant' && !trainable.has(n.outputs[0])) frozen.push(n.outputs[0]);
  const fit = { epochs: options.epochs, batchSize: options.batchSize, schedule: options.schedule, optimizer: options.optimizer, seed: options.seed, maxSteps: options.maxSteps };
  const samples = Object.values(data.inputs)[0];
  const count = samples.data.length / samples.sampleDims.reduce((a, b) => a * b, 1);
  const seconds = () => (performance.now() - started) / 1000;
  const base = { codebooks: names.length, centroids: details.tensors.filter((t) => trainable.has(t.codebook)).reduce((n, t) => n + t.centroids, 0), samples: count };
  if (data.labels !== undefined) {
    const labelled = arrayTrainingData({ ...data.inputs, [LABEL_INPUT]: { data: data.labels, sampleDims: [], dataType: DataType.INT64 } });
    const { model, report } = await train(student, { ...fit, data: labelled, logits: output, frozen, masks }, ctx);
    return { model, report: { kind: 'fine-tune', loss: 'cross-entropy', ...base, epochs: report.epochs.length, steps: report.steps, mean_loss: report.epochs.map((e) => e.mean_loss), seconds: seconds(), accuracy: report.accuracy } };
  }
  const rank = output === undefined ? undefined : inferShapes(teacher).main.get(output)?.shape?.length;
  if (rank === 2 && options.distillValue === undefined) {
    const { model, report } = await distill(teacher, student, { ...fit, data: { inputs: data.inputs }, alpha: 0, temperature: options.temperature ?? 4, teacherOutput: output, studentOutput: output, frozen, masks }, ctx);
    return { model, report: { kind: 'distill', loss: 'kl', ...base, epochs: report.epochs.length, steps: report.steps, mean_loss: report.epochs.map((e) => e.mean_loss), seconds: seconds() } };
  }
  const value = options.distillValue ?? output;
  if (value === undefined) throw new Error('cluster: the model has no output to distil');
  const loss = distillLossOf(options.distillLoss, options.temperature, options.distillBlank, options.distillBlankWeight, options);
  const trained = await distillValue(teacher, student, data.inputs, value, { ...fit, optimizer: options.optimizer, frozen, masks, loss, batchNorm: options.batchNorm, averageEpochs: options.averageEpochs, averageRuns: options.averageRuns }, ctx, 'cluster');
  return { model: trained.model, report: { kind: 'distill', loss: loss.kind, ...(trained.inner ? { value } : {}), ...base, epochs: trained.meanLoss.length, steps: trained.steps, mean_loss: trained.meanLoss, ...(trained.runLosses === undefined ? {} : { runs: trained.runLosses.length, run_losses: trained.runLosses }), seconds: seconds() } };
}

/**
 * SQNR of each fine-tuned tensor against the original weight, from its trained codebook; unused
 * slots (no code points at them) repeat the group's last used centroid again, as written.
 */
function refreshSqnr(original: Model, result: Model, details: ClusterDetails, half: boolean): void {
  const found = new Map(findClusters(result).map((f) => [f.codebook, f]));
  for (const t of details.tensors) {
    const f = found.get(t.codebook);
    const exact = constantValue(original.graph, t.name);
    if (f === undefined || exact === undefined) continue;
    const codes = constantValue(f.graph, f.codes)?.data() as Uint8Array;
    const bookTensor = constantValue(f.graph, f.codebook) as Tensor;
    const book = (bookTensor.data() as Float32Array).slice();
    // Trained centroids leave the grid k-means rounded them to (float16's, fewer mantissa bits): back onto it.
    let changed = false;
    if (half || t.mantissaBits !== undefined) {
      const before = book.slice();
      roundCentroids(book, { half, mantissaBits: t.mantissaBits });
      changed = book.some((v, i) => v !== before[i]);
    }
    const offsets = f.offsets === undefined ? undefined : (constantValue(f.graph, f.offsets) as Tensor);
    let slotOf = (i: number) => codes[i];
    if (offsets !== undefined) {
      const axis = offsets.dims.findIndex((d) => d > 1);
      const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
      const off = offsets.data() as Int32Array;
      slotOf = (i) => off[Math.floor(i / inner) % t.dims[axis]] + codes[i];
    }
    const top = new Int32Array(book.length / f.stride).fill(-1);
    const decoded = new Float32Array(codes.length);
    for (let i = 0; i < codes.length; i++) {
      const slot = slotOf(i);
      decoded[i] = book[slot];
      const g = Math.floor(slot / f.stride);
      top[g] = Math.max(top[g], slot % f.stride);
    }
    let padded = false;
    top.forEach((last, g) => {
      for (let j = last + 1; last >= 0 && j < f.stride; j++) {
        padded ||= book[g * f.stride + j] !== book[g * f.stride + last];
        book[g * f.stride + j] = book[g * f.stride + last];
      }
    });
    if (padded || changed) {
      const readers = f.graph.consumers(f.codebook).map((node) => ({ graph: f.graph, node, input: node.inputs.indexOf(f.codebook) }));
      replaceConstant(result, f.graph, f.codebook, Tensor.fromArray(f.codebook, DataType.FLOAT, bookTensor.dims, book), readers);
    }
    const sums = { signal: 0, noise: 0 };
    addSqnrTerms(sums, exact.data() as Float32Array, decoded);
    t.sqnrDb = sqnrFromSums(sums);
    t.zerosAfter = decoded.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
  }
}
