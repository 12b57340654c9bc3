// Tensors as plain numbers and back, for evaluation: metrics read any numeric output as float64,
// and JSON or generated samples build tensors of the model's input type from JS numbers.
// float16 and bfloat16 are stored as bit patterns, so they are converted here.
import { DataType, type TypedArray, dataTypeName } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import { bfloat16ToNumber, float16ToNumber, numberToFloat16 } from '../kernels/float16.js';

// One float16/bfloat16 implementation for the whole project lives in kernels/; these names are
// kept here because evaluation and the optimizer import them from this module.
export { bfloat16ToNumber, float16ToNumber, numberToBfloat16, numberToFloat16 } from '../kernels/float16.js';

/** The types tensorNumbers reads: real numbers and booleans, not strings, complex or sub-byte types. */
const NUMBER_TYPES: ReadonlySet<DataType> = new Set<DataType>([
  DataType.FLOAT,
  DataType.DOUBLE,
  DataType.INT8,
  DataType.UINT8,
  DataType.INT16,
  DataType.UINT16,
  DataType.INT32,
  DataType.UINT32,
  DataType.BOOL,
  DataType.FLOAT16,
  DataType.BFLOAT16,
  DataType.INT64,
  DataType.UINT64,
]);

/** Whether tensorNumbers can read tensors of `type`. */
export function readsAsNumbers(type: DataType): boolean {
  return NUMBER_TYPES.has(type);
}

/**
 * The elements of a numeric tensor as numbers. float32/float64 and small integer types come back
 * as their own typed array (no copy); float16, bfloat16 and 64-bit integers are converted into a
 * Float64Array (64-bit integers beyond 2^53 lose precision, which metrics can afford).
 */
export function tensorNumbers(tensor: Tensor): ArrayLike<number> {
  if (!readsAsNumbers(tensor.dataType)) {
    throw new Error(`tensor '${tensor.name}': ${dataTypeName(tensor.dataType)} values cannot be read as numbers`);
  }
  const data = tensor.data();
  switch (tensor.dataType) {
    case DataType.FLOAT16:
      return Float64Array.from(data as Uint16Array, float16ToNumber);
    case DataType.BFLOAT16:
      return Float64Array.from(data as Uint16Array, bfloat16ToNumber);
    case DataType.INT64:
    case DataType.UINT64:
      return Float64Array.from(data as BigInt64Array, Number);
    default:
      return data as ArrayLike<number>;
  }
}

/** One JS value given for an element: numbers for any type, bigint or decimal strings for 64-bit ints. */
export type ElementValue = number | bigint | boolean | string;

/**
 * A tensor of `dataType` from JS values; `where` names it in errors. Integer types reject values
 * that are not integers or out of range instead of silently wrapping them.
 */
export function tensorFromValues(name: string, dataType: DataType, dims: readonly number[], values: ArrayLike<ElementValue>, where: string): Tensor {
  const count = dims.reduce((a, b) => a * b, 1);
  if (values.length !== count) throw new Error(`${where}: ${values.length} values for dims [${dims.join(',')}] (need ${count})`);
  const bad = (i: number, why: string): never => {
    throw new Error(`${where}: element ${i} (${String(values[i])}) ${why} for ${dataTypeName(dataType)}`);
  };
  const asNumber = (i: number): number => {
    const v = values[i];
    const n = Number(v);
    if (typeof v === 'string' && Number.isNaN(n) && v !== 'NaN') bad(i, 'is not a number');
    return n;
  };
  const integers = (array: Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array, min: number, max: number): TypedArray => {
    for (let i = 0; i < count; i++) {
      const n = asNumber(i);
      if (!Number.isInteger(n)) bad(i, 'is not an integer');
      if (n < min || n > max) bad(i, 'is out of range');
      array[i] = n;
    }
    return array as TypedArray;
  };
  const big = (array: BigInt64Array | BigUint64Array, min: bigint, max: bigint): TypedArray => {
    for (let i = 0; i < count; i++) {
      const v = values[i];
      let b: bigint;
      try {
        b = typeof v === 'bigint' ? v : BigInt(typeof v === 'boolean' ? Number(v) : v);
      } catch {
        return bad(i, 'is not an integer');
      }
      if (b < min || b > max) bad(i, 'is out of range');
      array[i] = b;
    }
    return array as TypedArray;
  };
  let data: TypedArray;
  switch (dataType) {
    case DataType.FLOAT:
      data = Float32Array.from({ length: count }, (_, i) => asNumber(i));
      break;
    case DataType.DOUBLE:
      data = Float64Array.from({ length: count }, (_, i) => asNumber(i));
      break;
    case DataType.FLOAT16:
      data = Uint16Array.from({ length: count }, (_, i) => numberToFloat16(asNumber(i)));
      break;
    case DataType.BOOL:
      data = integers(new Uint8Array(count), 0, 1);
      break;
    case DataType.INT8:
      data = integers(new Int8Array(count), -128, 127);
      break;
    case DataType.UINT8:
      data = integers(new Uint8Array(count), 0, 255);
      break;
    case DataType.INT16:
      data = integers(new Int16Array(count), -32768, 32767);
      break;
    case DataType.UINT16:
      data = integers(new Uint16Array(count), 0, 65535);
      break;
    case DataType.INT32:
      data = integers(new Int32Array(count), -(2 ** 31), 2 ** 31 - 1);
      break;
    case DataType.UINT32:
      data = integers(new Uint32Array(count), 0, 2 ** 32 - 1);
      break;
    case DataType.INT64:
      data = big(new BigInt64Array(count), -(2n ** 63n), 2n ** 63n - 1n);
      break;
    case DataType.UINT64:
      data = big(new BigUint64Array(count), 0n, 2n ** 64n - 1n);
      break;
    default:
      throw new Error(`${where}: cannot build ${dataTypeName(dataType)} tensors from JS values`);
  }
  return Tensor.fromArray(name, dataType, dims, data);
}
