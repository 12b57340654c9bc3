// The calibrators static int8 quantization offers, in one list (no registration by side effect).
import type { Calibrator } from './calibrator.js';
import { entropyCalibrator } from './entropy.js';
import { expectedMinMaxCalibrator } from './expected-minmax.js';
import { minMaxCalibrator } from './minmax.js';
import { mseCalibrator } from './mse.js';
import { percentileCalibrator } from './percentile.js';

/** Calibrators that turn one activation's statistics into a range. */
export const RANGE_CALIBRATOR_NAMES = ['minmax', 'expected-minmax', 'percentile', 'entropy', 'mse'] as const;
export type RangeCalibratorName = (typeof RANGE_CALIBRATOR_NAMES)[number];
/** What static int8 accepts: a range calibrator, or 'measured', one of them per activation by measured output error (measured-choice.ts). */
export const CALIBRATOR_NAMES = [...RANGE_CALIBRATOR_NAMES, 'measured'] as const;
export type CalibratorName = (typeof CALIBRATOR_NAMES)[number];

export const CALIBRATORS: Readonly<Record<RangeCalibratorName, Calibrator>> = {
  minmax: minMaxCalibrator,
  'expected-minmax': expectedMinMaxCalibrator,
  percentile: percentileCalibrator,
  entropy: entropyCalibrator,
  mse: mseCalibrator,
};

/**
 * The default: minmax, onnxruntime's own. expected-minmax (minmax as 4 calibration runs give it,
 * in expectation) held PP-OCRv4 det's held-out IoU as calibration pages were added (0.962 on 8
 * pages against minmax's 0.939), but on the Fashion-MNIST MLP calibrated one image per run it
 * clipped the activations: logits at 22.6 dB against minmax's 43.7 dB, and 0.18 points of test
 * accuracy lost (minmax none). A range rule that holds on every model is a per-tensor choice by
 * measured error, which is not built yet.
 */
export const DEFAULT_CALIBRATOR: CalibratorName = 'minmax';

/** The calibrator called `name`, or a one-line error listing the known ones. */
export function calibratorNamed(name: string): Calibrator {
  const found = (CALIBRATORS as Record<string, Calibrator | undefined>)[name];
  if (found === undefined) throw new Error(`unknown calibrator '${name}' (known: ${CALIBRATOR_NAMES.join(', ')})`);
  return found;
}
