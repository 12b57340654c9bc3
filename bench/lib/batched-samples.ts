// Rows of one float32 array as calibration samples of `batch` rows each (the last batch may be
// shorter): how the benches feed rendered lines or images to static int8 in runs of several.
import type { Sample, SampleSource } from '../../src/eval/samples.js';
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';

/** `count` rows of `data` (each of shape `dims`) as input `name`, `batch` rows a sample. */
export function batchedSamples(name: string, dims: readonly number[], data: Float32Array, count: number, batch: number, description: string): SampleSource {
  const per = dims.reduce((a, b) => a * b, 1);
  const runs = Math.ceil(count / batch);
  return {
    inputs: [name],
    count: runs,
    description,
    async *[Symbol.asyncIterator]() {
      for (let b = 0; b < runs; b++) {
        const n = Math.min(batch, count - b * batch);
        yield { index: b, where: `${description}, batch ${b}`, inputs: { [name]: Tensor.fromArray(name, DataType.FLOAT, [n, ...dims], data.slice(b * batch * per, (b * batch + n) * per)) } } satisfies Sample;
      }
    },
  };
}
