// Calibration samples for the commands that measure activations before they change a model
// (prune's one-shot methods, cluster's OBS codes and importance): --calib when given, else the
// samples of --data after the ones the result is checked on, so that the check measures samples
// calibration never saw; else --data's first ones, with a warning that the check flatters.
import type { SampleSource } from '../eval/samples.js';
import { arrayCount, arraySamples } from '../pipeline/prune-data.js';
import type { ArrayField } from '../train/array-data.js';

export interface CalibrationChoice {
  /** --calib's file and arrays, when given. */
  calibFile?: string;
  calib?: Record<string, ArrayField>;
  /** --data's file and arrays, when given. */
  dataFile?: string;
  data?: Record<string, ArrayField>;
  /** Samples of --data the result is checked on (its first ones). */
  checked: number;
  /** Samples wanted. */
  wanted: number;
}

export function calibrationSamples(choice: CalibrationChoice): { samples: SampleSource; warning?: string } | undefined {
  if (choice.calib !== undefined) return { samples: arraySamples(choice.calib, choice.calibFile as string) };
  if (choice.data === undefined) return undefined;
  const total = arrayCount(choice.data);
  const file = choice.dataFile as string;
  if (total - choice.checked >= Math.min(choice.wanted, total)) return { samples: arraySamples(choice.data, file, choice.wanted, choice.checked) };
  return {
    samples: arraySamples(choice.data, file, choice.wanted),
    warning: `calibrated on the same --data samples the result is checked on (${total} samples, ${choice.checked} checked): the check flatters the result; give --calib FILE, or more --data`,
  };
}
