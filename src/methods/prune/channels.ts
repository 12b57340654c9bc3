// Structured channel pruning that really shrinks the graph: the channel dependency graph
// (graph-edit/channel-groups.ts) finds every group of channels that must go together; each
// prunable group loses its least important channels (importance.ts), a share `sparsity` per group
// (scope 'layer') or ranked across groups (scope 'global'); then every weight, bias, norm
// parameter and shape constant of the group is sliced (graph-edit/channel-rewrite.ts). Groups
// that cannot be pruned are reported with the node that couples them.
import type { Model } from '../../ir/model.js';
import type { Dim } from '../../ir/value-info.js';
import { prunedCount } from '../../kernels/sparsity.js';
import { analyzeChannels, type ChannelAnalysis, type ChannelGroup } from '../../graph-edit/channel-groups.js';
import { removeChannels, zeroChannels } from '../../graph-edit/channel-rewrite.js';
import type { SampleSource } from '../../eval/samples.js';
import type { Pass, PassWarning } from '../../pipeline/pass.js';
import { type CompensationMode, type CompensationReport, compensateRemovedChannels } from './compensation.js';
import { type ReconstructReport, reconstructLayers } from './reconstruct.js';
import type { PruneDetails, PrunedGroup } from './details.js';
import { activationScores, type ActivationScores } from './activation-importance.js';
import { groupImportance, type ImportanceName } from './importance.js';
import { type LayerChoice, leftAlone, selectors } from './layers.js';
import { nodeSelector } from '../quantize/node-selector.js';
import { nearestRoundedRemovals } from './round-counts.js';

export interface ChannelOptions extends LayerChoice {
  /** Share of each prunable group's channels removed (scope 'layer'), or of all their channels (scope 'global'). */
  sparsity: number;
  scope?: 'layer' | 'global';
  /** How channels are ranked (default l2). */
  importance?: ImportanceName;
  /** Taylor importance: ∂L/∂w by weight name. */
  gradients?: ReadonlyMap<string, Float32Array>;
  /** Activation importance: mean |activation| per member (the pass measures them on `calibration`). */
  activations?: ActivationScores;
  /** Keep channel counts multiples of this (fast kernels like 4, 8, 16). */
  roundTo?: number;
  /** 'up' (default): kept counts only round up; 'nearest': to the nearest multiple, the total removed held (round-counts.ts). */
  roundMode?: 'up' | 'nearest';
  /** No group loses more than this share of its channels (default: 1, every group keeps one). */
  maxRatio?: number;
  /**
   * Groups' own shares (`--layer-ratio PATTERN=R`): a group takes the ratio of the first pattern
   * matching one of its layers instead of `sparsity`, so sensitive groups can lose less and
   * tolerant ones more. Under scope 'global' these groups are cut as told and the ranking fills the
   * rest of the total.
   */
  layerRatios?: readonly LayerRatio[];
  /**
   * Gradual pruning: each group's width in the model before any round, by the label of its first
   * source layer. Shares (sparsity, layer ratios, the cap) are then of those widths, the channels
   * earlier rounds took counted as taken: a round cuts only what its cumulative share still needs.
   */
  widthsBefore?: ReadonlyMap<string, number>;
  /** Concrete input shapes for the analysis (a sample's), so flattened sizes are static. */
  inputShapes?: Record<string, Dim[]>;
  /** Real samples: the means of removed channels are folded into the next layers' biases (compensation.ts). */
  calibration?: SampleSource;
  /** Fold removed channels' means into biases when `calibration` is given (default true). */
  compensate?: boolean;
  /** What replaces a removed channel (default 'mean'): its mean, or 'lstsq' its fit from the kept channels of the same activation (lstsq-compensation.ts). */
  compensation?: CompensationMode;
  /** 'lstsq': ridge damping as a share of the kept channels' mean variance (default LSTSQ_DAMPING, 1e-3). */
  lstsqDamping?: number;
  /**
   * After compensation, refit every matrix layer by least squares to the original's outputs of that
   * layer, in rounds by depth on `calibration` (reconstruct.ts); needs samples.
   */
  reconstruct?: boolean;
  /** Samples the reconstruction reads (default RECONSTRUCT_SAMPLES). */
  reconstructSamples?: number;
}

/** `ratio` of the channels of every group with a layer the pattern (op type or node-name regex) matches. */
export interface LayerRatio {
  pattern: string;
  ratio: number;
}

/**
 * A prunable group with its scores, how many channels it may lose at most, its own ratio if one was
 * given, its width before any round and the channels earlier rounds took (0 pruning at once).
 */
interface Candidate {
  group: ChannelGroup;
  scores: Float64Array;
  cap: number;
  ratio?: number;
  widthBefore: number;
  taken: number;
}

/** The decision for one model: removed channel roots, per group, with reasons for the groups kept whole. */
export interface ChannelPlan {
  analysis: ChannelAnalysis;
  removed: Set<number>;
  groups: PrunedGroup[];
  warnings: PassWarning[];
}

/** Chooses the channels to remove from `analysis` (nothing is changed). */
export function planChannels(analysis: ChannelAnalysis, options: ChannelOptions): ChannelPlan {
  const exclude = selectors(options.exclude, '--exclude');
  const only = selectors(options.only, '--only');
  const layerRatios = (options.layerRatios ?? []).map((r) => ({ selector: nodeSelector(r.pattern, '--layer-ratio'), ratio: r.ratio }));
  const maxRatio = options.maxRatio ?? 1;
  const roundTo = options.roundTo ?? 1;
  const warnings: PassWarning[] = [];
  const candidates: Candidate[] = [];
  const kept = new Map<ChannelGroup, string>();
  const fallbacks = new Set<string>();
  for (const group of analysis.groups) {
    const n = group.channels.length;
    // Torch-Pruning's ignored layers: an excluded layer keeps its output channels.
    const reasons = group.sources.map((s) => leftAlone(s, exclude, only));
    const why =
      group.blocked !== undefined
        ? `blocked: ${group.blocked.reason}`
        : reasons.find((r) => r?.startsWith('excluded')) ?? (only.length > 0 && reasons.every((r) => r !== undefined) ? 'not selected by --only' : n < 2 ? 'a single channel' : undefined);
    if (why !== undefined) {
      kept.set(group, why);
      continue;
    }
    const importance = groupImportance(analysis, group, { kind: options.importance ?? 'l2', gradients: options.gradients, activations: options.activations });
    if (importance.used !== (options.importance ?? 'l2')) fallbacks.add(`${options.importance} -> ${importance.used}`);
    const widthBefore = Math.max(n, options.widthsBefore?.get(group.sources[0]?.label ?? '') ?? n);
    const taken = widthBefore - n;
    const cap = Math.max(0, Math.min(n - 1, Math.floor(widthBefore * maxRatio + 1e-9) - taken));
    const own = layerRatios.find((r) => group.sources.some((s) => r.selector.matches(s)));
    candidates.push({ group, scores: importance.scores, cap, widthBefore, taken, ...(own === undefined ? {} : { ratio: own.ratio }) });
  }
  if (fallbacks.size > 0) warnings.push({ code: 'importance-fallback', message: `some groups had nothing to rank by ${options.importance} (no BatchNormalization, gradient or measured activation) and were ranked by l2` });

  const removedPerGroup = new Map<ChannelGroup, number[]>();
  const leastImportant = (c: Candidate, ratio: number) => {
    const count = Math.min(c.cap, Math.max(0, prunedCount(c.widthBefore, ratio) - c.taken));
    return Array.from(c.scores.keys()).sort((a, b) => c.scores[a] - c.scores[b] || a - b).slice(0, count);
  };
  // Groups with their own ratio are cut as told, whatever the scope.
  for (const c of candidates) if (c.ratio !== undefined) removedPerGroup.set(c.group, leastImportant(c, c.ratio));
  const fixed = [...removedPerGroup.values()].reduce((n, list) => n + list.length, 0);
  const ranked = candidates.filter((c) => c.ratio === undefined);
  if (options.scope === 'global') {
    // Scores are relative within a group (means of 1), so they compare across groups.
    const pool = ranked.flatMap((c) => Array.from(c.scores, (score, i) => ({ c, i, score: score / mean(c.scores) })));
    pool.sort((a, b) => a.score - b.score || a.c.group.id - b.c.group.id || a.i - b.i);
    // The share is of every candidate's channels, those cut by their own ratio (and by earlier rounds) included.
    const target = prunedCount(candidates.reduce((n, c) => n + c.widthBefore, 0), options.sparsity) - candidates.reduce((n, c) => n + c.taken, 0) - fixed;
    let taken = 0;
    for (const entry of pool) {
      if (taken >= target) break;
      const list = removedPerGroup.get(entry.c.group) ?? [];
      if (list.length >= entry.c.cap) continue;
      list.push(entry.i);
      removedPerGroup.set(entry.c.group, list);
      taken++;
    }
  } else {
    for (const c of ranked) removedPerGroup.set(c.group, leastImportant(c, options.sparsity));
  }
  if (roundTo > 1 && options.roundMode === 'nearest') {
    const counts = nearestRoundedRemovals(candidates.map((c) => ({ count: c.scores.length, removed: removedPerGroup.get(c.group)?.length ?? 0, cap: c.cap })), roundTo);
    // The least important channels of each group, as many as its rounded count.
    candidates.forEach((c, i) => removedPerGroup.set(c.group, Array.from(c.scores.keys()).sort((a, b) => c.scores[a] - c.scores[b] || a - b).slice(0, counts[i])));
  }
  const removed = new Set<number>();
  const groups: PrunedGroup[] = [];
  for (const group of analysis.groups) {
    const n = group.channels.length;
    const candidate = candidates.find((c) => c.group === group);
    let drop = removedPerGroup.get(group) ?? [];
    if (candidate !== undefined && roundTo > 1 && options.roundMode !== 'nearest' && drop.length > 0) {
      // Round the kept count up to a multiple of roundTo: the least important of the chosen stay removed.
      const keep = Math.min(n, Math.ceil((n - drop.length) / roundTo) * roundTo);
      const order = [...drop].sort((a, b) => candidate.scores[a] - candidate.scores[b] || a - b);
      drop = order.slice(0, n - keep);
    }
    for (const i of drop) removed.add(group.channels[i]);
    groups.push({
      id: group.id,
      sources: group.sources.map((s) => s.label),
      channelsBefore: n,
      channelsAfter: n - drop.length,
      ...(kept.has(group) ? { kept: kept.get(group) } : {}),
      ...(group.blocked === undefined ? {} : { blocked: group.blocked }),
    });
  }
  return { analysis, removed, groups, warnings };
}

function mean(values: Float64Array): number {
  const m = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  return m > 0 ? m : 1;
}

/**
 * Errors for requests that cannot be met: --only naming layers whose groups are all blocked (named
 * with the coupling node), or a model where no group can be pruned at all.
 */
export function checkPlan(plan: ChannelPlan, options: ChannelOptions): void {
  const only = selectors(options.only, '--only');
  if (only.length > 0) {
    for (const selector of only) {
      const groups = plan.analysis.groups.filter((g) => g.sources.some((s) => selector.matches(s)));
      const blocked = groups.find((g) => g.blocked !== undefined);
      if (groups.length > 0 && groups.every((g) => g.blocked !== undefined) && blocked?.blocked !== undefined) {
        throw new Error(`prune: the channels of '${selector.text}' (${blocked.sources.map((s) => s.label).join(', ')}) cannot be pruned: ${blocked.blocked.reason}, at node '${blocked.blocked.node}'`);
      }
    }
  }
  const prunable = plan.groups.filter((g) => g.kept === undefined);
  if (prunable.length === 0) {
    const first = plan.analysis.groups.find((g) => g.blocked !== undefined && g.channels.length > 1);
    const why = first?.blocked === undefined ? '' : `; e.g. the channels of '${first.sources.map((s) => s.label).join(', ')}': ${first.blocked.reason}, at node '${first.blocked.node}'`;
    throw new Error(`prune: no channel group of this model can be pruned${why}`);
  }
}

/** The analysis again after `step` changed constants (not the graph's channels): the removal must see its new members. */
function reanalyzed(model: Model, before: ChannelAnalysis, options: ChannelOptions, step: string): ChannelAnalysis {
  const again = analyzeChannels(model, { inputShapes: options.inputShapes });
  if (again.atoms.size !== before.atoms.size) throw new Error(`prune: ${step} changed the channel analysis`);
  return again;
}

export const channelsPass: Pass<ChannelOptions> = {
  name: 'prune-channels',
  description: 'remove the least important channels of every prunable channel group, rewriting weights and shape constants',
  async run(model, options, ctx) {
    let analysis = analyzeChannels(model, { inputShapes: options.inputShapes });
    let activations = options.activations;
    if (options.importance === 'activation' && activations === undefined) {
      if (options.calibration === undefined || ctx.ort === undefined) throw new Error('prune: activation importance needs samples to measure: give --calib (or --data)');
      activations = await activationScores(ctx.ort, model, analysis, options.calibration);
    }
    const plan = planChannels(analysis, { ...options, activations });
    checkPlan(plan, options);
    if (options.reconstruct === true && (options.calibration === undefined || ctx.ort === undefined)) throw new Error('prune: reconstruction refits layers on samples: give --calib (or --data)');
    const original = options.reconstruct === true ? model.clone() : undefined;
    let compensation: CompensationReport | undefined;
    if (options.compensate !== false && options.calibration !== undefined && ctx.ort !== undefined && plan.removed.size > 0) {
      compensation = await compensateRemovedChannels(ctx.ort, model, analysis, plan.removed, options.calibration, { mode: options.compensation, damping: options.lstsqDamping });
      // The biases added are members now; the channels (atoms and their roots) are the same.
      analysis = reanalyzed(model, analysis, options, 'compensation');
    }
    let reconstruction: ReconstructReport | undefined;
    if (original !== undefined && plan.removed.size > 0) {
      // Refitted with the removed channels at zero (the pruned model's function, the original's shapes).
      zeroChannels(model, analysis, plan.removed);
      reconstruction = await reconstructLayers(model, original, { calibration: options.calibration as SampleSource, samples: options.reconstructSamples }, ctx);
      analysis = reanalyzed(model, analysis, options, 'reconstruction');
    }
    const rewritten = removeChannels(model, analysis, plan.removed);
    const details: PruneDetails = {
      tensors: rewritten.map((t) => ({ name: t.name, node: t.node, op: t.op, dimsBefore: t.dimsBefore, dimsAfter: t.dimsAfter, zerosBefore: 0, zerosAfter: t.zeros })),
      groups: plan.groups,
      skipped: [...(compensation?.skipped.map((s) => ({ node: s.node, reason: `not compensated: ${s.reason}` })) ?? []), ...(reconstruction?.skipped.map((s) => ({ node: s.node, reason: `not reconstructed: ${s.reason}` })) ?? [])],
      ...(compensation === undefined ? {} : { compensation: { layers: compensation.layers, fitted: compensation.fitted, samples: compensation.samples } }),
      ...(reconstruction === undefined ? {} : { reconstruction: { layers: reconstruction.layers, rounds: reconstruction.rounds, samples: reconstruction.samples } }),
    };
    const removedChannels = plan.groups.reduce((n, g) => n + g.channelsBefore - g.channelsAfter, 0);
    return {
      stats: { compensatedLayers: compensation?.layers ?? 0, ...(reconstruction === undefined ? {} : { reconstructedLayers: reconstruction.layers, reconstructionRounds: reconstruction.rounds, reconstructionSamples: reconstruction.samples }), groups: plan.groups.length, prunedGroups: plan.groups.filter((g) => g.channelsAfter < g.channelsBefore).length, blockedGroups: plan.groups.filter((g) => g.blocked !== undefined).length, removedChannels, tensors: rewritten.length },
      warnings: plan.warnings,
      details,
    };
  },
};
