// The integer formats weights are quantized into, in one table (as ggml's type_traits): width,
// signedness, code range, and how codes pack into bytes. Every packed layout shrink writes is
// LSB-first: element i of a byte sits at bits [i*bits, (i+1)*bits), which is how ONNX stores
// int4/uint4/int2/uint2 raw_data and how com.microsoft MatMulNBits / GatherBlockQuantized read
// their uint8 blobs. Scale storage (float32 or float16) is described here too, with the float16
// rounding the kernels use, because this folder imports nothing from the rest of the project.

export type QuantBits = 2 | 4 | 8;
export type QuantFormatName = 'int2' | 'uint2' | 'int4' | 'uint4' | 'int8' | 'uint8';

export interface QuantFormat {
  readonly name: QuantFormatName;
  readonly bits: QuantBits;
  readonly signed: boolean;
  /** Smallest and largest code. */
  readonly qmin: number;
  readonly qmax: number;
  /** Codes per byte when packed (8 / bits). */
  readonly elementsPerByte: number;
  /** The ONNX TensorProto.DataType code of a tensor holding these codes (src/ir/dtype.ts). */
  readonly onnxDataType: number;
}

function format(name: QuantFormatName, bits: QuantBits, signed: boolean, onnxDataType: number): QuantFormat {
  const levels = 2 ** bits;
  return {
    name,
    bits,
    signed,
    qmin: signed ? -levels / 2 : 0,
    qmax: signed ? levels / 2 - 1 : levels - 1,
    elementsPerByte: 8 / bits,
    onnxDataType,
  };
}

/** Every format, keyed by name. DataType codes: UINT8 2, INT8 3, UINT4 21, INT4 22, UINT2 25, INT2 26. */
export const QUANT_FORMATS: Readonly<Record<QuantFormatName, QuantFormat>> = {
  int2: format('int2', 2, true, 26),
  uint2: format('uint2', 2, false, 25),
  int4: format('int4', 4, true, 22),
  uint4: format('uint4', 4, false, 21),
  int8: format('int8', 8, true, 3),
  uint8: format('uint8', 8, false, 2),
};

export function quantFormat(bits: QuantBits, signed: boolean): QuantFormat {
  return QUANT_FORMATS[`${signed ? 'int' : 'uint'}${bits}` as QuantFormatName];
}

/** Block sizes the block quantizers accept: powers of two from 16 to 256 (ORT's MatMulNBits needs >= 16). */
export const BLOCK_SIZES = [16, 32, 64, 128, 256] as const;

export function isSupportedBlockSize(blockSize: number): boolean {
  return (BLOCK_SIZES as readonly number[]).includes(blockSize);
}

/** Bytes one block of `blockSize` codes occupies when packed (MatMulNBits' blob_size). */
export function codeBytesPerBlock(fmt: QuantFormat, blockSize: number): number {
  if (!Number.isInteger(blockSize) || blockSize <= 0 || blockSize % fmt.elementsPerByte !== 0) {
    throw new Error(`${fmt.name}: block size ${blockSize} does not fill whole bytes (${fmt.elementsPerByte} codes per byte)`);
  }
  return blockSize / fmt.elementsPerByte;
}

/** Bytes `count` codes take when packed into one byte-aligned run (a row is padded to a whole byte). */
export function packedBytes(fmt: QuantFormat, count: number): number {
  return Math.ceil((count * fmt.bits) / 8);
}

export type ScaleType = 'float32' | 'float16';

/** Bytes per stored scale (and per float zero point). */
export const SCALE_BYTES: Readonly<Record<ScaleType, number>> = { float32: 4, float16: 2 };

/**
 * Storage of one block: packed codes, its scale, and (asymmetric only) its packed zero point in
 * bits. A whole tensor rounds zero points up to bytes per row, so bits are reported unrounded.
 */
export function blockStorage(
  fmt: QuantFormat,
  blockSize: number,
  scaleType: ScaleType,
  hasZeroPoint: boolean,
): { codeBytes: number; scaleBytes: number; zeroPointBits: number; bitsPerWeight: number } {
  const codeBytes = codeBytesPerBlock(fmt, blockSize);
  const scaleBytes = SCALE_BYTES[scaleType];
  const zeroPointBits = hasZeroPoint ? fmt.bits : 0;
  return { codeBytes, scaleBytes, zeroPointBits, bitsPerWeight: (codeBytes * 8 + scaleBytes * 8 + zeroPointBits) / blockSize };
}

// float16 scales use the one float16 conversion of the project (round half to even).
export { numberToFloat16 as float32ToFloat16Bits, float16ToNumber as float16BitsToFloat32 } from './float16.js';
import { float16ToNumber, numberToFloat16 } from './float16.js';

/** `value` as the scale type stores it (float32 rounding, or float16 rounding). */
export function roundToScaleType(value: number, scaleType: ScaleType): number {
  if (scaleType === 'float16') return float16ToNumber(numberToFloat16(value));
  return Math.fround(value);
}
