// The samples a training-data command (prune, cluster, lowrank) checks its result on: the first
// --samples of --data (default 256, scaled as for training, with their labels), else generated
// inputs (4), or the reason there are none.
import type { Labels } from '../eval/labels.js';
import { modelSignature } from '../eval/match-inputs.js';
import { generatedSamples } from '../eval/sample-generate.js';
import type { SampleSource } from '../eval/samples.js';
import type { TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { arrayLabels, arraySamples } from '../pipeline/prune-data.js';
import type { ArrayField } from '../train/array-data.js';
import { parseDims } from './options.js';
import { LABELS_KEY } from './training-data.js';
import { generatedRanges } from '../eval/generated-ranges.js';

/** Samples compared by default when --data gives a training set (tens of thousands would be slow). */
export const DEFAULT_CHECK_SAMPLES = 256;

export function arrayCheckSamples(
  model: Model,
  files: { data?: string; labels?: string; dims?: string },
  data: { inputs: Record<string, ArrayField>; labels?: TypedArray } | undefined,
  count: number | undefined,
): { samples: SampleSource; labels?: Labels } | { skipped: string } {
  if (count === 0) return { skipped: '--samples 0' };
  if (data !== undefined) {
    const limit = count ?? DEFAULT_CHECK_SAMPLES;
    return { samples: arraySamples(data.inputs, files.data as string, limit), labels: data.labels === undefined ? undefined : arrayLabels(data.labels, files.labels ?? `${files.data}[${LABELS_KEY}]`, limit) };
  }
  try {
    return { samples: generatedSamples(modelSignature(model).inputs, { count: count ?? 4, dims: parseDims(files.dims), ranges: generatedRanges(model) }) };
  } catch (error) {
    return { skipped: `${(error as Error).message.replace(/give one with dims \{"(.+)": N\}/, 'give one with --dims $1=N')}, or pass --data` };
  }
}
