// ModelProto -> bytes as a list of chunks whose concatenation is the file.
import { clearField, type DescMessage, type MessageShape, toBinary } from '@bufbuild/protobuf';
import { encodeModelProto } from './codec.js';
import { GraphProtoSchema, type ModelProto, ModelProtoSchema, type TensorProto, TensorProtoSchema } from './onnx_pb.js';
import { shallowCopy } from './proto-copy.js';

// protobuf-es writes a message into one growing buffer and moves every nested
// message's bytes again when it closes it: a 1 GB model is allocated and copied about five times
// (~5 s here). Instead, ModelProto.graph, GraphProto.initializer and large raw_data fields are
// framed by hand, with protobuf-es encoding only what lies around them, so each weight is copied
// at most once (into writeModel's output) or not at all (saveModel writes the chunks). protobuf-es
// writes fields in field-number order and unknown fields last; the chunks keep that order, so the
// bytes are exactly what encodeModelProto would give.

/** raw_data of at least this many bytes becomes a chunk of its own instead of being copied. */
const SEPARATE_RAW_DATA = 1 << 16;
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_RAW_DATA = 9;

export function encodeModelChunks(proto: ModelProto): Uint8Array[] {
  const graph = proto.graph;
  // Without large inline weights there is nothing to save: let protobuf-es write it in one go.
  if (graph === undefined || !graph.initializer.some((t) => t.rawData.byteLength >= SEPARATE_RAW_DATA)) return [encodeModelProto(proto)];
  const graphParts = splitAround(GraphProtoSchema, graph, GRAPH_INITIALIZER);
  const graphChunks: Uint8Array[] = [graphParts.head];
  for (const tensor of graph.initializer) graphChunks.push(...lengthDelimited(GRAPH_INITIALIZER, tensorChunks(tensor)));
  graphChunks.push(graphParts.tail);
  const modelParts = splitAround(ModelProtoSchema, proto, MODEL_GRAPH);
  return [modelParts.head, ...lengthDelimited(MODEL_GRAPH, graphChunks), modelParts.tail].filter((c) => c.byteLength > 0);
}

function tensorChunks(tensor: TensorProto): Uint8Array[] {
  if (tensor.rawData.byteLength < SEPARATE_RAW_DATA) return [toBinary(TensorProtoSchema, tensor)];
  const parts = splitAround(TensorProtoSchema, tensor, TENSOR_RAW_DATA);
  return [parts.head, ...lengthDelimited(TENSOR_RAW_DATA, [tensor.rawData]), parts.tail];
}

/** The message's fields numbered below `fieldNumber` (head) and above it plus unknown fields (tail). */
function splitAround<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, fieldNumber: number): { head: Uint8Array; tail: Uint8Array } {
  const head = shallowCopy(message);
  const tail = shallowCopy(message);
  for (const field of schema.fields) {
    if (field.number >= fieldNumber) clearField(head, field);
    if (field.number <= fieldNumber) clearField(tail, field);
  }
  (head as { $unknown?: unknown }).$unknown = undefined;
  return { head: toBinary(schema, head), tail: toBinary(schema, tail) };
}

/** Tag (wire type 2) and length prefix, followed by the payload's chunks. */
function lengthDelimited(fieldNumber: number, payload: Uint8Array[]): Uint8Array[] {
  const length = payload.reduce((n, c) => n + c.byteLength, 0);
  return [new Uint8Array([...varint((fieldNumber << 3) | 2), ...varint(length)]), ...payload];
}

function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return out;
}
