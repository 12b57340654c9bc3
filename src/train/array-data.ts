// Training data held in memory as flat arrays, one per graph input: images stay uint8 and are
// scaled to float per batch, so 60k Fashion-MNIST images cost 47 MB, not 188. Float values are
// checked once, when the data is first wrapped: a NaN in the data would otherwise surface steps
// later as a NaN loss that looks like a learning rate too high.
import { DataType, type TypedArray } from '../ir/dtype.js';
import { nonFiniteElement } from '../eval/match-inputs.js';
import { float16ToFloat32 } from '../kernels/float16.js';
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
  /** Names where the values came from in errors ('train.npz'); default 'training data'. */
  source?: string;
  /** `data` holds float16 bit patterns (a Uint16Array), widened per batch: half the memory of float32 (distillation's teacher values). */
  float16?: boolean;
}

/** Magnitude from which a float64 value becomes infinite in float32 (2^128 - 2^103). */
const FLOAT32_OVERFLOW = 2 ** 128 - 2 ** 103;

/**
 * Training data already read into memory: one field per model input and, optionally, one class id
 * per sample (fine-tuning with cross-entropy; without them a step distils from the original).
 */
export interface TrainingArrays {
  inputs: Record<string, ArrayField>;
  labels?: TypedArray;
}

/** Arrays found finite, with the bound they were checked against: wrapping the same data again (distillation does) costs no new pass. */
const finiteArrays = new WeakMap<TypedArray, number>();

export function arrayTrainingData(fields: Record<string, ArrayField>): TrainingData {
  const entries = Object.entries(fields);
  if (entries.length === 0) throw new GradientError('training data has no fields');
  const sizes = entries.map(([name, f]) => {
    const per = f.sampleDims.reduce((a, b) => a * b, 1);
    if (f.data.length % per !== 0) throw new GradientError(`training data '${name}': ${f.data.length} values is not a whole number of samples of [${f.sampleDims}]`);
    checkFinite(name, f, per);
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

/**
 * Throws for the first sample holding NaN or infinity, or (float32 fields) a value that turns
 * infinite once scaled and converted. Only float arrays are read: integers are always finite.
 */
function checkFinite(name: string, field: ArrayField, per: number): void {
  const { data } = field;
  if (!(data instanceof Float32Array || data instanceof Float64Array) || field.dataType === DataType.INT64) return;
  const scale = Math.abs(field.scale ?? 1);
  const bound = field.dataType === DataType.FLOAT ? FLOAT32_OVERFLOW / scale : Infinity;
  // Values below a smaller bound are below this one too.
  const checked = finiteArrays.get(data);
  if (checked !== undefined && checked <= bound) return;
  const bad = nonFiniteElement(data instanceof Float32Array ? DataType.FLOAT : DataType.DOUBLE, data, bound);
  if (bad === undefined) {
    finiteArrays.set(data, bound);
    return;
  }
  const sample = Math.floor(bad.index / per);
  const value = Number.isFinite(Number(bad.value)) ? `${bad.value}, infinite in float32${scale === 1 ? '' : ` once scaled by ${field.scale}`}` : bad.value;
  throw new GradientError(`${field.source ?? 'training data'} sample ${sample}: input '${name}' holds ${value} at element ${bad.index - sample * per} of the sample; training data must be finite`);
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
  if (field.float16 === true) {
    const halves = field.data as Uint16Array;
    const widened = new Float32Array(per);
    for (let s = 0; s < n; s++) {
      float16ToFloat32(halves.subarray(indices[s] * per, (indices[s] + 1) * per), widened);
      for (let k = 0; k < per; k++) out[s * per + k] = widened[k] * scale;
    }
    return Tensor.fromArray(name, field.dataType, dims, out);
  }
  for (let s = 0; s < n; s++) {
    const from = indices[s] * per;
    for (let k = 0; k < per; k++) out[s * per + k] = Number(field.data[from + k]) * scale;
  }
  return Tensor.fromArray(name, field.dataType, dims, out);
}
