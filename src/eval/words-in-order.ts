// Words of a line that another line reproduces in order: the longest common subsequence of the two
// word lists (a word-level alignment, so one changed word does not shift the rest out of place).
// Issue 15's rec measure (bench/lib/words-identical.ts) and the CTC words metric
// (src/eval/ctc-words-metric.ts) both count with it.

/** Length of the longest common subsequence of two word lists. */
export function wordsInOrder(reference: readonly string[], other: readonly string[]): number {
  let previous = new Array<number>(other.length + 1).fill(0);
  for (const word of reference) {
    const row = new Array<number>(other.length + 1).fill(0);
    for (let j = 1; j <= other.length; j++) row[j] = word === other[j - 1] ? previous[j - 1] + 1 : Math.max(previous[j], row[j - 1]);
    previous = row;
  }
  return previous[other.length];
}
