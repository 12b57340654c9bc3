// Elementwise arithmetic on small float constants (folded weights, biases, per-channel factors),
// done in float64 and written back in the tensor's own type: float32, float16 or float64.
// float16 goes through the converters in eval/numeric.ts.
import { DataType, dataTypeName } from '../../ir/dtype.js';
import { Tensor } from '../../ir/tensor.js';
import { float16ToNumber, numberToFloat16 } from '../../eval/numeric.js';

/** The float types the folding passes compute in. */
export function isFoldableFloat(dataType: number): boolean {
  return dataType === DataType.FLOAT || dataType === DataType.FLOAT16 || dataType === DataType.DOUBLE;
}

/** The elements of a float32/float16/float64 tensor as float64. */
export function floatValues(tensor: Tensor): Float64Array {
  const data = tensor.data();
  switch (tensor.dataType) {
    case DataType.FLOAT:
    case DataType.DOUBLE:
      return Float64Array.from(data as Float32Array);
    case DataType.FLOAT16:
      return Float64Array.from(data as Uint16Array, float16ToNumber);
    default:
      throw new Error(`tensor '${tensor.name}': expected a float tensor, got ${dataTypeName(tensor.dataType)}`);
  }
}

/** A tensor of `dataType` (float32/float16/float64) holding `values`, rounded once. */
export function floatTensor(name: string, dataType: number, dims: readonly number[], values: ArrayLike<number>): Tensor {
  switch (dataType) {
    case DataType.FLOAT:
      return Tensor.fromArray(name, DataType.FLOAT, dims, Float32Array.from(values));
    case DataType.DOUBLE:
      return Tensor.fromArray(name, DataType.DOUBLE, dims, Float64Array.from(values));
    case DataType.FLOAT16:
      return Tensor.fromArray(name, DataType.FLOAT16, dims, Uint16Array.from(values as ArrayLike<number>, numberToFloat16));
    default:
      throw new Error(`tensor '${name}': cannot write ${dataTypeName(dataType)} values`);
  }
}

/**
 * Reads a constant that broadcasts against a tensor of rank `rank` as one value per channel on
 * `axis`: every other dim must be 1 and the constant may not add dims of its own. Returns the
 * `channels` values (a scalar or size-1 channel dim repeated), or undefined if it varies elsewhere.
 */
export function perChannel(tensor: Tensor, rank: number, axis: number, channels: number): Float64Array | undefined {
  const dims = tensor.dims;
  if (dims.length > rank) return undefined;
  // Numpy-style broadcasting aligns dims from the right.
  const offset = rank - dims.length;
  for (let i = 0; i < dims.length; i++) {
    const at = i + offset;
    if (at === axis) {
      if (dims[i] !== 1 && dims[i] !== channels) return undefined;
    } else if (dims[i] !== 1) {
      return undefined;
    }
  }
  const values = floatValues(tensor);
  if (values.length === channels) return values;
  if (values.length === 1) return new Float64Array(channels).fill(values[0]);
  return undefined;
}
