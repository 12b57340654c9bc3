// Node attributes. Tensor and graph values are IR objects (so passes can rewrite the weights of a
// Constant node or the nodes of an If branch); the rest keep the protobuf's own value types,
// with int64 as bigint so that values like INT64_MAX (Slice ends) survive a round trip.
import type { AttributeProto, SparseTensorProto, TypeProto } from '../onnx/onnx_pb.js';
import type { Graph } from './graph.js';
import type { Tensor } from './tensor.js';

interface Values {
  float: number;
  int: bigint;
  string: Uint8Array;
  tensor: Tensor;
  graph: Graph;
  sparse_tensor: SparseTensorProto;
  type_proto: TypeProto;
  floats: number[];
  ints: bigint[];
  strings: Uint8Array[];
  tensors: Tensor[];
  graphs: Graph[];
  sparse_tensors: SparseTensorProto[];
  type_protos: TypeProto[];
}

export type AttributeKind = keyof Values;
export type AttributeValue<K extends AttributeKind> = Values[K];

export type Attribute = {
  [K in AttributeKind]: {
    name: string;
    kind: K;
    value: Values[K];
    /** Inside a function body: take the value from the calling node's attribute of this name. */
    refAttrName?: string;
    /** The decoded proto, kept so untouched attributes are written back exactly. */
    proto?: AttributeProto;
  };
}[AttributeKind];

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Constructors for attributes of nodes built in code. */
export const attr = {
  float: (name: string, value: number): Attribute => ({ name, kind: 'float', value }),
  int: (name: string, value: number | bigint): Attribute => ({ name, kind: 'int', value: BigInt(value) }),
  string: (name: string, value: string): Attribute => ({ name, kind: 'string', value: utf8.encode(value) }),
  tensor: (name: string, value: Tensor): Attribute => ({ name, kind: 'tensor', value }),
  graph: (name: string, value: Graph): Attribute => ({ name, kind: 'graph', value }),
  floats: (name: string, value: number[]): Attribute => ({ name, kind: 'floats', value }),
  ints: (name: string, value: (number | bigint)[]): Attribute => ({ name, kind: 'ints', value: value.map((v) => BigInt(v)) }),
  strings: (name: string, value: string[]): Attribute => ({ name, kind: 'strings', value: value.map((v) => utf8.encode(v)) }),
};

/** An int64 attribute as a JS number; values beyond 2^53 (INT64_MAX "to the end") become +-Infinity. */
export function int64ToNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return Number.POSITIVE_INFINITY;
  if (value < BigInt(Number.MIN_SAFE_INTEGER)) return Number.NEGATIVE_INFINITY;
  return Number(value);
}

export function decodeUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}
