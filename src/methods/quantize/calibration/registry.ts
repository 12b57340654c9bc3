// The calibrators static int8 quantization offers, in one list (no registration by side effect).
import type { Calibrator } from './calibrator.js';
import { entropyCalibrator } from './entropy.js';
import { expectedMinMaxCalibrator } from './expected-minmax.js';
import { minMaxCalibrator } from './minmax.js';
import { mseCalibrator } from './mse.js';
import { percentileCalibrator } from './percentile.js';

export const CALIBRATOR_NAMES = ['minmax', 'expected-minmax', 'percentile', 'entropy', 'mse'] as const;
export type CalibratorName = (typeof CALIBRATOR_NAMES)[number];

export const CALIBRATORS: Readonly<Record<CalibratorName, Calibrator>> = {
  minmax: minMaxCalibrator,
  'expected-minmax': expectedMinMaxCalibrator,
  percentile: percentileCalibrator,
  entropy: entropyCalibrator,
  mse: mseCalibrator,
};

/**
 * The default: minmax's range as 4 calibration runs would give it, in expectation, so that more
 * calibration samples do not widen it (expected-minmax.ts); with up to 4 runs it is minmax.
 */
export const DEFAULT_CALIBRATOR: CalibratorName = 'expected-minmax';

/** The calibrator called `name`, or a one-line error listing the known ones. */
export function calibratorNamed(name: string): Calibrator {
  const found = (CALIBRATORS as Record<string, Calibrator | undefined>)[name];
  if (found === undefined) throw new Error(`unknown calibrator '${name}' (known: ${CALIBRATOR_NAMES.join(', ')})`);
  return found;
}
