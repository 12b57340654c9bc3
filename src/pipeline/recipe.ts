// Recipe files: an ordered list of steps, each one key naming the step and its options, in JSON
// or YAML of the same shape:
//
//   {"steps": [{"optimize": {}},
//              {"quantize": {"method": "static-int8", "calibrator": "entropy"}},
//              {"gate": {"min_cosine": 0.99, "max_accuracy_drop": 0.5}}]}
//
// prune and cluster steps fine-tune with `epochs` (prune: recovery, cluster: the centroids) on the
// recipe's training arrays; `pack` (last step only) makes the result a .shrink pack.
//
// Keys are snake_case, as in every JSON shrink writes. Validated with zod, so a mistake comes
// back as one line naming the step and the key.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isSupportedBlockSize } from '../kernels/quant-formats.js';
import { CALIBRATOR_NAMES } from '../methods/quantize/calibration/registry.js';
import { type QuantizeConfig, settingsFromConfig } from '../methods/quantize/config.js';
import { QUANTIZE_METHOD_NAMES, type QuantizeMethodName } from '../methods/quantize/registry.js';
import { parsePattern } from '../methods/prune/nm.js';
import { MAX_BITS, MIN_BITS } from '../methods/cluster/cluster.js';
import { MAX_MANTISSA_BITS } from '../methods/cluster/codebook.js';
import type { ClusterStepOptions } from './cluster.js';
import type { Gate } from './gate.js';
import type { LowRankStepOptions } from './lowrank.js';
import type { OptimizeStepOptions } from './optimize.js';
import type { PruneOptions } from './prune.js';
import type { QuantizeOptions } from './quantize.js';

const PRECISIONS = ['fp32', 'fp16', 'bf16', 'int8', 'int4', 'int2', 'ternary', 'binary'] as const;

const OptimizeStep = z.strictObject({
  level: z.enum(['basic', 'full']).optional(),
  passes: z.array(z.string().min(1)).min(1).optional(),
  skip: z.array(z.string().min(1)).optional(),
});

const QuantizeStep = z.strictObject({
  method: z.enum(QUANTIZE_METHOD_NAMES),
  block_size: z.number().refine(isSupportedBlockSize, { message: 'must be 16, 32, 64, 128 or 256' }).optional(),
  symmetric: z.boolean().optional(),
  rounding: z.enum(['rtn', 'hqq', 'search', 'kquant']).optional(),
  scale_type: z.enum(['float32', 'float16']).optional(),
  accuracy_level: z.number().int().min(0).max(4).optional(),
  compute: z.enum(['ort-cpu', 'all', 'none']).optional(),
  keep_io_types: z.boolean().optional(),
  block_ops: z.array(z.string().min(1)).optional(),
  exclude: z.array(z.string().min(1)).optional(),
  only: z.array(z.string().min(1)).min(1).optional(),
  keep_first_last: z.number().int().min(0).optional(),
  nodes: z.array(z.strictObject({ match: z.string().min(1), precision: z.enum(PRECISIONS) })).optional(),
  per_channel: z.boolean().optional(),
  reduce_range: z.boolean().optional(),
  weight_type: z.enum(['int8', 'uint8']).optional(),
  activation_type: z.enum(['int8', 'uint8']).optional(),
  format: z.enum(['qdq', 'qoperator']).optional(),
  calibrator: z.enum(CALIBRATOR_NAMES).optional(),
  percentile: z.number().gt(0).lte(100).optional(),
  fp32_search: z.strictObject({ tolerance_db: z.number().positive(), max_rounds: z.number().int().min(1).optional() }).optional(),
  algorithm: z.enum(['rtn', 'gptq', 'awq']).optional(),
  act_order: z.boolean().optional(),
  /** awq: the clipping search after the scales (default true). */
  clip: z.boolean().optional(),
  calibration_samples: z.number().int().min(1).optional(),
  smooth: z.number().min(0).max(1).optional(),
  bias_correction: z.boolean().optional(),
  dead_zones: z.boolean().optional(),
  float_prefix: z.union([z.number().int().min(0), z.literal('auto')]).optional(),
  /** The logits to fit output offsets on after quantizing, on the calibration samples (pipeline/fit-output-bias.ts; CLI --fit-output-bias). */
  fit_output_bias: z.string().min(1).optional(),
});

/** Keys that mean something to some methods only; given with another method they are refused, as on the command line. */
const METHOD_KEYS: readonly [string, (q: z.infer<typeof QuantizeStep>) => boolean, readonly QuantizeMethodName[]][] = [
  ['activation_type', (q) => q.activation_type !== undefined, ['dynamic-int8', 'static-int8']],
  ['format', (q) => q.format !== undefined, ['static-int8']],
  ['algorithm', (q) => q.algorithm !== undefined, ['int8-weight', 'int4', 'int2']],
  ['smooth', (q) => q.smooth !== undefined, ['static-int8']],
  ['bias_correction', (q) => q.bias_correction !== undefined, ['static-int8']],
  ['dead_zones', (q) => q.dead_zones !== undefined, ['static-int8']],
  ['float_prefix', (q) => q.float_prefix !== undefined, ['static-int8']],
];

const GateStep = z
  .strictObject({
    min_cosine: z.number().min(-1).max(1).optional(),
    min_sqnr_db: z.number().optional(),
    min_top1_agreement: z.number().min(0).max(1).optional(),
    max_accuracy_drop: z.number().min(0).optional(),
    max_size_ratio: z.number().positive().optional(),
  })
  .refine((g) => Object.values(g).some((v) => v !== undefined), { message: 'a gate needs at least one figure (min_cosine, min_sqnr_db, min_top1_agreement, max_accuracy_drop, max_size_ratio)' });

/** Fine-tuning after a prune or cluster step, on the recipe's training arrays. */
const trainingKeys = {
  epochs: z.number().int().min(1).optional(),
  lr: z.number().positive().optional(),
  /** Steps over which the rate rises linearly to `lr` (default 0): AdamW's first steps at the full rate can undo a good start. */
  warmup: z.number().int().min(0).optional(),
};

/** Taylor importance is the command line's only (it needs the gradients before pruning). */
const PruneStep = z.strictObject({
  method: z.enum(['magnitude', 'nm', 'channels', 'wanda', 'sparsegpt', 'layers']),
  sparsity: z.number().min(0).lt(1).optional(),
  pattern: z.string().regex(/^\d+:\d+$/, { message: "must be N:M, e.g. '2:4'" }).optional(),
  scope: z.enum(['layer', 'global']).optional(),
  /** activation: mean |activation| per channel on the recipe's calibration samples. */
  importance: z.enum(['l1', 'l2', 'bn', 'activation']).optional(),
  round_to: z.number().int().min(1).optional(),
  /** How round_to rounds: 'up' (default) or 'nearest' (the total removed held at the sparsity). */
  round_mode: z.enum(['up', 'nearest']).optional(),
  max_ratio: z.number().gt(0).lte(1).optional(),
  /** channels: what replaces a removed channel in its readers: its mean (default), its least-squares fit from the kept channels, or nothing. */
  compensation: z.enum(['mean', 'lstsq', 'off']).optional(),
  /** channels: refit every matrix layer to the original's outputs of that layer by least squares, on the calibration samples. */
  reconstruct: z.boolean().optional(),
  exclude: z.array(z.string().min(1)).optional(),
  only: z.array(z.string().min(1)).min(1).optional(),
  calibration_samples: z.number().int().min(1).optional(),
  /** method layers: node names of residual blocks' Adds or of shape-preserving layers to remove. */
  drop_layers: z.array(z.string().min(1)).min(1).optional(),
  /** channels: share of the channels removed from the groups of the layers a pattern matches (as --layer-ratio; the first match wins), instead of the sparsity. */
  layer_ratio: z.array(z.strictObject({ pattern: z.string().min(1), ratio: z.number().min(0).lt(1) })).min(1).optional(),
  ...trainingKeys,
  batch_size: z.number().int().min(1).optional(),
  /** Recovery's optimizer: SGD with momentum 0.9 (default) or AdamW (distillation at a low rate). */
  optimizer: z.enum(['sgd', 'adamw']).optional(),
  /** Without labels: distil this value of the original (e.g. the logits before a sigmoid output) instead of the output. */
  distill_value: z.string().min(1).optional(),
  /** How `distill_value` is matched: mse (default) or kl per position over the last axis. */
  distill_loss: z.enum(['mse', 'kl']).optional(),
  /** With distill_loss kl on CTC logits: the blank's class; each position weighted by the original's 1 - p(blank). */
  distill_blank: z.number().int().min(0).optional(),
  /** With distill_blank: a confident blank's weight (default 0.1; 1 is plain KL). */
  distill_blank_weight: z.number().min(0).max(1).optional(),
  /** BatchNormalization while recovering: 'batch' statistics (default) or 'frozen' at the running ones, as deployed. */
  batch_norm: z.enum(['batch', 'frozen']).optional(),
  /** Gradual pruning: rounds of pruning and `epochs` of training, the sparsity rising on a cubic schedule (or `round_schedule`). */
  rounds: z.number().int().min(1).optional(),
  /** How the sparsity rises over `rounds`: 'cubic' (default) or 'linear' (equal steps). */
  round_schedule: z.enum(['cubic', 'linear']).optional(),
});

/**
 * Fitted output offsets after a step: the logits' name, or `{value, classes}` (fit those classes
 * only, e.g. PP-OCR rec's space 6624) or `{value, max_classes}` (the classes that disagree most).
 */
const FitOutputBiasKey = z.union([
  z.string().min(1),
  z
    .strictObject({ value: z.string().min(1), classes: z.array(z.number().int().min(0)).min(1).optional(), max_classes: z.number().int().min(1).optional() })
    .refine((f) => f.classes === undefined || f.max_classes === undefined, { message: "give 'classes' (fit these) or 'max_classes' (find them), not both" }),
]);

/** Where and how to fit output offsets (recipe key `fit_output_bias` of a cluster step). */
export interface OutputBiasStep {
  value: string;
  classes?: number[];
  maxClasses?: number;
}

/** Weight sharing (shrink cluster), with centroid fine-tuning on `epochs`. */
const ClusterStep = z
  .strictObject({
    bits: z.number().int().min(MIN_BITS).max(MAX_BITS).optional(),
    /** Uniform codes: step relative to each group's RMS (no k-means, no codebook; `bits` unused). */
    step: z.number().positive().optional(),
    per_channel: z.boolean().optional(),
    group: z.number().int().min(1).optional(),
    init: z.enum(['linear', 'kmeans++']).optional(),
    /** Seeds the k-means++ start and the centroid fine-tuning's shuffle (as the command's --seed; default 0). */
    seed: z.number().int().min(0).optional(),
    keep_zeros: z.union([z.literal('auto'), z.boolean()]).optional(),
    importance: z.boolean().optional(),
    /** How codes are chosen: nearest centroid (default) or obs (the GPTQ sweep on calibration samples: --calib, else --data). */
    codes: z.enum(['nearest', 'obs']).optional(),
    /** With codes obs: calibration samples used (default 64). */
    code_samples: z.number().int().min(1).optional(),
    /** With codes obs: what each layer's codes keep: its own float outputs ('layer') or the original model's outputs of that layer ('original'). */
    code_target: z.enum(['layer', 'original']).optional(),
    exclude: z.array(z.string().min(1)).optional(),
    only: z.array(z.string().min(1)).min(1).optional(),
    /** Per-layer bits and/or channels per codebook: `{ pattern, bits?, group? }`, the first match setting each wins. */
    /** Centroids rounded to float16 values (smaller packs). */
    half_codebooks: z.boolean().optional(),
    /** k-means centroids rounded to this many mantissa bits (smaller packs: 6 stores one in ~1.2 bytes). */
    codebook_mantissa_bits: z.number().int().min(1).max(MAX_MANTISSA_BITS).optional(),
    layers: z.array(z.strictObject({ pattern: z.string().min(1), bits: z.number().int().min(MIN_BITS).max(MAX_BITS).optional(), step: z.number().positive().optional(), group: z.number().int().min(1).optional(), mantissa_bits: z.number().int().min(1).max(MAX_MANTISSA_BITS).optional() })).optional(),
    ...trainingKeys,
    batch_size: z.number().int().min(1).optional(),
    /** Without labels: distil this value of the original (e.g. pre-softmax logits) instead of the output. */
    distill_value: z.string().min(1).optional(),
    /** How `distill_value` is matched: mse (default) or kl (per position over the last axis, e.g. each time step of CTC logits). */
    distill_loss: z.enum(['mse', 'kl']).optional(),
    /** With distill_loss kl on CTC logits: the blank's class; each position weighted by the original's 1 - p(blank) (pipeline/recovery.ts CtcBlank). */
    distill_blank: z.number().int().min(0).optional(),
    /** With distill_blank: a confident blank's weight (default 0.1; 1 is plain KL). */
    distill_blank_weight: z.number().min(0).max(1).optional(),
    /** With distill_blank: a class whose positions count more (PP-OCR's space, its last class: 6624), by distill_focus_weight * p_original(class). */
    distill_focus: z.number().int().min(0).optional(),
    /** With distill_focus: its weight (>= 0). */
    distill_focus_weight: z.number().min(0).optional(),
    /** With distill_blank: weight of a top-1 term (each position's cross-entropy against the original's arg-max class). */
    distill_top1: z.number().min(0).optional(),
    /** BatchNormalization while distilling the centroids: 'batch' statistics (default) or 'frozen' at the running ones, as deployed. */
    batch_norm: z.enum(['batch', 'frozen']).optional(),
    /** With distill_value: the centroids averaged over the ends of the last N epochs (stochastic weight averaging; default 1, the last). */
    average_epochs: z.number().int().min(1).optional(),
    /** With distill_value: N trainings from the same codes (seeds seed, seed + 1, ...), their centroids averaged (a model soup; default 1). */
    average_runs: z.number().int().min(1).optional(),
    /** After the centroids: offsets on the logits' classes fitted on the calibration samples (--calib), as quantize's key (pipeline/fit-output-bias.ts). */
    fit_output_bias: FitOutputBiasKey.optional(),
  })
  .refine((c) => c.bits !== undefined || c.step !== undefined, { message: "give 'bits' (k-means codebooks) or 'step' (uniform codes)" })
  .refine((c) => !(c.per_channel === true && c.group !== undefined), { message: "'per_channel' and 'group' are two groupings: give one" })
  .refine((c) => c.code_samples === undefined || c.codes === 'obs', { message: "'code_samples' goes with 'codes: obs'" })
  .refine((c) => c.code_target === undefined || c.codes === 'obs', { message: "'code_target' goes with 'codes: obs'" })
  .refine((c) => (c.layers ?? []).every((l) => l.bits !== undefined || l.step !== undefined || l.group !== undefined || l.mantissa_bits !== undefined), { message: "each entry of 'layers' sets 'bits', 'step', 'group' or 'mantissa_bits'" });

/** Low-rank factorization (shrink lowrank), with training afterwards on `epochs`. */
const LowRankStep = z
  .strictObject({
    energy: z.number().gt(0).lte(1).optional(),
    rank: z.number().int().min(1).optional(),
    ratio: z.number().gt(0).lt(1).optional(),
    exclude: z.array(z.string().min(1)).optional(),
    only: z.array(z.string().min(1)).min(1).optional(),
    ...trainingKeys,
    batch_size: z.number().int().min(1).optional(),
  })
  .refine((l) => [l.energy, l.rank, l.ratio].filter((x) => x !== undefined).length === 1, { message: "give exactly one of 'energy', 'rank', 'ratio'" });

const Step = z.union([
  z.strictObject({ optimize: OptimizeStep }),
  z.strictObject({ quantize: QuantizeStep }),
  z.strictObject({ prune: PruneStep }),
  z.strictObject({ cluster: ClusterStep }),
  z.strictObject({ lowrank: LowRankStep }),
  z.strictObject({ gate: GateStep }),
  z.strictObject({ pack: z.strictObject({}) }),
]);

const RecipeSchema = z.strictObject({
  /** What the recipe is for, shown in reports. */
  description: z.string().optional(),
  steps: z.array(Step).min(1),
});

export type RecipeFile = z.infer<typeof RecipeSchema>;

/** Fine-tuning of a prune (recovery) or cluster (centroids) step; rates and batch default as on the command line. */
export interface StepTraining {
  epochs: number;
  lr?: number;
  batchSize?: number;
  /** Steps over which the rate rises to `lr`. */
  warmup?: number;
  /** prune: rounds of pruning, each followed by `epochs` (gradual pruning). */
  rounds?: number;
  /** prune: how the sparsity rises over `rounds` (default cubic). */
  roundSchedule?: 'cubic' | 'linear';
  /** prune: the recovery's optimizer (default SGD with momentum). */
  optimizer?: 'sgd' | 'adamw';
  /** prune, cluster: the value distilled without labels, when not the output. */
  distillValue?: string;
  /** prune, cluster: how `distillValue` is matched (default mse). */
  distillLoss?: 'mse' | 'kl';
  /** prune, cluster: with distillLoss kl, the CTC blank's class (positions weighted by the original's 1 - p(blank)). */
  distillBlank?: number;
  /** prune, cluster: with distillBlank, a confident blank's weight. */
  distillBlankWeight?: number;
  /** cluster: with distillBlank, a class whose positions count more, and its weight. */
  distillFocus?: number;
  distillFocusWeight?: number;
  /** cluster: with distillBlank, the weight of the top-1 term. */
  distillTop1?: number;
  /** prune, cluster: BatchNormalization while distilling (default 'batch' statistics). */
  batchNorm?: 'batch' | 'frozen';
  /** cluster, distilling a value: the centroids averaged over the ends of the last N epochs. */
  averageEpochs?: number;
  /** cluster, distilling a value: the centroids of N trainings averaged. */
  averageRuns?: number;
}

/** A recipe ready to run: each step with its library options. */
export type RecipeStep =
  | { kind: 'optimize'; options: Omit<OptimizeStepOptions, 'validate' | 'source'> }
  | { kind: 'quantize'; options: Omit<QuantizeOptions, 'calibration' | 'fidelity' | 'fidelitySkipped' | 'gate' | 'outputBias'> & { fitOutputBias?: string } }
  | { kind: 'prune'; options: Omit<PruneOptions, 'data' | 'recovery' | 'fidelity' | 'fidelitySkipped' | 'gate'>; training?: StepTraining }
  | { kind: 'cluster'; options: Omit<ClusterStepOptions, 'data' | 'finetune' | 'calibration' | 'fidelity' | 'fidelitySkipped' | 'gate'>; training?: StepTraining; outputBias?: OutputBiasStep }
  | { kind: 'lowrank'; options: Omit<LowRankStepOptions, 'data' | 'recovery' | 'fidelity' | 'fidelitySkipped' | 'gate'>; training?: StepTraining }
  | { kind: 'gate'; gate: Gate }
  /** The model as a .shrink pack (src/methods/pack): the last step only. */
  | { kind: 'pack' };

export interface Recipe {
  description?: string;
  steps: RecipeStep[];
}

/** Parses a recipe's text (JSON, or YAML of the same shape); errors are one line starting with `where`. */
export function parseRecipe(text: string, where: string): Recipe {
  let data: unknown;
  try {
    data = /^\s*[{[]/.test(text) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new Error(`${where}: neither valid JSON nor YAML (${(error as Error).message.split('\n')[0]})`);
  }
  return recipeFromData(data, where);
}

/** A recipe from already-parsed data (a page builds it in code). */
export function recipeFromData(data: unknown, where = 'recipe'): Recipe {
  const parsed = RecipeSchema.safeParse(data);
  if (!parsed.success) throw new Error(`${where}: ${describeIssue(parsed.error.issues, data)}`);
  const packAt = parsed.data.steps.findIndex((s) => 'pack' in s);
  if (packAt >= 0 && packAt !== parsed.data.steps.length - 1) throw new Error(`${where}: steps.${packAt}: 'pack' must be the last step (it turns the model into a .shrink file)`);
  return {
    description: parsed.data.description,
    steps: parsed.data.steps.map((step, i) => toStep(step, `${where}: steps.${i}`)),
  };
}

function toStep(step: z.infer<typeof Step>, where: string): RecipeStep {
  if ('optimize' in step) return { kind: 'optimize', options: { level: step.optimize.level, passes: step.optimize.passes, skip: step.optimize.skip } };
  if ('pack' in step) return { kind: 'pack' };
  if ('prune' in step) {
    const p = step.prune;
    if (p.epochs === undefined && (p.lr !== undefined || p.batch_size !== undefined || p.rounds !== undefined || p.warmup !== undefined)) {
      throw new Error(`${where}.prune: '${p.lr !== undefined ? 'lr' : p.batch_size !== undefined ? 'batch_size' : p.rounds !== undefined ? 'rounds' : 'warmup'}' goes with 'epochs' (recovery training)`);
    }
    const training = stepTraining(p.epochs, p.lr, p.batch_size, p.warmup);
    if (p.round_schedule !== undefined && p.rounds === undefined) throw new Error(`${where}.prune: 'round_schedule' goes with 'rounds' (gradual pruning)`);
    if (training.training !== undefined && p.rounds !== undefined) training.training.rounds = p.rounds;
    if (training.training !== undefined && p.round_schedule !== undefined) training.training.roundSchedule = p.round_schedule;
    const loose = p.optimizer !== undefined ? 'optimizer' : p.distill_value !== undefined ? 'distill_value' : p.distill_loss !== undefined ? 'distill_loss' : p.batch_norm !== undefined ? 'batch_norm' : undefined;
    if (training.training === undefined && loose !== undefined) throw new Error(`${where}.prune: '${loose}' goes with 'epochs' (recovery training)`);
    if (p.distill_loss !== undefined && p.distill_value === undefined) throw new Error(`${where}.prune: 'distill_loss' goes with 'distill_value'`);
    const blank = ctcBlankKeys(p, `${where}.prune`);
    if (training.training !== undefined) {
      Object.assign(training.training, blank);
      if (p.optimizer !== undefined) training.training.optimizer = p.optimizer;
      if (p.distill_value !== undefined) training.training.distillValue = p.distill_value;
      if (p.distill_loss !== undefined) training.training.distillLoss = p.distill_loss;
      if (p.batch_norm !== undefined) training.training.batchNorm = p.batch_norm;
    }
    return { kind: 'prune', options: pruneOptions(p, `${where}.prune`), ...training };
  }
  if ('cluster' in step) {
    const c = step.cluster;
    const loose = c.lr !== undefined ? 'lr' : c.warmup !== undefined ? 'warmup' : c.batch_size !== undefined ? 'batch_size' : c.distill_value !== undefined ? 'distill_value' : c.distill_loss !== undefined ? 'distill_loss' : c.batch_norm !== undefined ? 'batch_norm' : undefined;
    if (c.distill_loss !== undefined && c.distill_value === undefined) throw new Error(`${where}.cluster: 'distill_loss' goes with 'distill_value'`);
    const blank = ctcBlankKeys(c, `${where}.cluster`);
    for (const key of ['distill_focus', 'distill_top1'] as const) if (c[key] !== undefined && c.distill_blank === undefined) throw new Error(`${where}.cluster: '${key}' goes with 'distill_blank'`);
    if ((c.distill_focus === undefined) !== (c.distill_focus_weight === undefined)) throw new Error(`${where}.cluster: 'distill_focus' and 'distill_focus_weight' go together`);
    if (c.epochs === undefined && loose !== undefined) throw new Error(`${where}.cluster: '${loose}' goes with 'epochs' (centroid fine-tuning)`);
    const group = c.group !== undefined && c.group > 1 ? c.group : undefined;
    const training = stepTraining(c.epochs, c.lr, c.batch_size, c.warmup);
    if (training.training !== undefined && c.distill_value !== undefined) training.training.distillValue = c.distill_value;
    if (training.training !== undefined && c.distill_loss !== undefined) training.training.distillLoss = c.distill_loss;
    if (training.training !== undefined && c.batch_norm !== undefined) training.training.batchNorm = c.batch_norm;
    if (c.average_epochs !== undefined && (c.epochs === undefined || c.distill_value === undefined)) throw new Error(`${where}.cluster: 'average_epochs' goes with 'epochs' and 'distill_value'`);
    if (c.average_epochs !== undefined && c.epochs !== undefined && c.average_epochs > c.epochs) throw new Error(`${where}.cluster: 'average_epochs' (${c.average_epochs}) is more than 'epochs' (${c.epochs})`);
    if (training.training !== undefined && c.average_epochs !== undefined) training.training.averageEpochs = c.average_epochs;
    if (c.average_runs !== undefined && (c.epochs === undefined || c.distill_value === undefined)) throw new Error(`${where}.cluster: 'average_runs' goes with 'epochs' and 'distill_value'`);
    if (training.training !== undefined && c.average_runs !== undefined) training.training.averageRuns = c.average_runs;
    if (training.training !== undefined) Object.assign(training.training, blank);
    if (training.training !== undefined && c.distill_focus !== undefined) training.training.distillFocus = c.distill_focus;
    if (training.training !== undefined && c.distill_focus_weight !== undefined) training.training.distillFocusWeight = c.distill_focus_weight;
    if (training.training !== undefined && c.distill_top1 !== undefined) training.training.distillTop1 = c.distill_top1;
    return {
      kind: 'cluster',
      options: { bits: c.bits ?? MAX_BITS, ...(c.step === undefined ? {} : { step: c.step }), grouping: c.per_channel === true || c.group === 1 ? 'channel' : 'tensor', channelsPerGroup: group, init: c.init, seed: c.seed, keepZeros: c.keep_zeros, importance: c.importance, ...(c.codes === undefined ? {} : { codes: c.codes }), ...(c.code_samples === undefined ? {} : { codeSamples: c.code_samples }), ...(c.code_target === undefined ? {} : { codeTarget: c.code_target }), exclude: c.exclude, only: c.only, layers: c.layers?.map(({ mantissa_bits, ...l }) => ({ ...l, ...(mantissa_bits === undefined ? {} : { mantissaBits: mantissa_bits }) })), halfCodebooks: c.half_codebooks, ...(c.codebook_mantissa_bits === undefined ? {} : { codebookMantissaBits: c.codebook_mantissa_bits }) },
      ...training,
      ...(c.fit_output_bias === undefined ? {} : { outputBias: outputBiasStep(c.fit_output_bias) }),
    };
  }
  if ('lowrank' in step) {
    const l = step.lowrank;
    if (l.epochs === undefined && (l.lr !== undefined || l.batch_size !== undefined || l.warmup !== undefined)) throw new Error(`${where}.lowrank: '${l.lr !== undefined ? 'lr' : l.batch_size !== undefined ? 'batch_size' : 'warmup'}' goes with 'epochs' (training after factoring)`);
    return { kind: 'lowrank', options: { energy: l.energy, rank: l.rank, ratio: l.ratio, exclude: l.exclude, only: l.only }, ...stepTraining(l.epochs, l.lr, l.batch_size, l.warmup) };
  }
  if ('gate' in step) {
    const g = step.gate;
    return {
      kind: 'gate',
      gate: { minCosine: g.min_cosine, minSqnrDb: g.min_sqnr_db, minTop1Agreement: g.min_top1_agreement, maxAccuracyDrop: g.max_accuracy_drop, maxSizeRatio: g.max_size_ratio },
    };
  }
  const q = step.quantize;
  const method: QuantizeMethodName = q.method;
  for (const [key, given, methods] of METHOD_KEYS) {
    if (given(q) && !methods.includes(method)) throw new Error(`${where}.quantize: '${key}' has no effect with method ${method} (it applies to ${methods.join(', ')})`);
  }
  if (method === 'dynamic-int8' && q.activation_type === 'int8') {
    throw new Error(`${where}.quantize: 'activation_type' int8 is not possible with dynamic-int8: it quantizes activations at run time with DynamicQuantizeLinear, which is uint8 only (static-int8 has int8 activations)`);
  }
  const config: QuantizeConfig = {
    blockSize: q.block_size,
    symmetric: q.symmetric,
    rounding: q.rounding,
    scaleType: q.scale_type,
    accuracyLevel: q.accuracy_level,
    compute: q.compute,
    keepIoTypes: q.keep_io_types,
    blockOps: q.block_ops,
    exclude: q.exclude,
    keepFirstLast: q.keep_first_last,
    nodes: q.nodes,
  };
  const isInt8 = method === 'static-int8' || method === 'dynamic-int8';
  const settings = settingsFromConfig(config, method, {
    // Per-channel int8 weights by default, as on the command line.
    perChannel: q.per_channel ?? (isInt8 ? true : undefined),
    reduceRange: q.reduce_range,
    weightType: q.weight_type,
    activationType: q.activation_type,
    format: q.format,
    only: q.only,
    calibrator: q.calibrator,
    percentile: q.percentile,
    algorithm: q.algorithm,
    actOrder: q.act_order,
    awqClip: q.clip,
    calibrationSamples: q.calibration_samples,
    smooth: q.smooth,
    biasCorrection: q.bias_correction,
    deadZones: q.dead_zones,
    floatPrefix: q.float_prefix,
  }, `${where}.quantize`);
  if (q.act_order !== undefined && q.algorithm !== 'gptq') throw new Error(`${where}.quantize: 'act_order' goes with algorithm gptq`);
  if (q.clip !== undefined && q.algorithm !== 'awq') throw new Error(`${where}.quantize: 'clip' goes with algorithm awq`);
  if (q.calibration_samples !== undefined && q.algorithm !== 'gptq' && q.algorithm !== 'awq') {
    throw new Error(`${where}.quantize: 'calibration_samples' goes with algorithm gptq or awq`);
  }
  return {
    kind: 'quantize',
    options: {
      ...settings,
      method,
      fp32Search: q.fp32_search === undefined ? undefined : { toleranceDb: q.fp32_search.tolerance_db, maxRounds: q.fp32_search.max_rounds },
      ...(q.fit_output_bias === undefined ? {} : { fitOutputBias: q.fit_output_bias }),
    },
  };
}

function outputBiasStep(key: z.infer<typeof FitOutputBiasKey>): OutputBiasStep {
  if (typeof key === 'string') return { value: key };
  return { value: key.value, ...(key.classes === undefined ? {} : { classes: key.classes }), ...(key.max_classes === undefined ? {} : { maxClasses: key.max_classes }) };
}

/** A step's CTC blank keys (prune, cluster), checked: the blank goes with KL, its weight with the blank. */
function ctcBlankKeys(keys: { distill_loss?: string; distill_blank?: number; distill_blank_weight?: number }, where: string): Pick<StepTraining, 'distillBlank' | 'distillBlankWeight'> {
  if (keys.distill_blank !== undefined && keys.distill_loss !== 'kl') throw new Error(`${where}: 'distill_blank' goes with 'distill_loss: kl'`);
  if (keys.distill_blank_weight !== undefined && keys.distill_blank === undefined) throw new Error(`${where}: 'distill_blank_weight' goes with 'distill_blank'`);
  return { ...(keys.distill_blank === undefined ? {} : { distillBlank: keys.distill_blank }), ...(keys.distill_blank_weight === undefined ? {} : { distillBlankWeight: keys.distill_blank_weight }) };
}

function stepTraining(epochs: number | undefined, lr: number | undefined, batchSize: number | undefined, warmup: number | undefined): { training?: StepTraining } {
  if (epochs === undefined) return {};
  return { training: { epochs, ...(lr === undefined ? {} : { lr }), ...(batchSize === undefined ? {} : { batchSize }), ...(warmup === undefined ? {} : { warmup }) } };
}

/** Whether a step fine-tunes (and so needs the recipe's training arrays). */
export function stepTrains(step: RecipeStep): boolean {
  return (step.kind === 'prune' || step.kind === 'cluster' || step.kind === 'lowrank') && step.training !== undefined;
}

function pruneOptions(p: z.infer<typeof PruneStep>, where: string): Extract<RecipeStep, { kind: 'prune' }>['options'] {
  const only = (key: string, given: boolean, methods: string[]) => {
    if (given && !methods.includes(p.method)) throw new Error(`${where}: '${key}' has no effect with method ${p.method} (it applies to ${methods.join(', ')})`);
  };
  const oneShot = p.method === 'wanda' || p.method === 'sparsegpt';
  only('sparsity', p.sparsity !== undefined, ['magnitude', 'channels', 'wanda', 'sparsegpt']);
  only('pattern', p.pattern !== undefined, ['nm', 'wanda', 'sparsegpt']);
  only('scope', p.scope !== undefined, ['magnitude', 'channels']);
  only('calibration_samples', p.calibration_samples !== undefined, ['wanda', 'sparsegpt']);
  only('drop_layers', p.drop_layers !== undefined, ['layers']);
  for (const key of ['exclude', 'only'] as const) only(key, p[key] !== undefined, ['magnitude', 'nm', 'channels', 'wanda', 'sparsegpt']);
  if (p.method === 'layers') {
    if (p.drop_layers === undefined) throw new Error(`${where}: method layers needs 'drop_layers' (node names of residual blocks' Adds or of shape-preserving layers)`);
    return { method: 'layers', dropLayers: p.drop_layers };
  }
  for (const key of ['importance', 'round_to', 'round_mode', 'max_ratio', 'layer_ratio', 'compensation', 'reconstruct'] as const) only(key, p[key] !== undefined, ['channels']);
  if (oneShot && p.sparsity !== undefined && p.pattern !== undefined) throw new Error(`${where}: method ${p.method} takes 'sparsity' or 'pattern', not both`);
  if (p.method !== 'nm' && p.sparsity === undefined && !(oneShot && p.pattern !== undefined)) throw new Error(`${where}: method ${p.method} needs 'sparsity' (0 <= s < 1)${oneShot ? " or 'pattern'" : ''}`);
  const pattern = p.method === 'nm' ? parsePattern(p.pattern ?? '2:4', `${where}.pattern`) : p.pattern === undefined ? undefined : parsePattern(p.pattern, `${where}.pattern`);
  return {
    method: p.method,
    sparsity: p.sparsity,
    pattern,
    scope: p.scope,
    importance: p.importance,
    roundTo: p.round_to,
    maxRatio: p.max_ratio,
    exclude: p.exclude,
    only: p.only,
    calibrationSamples: p.calibration_samples,
    // Only when given: a step's options stay what older recipes parsed to.
    ...(p.round_mode === undefined ? {} : { roundMode: p.round_mode }),
    ...(p.compensation === undefined ? {} : p.compensation === 'off' ? { compensate: false } : { compensation: p.compensation }),
    ...(p.reconstruct === undefined ? {} : { reconstruct: p.reconstruct }),
    ...(p.layer_ratio === undefined ? {} : { layerRatios: p.layer_ratio.map((r) => ({ pattern: r.pattern, ratio: r.ratio })) }),
  };
}

/** zod's first issue as `steps.1.quantize.block_size: ...`; an unknown step name says which exist. */
function describeIssue(issues: readonly z.core.$ZodIssue[], data: unknown): string {
  const issue = issues[0];
  if (issue.code === 'invalid_union' && issue.path.length === 2 && issue.path[0] === 'steps') {
    const step = (data as { steps: unknown[] }).steps[issue.path[1] as number];
    const keys = step !== null && typeof step === 'object' ? Object.keys(step) : [];
    if (keys.length !== 1) return `steps.${String(issue.path[1])}: a step is an object with one key, the step's name (optimize, quantize, prune, cluster, lowrank, gate or pack)`;
    if (!['optimize', 'quantize', 'prune', 'cluster', 'lowrank', 'gate', 'pack'].includes(keys[0])) return `steps.${String(issue.path[1])}: unknown step '${keys[0]}' (known: optimize, quantize, prune, cluster, lowrank, gate, pack)`;
    // The union's branch for this step name holds the real issue.
    const branch = (issue as { errors?: z.core.$ZodIssue[][] }).errors?.find((e) => e.length > 0 && e[0].path[0] === keys[0]);
    if (branch !== undefined) return describeIssue(branch.map((e) => ({ ...e, path: [...issue.path, ...e.path] })), data);
  }
  const keys = 'keys' in issue && Array.isArray(issue.keys) ? issue.keys.join(', ') : '';
  const path = [...issue.path.map(String), keys].filter((p) => p !== '').join('.');
  return `${path === '' ? '' : `'${path}': `}${issue.message}`;
}
