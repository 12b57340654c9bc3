// Gradual pruning: what each round of `rounds` asks of the method. The sparsity rises to the final
// one on a schedule; every share is cumulative (of the model before the first round), so a round
// takes only what its share still needs. Unstructured methods see the zeros of earlier rounds as
// the least important weights; channel pruning sees a narrower model, so it is told each group's
// width before the first round (ChannelOptions.widthsBefore) to count what is already gone.
import type { LayerRatio } from '../methods/prune/channels.js';
import type { PrunedGroup } from '../methods/prune/details.js';

/**
 * 'cubic' (AGP, TF-MOT's PolynomialDecay with power 3): most of the cut early, while the model
 * has the most to spare; 'linear': equal steps (for models where a small cut is free and a large
 * one is not, e.g. PP-OCRv4 rec: 5% costs 7% of its lines untrained, 10% 60%).
 */
export type RoundSchedule = 'cubic' | 'linear';

/** The share of the final sparsity reached after `round` of `rounds`. */
export function scheduleProgress(round: number, rounds: number, schedule: RoundSchedule = 'cubic'): number {
  const t = Math.min(1, Math.max(0, round / rounds));
  return schedule === 'linear' ? t : 1 - (1 - t) ** 3;
}

/** The sparsity after `round` of `rounds` on the cubic schedule to `final`. */
export function cubicSparsity(final: number, round: number, rounds: number): number {
  return final * scheduleProgress(round, rounds, 'cubic');
}

/** A round's channel settings: the sparsity and every layer's own ratio scaled by the progress; --max-ratio stays a cap on the whole. */
export function channelRoundShares(settings: { sparsity?: number; layerRatios?: readonly LayerRatio[] }, progress: number): { sparsity?: number; layerRatios?: LayerRatio[] } {
  return {
    ...(settings.sparsity === undefined ? {} : { sparsity: settings.sparsity * progress }),
    ...(settings.layerRatios === undefined ? {} : { layerRatios: settings.layerRatios.map((r) => ({ pattern: r.pattern, ratio: r.ratio * progress })) }),
  };
}

/** Each group's width before the first round, by its first source layer (what later rounds' groups are matched by). */
export function groupWidths(groups: readonly PrunedGroup[]): Map<string, number> {
  return new Map(groups.filter((g) => g.sources.length > 0).map((g) => [g.sources[0], g.channelsBefore]));
}

/** The groups of the last round with the widths of the first: what all rounds did together. */
export function joinRoundGroups(first: readonly PrunedGroup[], last: readonly PrunedGroup[]): PrunedGroup[] {
  const widths = groupWidths(first);
  return last.map((g) => ({ ...g, channelsBefore: widths.get(g.sources[0]) ?? g.channelsBefore }));
}
