// The calibrator interface: turn one activation's statistics into the float range its 8-bit codes
// will cover. Wider ranges clip less and round more; each calibrator strikes that balance its own way.
import type { TensorStatistics } from '../../../eval/tensor-statistics.js';

export interface CalibrationRange {
  min: number;
  max: number;
}

export interface CalibratorOptions {
  /** Range symmetric around 0 (zero point at the midpoint), as symmetric activations need. */
  symmetric: boolean;
  /** Percentile calibrator: the percentile kept (default 99.999). */
  percentile?: number;
  /** Quantization levels of the target type (256 for 8 bits); MSE weighs rounding error with it. */
  levels?: number;
  /** Expected-minmax calibrator: the runs minmax is taken over, in expectation (default 4). */
  runs?: number;
  /** Entropy calibrator: bins of the quantized distribution (TensorRT uses 128 for int8). */
  quantizedBins?: number;
}

export interface Calibrator {
  readonly name: string;
  readonly description: string;
  range(stats: TensorStatistics, options: CalibratorOptions): CalibrationRange;
}
