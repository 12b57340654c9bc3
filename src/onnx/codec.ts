// Bytes <-> ModelProto. Decoding is zero-copy: every bytes field (raw_data above all) is a view
// into the input buffer, so decoding a 100 MB model costs milliseconds and no extra memory.
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { type ModelProto, ModelProtoSchema } from './onnx_pb.js';

/** Protobuf messages are limited to 2 GiB; larger models must keep weights in external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Decodes an ONNX file's bytes; `source` (a file name) prefixes every error. */
export function decodeModelProto(bytes: Uint8Array, source: string): ModelProto {
  if (bytes.byteLength === 0) throw new Error(`${source}: file is empty`);
  let proto: ModelProto;
  try {
    proto = fromBinary(ModelProtoSchema, bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${source}: not a valid ONNX model (protobuf decoding failed: ${reason}); the file may be truncated or corrupt`);
  }
  if (proto.graph === undefined) {
    throw new Error(`${source}: not an ONNX model (no graph found; is this a different file format?)`);
  }
  if (proto.irVersion <= 0n) {
    throw new Error(`${source}: not an ONNX model (ir_version is missing)`);
  }
  return proto;
}

export function encodeModelProto(proto: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, proto);
}
