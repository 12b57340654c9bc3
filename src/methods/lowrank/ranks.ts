// How many singular triplets each layer keeps. A matrix [p, q] factored at rank r costs r (p + q)
// parameters (and multiply-adds per row or output pixel) instead of p q, so only ranks below
// p q / (p + q) pay. Three ways to choose:
//   energy E   per layer, the smallest r whose σ² hold a share E of the layer's Σσ² (= ‖W‖_F²)
//   rank R     the same R everywhere (capped at the layer's min(p, q))
//   ratio P    one budget for the model: the parameters after are at most P times those before.
//              Ranks come down greedily, always by the cut that loses the least energy per
//              parameter saved (energy as a share of each layer's own ‖W‖², so layers of any
//              scale compare), looking at every lower rank of every layer, not one step: the
//              first cut of a layer must jump from "not factored" to below p q / (p + q).

/** A layer as rank choice sees it: its matrix size and its spectrum (σ, descending). */
export interface RankCandidate {
  rows: number;
  cols: number;
  /** Singular values, descending: at least the first largestSavingRank(rows, cols). */
  s: Float64Array;
  /** ‖W‖_F² (the sum of all σ², also those not in `s`). */
  total: number;
}

/** Parameters of the two factors at `rank`. */
export const factoredParameters = (rows: number, cols: number, rank: number) => rank * (rows + cols);

/** The largest rank whose factors hold fewer parameters than the matrix (0 when none does). */
export function largestSavingRank(rows: number, cols: number): number {
  return Math.min(Math.floor((rows * cols - 1) / (rows + cols)), rows, cols);
}

/** Share of ‖W‖² held by the first `rank` singular values. */
export function energyKept(s: ArrayLike<number>, total: number, rank: number): number {
  if (total === 0) return 1;
  let sum = 0;
  for (let i = 0; i < Math.min(rank, s.length); i++) sum += s[i] * s[i];
  return Math.min(1, sum / total);
}

export interface RatioChoice {
  /** Rank per candidate; undefined where the layer stays as it is. */
  ranks: (number | undefined)[];
  /** Model parameters after (`fixed` plus every layer's cost). */
  parameters: number;
  /** False when every layer at rank 1 still misses the budget. */
  reached: boolean;
}

/**
 * Ranks that bring the model to at most `ratio` of `modelParameters` (all its float weights,
 * the candidates' included), cutting where the least energy per parameter goes.
 */
export function ranksForRatio(candidates: readonly RankCandidate[], modelParameters: number, ratio: number): RatioChoice {
  const budget = ratio * modelParameters;
  const ranks: (number | undefined)[] = candidates.map(() => undefined);
  let parameters = modelParameters;
  // tail[c][r] = share of layer c's energy beyond σ_0 .. σ_r-1: what keeping r triplets loses
  // (from ‖W‖², so `s` need only reach the largest rank that saves parameters).
  const tails = candidates.map((c) => {
    const tail = new Float64Array(c.s.length + 1);
    let kept = 0;
    for (let r = 0; r <= c.s.length; r++) {
      tail[r] = c.total === 0 ? 0 : Math.max(0, 1 - kept / c.total);
      if (r < c.s.length) kept += c.s[r] * c.s[r];
    }
    return tail;
  });
  const costOf = (c: number, rank: number | undefined) => (rank === undefined ? candidates[c].rows * candidates[c].cols : factoredParameters(candidates[c].rows, candidates[c].cols, rank));
  const lossOf = (c: number, rank: number | undefined) => (rank === undefined ? 0 : tails[c][Math.min(rank, tails[c].length - 1)]);
  /** The best cut of layer c from where it is: the lower rank with least added loss per parameter saved. */
  const bestCut = (c: number): { rank: number; perParameter: number } | undefined => {
    const from = ranks[c];
    const top = from === undefined ? largestSavingRank(candidates[c].rows, candidates[c].cols) : from - 1;
    let best: { rank: number; perParameter: number } | undefined;
    for (let r = top; r >= 1; r--) {
      const saved = costOf(c, from) - costOf(c, r);
      const perParameter = (lossOf(c, r) - lossOf(c, from)) / saved;
      if (best === undefined || perParameter < best.perParameter) best = { rank: r, perParameter };
    }
    return best;
  };
  const cuts = candidates.map((_, c) => bestCut(c));
  while (parameters > budget) {
    let pick = -1;
    for (let c = 0; c < cuts.length; c++) {
      const cut = cuts[c];
      if (cut !== undefined && (pick < 0 || cut.perParameter < (cuts[pick] as { perParameter: number }).perParameter)) pick = c;
    }
    if (pick < 0) return { ranks, parameters, reached: false };
    let rank = (cuts[pick] as { rank: number }).rank;
    const before = costOf(pick, ranks[pick]);
    // The last cut goes no lower than the budget needs.
    const ceiling = ranks[pick] === undefined ? largestSavingRank(candidates[pick].rows, candidates[pick].cols) : (ranks[pick] as number) - 1;
    while (rank + 1 <= ceiling && parameters - before + costOf(pick, rank + 1) <= budget) rank++;
    parameters += costOf(pick, rank) - before;
    ranks[pick] = rank;
    cuts[pick] = bestCut(pick);
  }
  return { ranks, parameters, reached: true };
}
