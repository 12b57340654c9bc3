// MSE: search the clipping range that minimizes the expected squared quantization error, estimated
// from the histogram: values beyond the range cost their distance to it, values inside cost the
// rounding error of a uniform quantizer (step^2 / 12), except exact zeros, which stay exact. The
// range family is the seen range shrunk toward 0 by a factor (both ends alike); a coarse grid of
// factors is refined around its best point.
import type { CalibrationRange, Calibrator } from './calibrator.js';
import type { Histogram } from '../../../eval/histogram.js';
import type { TensorStatistics } from '../../../eval/tensor-statistics.js';

const COARSE_STEPS = 200;
const FINE_STEPS = 40;

/** Expected total squared error of quantizing the histogram's values to `levels` levels over [lo, hi]. */
export function histogramMse(histogram: Histogram, zeros: number, lo: number, hi: number, levels: number, symmetric: boolean): number {
  // Symmetric codes put 0 at the midpoint: steps of t / ((levels - 2) / 2), e.g. t/127 for int8.
  const step = symmetric ? (hi - lo) / (levels - 2) : (hi - lo) / (levels - 1);
  const rounding = (step * step) / 12;
  const width = histogram.binWidth;
  let error = 0;
  let inside = -zeros;
  for (let b = 0; b < histogram.bins; b++) {
    const n = histogram.counts[b];
    if (n === 0) continue;
    const c = histogram.lo + (b + 0.5) * width;
    if (c > hi) error += n * (c - hi) * (c - hi);
    else if (c < lo) error += n * (lo - c) * (lo - c);
    else inside += n;
  }
  return error + Math.max(0, inside) * rounding;
}

/** The range [factor * lo, factor * hi] for the factor in (0, 1] of least histogram MSE. */
export function mseRange(stats: TensorStatistics, symmetric: boolean, levels: number): CalibrationRange {
  const histogram = symmetric ? stats.absolute : stats.signed;
  const lo = symmetric ? -stats.absMax : Math.min(0, stats.min);
  const hi = symmetric ? stats.absMax : Math.max(0, stats.max);
  // The absolute histogram holds |x|, so its error is measured on [0, t] with t = factor * hi.
  const cost = (f: number) => histogramMse(histogram, stats.zeros, symmetric ? -f * hi : f * lo, f * hi, levels, symmetric);
  let best = 1;
  let bestCost = cost(1);
  for (let k = 1; k < COARSE_STEPS; k++) {
    const f = k / COARSE_STEPS;
    const c = cost(f);
    if (c < bestCost) [best, bestCost] = [f, c];
  }
  const from = Math.max(1 / COARSE_STEPS / FINE_STEPS, best - 1 / COARSE_STEPS);
  const to = Math.min(1, best + 1 / COARSE_STEPS);
  for (let k = 0; k <= FINE_STEPS; k++) {
    const f = from + ((to - from) * k) / FINE_STEPS;
    const c = cost(f);
    if (c < bestCost) [best, bestCost] = [f, c];
  }
  return { min: best * lo, max: best * hi };
}

export const mseCalibrator: Calibrator = {
  name: 'mse',
  description: 'the clipping range of least expected squared quantization error (searched over the histogram)',
  range(stats, { symmetric, levels = 256 }) {
    if (stats.count === 0) return { min: 0, max: 0 };
    return mseRange(stats, symmetric, levels);
  },
};
