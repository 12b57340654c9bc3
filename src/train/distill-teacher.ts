// The teacher's side of distillation, computed once before training: its logits (and any
// intermediate values matched by feature losses) for every training sample. The teacher never
// changes, so running it once in inference mode is cheaper than a frozen copy in every step, and
// its BatchNormalization layers use their running statistics as they would when deployed.
// A value too large for the memory limit in float32 is kept as float16 (half the bytes: PP-OCRv4
// rec's logits over 1,200 lines, [40, 6625] per line, are 1.2 GiB in float32, 0.6 in float16;
// logits lose ~3 decimal digits, far below what distillation can match).
import { nonFiniteElement } from '../eval/match-inputs.js';
import { DataType, dataTypeName } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { type Progress, silentProgress } from '../pipeline/progress.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { openSession } from '../runtime/ort-errors.js';
import { toOrtTensor } from '../runtime/session.js';
import { type ArrayField, arrayTrainingData } from './array-data.js';
import { float32ToFloat16 } from '../kernels/float16.js';
import { GradientError } from './gradient-error.js';
import { formatBytes } from '../inspect/table.js';

/** One teacher value for every sample, sample after sample: float32, or float16 bit patterns when float32 would not fit. */
export interface PrecomputedValue {
  data: Float32Array | Uint16Array<ArrayBuffer>;
  /** Dims of one sample's value (without the batch axis). */
  sampleDims: number[];
}

export interface TeacherRunOptions {
  /** Samples per onnxruntime run. */
  batch?: number;
  threads?: number;
  progress?: Progress;
  /**
   * Keep a value in float16 when its float32 copy would exceed this many bytes, and refuse it when
   * even that would (default 1 GiB): a convolutional feature map over a whole data set grows fast.
   */
  maxBytes?: number;
}

const DEFAULT_BATCH = 256;
const DEFAULT_MAX_BYTES = 2 ** 30;

/**
 * Runs `teacher` over all samples of `inputs` and returns the named `values` (graph outputs or
 * intermediate values) for each sample.
 */
export async function precomputeTeacher(ort: OrtModule, teacher: Model, inputs: Record<string, ArrayField>, values: readonly string[], options: TeacherRunOptions = {}): Promise<Map<string, PrecomputedValue>> {
  const data = arrayTrainingData(inputs);
  const batch = options.batch ?? DEFAULT_BATCH;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const progress = options.progress ?? silentProgress;
  const outputs = new Set(teacher.graph.outputs.map((o) => o.name));
  const session = await openSession(ort, teacher, { threads: options.threads, extraOutputs: values.filter((v) => !outputs.has(v)) }, 'the teacher');
  const result = new Map<string, PrecomputedValue>();
  progress.start('teacher outputs', Math.ceil(data.size / batch));
  try {
    for (let start = 0; start < data.size; start += batch) {
      const count = Math.min(batch, data.size - start);
      const indices = Array.from({ length: count }, (_, i) => start + i);
      const feeds = Object.fromEntries(Object.entries(data.batch(indices)).map(([name, tensor]) => [name, toOrtTensor(ort, tensor)]));
      const out = await session.run(feeds, values);
      for (const name of values) {
        const tensor = out[name];
        if (tensor.type !== 'float32' && tensor.type !== 'float64') throw new GradientError(`distill: teacher value '${name}' is ${tensor.type}, not a float tensor`);
        if (tensor.dims[0] !== count) throw new GradientError(`distill: teacher value '${name}' has dims [${tensor.dims}] for a batch of ${count}: its axis 0 must be the batch`);
        const sampleDims = tensor.dims.slice(1);
        let stored = result.get(name);
        if (stored === undefined) {
          const per = sampleDims.reduce((a, b) => a * b, 1);
          const bytes = per * data.size * 4;
          if (bytes / 2 > maxBytes) {
            throw new GradientError(`distill: teacher value '${name}' ([${sampleDims}] per sample) over ${data.size} samples needs ${formatBytes(bytes)} (${formatBytes(bytes / 2)} in float16), over the ${formatBytes(maxBytes)} limit: match a smaller value, use fewer samples, or raise the limit (SHRINK_TEACHER_MEMORY in bytes for the CLI, teacherMemory in a recipe context)`);
          }
          stored = { data: bytes > maxBytes ? new Uint16Array(per * data.size) : new Float32Array(per * data.size), sampleDims };
          result.set(name, stored);
        } else if (sampleDims.join(',') !== stored.sampleDims.join(',')) {
          throw new GradientError(`distill: teacher value '${name}' changed shape between batches ([${stored.sampleDims}] then [${sampleDims}])`);
        }
        const per = stored.data.length / data.size;
        const values = tensor.data as Float32Array | Float64Array;
        // The inputs were checked finite, so a NaN here is the teacher's own doing.
        const bad = nonFiniteElement(tensor.type === 'float32' ? DataType.FLOAT : DataType.DOUBLE, values);
        if (bad !== undefined) {
          throw new GradientError(`distill: the teacher's '${name}' is ${bad.value} for sample ${start + Math.floor(bad.index / per)} although its inputs are finite: the teacher model computes non-finite values`);
        }
        if (stored.data instanceof Float32Array) stored.data.set(values, start * per);
        else {
          const { stats } = float32ToFloat16(values instanceof Float32Array ? values : Float32Array.from(values), {}, stored.data.subarray(start * per, (start + count) * per));
          if (stats.overflow > 0) throw new GradientError(`distill: the teacher's '${name}' holds values beyond float16's range (65504) in samples ${start}..${start + count - 1}, and over ${data.size} samples it is too large to keep in float32: match a smaller value or use fewer samples`);
        }
      }
      progress.tick();
    }
  } finally {
    progress.done();
    await session.release();
  }
  return result;
}

/** The precomputed value as a training-data field of the student's float type (float16 values widened per batch). */
export function precomputedField(value: PrecomputedValue, type: DataType): ArrayField {
  if (type !== DataType.FLOAT && type !== DataType.DOUBLE) throw new GradientError(`distill: the student computes in ${dataTypeName(type)}; distillation trains float32 or float64 students`);
  return { data: value.data, sampleDims: value.sampleDims, dataType: type, ...(value.data instanceof Uint16Array ? { float16: true } : {}) };
}
