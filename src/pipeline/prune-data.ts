// Training arrays (one field per model input, class ids optional) seen as the samples a fidelity
// check runs on, with their labels: the same scaled values the recovery trains on, so the
// comparison and the training agree on what an input is. Samples are built one at a time.
import type { Labels } from '../eval/labels.js';
import type { Sample, SampleSource } from '../eval/samples.js';
import type { TypedArray } from '../ir/dtype.js';
import { type ArrayField, arrayTrainingData } from '../train/array-data.js';

/** `limit` samples (default all) of `fields` from sample `from` (default 0), each input with a batch axis of 1. */
export function arraySamples(fields: Record<string, ArrayField>, description: string, limit?: number, from = 0): SampleSource {
  const data = arrayTrainingData(fields);
  const count = Math.max(0, Math.min(limit ?? data.size, data.size - from));
  const which = from === 0 ? '' : `, from sample ${from}`;
  return {
    inputs: Object.keys(fields),
    count,
    description: `${description} (${count} samples${which})`,
    async *[Symbol.asyncIterator](): AsyncGenerator<Sample> {
      for (let index = from; index < from + count; index++) yield { index, where: `${description} sample ${index}`, inputs: data.batch([index]) };
    },
  };
}

/** Samples in `fields` (the length of axis 0 of each). */
export function arrayCount(fields: Record<string, ArrayField>): number {
  const first = Object.values(fields)[0];
  return first === undefined ? 0 : first.data.length / first.sampleDims.reduce((a, b) => a * b, 1);
}

/** Class ids of the first `limit` samples as accuracy labels. */
export function arrayLabels(labels: TypedArray, where: string, limit?: number): Labels {
  const count = Math.min(limit ?? labels.length, labels.length);
  return { where, ids: Int32Array.from({ length: count }, (_, i) => Number(labels[i])) };
}
