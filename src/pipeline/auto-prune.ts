// Pruned + static int8 for `shrink auto` without labels (a --metric or cosine budget): static int8
// alone runs no faster than all-int8, so this composite removes compute first. On PP-OCRv4 det,
// uniform channel pruning cost ~0.07 IoU at 10%, but the cost per MAC differs by 20x between
// channel groups (NOTES.md, issue 16), so the groups are chosen one at a time:
//   (a) scan: each channel group whose cut saves >= 1% of the MACs is cut by one round-to step
//       (24 -> 16, 96 -> 80), alone and untrained, and measured on a few TUNING samples (metric
//       lost per MAC saved); measured once per input and data and cached by the caller;
//   (b) the cheapest groups are cut until their summed loss reaches a share of the budget's slack
//       (int8 and pruning losses do not add on det: int8's noise dominates);
//   (c) distillation from the input on the unlabelled training half of --data (MSE on the value
//       before the output's squashing activation, BN frozen, AdamW at a low rate), 1 or 2 epochs;
//   (d) static int8 at `shrink quantize`'s defaults, with the float prefix (auto-float-prefix.ts)
//       that the search found to hold the budget for the unpruned model, if it needed one (pruning
//       keeps every layer, so N names the same layers).
// Each candidate is a recipe, judged, timed and cached like the plan's; of the two distillation
// lengths the one with the better metric on the tuning samples stays a contender.
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import { exactNamePattern } from '../methods/quantize/first-last-layers.js';
import type { AutoBudget, AutoCandidate, AutoGeneratorInput, CandidateOutcome } from './auto.js';
import { evaluateCandidate } from './auto.js';
import { measureFidelity } from './fidelity.js';
import { prune } from './prune.js';
import { recipeFromData } from './recipe.js';
import { type RecipeData, runRecipe } from './run-recipe.js';

/** One channel group cut alone by one round-to step, untrained. */
export interface GroupCut {
  /** Node names of the group's layers (the first is the pattern the recipe names). */
  sources: string[];
  channels: number;
  kept: number;
  /** The layer ratio that cuts it to `kept` (nearest multiple of round_to). */
  ratio: number;
  /** Share of the input's MACs the cut removes. */
  macs_saved: number;
  /** Quality on the scan's tuning samples (the --metric mean, else the lowest output cosine). */
  quality: number;
  /** The input's own quality on those samples, less `quality`. */
  loss: number;
}

/** What the scan measures once per input and data (JSON, cached beside the candidates). */
export interface GroupScan {
  round_to: number;
  samples: number;
  /** The input against itself on the scan's samples (1 for a fidelity metric). */
  baseline: number;
  groups: GroupCut[];
  /** Groups too small to cut or saving < MIN_MAC_SHARE of the MACs, not measured. */
  skipped: number;
  seconds: number;
}

/** Channels are kept in multiples of this (onnxruntime's int8 kernels like multiples of 8/16). */
const ROUND_TO = 16;
/** Groups whose cut saves less of the MACs are not measured (det's 1/32-1/16 groups save ~0). */
const MIN_MAC_SHARE = 0.01;
/** Tuning samples each cut is measured on. */
const SCAN_SAMPLES = 4;
/** The summed predicted loss of the cut groups may reach this share of the budget's slack. */
const BUDGET_SHARE = 0.5;
/** Distillation: epochs tried, and the settings that recovered det (MSE at 1e-4, BN frozen). */
const EPOCHS = [1, 2] as const;
const DISTILL = { lr: 1e-4, batch_size: 4, optimizer: 'adamw', batch_norm: 'frozen' } as const;
/** Activations whose input carries the signal better than their saturated output. */
const SQUASHING = new Set(['Sigmoid', 'Tanh', 'HardSigmoid', 'Softmax', 'LogSoftmax']);

export interface PrunedSearchInput extends AutoGeneratorInput {
  /** Static int8's float prefix (layers), when the unpruned model needed one to hold the budget. */
  floatPrefix?: number;
}

/** The value distilled: the input of the output's squashing activation, else the output itself. */
export function distillTarget(model: Model): string {
  const output = model.graph.outputs[0].name;
  const producer = model.graph.nodes.find((n) => n.outputs.includes(output));
  return producer !== undefined && SQUASHING.has(producer.opType) && producer.inputs[0] ? producer.inputs[0] : output;
}

/** The lowest quality the budget allows, and how quality is read from a fidelity report. */
function threshold(budget: AutoBudget, hasMetric: boolean): number {
  if (hasMetric) return budget.minMetric ?? Number.NEGATIVE_INFINITY;
  return budget.minCosine ?? 0.99;
}

function qualityOf(report: EvalReport, hasMetric: boolean): number {
  if (hasMetric && typeof report.custom?.mean === 'number') return report.custom.mean;
  return Math.min(...Object.values(report.outputs).map((o) => (typeof o.cosine === 'number' ? o.cosine : Number.NaN)));
}

const pruneStep = (cuts: readonly Pick<GroupCut, 'sources' | 'ratio'>[]) => ({
  method: 'channels',
  sparsity: 0,
  importance: 'l2',
  round_to: ROUND_TO,
  round_mode: 'nearest',
  layer_ratio: cuts.map((c) => ({ pattern: exactNamePattern(c.sources[0]), ratio: Number(c.ratio.toFixed(4)) })),
});

/** (a) Every group worth cutting, cut alone by one step and measured untrained on a few tuning samples. */
export async function scanGroups(input: PrunedSearchInput): Promise<GroupScan> {
  const { model, data, ctx, hooks } = input;
  const started = performance.now();
  const hasMetric = data.metric !== undefined;
  const samples = data.data;
  if (samples === undefined) throw new Error('auto: the channel-group scan needs tuning samples');
  const shapes = await firstShapes(data.calibration ?? samples);
  const plan = await prune(model, { method: 'channels', sparsity: 0, roundTo: ROUND_TO, roundMode: 'nearest', inputShapes: shapes }, ctx);
  const limit = SCAN_SAMPLES;
  const baselineReport = await measureFidelity(model, model, { samples, limit, metric: data.metric }, ctx);
  const baseline = qualityOf(baselineReport, hasMetric);
  const groups: GroupCut[] = [];
  let skipped = 0;
  for (const g of plan.report.groups ?? []) {
    const channels = g.channels_before;
    const kept = Math.floor((channels - 1) / ROUND_TO) * ROUND_TO;
    if (g.kept !== undefined || kept < ROUND_TO || g.sources.length === 0) {
      skipped++;
      continue;
    }
    const cut = { sources: g.sources, ratio: (channels - kept) / channels };
    // Structure only (no samples): what the cut saves, before paying for a measurement.
    const structural = await prune(model, { method: 'channels', sparsity: 0, roundTo: ROUND_TO, roundMode: 'nearest', layerRatios: [{ pattern: exactNamePattern(g.sources[0]), ratio: cut.ratio }], inputShapes: shapes }, ctx);
    const macsSaved = 1 - (structural.report.macs?.ratio ?? 1);
    if (macsSaved < MIN_MAC_SHARE) {
      skipped++;
      continue;
    }
    const recipe = recipeFromData({ steps: [{ prune: pruneStep([cut]) }] }, `scan of ${g.sources[0]}`);
    const result = await runRecipe(model, recipe, { data: samples, limit, metric: data.metric, calibration: data.calibration }, ctx);
    if (result.report.fidelity === undefined) continue;
    const quality = qualityOf(result.report.fidelity, hasMetric);
    groups.push({ sources: g.sources, channels, kept, ratio: cut.ratio, macs_saved: macsSaved, quality, loss: baseline - quality });
    hooks.log(`auto: group ${g.sources.join('/')} ${channels} -> ${kept}: MACs -${(macsSaved * 100).toFixed(1)}%, quality ${quality.toFixed(4)} on ${limit} tuning samples`);
  }
  return { round_to: ROUND_TO, samples: limit, baseline, groups, skipped, seconds: (performance.now() - started) / 1000 };
}

/** (b) The cheapest groups (loss per MAC saved) while their summed loss stays within BUDGET_SHARE of the slack. */
export function chooseCuts(scan: GroupScan, budget: AutoBudget, hasMetric: boolean): GroupCut[] {
  const slack = scan.baseline - threshold(budget, hasMetric);
  const ranked = [...scan.groups].sort((a, b) => Math.max(0, a.loss) / a.macs_saved - Math.max(0, b.loss) / b.macs_saved);
  const chosen: GroupCut[] = [];
  let loss = 0;
  for (const g of ranked) {
    if (loss + Math.max(0, g.loss) > BUDGET_SHARE * slack) break;
    chosen.push(g);
    loss += Math.max(0, g.loss);
  }
  return chosen;
}

/** (c) + (d): the recipe of the cut groups, distilled for `epochs`, then static int8 at the defaults (with a float prefix of `floatPrefix` layers). */
export function prunedCandidate(cuts: readonly GroupCut[], epochs: number, distillValue: string, floatPrefix = 0): AutoCandidate {
  const prefixed = floatPrefix > 0;
  const name = `channels-${cuts.length}-groups-distil-${epochs}-static-int8${prefixed ? `-float-prefix-${floatPrefix}` : ''}`;
  return {
    name,
    recipe: {
      description: `shrink auto: ${name} (${cuts.map((c) => `${c.sources.join('/')} ${c.channels}->${c.kept}`).join(', ')}; distilled ${epochs} epoch(s) on '${distillValue}'; static int8 at the defaults${prefixed ? `, the first ${floatPrefix} weighted layers in float32` : ''})`,
      steps: [{ prune: { ...pruneStep(cuts), epochs, ...DISTILL, distill_value: distillValue, distill_loss: 'mse' } }, { quantize: { method: 'static-int8', ...(prefixed ? { float_prefix: floatPrefix } : {}) } }],
    },
  };
}

export interface PrunedSearchResult {
  scan: GroupScan;
  outcomes: CandidateOutcome[];
  models: Map<string, Model>;
  evals: Map<string, EvalReport>;
}

/** Thrown when the scan would have to be measured but the time budget is spent. */
export class PrunedSearchTimeUp extends Error {}

/**
 * Scans (cached by `hooks.groupScan`), cuts, and runs the candidates of each distillation length.
 * With the time budget spent it only reads what is cached (as the plan does), and throws
 * PrunedSearchTimeUp when the scan is not.
 */
export async function searchPrunedInt8(input: PrunedSearchInput): Promise<PrunedSearchResult> {
  const { model, data, budget, ctx, hooks } = input;
  if (data.training === undefined) throw new Error('auto: distillation needs the training half of --data');
  const measure = async () => {
    if (hooks.timeLeft() <= 0) throw new PrunedSearchTimeUp('the time budget is spent before the channel-group scan');
    return scanGroups(input);
  };
  const scan = hooks.groupScan === undefined ? await measure() : await hooks.groupScan(measure);
  const cuts = chooseCuts(scan, budget, data.metric !== undefined);
  const models = new Map<string, Model>();
  const evals = new Map<string, EvalReport>();
  const outcomes: CandidateOutcome[] = [];
  if (cuts.length === 0) {
    hooks.log(`auto: no channel group is cheap enough to cut (${scan.groups.length} scanned): no pruned candidate`);
    return { scan, outcomes, models, evals };
  }
  hooks.log(`auto: cutting ${cuts.map((c) => `${c.sources[0]} ${c.channels}->${c.kept}`).join(', ')} (predicted loss ${cuts.reduce((a, c) => a + Math.max(0, c.loss), 0).toFixed(4)})`);
  const distillValue = distillTarget(model);
  for (const epochs of EPOCHS) {
    const candidate = prunedCandidate(cuts, epochs, distillValue, input.floatPrefix);
    const cached = hooks.cached(candidate);
    if (cached !== undefined) {
      outcomes.push({ ...cached, cached: true });
      continue;
    }
    if (hooks.timeLeft() <= 0) continue;
    hooks.log(`auto: ${candidate.name}: running`);
    const evaluated = await evaluateCandidate(model, candidate, data, budget, ctx, hooks.latency);
    if (evaluated.model !== undefined) models.set(candidate.name, evaluated.model);
    if (evaluated.fidelity !== undefined) evals.set(candidate.name, evaluated.fidelity);
    hooks.store(evaluated.outcome);
    outcomes.push(evaluated.outcome);
  }
  // The distillation length is chosen on the tuning samples: the others are kept in the report, not chosen.
  const quality = (o: CandidateOutcome) => o.metric ?? o.cosine ?? Number.NEGATIVE_INFINITY;
  const measured = outcomes.filter((o) => o.bytes > 0);
  const kept = [...measured].sort((a, b) => quality(b) - quality(a))[0];
  for (const o of measured) if (o !== kept) o.superseded = `${kept.name} distilled better on the tuning samples`;
  return { scan, outcomes, models, evals };
}

async function firstShapes(samples: NonNullable<RecipeData['data']>): Promise<Record<string, number[]> | undefined> {
  for await (const sample of samples) return Object.fromEntries(Object.entries(sample.inputs).map(([name, t]) => [name, [...t.dims]]));
  return undefined;
}
