// Weights of dynamic int8 quantization: linear 8-bit codes with one scale (and zero point) per
// tensor or per channel, where a "channel" is any set of kept axes (MatMul: the column N; Conv: the
// output channel; DynamicQuantizeLSTM: direction and gate column). Unlike the block quantizers of
// kernels/ the code type is chosen by the caller: int8 (stored as is) or uint8, with the full range
// or reduce_range's 7 bits, which keep u8 x s8 pair sums inside int16 on CPUs without VNNI
// (onnxruntime's quantizer offers the same option for the same reason).
import { DataType } from '../../ir/dtype.js';
import { Tensor } from '../../ir/tensor.js';
import { roundHalfEven, sqnrDb } from '../../kernels/quantize-blocks.js';

export type Int8WeightType = 'int8' | 'uint8';

export interface LinearWeightOptions {
  type: Int8WeightType;
  /** Zero point at the middle of the range (int8: 0), scale from max |w|. Otherwise min/max. */
  symmetric: boolean;
  /** 7-bit codes: int8 [-64, 63], uint8 [0, 127]. */
  reduceRange: boolean;
}

/** Smallest and largest code of a weight type. */
export function codeRange(type: Int8WeightType, reduceRange: boolean): { qmin: number; qmax: number } {
  if (type === 'int8') return reduceRange ? { qmin: -64, qmax: 63 } : { qmin: -128, qmax: 127 };
  return reduceRange ? { qmin: 0, qmax: 127 } : { qmin: 0, qmax: 255 };
}

/** Groups of a tensor: element i belongs to group `index[i]`, numbered over the kept axes in order. */
export interface Grouping {
  count: number;
  /** Dims of the scale tensor (the kept axes' sizes; [] for one group). */
  dims: number[];
  index: Int32Array;
}

/** Groups by the values of `keepAxes` (row-major over them); [] gives one group (per tensor). */
export function groupByAxes(dims: readonly number[], keepAxes: readonly number[]): Grouping {
  const total = dims.reduce((a, b) => a * b, 1);
  const index = new Int32Array(total);
  const kept = keepAxes.map((a) => dims[a]);
  if (keepAxes.length > 0) {
    const strides = dims.map((_, k) => dims.slice(k + 1).reduce((a, b) => a * b, 1));
    for (let i = 0; i < total; i++) {
      let group = 0;
      for (const axis of keepAxes) group = group * dims[axis] + (Math.floor(i / strides[axis]) % dims[axis]);
      index[i] = group;
    }
  }
  return { count: kept.reduce((a, b) => a * b, 1), dims: kept, index };
}

export interface QuantizedWeight {
  /** Codes in the weight's own layout (int8 or uint8 values). */
  codes: Int16Array;
  scales: Float32Array;
  zeroPoints: Int16Array;
  /** The weight rebuilt from the codes, for SQNR and references. */
  dequantized: Float32Array;
  sqnrDb: number;
}

/** Quantizes `values` group by group: value ~ (code - zeroPoint) * scale. */
export function quantizeLinearWeight(values: Float32Array, grouping: Grouping, options: LinearWeightOptions): QuantizedWeight {
  const { qmin, qmax } = codeRange(options.type, options.reduceRange);
  const lo = new Float64Array(grouping.count);
  const hi = new Float64Array(grouping.count);
  for (let i = 0; i < values.length; i++) {
    const g = grouping.index[i];
    const v = values[i];
    if (v < lo[g]) lo[g] = v;
    if (v > hi[g]) hi[g] = v;
  }
  const scales = new Float32Array(grouping.count);
  const zeroPoints = new Int16Array(grouping.count);
  // Symmetric codes stay inside +-half around the midpoint, so -w quantizes to -code.
  const mid = options.type === 'int8' ? 0 : Math.ceil((qmin + qmax) / 2);
  const half = Math.min(mid - qmin, qmax - mid);
  for (let g = 0; g < grouping.count; g++) {
    if (options.symmetric) {
      scales[g] = Math.max(-lo[g], hi[g]) / half;
      zeroPoints[g] = mid;
    } else {
      // The range holds 0 (lo <= 0 <= hi), so zero is exactly representable.
      const scale = (hi[g] - lo[g]) / (qmax - qmin);
      scales[g] = scale;
      zeroPoints[g] = scale === 0 ? mid : Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo[g] / scale)));
    }
  }
  const codes = new Int16Array(values.length);
  const dequantized = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const g = grouping.index[i];
    const scale = scales[g];
    const zero = zeroPoints[g];
    const q = scale === 0 ? zero : Math.min(qmax, Math.max(qmin, roundHalfEven(values[i] / scale) + zero));
    codes[i] = q;
    dequantized[i] = (q - zero) * scale;
  }
  return {
    codes,
    scales,
    zeroPoints,
    dequantized,
    sqnrDb: sqnrDb(values, dequantized),
  };
}

/** The ONNX element type of the codes. */
export function codeDataType(type: Int8WeightType): DataType {
  return type === 'int8' ? DataType.INT8 : DataType.UINT8;
}

/** A tensor of int8/uint8 codes (or zero points) named `name`. */
export function codeTensor(name: string, type: Int8WeightType, dims: readonly number[], codes: Int16Array): Tensor {
  const data = type === 'int8' ? Int8Array.from(codes) : Uint8Array.from(codes);
  return Tensor.fromArray(name, codeDataType(type), dims, data);
}

/** [rows, cols] -> [cols, rows] over any element array. */
export function transposeCodes(data: Int16Array, rows: number, cols: number): Int16Array {
  const out = new Int16Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}
