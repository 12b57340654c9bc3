// How far bias correction moves one output channel's bias: the mean of the int8 shift over the
// calibration runs, shrunk by how sure that mean is. A channel's shift E[ỹ] − E[y] is measured on a
// few samples, and on a detector it varies more from page to page than its mean: PP-OCRv4 det,
// 4 pages, one page per run, a neck Conv's mean |shift| 0.011 with a spread of 0.41 between pages.
// Subtracting such a mean moves the bias by noise, and which pages are in the calibration set
// decides the result: the plain mean on 8 pages gave held-out text-mask IoU 0.939, on the first 4
// of them 0.962 (4-page ranges, BC on 8 of the same pages: 0.924). The James-Stein-like factor
// max(0, 1 − se² / mean²), se the standard error of the mean over runs, keeps a shift that is
// clearly there (|mean| >> se) and drops one the runs do not agree on, whatever the number of runs.
// It reads runs, not samples: se² is the variance of the per-run means over the runs, which
// estimates the variance of the overall mean the same way when a run holds one sample or many.
// Measured (NOTES.md, issue 15, H3): det held-out IoU at 4 / 8 / 16 calibration pages 0.948 /
// 0.952 / 0.934 against the plain mean's 0.962 / 0.934 / 0.925; Fashion-MNIST logits no worse. So
// it is an option of correctBiases (`shift: 'shrunk'`), not static int8's default.

/** The shift of one channel from its per-run values (quantized minus float mean of each run). */
export function shrunkShift(perRun: ArrayLike<number>): number {
  return shiftShrunkBy(perRun, (meanSquared, errorSquared) => Math.max(0, 1 - errorSquared / meanSquared));
}

/**
 * The softer factor mean² / (mean² + se²) (the posterior mean under a normal prior of the shift's own
 * size): never drops a shift outright, halves one whose mean equals its standard error.
 */
export function softShrunkShift(perRun: ArrayLike<number>): number {
  return shiftShrunkBy(perRun, (meanSquared, errorSquared) => meanSquared / (meanSquared + errorSquared));
}

function shiftShrunkBy(perRun: ArrayLike<number>, factor: (meanSquared: number, errorSquared: number) => number): number {
  const n = perRun.length;
  if (n === 0) return 0;
  let mean = 0;
  for (let k = 0; k < n; k++) mean += perRun[k];
  mean /= n;
  // One run: no spread to judge it by; the plain mean, as bias correction has always done.
  if (n === 1 || mean === 0) return mean;
  let squares = 0;
  for (let k = 0; k < n; k++) squares += (perRun[k] - mean) ** 2;
  const errorSquared = squares / (n - 1) / n;
  return mean * factor(mean * mean, errorSquared);
}
