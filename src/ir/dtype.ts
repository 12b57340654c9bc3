// One table for every ONNX tensor element type: its enum value, name, storage width and the typed
// array that holds its raw little-endian bytes. Sub-byte types (int4, int2, fp4) pack several
// elements per byte, least significant bits first (onnx.proto, TensorProto.raw_data).

export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

type TypedArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** Any typed array over any buffer (subarrays of a file buffer or of a SharedArrayBuffer included). */
export type TypedArray =
  | Float32Array<ArrayBufferLike>
  | Float64Array<ArrayBufferLike>
  | Int8Array<ArrayBufferLike>
  | Uint8Array<ArrayBufferLike>
  | Int16Array<ArrayBufferLike>
  | Uint16Array<ArrayBufferLike>
  | Int32Array<ArrayBufferLike>
  | Uint32Array<ArrayBufferLike>
  | BigInt64Array<ArrayBufferLike>
  | BigUint64Array<ArrayBufferLike>;

/** How a type's elements sit in the typed storage fields of a TensorProto (not raw_data). */
export type ProtoField = 'float_data' | 'int32_data' | 'int64_data' | 'uint64_data' | 'double_data' | 'string_data';

export interface DataTypeInfo {
  readonly type: DataType;
  /** Lower-case name as ORT and the ONNX docs print it: float32, float16, int4, ... */
  readonly name: string;
  /** Bits one element occupies in raw_data (0 for strings, which have no fixed width). */
  readonly bits: number;
  /** Typed array over the raw bytes; sub-byte types use Uint8Array over the packed bytes. */
  readonly array: TypedArrayConstructor | undefined;
  /** The typed field this type uses when raw_data is absent. */
  readonly protoField: ProtoField;
  readonly isFloat: boolean;
  readonly isSigned: boolean;
}

function info(
  type: DataType,
  name: string,
  bits: number,
  array: TypedArrayConstructor | undefined,
  protoField: ProtoField,
  isFloat: boolean,
  isSigned: boolean,
): DataTypeInfo {
  return { type, name, bits, array, protoField, isFloat, isSigned };
}

const TABLE: ReadonlyMap<number, DataTypeInfo> = new Map(
  [
    info(DataType.FLOAT, 'float32', 32, Float32Array, 'float_data', true, true),
    info(DataType.UINT8, 'uint8', 8, Uint8Array, 'int32_data', false, false),
    info(DataType.INT8, 'int8', 8, Int8Array, 'int32_data', false, true),
    info(DataType.UINT16, 'uint16', 16, Uint16Array, 'int32_data', false, false),
    info(DataType.INT16, 'int16', 16, Int16Array, 'int32_data', false, true),
    info(DataType.INT32, 'int32', 32, Int32Array, 'int32_data', false, true),
    info(DataType.INT64, 'int64', 64, BigInt64Array, 'int64_data', false, true),
    info(DataType.STRING, 'string', 0, undefined, 'string_data', false, false),
    info(DataType.BOOL, 'bool', 8, Uint8Array, 'int32_data', false, false),
    info(DataType.FLOAT16, 'float16', 16, Uint16Array, 'int32_data', true, true),
    info(DataType.DOUBLE, 'float64', 64, Float64Array, 'double_data', true, true),
    info(DataType.UINT32, 'uint32', 32, Uint32Array, 'uint64_data', false, false),
    info(DataType.UINT64, 'uint64', 64, BigUint64Array, 'uint64_data', false, false),
    // Complex values are stored as interleaved (real, imaginary) pairs of their component type.
    info(DataType.COMPLEX64, 'complex64', 64, Float32Array, 'float_data', true, true),
    info(DataType.COMPLEX128, 'complex128', 128, Float64Array, 'double_data', true, true),
    info(DataType.BFLOAT16, 'bfloat16', 16, Uint16Array, 'int32_data', true, true),
    info(DataType.FLOAT8E4M3FN, 'float8e4m3fn', 8, Uint8Array, 'int32_data', true, true),
    info(DataType.FLOAT8E4M3FNUZ, 'float8e4m3fnuz', 8, Uint8Array, 'int32_data', true, true),
    info(DataType.FLOAT8E5M2, 'float8e5m2', 8, Uint8Array, 'int32_data', true, true),
    info(DataType.FLOAT8E5M2FNUZ, 'float8e5m2fnuz', 8, Uint8Array, 'int32_data', true, true),
    info(DataType.UINT4, 'uint4', 4, Uint8Array, 'int32_data', false, false),
    info(DataType.INT4, 'int4', 4, Uint8Array, 'int32_data', false, true),
    info(DataType.FLOAT4E2M1, 'float4e2m1', 4, Uint8Array, 'int32_data', true, true),
    info(DataType.FLOAT8E8M0, 'float8e8m0', 8, Uint8Array, 'int32_data', true, false),
    info(DataType.UINT2, 'uint2', 2, Uint8Array, 'int32_data', false, false),
    info(DataType.INT2, 'int2', 2, Uint8Array, 'int32_data', false, true),
  ].map((entry) => [entry.type, entry]),
);

/** Thrown for a type code outside the table; `where` names the tensor or value that carries it. */
export class UnknownDataTypeError extends Error {}

export function dataTypeInfo(type: number, where?: string): DataTypeInfo {
  const entry = TABLE.get(type);
  if (entry === undefined) {
    const place = where === undefined ? '' : `${where}: `;
    throw new UnknownDataTypeError(`${place}unknown tensor data type ${type}`);
  }
  return entry;
}

export function isKnownDataType(type: number): type is DataType {
  return TABLE.has(type);
}

export function dataTypeName(type: number): string {
  return TABLE.get(type)?.name ?? `unknown(${type})`;
}

export function allDataTypes(): DataTypeInfo[] {
  return [...TABLE.values()];
}

/** Bytes that `count` elements occupy in raw_data (sub-byte types round up to whole bytes). */
export function byteLengthOf(type: DataType, count: number): number {
  const { bits } = dataTypeInfo(type);
  return Math.ceil((count * bits) / 8);
}
