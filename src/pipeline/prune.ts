// The prune recipe step: a method from the registry (magnitude, N:M, channels), optionally
// recovery training, then the proof: fidelity against the original, the verdict, a gate. Takes a
// Model and returns a new one (the input is not changed), with a report of sparsity, parameters,
// dense and gzip bytes, MACs and the channel groups. Recovery fine-tunes on labelled data with
// cross-entropy, or without labels distils from the original (its softened logits for a
// classifier, its outputs by mean squared error otherwise); pruning masks keep zeroed weights
// at zero throughout. The CLI, recipes and a page all prune through this function.
import type { SampleSource } from '../eval/samples.js';
import { DataType, } from '../ir/dtype.js';
import { constantValue } from '../ir/constants.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/value-info.js';
import type { PruneDetails, PrunePassReport } from '../methods/prune/details.js';
import { countMacs } from '../methods/prune/macs.js';
import { type PruneMethodName, type PruneSettings, pruneMethod } from '../methods/prune/registry.js';
import { taylorGradients } from '../methods/prune/taylor.js';
import { modelBytes } from '../onnx/model-size.js';
import type { TrainingArrays } from '../train/array-data.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import type { Schedule } from '../train/schedules.js';
import type { RecipeContext } from './context.js';
import { debugPhase } from './debug-phase.js';
import { comparisonWontFit, type FidelityOptions, measureFidelity } from './fidelity.js';
import { checkGate, type Gate, GateFailedError, isEmptyGate } from './gate.js';
import { gzipChange, type PruneRecoveryReport, type PruneReport, SPARSE_NOTE, weightCounts } from './prune-report.js';
import { sizeChange } from './size-change.js';
import { labelledData, recoverByTraining } from './recovery.js';
import { channelRoundShares, groupWidths, joinRoundGroups, type RoundSchedule, scheduleProgress } from './prune-rounds.js';
import { type VerdictThresholds, verdictOf } from './verdict.js';

/** Training data for recovery (and Taylor importance). */
export type PruneData = TrainingArrays;

export interface PruneRecovery {
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  optimizer: OptimizerSpec;
  seed?: number;
  /** Distillation temperature for classifiers (default 4). */
  temperature?: number;
  /** Stop after this many steps (smoke runs). */
  maxSteps?: number;
  /**
   * Without labels: a value of the model (e.g. the logits before a softmax output) matched to the
   * original's by mean squared error instead of the output (pipeline/recovery.ts).
   */
  distillValue?: string;
  /** How `distillValue` (or a non-classifier output) is matched: 'mse' (default), 'kl' per position over the last axis at `temperature` (default 1), or 'bce' of the sigmoids of logits (pipeline/recovery.ts). */
  distillLoss?: 'mse' | 'kl' | 'bce';
  /** With distillLoss 'kl': the CTC blank's class; positions are weighted by the original's 1 - p(blank) (pipeline/recovery.ts CtcBlank). */
  distillBlank?: number;
  /** With distillBlank: a confident blank's weight (default 0.1). */
  distillBlankWeight?: number;
  /**
   * Distilling a value: BatchNormalization on 'batch' statistics (default), or 'frozen' at its
   * running statistics (the student's, as it will be deployed; small batches of crops give noisy
   * batch statistics).
   */
  batchNorm?: 'batch' | 'frozen';
  /**
   * Prune gradually (magnitude, wanda, sparsegpt, channels): this many rounds, the sparsity rising
   * on `roundSchedule` to the target, each round followed by `epochs` of training (zeros held;
   * channels: each round plans on the model the last one trained) (default 1: prune once, then train).
   */
  rounds?: number;
  /** How the sparsity rises over the rounds (pipeline/prune-rounds.ts; default 'cubic'). */
  roundSchedule?: RoundSchedule;
}

/** One round of gradual pruning, as `PruneOptions.onRound` sees it. */
export interface PruneRound {
  round: number;
  rounds: number;
  /** The cumulative sparsity this round reached (of the model before the first round). */
  sparsity: number | undefined;
  /** The model the round pruned, the model just after pruning, and after its training. */
  before: Model;
  pruned: Model;
  trained: Model;
  /** The method's settings for this round (channels: with `widthsBefore` from the second round on). */
  settings: PruneSettings;
  pass: PrunePassReport;
  training?: PruneRecoveryReport;
}

/** Methods that can prune in rounds: a weight pruned earlier scores zero and stays pruned; channels count the channels earlier rounds removed. */
const GRADUAL_METHODS: readonly PruneMethodName[] = ['magnitude', 'wanda', 'sparsegpt', 'channels'];

export { cubicSparsity } from './prune-rounds.js';

export interface PruneOptions extends Omit<PruneSettings, 'gradients' | 'calibration'> {
  method: PruneMethodName;
  /** Labelled (or unlabelled) data for recovery and Taylor importance. */
  data?: PruneData;
  /** Train after pruning on `data` (requires `data`). */
  recovery?: PruneRecovery;
  /** Taylor importance: batches of `data` whose gradients are summed (default 8 of 64). */
  taylorBatches?: number;
  /** The output trained and compared (default the first). */
  output?: string;
  /** Where and how to measure the result; without it fidelity is not measured (`fidelitySkipped` says why). */
  fidelity?: FidelityOptions;
  fidelitySkipped?: string;
  gate?: Gate;
  verdict?: VerdictThresholds;
  /** Samples for channel mean compensation and for wanda/sparsegpt (default: the fidelity samples unless generated). */
  calibration?: SampleSource;
  /** Called after each round of gradual pruning (and after the single round otherwise), e.g. to measure it. */
  onRound?: (round: PruneRound) => void | Promise<void>;
}

export interface PruneResult {
  model: Model;
  report: PruneReport;
}

/** Prunes a copy of `model`; throws on bad settings, and GateFailedError when `options.gate` is missed. */
export async function prune(model: Model, options: PruneOptions, ctx: RecipeContext): Promise<PruneResult> {
  const method = pruneMethod(options.method);
  if (method.run === undefined) throw new Error(`prune: method '${method.name}' is not implemented yet`);
  checkSettings(options);
  const output = options.output ?? model.graph.outputs[0]?.name;
  const inputShapes = options.inputShapes ?? (await firstSampleShapes(options.fidelity?.samples));

  let gradients: Map<string, Float32Array> | undefined;
  if (options.importance === 'taylor' && method.name === 'channels') {
    if (options.data?.labels === undefined) throw new Error('prune: taylor importance needs labelled data: give --data with labels');
    const data = options.data;
    gradients = await debugPhase(ctx.debug, 'prune: taylor gradients', () =>
      taylorGradients(ctx.ort, model, labelledData(data), { batches: options.taylorBatches, logits: output, threads: ctx.threads }),
    );
  }

  const { method: _m, data, recovery, fidelity, fidelitySkipped, gate, verdict, taylorBatches: _t, output: _o, calibration: given, onRound, ...settings } = options;
  // Real samples (not generated ones) measure the means that channel compensation folds into biases.
  const calibration = given ?? (fidelity?.samples.warning === undefined ? fidelity?.samples : undefined);
  const rounds = recovery?.rounds ?? 1;
  if (recovery !== undefined && data === undefined) throw new Error('prune: recovery training needs data: give --data');
  if (rounds > 1 && (!GRADUAL_METHODS.includes(method.name) || options.pattern !== undefined)) {
    throw new Error(`prune: rounds (gradual pruning) need a sparsity that can rise: methods ${GRADUAL_METHODS.join(', ')} without a pattern, not ${method.name}${options.pattern === undefined ? '' : ` ${options.pattern.n}:${options.pattern.m}`}`);
  }

  let result = model;
  let outcome: PrunePassReport | undefined;
  let first: PrunePassReport | undefined;
  const trainings: PruneRecoveryReport[] = [];
  for (let round = 1; round <= rounds; round++) {
    const before = result;
    const candidate = result.clone();
    const progress = scheduleProgress(round, rounds, recovery?.roundSchedule);
    const shares = rounds === 1 ? {} : method.name === 'channels' ? channelRoundShares(settings, progress) : { sparsity: (settings.sparsity ?? 0) * progress };
    // Channels after the first round: shares of the widths before it (the model is narrower now).
    const widths = round > 1 && method.name === 'channels' && first?.details.groups !== undefined ? { widthsBefore: groupWidths(first.details.groups) } : {};
    const roundSettings: PruneSettings = { ...settings, ...shares, ...widths, inputShapes, gradients, calibration };
    const which = rounds === 1 ? '' : ` round ${round}/${rounds} (sparsity ${roundSettings.sparsity?.toFixed(4)})`;
    outcome = (await debugPhase(ctx.debug, `prune: ${method.name}${which}`, () => (method.run as NonNullable<typeof method.run>)(candidate, roundSettings, ctx))) as PrunePassReport;
    first ??= outcome;
    result = candidate;
    let training: PruneRecoveryReport | undefined;
    if (recovery !== undefined) {
      const masks = method.structured ? undefined : pruningMasks(result, outcome.details);
      const trained = await debugPhase(ctx.debug, `prune: recovery${which}`, () => recoverByTraining(model, candidate, data as PruneData, recovery, output, ctx, masks));
      result = trained.model;
      training = trained.report;
      trainings.push(trained.report);
    }
    await onRound?.({ round, rounds, sparsity: roundSettings.sparsity, before, pruned: candidate, trained: result, settings: roundSettings, pass: outcome, ...(training === undefined ? {} : { training }) });
  }
  outcome = joinRounds(first as PrunePassReport, outcome as PrunePassReport);
  const recovered = trainings.length === 0 ? undefined : joinTrainings(trainings, recovery?.roundSchedule);

  const tooLarge = fidelity === undefined ? undefined : comparisonWontFit(model, result, ctx);
  const measured = fidelity === undefined || tooLarge !== undefined ? undefined : await measureFidelity(model, result, fidelity, ctx);
  const skipped = fidelity === undefined ? (fidelitySkipped ?? 'no samples given') : tooLarge;
  const report = buildReport(model, result, method.name, method.structured, options, outcome, inputShapes);
  if (recovered !== undefined) report.recovery = recovered;
  if (measured !== undefined) report.fidelity = measured;
  if (skipped !== undefined) report.fidelity_skipped = skipped;
  report.verdict = verdictOf(measured, { thresholds: verdict, hints: pruneHints(method.name, options), why: skipped });
  if (gate !== undefined && !isEmptyGate(gate)) {
    const misses = checkGate(gate, measured, modelBytes(result) / modelBytes(model));
    report.gate = { passed: misses.length === 0, misses };
    if (misses.length > 0) throw new GateFailedError(misses, 'prune gate');
  }
  return { model: result, report };
}

/** Rounds' pass reports as one: the last round's, with each group's and weight's size before the first. */
function joinRounds(first: PrunePassReport, last: PrunePassReport): PrunePassReport {
  if (first === last) return last;
  const dimsBefore = new Map(first.details.tensors.map((t) => [t.name, t.dimsBefore]));
  const tensors = last.details.tensors.map((t) => ({ ...t, dimsBefore: dimsBefore.get(t.name) ?? t.dimsBefore }));
  const groups = first.details.groups === undefined || last.details.groups === undefined ? last.details.groups : joinRoundGroups(first.details.groups, last.details.groups);
  return { ...last, details: { ...last.details, tensors, ...(groups === undefined ? {} : { groups }) } };
}

/** The recovery of every round as one: epochs, steps, losses and time add up; accuracy from the first to the last. */
function joinTrainings(trainings: readonly PruneRecoveryReport[], schedule: RoundSchedule = 'cubic'): PruneRecoveryReport {
  const [first] = trainings;
  const last = trainings[trainings.length - 1];
  const joined: PruneRecoveryReport = {
    ...first,
    epochs: trainings.reduce((n, t) => n + t.epochs, 0),
    steps: trainings.reduce((n, t) => n + t.steps, 0),
    mean_loss: trainings.flatMap((t) => t.mean_loss),
    seconds: trainings.reduce((n, t) => n + t.seconds, 0),
  };
  if (first.accuracy !== undefined && last.accuracy !== undefined) joined.accuracy = { before: first.accuracy.before, after: last.accuracy.after };
  if (trainings.length > 1) Object.assign(joined, { rounds: trainings.length, round_schedule: schedule });
  return joined;
}

/** Settings that cannot work, as one-line errors (the CLI checks most of them before reading files). */
export function checkSettings(options: Pick<PruneOptions, 'method' | 'sparsity' | 'pattern' | 'roundTo' | 'maxRatio' | 'calibrationSamples'>): void {
  if (options.calibrationSamples !== undefined && !(Number.isSafeInteger(options.calibrationSamples) && options.calibrationSamples >= 1)) {
    throw new Error(`prune: calibration samples must be a whole number >= 1, got ${options.calibrationSamples}`);
  }
  if (options.method === 'layers') return;
  if (options.method === 'nm') {
    if (options.pattern === undefined) throw new Error('prune: nm needs a pattern such as 2:4 (--pattern N:M)');
    return;
  }
  const oneShot = options.method === 'wanda' || options.method === 'sparsegpt';
  if (oneShot && options.pattern !== undefined) {
    if (options.sparsity !== undefined) throw new Error(`prune: ${options.method} takes a sparsity or an N:M pattern, not both`);
    return;
  }
  const s = options.sparsity;
  if (s === undefined) throw new Error(`prune: ${options.method} needs a sparsity (--sparsity S, 0 <= S < 1)${oneShot ? ' or a pattern (--pattern N:M)' : ''}`);
  if (!(s >= 0 && s < 1)) throw new Error(`prune: sparsity must be at least 0 and below 1, got ${s}`);
  if (options.roundTo !== undefined && !(Number.isInteger(options.roundTo) && options.roundTo >= 1)) throw new Error(`prune: round-to must be a whole number >= 1, got ${options.roundTo}`);
  if (options.maxRatio !== undefined && !(options.maxRatio > 0 && options.maxRatio <= 1)) throw new Error(`prune: max-ratio must be in (0, 1], got ${options.maxRatio}`);
}

/** Dims of each input in the first sample (so flattened sizes are static and MACs countable). */
async function firstSampleShapes(samples: SampleSource | undefined): Promise<Record<string, Dim[]> | undefined> {
  if (samples === undefined) return undefined;
  for await (const sample of samples) return Object.fromEntries(Object.entries(sample.inputs).map(([name, t]) => [name, [...t.dims]]));
  return undefined;
}


/** 1 where a pruned main-graph weight is nonzero, 0 where pruning zeroed it. */
function pruningMasks(model: Model, details: PruneDetails): Map<string, Tensor> {
  const masks = new Map<string, Tensor>();
  for (const t of details.tensors) {
    const weight = model.graph.initializer(t.name) ?? constantValue(model.graph, t.name);
    if (weight === undefined || weight.dataType !== DataType.FLOAT) continue;
    const values = weight.data() as Float32Array;
    masks.set(t.name, Tensor.fromArray(`${t.name}/mask`, DataType.FLOAT, weight.dims, Float32Array.from(values, (v) => (v === 0 ? 0 : 1))));
  }
  return masks;
}

function buildReport(before: Model, after: Model, method: PruneMethodName, structured: boolean, options: PruneOptions, outcome: PrunePassReport, inputShapes: Record<string, Dim[]> | undefined): PruneReport {
  const counts = { before: weightCounts(before), after: weightCounts(after) };
  const details = outcome.details;
  const pruned = details.tensors.reduce((a, t) => ({ elements: a.elements + t.dimsBefore.reduce((x, y) => x * y, 1), kept: a.kept + t.dimsAfter.reduce((x, y) => x * y, 1) - t.zerosAfter }), { elements: 0, kept: 0 });
  const macsBefore = countMacs(before, inputShapes);
  const macsAfter = countMacs(after, inputShapes);
  const staticShapes = inputShapes === undefined ? undefined : Object.fromEntries(Object.entries(inputShapes).map(([n, d]) => [n, d.map(Number)]));
  const oneShot = method === 'wanda' || method === 'sparsegpt';
  const settings: Record<string, string | number | boolean> =
    method === 'layers'
      ? { drop_layers: (options.dropLayers ?? []).join(',') }
      : method === 'nm' || (oneShot && options.pattern !== undefined)
      ? { pattern: `${options.pattern?.n}:${options.pattern?.m}` }
      : oneShot
        ? { sparsity: options.sparsity ?? 0 }
      : method === 'channels'
        ? { sparsity: options.sparsity ?? 0, scope: options.scope ?? 'layer', importance: options.importance ?? 'l2', ...(options.roundTo === undefined ? {} : { round_to: options.roundTo }), ...(options.roundMode === undefined ? {} : { round_mode: options.roundMode }), ...(options.maxRatio === undefined ? {} : { max_ratio: options.maxRatio }), ...(options.layerRatios === undefined ? {} : { layer_ratios: options.layerRatios.map((r) => `${r.pattern}=${r.ratio}`).join(' ') }), ...(options.compensation === undefined ? {} : { compensation: options.compensation }), ...(options.reconstruct === true ? { reconstruct: true } : {}) }
        : { sparsity: options.sparsity ?? 0, scope: options.scope ?? 'layer' };
  return {
    method,
    structured,
    settings,
    pass: outcome.pass,
    ms: Math.round(outcome.ms),
    size: sizeChange(modelBytes(before), modelBytes(after)),
    ...optional('gzip', gzipChange(before, after)),
    parameters: { before: counts.before.parameters, after: counts.after.parameters, nonzero_before: counts.before.nonzero, nonzero_after: counts.after.nonzero },
    sparsity: {
      pruned_weights: pruned.elements === 0 ? 0 : round4(1 - pruned.kept / pruned.elements),
      model: counts.before.parameters === 0 ? 0 : round4(1 - counts.after.nonzero / counts.before.parameters),
    },
    ...(macsBefore.layers > 0 && staticShapes !== undefined
      ? {
          macs: {
            before: macsBefore.macs,
            after: macsAfter.macs,
            ratio: round4(macsAfter.macs / Math.max(1, macsBefore.macs)),
            input_shapes: staticShapes,
            ...(macsBefore.unknown.length === 0 ? {} : { uncounted: macsBefore.unknown }),
          },
        }
      : { macs_skipped: inputShapes === undefined ? 'no input shapes: give samples with --data, or --dims' : `sizes not static at ${macsBefore.unknown.slice(0, 3).join(', ')}` }),
    tensors: details.tensors.map((t) => {
      const elements = t.dimsBefore.reduce((x, y) => x * y, 1);
      const kept = t.dimsAfter.reduce((x, y) => x * y, 1) - t.zerosAfter;
      return { name: t.name, node: t.node, op: t.op, dims_before: t.dimsBefore, dims_after: t.dimsAfter, sparsity: round4(1 - kept / Math.max(1, elements)) };
    }),
    ...(details.groups === undefined
      ? {}
      : {
          groups: details.groups.map((g) => ({
            id: g.id,
            sources: g.sources,
            channels_before: g.channelsBefore,
            channels_after: g.channelsAfter,
            ...(g.kept === undefined ? {} : { kept: g.kept }),
            ...(g.blocked === undefined ? {} : { blocked: g.blocked }),
          })),
        }),
    skipped: details.skipped,
    ...(details.compensation === undefined ? {} : { compensation: details.compensation }),
    ...(details.reconstruction === undefined ? {} : { reconstruction: details.reconstruction }),
    ...(details.dropped === undefined ? {} : { dropped: details.dropped }),
    ...(structured ? {} : { note: SPARSE_NOTE }),
    stats: Object.fromEntries(Object.entries(outcome.stats).map(([k, v]) => [k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase(), v])),
    warnings: outcome.warnings,
    verdict: { status: 'unchecked', message: '', hints: [] },
  };
}

const round4 = (x: number) => Number(x.toFixed(4));

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Settings worth trying when pruning damaged the model (CLI spelling). */
export function pruneHints(method: PruneMethodName, options: Pick<PruneOptions, 'sparsity' | 'recovery' | 'data' | 'importance' | 'scope'>): string[] {
  const hints: string[] = [];
  if (options.recovery === undefined) hints.push(options.data?.labels === undefined ? '--data D --epochs 1 (distil from the original)' : '--epochs 1 (fine-tune on --data)');
  else hints.push(`more --epochs (${options.recovery.epochs} now)`);
  if (method !== 'nm' && options.sparsity !== undefined) hints.push(`--sparsity ${Number((options.sparsity * 0.6).toFixed(2))}`);
  if (method === 'magnitude' && options.scope !== 'global') hints.push('--scope global');
  if (method === 'channels' && options.importance !== 'taylor') hints.push('--importance taylor (with labelled --data)');
  if (method === 'nm') hints.push('--pattern 4:8');
  if (method === 'magnitude' || method === 'nm') hints.push('--method sparsegpt (with --calib, or --data)');
  if (method === 'wanda') hints.push('--method sparsegpt');
  if (method === 'wanda' || method === 'sparsegpt') hints.push('more --calib-samples');
  return hints;
}
