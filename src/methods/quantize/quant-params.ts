// 8-bit linear quantization parameters as ONNX QuantizeLinear defines them:
// q = saturate(round_half_even(x / scale) + zero_point), x' = (q - zero_point) * scale.
// Activations get one scale and zero point from a calibrated range; weights get one per tensor or
// one per output channel, symmetric int8 by default (onnxruntime's integer kernels want that);
// biases become int32 with scale = input scale * weight scale and zero point 0, as QLinearConv's
// and QGemm's bias inputs are defined.
import type { CalibrationRange } from './calibration/calibrator.js';
import { roundHalfEven } from '../../kernels/quantize-blocks.js';

export type Int8Type = 'int8' | 'uint8';

export interface QuantParams {
  scale: number;
  zeroPoint: number;
  type: Int8Type;
}

/** [qmin, qmax] of the type; reduce_range keeps 7 bits (for CPUs whose u8s8 dot products saturate). */
export function typeRange(type: Int8Type, reduceRange = false): [number, number] {
  if (type === 'int8') return reduceRange ? [-64, 63] : [-128, 127];
  return reduceRange ? [0, 127] : [0, 255];
}

/**
 * Parameters covering `range`. Asymmetric: the range is widened to hold 0 (so 0 is exact and
 * padding stays exact) and spread over all codes; a range starting at 0 puts the zero point at
 * qmin, the condition onnxruntime checks before removing a Relu. Symmetric: zero point 0 (int8) or
 * 128 (uint8) and scale max|x| / 127.
 */
export function rangeParams(range: CalibrationRange, type: Int8Type, symmetric: boolean): QuantParams {
  const [qmin, qmax] = typeRange(type);
  if (symmetric) {
    const t = Math.max(Math.abs(range.min), Math.abs(range.max));
    return { scale: t > 0 ? t / 127 : 1, zeroPoint: type === 'int8' ? 0 : 128, type };
  }
  const lo = Math.min(range.min, 0);
  const hi = Math.max(range.max, 0);
  if (!(hi > lo)) return { scale: 1, zeroPoint: qmin, type };
  const scale = (hi - lo) / (qmax - qmin);
  const zeroPoint = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale)));
  return { scale, zeroPoint, type };
}

/** x -> dequantize(quantize(x)), as onnxruntime computes it (for tests and error estimates). */
export function fakeQuantize(x: number, p: QuantParams): number {
  const [qmin, qmax] = typeRange(p.type);
  const q = Math.min(qmax, Math.max(qmin, roundHalfEven(x / p.scale) + p.zeroPoint));
  return (q - p.zeroPoint) * p.scale;
}

export interface QuantizedWeight {
  codes: Int8Array | Uint8Array;
  /** One per tensor (length 1) or one per index of `axis`. */
  scales: Float32Array;
  zeroPoints: Int8Array | Uint8Array;
  /** The channel axis, or undefined for one scale. */
  axis: number | undefined;
}

/**
 * Quantizes a weight per tensor (`axis` undefined) or per index of `axis`. int8 weights are
 * symmetric (max |w| -> 127); uint8 weights are asymmetric over [min(w, 0), max(w, 0)].
 */
export function quantizeWeight(values: Float32Array, dims: readonly number[], axis: number | undefined, type: Int8Type, reduceRange = false): QuantizedWeight {
  const channels = axis === undefined ? 1 : dims[axis];
  const inner = axis === undefined ? values.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number) => (axis === undefined ? 0 : Math.floor(i / inner) % channels);
  const lo = new Float64Array(channels);
  const hi = new Float64Array(channels);
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    if (values[i] < lo[c]) lo[c] = values[i];
    if (values[i] > hi[c]) hi[c] = values[i];
  }
  const [qmin, qmax] = typeRange(type, reduceRange);
  const scales = new Float32Array(channels);
  const zeros = type === 'int8' ? new Int8Array(channels) : new Uint8Array(channels);
  for (let c = 0; c < channels; c++) {
    if (type === 'int8') {
      const t = Math.max(-lo[c], hi[c]);
      scales[c] = t > 0 ? t / qmax : 1;
    } else {
      scales[c] = hi[c] > lo[c] ? (hi[c] - lo[c]) / (qmax - qmin) : 1;
      zeros[c] = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo[c] / scales[c])));
    }
  }
  const codes = type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  // Symmetric int8 never uses -128, so a channel's codes stay a mirror of each other (-127..127).
  const low = type === 'int8' ? -qmax : qmin;
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    const q = roundHalfEven(values[i] / scales[c]) + zeros[c];
    codes[i] = q < low ? low : q > qmax ? qmax : q;
  }
  return { codes, scales, zeroPoints: zeros, axis };
}

/** int32 bias codes for bias scale = inputScale * weightScales[c] (one weight scale: all channels). */
export function quantizeBias(values: Float32Array, inputScale: number, weightScales: Float32Array): { codes: Int32Array; scales: Float32Array } {
  const scales = new Float32Array(weightScales.length);
  for (let c = 0; c < scales.length; c++) scales[c] = inputScale * weightScales[c];
  const codes = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const s = scales[scales.length === 1 ? 0 : i];
    const q = s > 0 ? roundHalfEven(values[i] / s) : 0;
    codes[i] = Math.max(-2147483648, Math.min(2147483647, q));
  }
  return { codes, scales };
}
