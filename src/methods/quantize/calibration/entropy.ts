// Entropy calibration as TensorRT does it (Migacz, "8-bit Inference with TensorRT", GTC 2017): over
// the histogram of |x|, try every clipping threshold from 128 bins up to the whole range; for each,
// P is the histogram cut there with the clipped tail added to its last bin, and Q is the same bins
// merged into 128 levels and spread back evenly over the bins that were non-empty. The threshold
// whose Q loses least information, min KL(P || Q), wins. Heavy tails get clipped hard; ranges
// without outliers stay near the maximum. Two departures: exact zeros are left out (see below),
// and no threshold may clip more than MAX_CLIPPED_FRACTION of the values. Without that floor a
// distribution whose mass piles up at its top (an image's white background at exactly +1, a
// saturated sigmoid) is "best" clipped below the pile, which flattens the signal itself: PP-OCRv4
// rec decoded every line to empty text and det's output lost all correlation.
import type { Calibrator } from './calibrator.js';

export const DEFAULT_QUANTIZED_BINS = 128;

/** Largest share of the (non-zero) values a threshold may clip: TensorRT-style tails, not the body. */
export const MAX_CLIPPED_FRACTION = 1e-3;

/** Q where P > 0 but Q is empty gets this much mass instead of making KL infinite. */
const EPSILON = 1e-10;

/** Index i (bins kept, 1..n) of the best threshold over `counts`, a histogram of |x| starting at 0. */
export function entropyThresholdBins(counts: ArrayLike<number>, quantizedBins = DEFAULT_QUANTIZED_BINS, maxClipped = MAX_CLIPPED_FRACTION): number {
  const n = counts.length;
  if (n <= quantizedBins) return n;
  const tail = new Float64Array(n + 1);
  for (let b = n - 1; b >= 0; b--) tail[b] = tail[b + 1] + counts[b];
  if (tail[0] === 0) return n;
  // The fewest bins that clip at most maxClipped of the mass: no threshold below them is tried.
  let fewest = n;
  while (fewest > quantizedBins && tail[fewest - 1] <= maxClipped * tail[0]) fewest--;
  const q = new Float64Array(n);
  let best = n;
  let bestDivergence = Infinity;
  for (let i = fewest; i <= n; i++) {
    // Q: counts[0..i) merged into quantizedBins groups, each group's mass spread over its non-empty bins.
    q.fill(0, 0, i);
    for (let j = 0; j < quantizedBins; j++) {
      const start = Math.floor((j * i) / quantizedBins);
      const end = j === quantizedBins - 1 ? i : Math.floor(((j + 1) * i) / quantizedBins);
      let sum = 0;
      let nonEmpty = 0;
      for (let k = start; k < end; k++) {
        sum += counts[k];
        if (counts[k] !== 0) nonEmpty++;
      }
      if (nonEmpty === 0) continue;
      const share = sum / nonEmpty;
      for (let k = start; k < end; k++) if (counts[k] !== 0) q[k] = share;
    }
    // P: the same bins with everything beyond the threshold clipped into the last one.
    const pTotal = tail[0];
    const qTotal = tail[0] - tail[i];
    if (qTotal === 0) continue;
    let divergence = 0;
    for (let k = 0; k < i; k++) {
      const pk = (k === i - 1 ? counts[k] + tail[i] : counts[k]) / pTotal;
      if (pk === 0) continue;
      const qk = Math.max(q[k] / qTotal, EPSILON);
      divergence += pk * Math.log(pk / qk);
    }
    if (divergence < bestDivergence) {
      bestDivergence = divergence;
      best = i;
    }
  }
  return best;
}

export const entropyCalibrator: Calibrator = {
  name: 'entropy',
  description: 'clip |x| where the KL divergence between the clipped and the 8-bit distribution is least (TensorRT)',
  range(stats, { symmetric, quantizedBins }) {
    if (stats.count === 0) return { min: 0, max: 0 };
    const histogram = stats.absolute;
    // Exact zeros stay exact whatever the threshold; after a Relu they are most of the values and
    // would swamp the divergence of the rest, so they are left out of it.
    const counts = Float64Array.from(histogram.counts);
    counts[0] = Math.max(0, counts[0] - stats.zeros);
    const kept = entropyThresholdBins(counts, quantizedBins);
    const t = Math.min(stats.absMax, kept * histogram.binWidth);
    if (symmetric) return { min: -t, max: t };
    // Asymmetric ranges clip each side at the same magnitude, never beyond what was seen.
    return { min: Math.max(stats.min, -t), max: Math.min(stats.max, t) };
  },
};
