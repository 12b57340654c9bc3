// Small statistics every bench reports with: medians of timing samples, rounded so that the
// committed results show the digits that mean something and no more.

/** The middle value (mean of the two middle ones for an even count); the input is not reordered. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Four significant digits: timings on a shared machine vary well before the fifth. */
export function round(x: number): number {
  return Number(x.toPrecision(4));
}
