// Percentile: clip the rarest values. Symmetric ranges take the p-th percentile of |x|; asymmetric
// ones cut (100 - p)% from each tail of x, as onnxruntime's percentile calibrator does. The
// default 99.999 keeps all but one value in 100,000.
import type { Calibrator } from './calibrator.js';

export const DEFAULT_PERCENTILE = 99.999;

export const percentileCalibrator: Calibrator = {
  name: 'percentile',
  description: `clip to the p-th percentile (default ${DEFAULT_PERCENTILE}) of |x|, or of each tail of x when asymmetric`,
  range(stats, { symmetric, percentile = DEFAULT_PERCENTILE }) {
    if (!(percentile > 0 && percentile <= 100)) throw new Error(`percentile calibrator: percentile must be in (0, 100], got ${percentile}`);
    if (stats.count === 0) return { min: 0, max: 0 };
    const p = percentile / 100;
    if (symmetric) {
      const t = Math.min(stats.absolute.quantile(p), stats.absMax);
      return { min: -t, max: t };
    }
    // Never beyond what was seen: quantiles of re-binned histograms can overshoot by a bin.
    const lo = Math.max(stats.min, stats.signed.quantile(1 - p));
    const hi = Math.min(stats.max, stats.signed.quantile(p));
    return { min: lo, max: hi };
  },
};
