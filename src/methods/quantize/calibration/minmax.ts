// MinMax: the range is exactly what calibration saw. Nothing is clipped, so one outlier stretches
// the scale for every other value; onnxruntime's default calibrator.
import type { Calibrator } from './calibrator.js';

export const minMaxCalibrator: Calibrator = {
  name: 'minmax',
  description: 'the smallest and largest value seen (no clipping)',
  range(stats, { symmetric }) {
    if (stats.count === 0) return { min: 0, max: 0 };
    if (symmetric) return { min: -stats.absMax, max: stats.absMax };
    return { min: stats.min, max: stats.max };
  },
};
