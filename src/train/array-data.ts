// Training data held in memory as flat arrays, one per graph input: images stay uint8 and are
// scaled to float per batch, so 60k Fashion-MNIST images cost 47 MB, not 188.
import { DataType, type TypedArray } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import { GradientError } from './gradient-error.js';
import type { TrainingData } from './trainer.js';

export interface ArrayField {
  /** Flat values of every sample, sample after sample. */
  data: TypedArray;
  /** Dims of one sample ([] for a class id). */
  sampleDims: number[];
  /** Type fed to the graph: FLOAT/DOUBLE (values times `scale`) or INT64 (class ids). */
  dataType: DataType;
  /** Multiplies each value on the way to a float tensor (e.g. 1/255 for bytes). */
  scale?: number;
}

export function arrayTrainingData(fields: Record<string, ArrayField>): TrainingData {
  const entries = Object.entries(fields);
  if (entries.length === 0) throw new GradientError('training data has no fields');
  const sizes = entries.map(([name, f]) => {
    const per = f.sampleDims.reduce((a, b) => a * b, 1);
    if (f.data.length % per !== 0) throw new GradientError(`training data '${name}': ${f.data.length} values is not a whole number of samples of [${f.sampleDims}]`);
    return f.data.length / per;
  });
  if (sizes.some((s) => s !== sizes[0])) throw new GradientError(`training data fields hold different numbers of samples: ${entries.map(([n], i) => `${n} ${sizes[i]}`).join(', ')}`);
  return {
    size: sizes[0],
    batch(indices) {
      const out: Record<string, Tensor> = {};
      for (const [name, f] of entries) out[name] = gather(name, f, indices);
      return out;
    },
  };
}

/** The samples at `indices` of one field, as a tensor [batch, ...sampleDims]. */
function gather(name: string, field: ArrayField, indices: ArrayLike<number>): Tensor {
  const per = field.sampleDims.reduce((a, b) => a * b, 1);
  const n = indices.length;
  const dims = [n, ...field.sampleDims];
  if (field.dataType === DataType.INT64) {
    const out = new BigInt64Array(n * per);
    for (let s = 0; s < n; s++) for (let k = 0; k < per; k++) out[s * per + k] = BigInt(Number(field.data[indices[s] * per + k]));
    return Tensor.fromArray(name, DataType.INT64, dims, out);
  }
  const scale = field.scale ?? 1;
  const out = field.dataType === DataType.DOUBLE ? new Float64Array(n * per) : new Float32Array(n * per);
  for (let s = 0; s < n; s++) {
    const from = indices[s] * per;
    for (let k = 0; k < per; k++) out[s * per + k] = Number(field.data[from + k]) * scale;
  }
  return Tensor.fromArray(name, field.dataType, dims, out);
}
