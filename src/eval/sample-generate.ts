// Generated samples: random inputs built from the model's declared input types and shapes, for
// when the user has no data. They exercise every weight but not the value distributions real data
// has (quantization ranges, attention patterns), so the source carries a warning that reports show.
import { DataType, dataTypeInfo, dataTypeName } from '../ir/dtype.js';
import type { Tensor } from '../ir/tensor.js';
import { formatValueType, type ModelValue } from './match-inputs.js';
import { tensorFromValues } from './numeric.js';
import type { Sample, SampleSource } from './samples.js';
import { mulberry32 } from '../kernels/random.js';

export const GENERATED_DATA_WARNING =
  'inputs are random numbers, a weak stand-in for real data: fidelity on them can differ widely from fidelity on real inputs; pass real samples for numbers you can trust';

export interface GenerateOptions {
  /** Samples to generate (default 4). */
  count?: number;
  /** PRNG seed (default 0): the same seed gives the same samples. */
  seed?: number;
  /** Value range [min, max] for every input: floats are uniform in [min, max), integers in [min, max]. */
  range?: readonly [number, number];
  /** Per-input ranges, overriding `range`. */
  ranges?: Readonly<Record<string, readonly [number, number]>>;
  /**
   * Sizes for symbolic dims by name (`{"N": 1, "p2o.DynamicDimension.0": 640}`); an unnamed dim is
   * addressed as `input[axis]` (`"x[2]": 48`).
   */
  dims?: Readonly<Record<string, number>>;
}

const DEFAULT_COUNT = 4;
/** Defaults: [0, 1) is the usual range of normalized images and probabilities; small counts for ids. */
const DEFAULT_FLOAT_RANGE = [0, 1] as const;
const DEFAULT_INT_RANGE = [0, 9] as const;

/** Random samples for the model's required inputs. Throws when a dim has no size. */
export function generatedSamples(inputs: readonly ModelValue[], options: GenerateOptions = {}): SampleSource {
  const count = options.count ?? DEFAULT_COUNT;
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`generated samples: count must be a whole number, got ${count}`);
  const plans = inputs
    .filter((input) => !input.optional)
    .map((input) => {
      if (input.elemType === DataType.STRING || input.elemType === 0 || dataTypeInfo(input.elemType).array === undefined) {
        throw new Error(`generated samples: cannot generate input '${input.name}' of type ${formatValueType(input)}`);
      }
      const dims = resolveDims(input, options.dims ?? {});
      const range = options.ranges?.[input.name] ?? options.range ?? (dataTypeInfo(input.elemType).isFloat ? DEFAULT_FLOAT_RANGE : DEFAULT_INT_RANGE);
      if (!(range[0] <= range[1])) throw new Error(`generated samples: range [${range.join(', ')}] for input '${input.name}' is empty`);
      return { input, dims, range };
    });
  const seed = options.seed ?? 0;
  return {
    inputs: plans.map((p) => p.input.name),
    count,
    description: `generated (${count} random sample${count === 1 ? '' : 's'}, seed ${seed})`,
    warning: GENERATED_DATA_WARNING,
    async *[Symbol.asyncIterator](): AsyncGenerator<Sample> {
      const random = mulberry32(seed);
      for (let index = 0; index < count; index++) {
        const where = `generated sample ${index}`;
        const tensors: Record<string, Tensor> = {};
        for (const { input, dims, range } of plans) {
          const n = dims.reduce((a, b) => a * b, 1);
          const values = new Float64Array(n);
          const type = input.elemType as DataType;
          const [min, max] = range;
          if (type === DataType.BOOL) for (let i = 0; i < n; i++) values[i] = random() < 0.5 ? 0 : 1;
          else if (dataTypeInfo(type).isFloat) for (let i = 0; i < n; i++) values[i] = min + (max - min) * random();
          else {
            const lo = Math.ceil(min);
            const span = Math.floor(max) - lo + 1;
            if (span < 1) throw new Error(`generated samples: range [${min}, ${max}] holds no integer for input '${input.name}' (${dataTypeName(type)})`);
            for (let i = 0; i < n; i++) values[i] = lo + Math.floor(random() * span);
          }
          tensors[input.name] = tensorFromValues(input.name, type, dims, values, `${where} input '${input.name}'`);
        }
        yield { index, where, inputs: tensors };
      }
    },
  };
}

function resolveDims(input: ModelValue, given: Readonly<Record<string, number>>): number[] {
  if (input.shape === undefined) {
    throw new Error(`generated samples: input '${input.name}' (${formatValueType(input)}) declares no rank, so no shape can be generated for it`);
  }
  return input.shape.map((dim, axis) => {
    if (typeof dim === 'number') return dim;
    const byAxis = given[`${input.name}[${axis}]`];
    const size = byAxis ?? (dim === null || dim === '' ? undefined : given[dim]);
    if (size === undefined) {
      const key = dim === null || dim === '' ? `${input.name}[${axis}]` : dim;
      throw new Error(
        `generated samples: input '${input.name}' (${formatValueType(input)}) dim ${axis} has no size; give one with dims {"${key}": N}`,
      );
    }
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`generated samples: size ${size} for dim '${dim ?? axis}' of input '${input.name}' is not a whole number`);
    return size;
  });
}
