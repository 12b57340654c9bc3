// Kept channel counts rounded to multiples of N, to the NEAREST multiple with the total held.
// Why: onnxruntime's NCHWc kernels (the layout it runs Conv in at 'all') take a depthwise Conv only
// when its channels are a multiple of the block (8 on AVX2, 16 on AVX-512), and pad a Conv's
// output channels up to the block: a pruned count just past a multiple costs the time of the next
// one, and a depthwise layer at 67 channels falls back to a kernel slower than the original's at
// 96. Rounding every kept count up (`roundTo` alone) keeps the kernels but gives back the channels
// (30% of 24 rounds to nothing removed); rounding to the nearest multiple, some groups down and
// some up, then moving rounded-up groups down until the removals reach the unrounded total, keeps
// both the kernels and the share removed.

/** One group's unrounded decision. */
export interface RoundedGroup {
  /** Channels in the group. */
  count: number;
  /** Channels the unrounded plan removes. */
  removed: number;
  /** Most channels the group may lose. */
  cap: number;
}

/**
 * Channels removed per group once every kept count is a multiple of `to`: nearest first; then, while
 * the total removed is below the unrounded plan's, groups rounded up switched down (the smallest
 * extra removal first); then groups rounded down switched back up while the total stays at or above
 * it. Groups with fewer than `to` channels, or with nothing removed, keep their unrounded removal.
 */
export function nearestRoundedRemovals(groups: readonly RoundedGroup[], to: number): number[] {
  const target = groups.reduce((n, g) => n + g.removed, 0);
  // Each group's removal, and the other rounding it could switch to (none when there is no choice).
  const choice = groups.map((g): { removed: number; other?: number } => {
    const keep = g.count - g.removed;
    if (to <= 1 || g.count < to || g.removed === 0) return { removed: g.removed };
    const up = g.count - Math.min(g.count, Math.ceil(keep / to) * to);
    const downKeep = Math.floor(keep / to) * to;
    // Rounding down is possible when a multiple stays and the cap allows it.
    const down = downKeep >= to && g.count - downKeep <= g.cap ? g.count - downKeep : undefined;
    if (down === undefined || down === up) return { removed: up };
    return keep - downKeep < g.count - up - keep ? { removed: down, other: up } : { removed: up, other: down };
  });
  const switchTo = (i: number) => {
    const c = choice[i];
    choice[i] = { removed: c.other as number, other: c.removed };
  };
  let total = choice.reduce((n, c) => n + c.removed, 0);
  const extra = (i: number) => (choice[i].other as number) - choice[i].removed;
  const down = choice.map((_, i) => i).filter((i) => extra(i) > 0);
  down.sort((a, b) => extra(a) - extra(b) || a - b);
  for (const i of down) {
    if (total >= target) break;
    total += extra(i);
    switchTo(i);
  }
  // Give back what rounding down took beyond the target, the groups it cut deepest (past their
  // unrounded share, relative to their size) first: early narrow layers are the ones it hurts.
  const over = (i: number) => (choice[i].removed - groups[i].removed) / groups[i].count;
  const up = choice.map((_, i) => i).filter((i) => extra(i) < 0);
  up.sort((a, b) => over(b) - over(a) || a - b);
  for (const i of up) {
    if (total + extra(i) < target) continue;
    total += extra(i);
    switchTo(i);
  }
  return choice.map((c) => c.removed);
}
