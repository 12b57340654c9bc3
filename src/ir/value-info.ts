// Types of graph values. The IR keeps ValueInfoProto as decoded (so denotations and symbolic dims
// round-trip untouched) and reads it through these helpers.
import { create } from '@bufbuild/protobuf';
import {
  type TypeProto,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
  TensorShapeProto_DimensionSchema,
} from '../onnx/onnx_pb.js';
import { dataTypeName } from './dtype.js';

/** A dim: a size, a symbolic name (`batch`, `p2o.DynamicDimension.0`), or unknown (null). */
export type Dim = number | string | null;

export interface TensorType {
  elemType: number;
  /** Undefined when the rank itself is unknown. */
  shape: Dim[] | undefined;
}

/** The tensor type of a value, or undefined for sequences, maps, optionals or missing types. */
export function tensorTypeOf(info: ValueInfoProto | undefined): TensorType | undefined {
  const type = info?.type?.value;
  if (type?.case !== 'tensorType') return undefined;
  const shape = type.value.shape?.dim.map((d): Dim => {
    if (d.value.case === 'dimValue') return Number(d.value.value);
    if (d.value.case === 'dimParam') return d.value.value;
    return null;
  });
  return { elemType: type.value.elemType, shape };
}

export function makeTypeProto(type: TensorType): TypeProto {
  const shape =
    type.shape === undefined
      ? undefined
      : {
          dim: type.shape.map((d) =>
            create(TensorShapeProto_DimensionSchema, {
              value:
                typeof d === 'number'
                  ? { case: 'dimValue', value: BigInt(d) }
                  : typeof d === 'string'
                    ? { case: 'dimParam', value: d }
                    : { case: undefined },
            }),
          ),
        };
  return create(TypeProtoSchema, { value: { case: 'tensorType', value: { elemType: type.elemType, shape } } });
}

export function makeValueInfo(name: string, type?: TensorType): ValueInfoProto {
  return create(ValueInfoProtoSchema, { name, type: type === undefined ? undefined : makeTypeProto(type) });
}

/** `float32[N,3,48,W]`, `int64[]` (a scalar), `float32[?]` for unknown rank, or the kind of a non-tensor. */
export function formatType(info: ValueInfoProto | undefined): string {
  const tensor = tensorTypeOf(info);
  if (tensor === undefined) return formatNonTensor(info?.type);
  const dims = tensor.shape === undefined ? '?' : tensor.shape.map((d) => (d === null ? '?' : String(d))).join(',');
  return `${dataTypeName(tensor.elemType)}[${dims}]`;
}

function formatNonTensor(type: TypeProto | undefined): string {
  const value = type?.value;
  switch (value?.case) {
    case 'sequenceType':
      return `seq(${formatNonTensorOrTensor(value.value.elemType)})`;
    case 'optionalType':
      return `optional(${formatNonTensorOrTensor(value.value.elemType)})`;
    case 'mapType':
      return `map(${dataTypeName(value.value.keyType)},${formatNonTensorOrTensor(value.value.valueType)})`;
    case 'sparseTensorType':
      return `sparse ${dataTypeName(value.value.elemType)}`;
    case 'opaqueType':
      return `opaque(${value.value.domain}.${value.value.name})`;
    default:
      return 'unknown';
  }
}

function formatNonTensorOrTensor(type: TypeProto | undefined): string {
  if (type?.value.case === 'tensorType') return formatType(create(ValueInfoProtoSchema, { type }));
  return formatNonTensor(type);
}
