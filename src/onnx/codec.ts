// Bytes <-> ModelProto. Decoding is zero-copy: every bytes field (raw_data above all) is a view
// into the input buffer, so decoding a 100 MB model costs milliseconds and no extra memory.
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { type ModelProto, ModelProtoSchema } from './onnx_pb.js';

/** Protobuf messages are limited to 2 GiB; larger models must keep weights in external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Decodes an ONNX file's bytes; `source` (a file name) prefixes every error. */
export function decodeModelProto(bytes: Uint8Array, source: string): ModelProto {
  if (bytes.byteLength === 0) throw new Error(`${source}: file is empty`);
  const format = recognizeOtherFormat(bytes);
  if (format !== undefined) throw new Error(`${source}: this is ${format}, not an ONNX model`);
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

/** Files people pass by mistake, recognised by their first bytes, so the error can say what they are. */
function recognizeOtherFormat(b: Uint8Array): string | undefined {
  const startsWith = (...signature: number[]) => signature.every((x, i) => b[i] === x);
  if (startsWith(0x89, 0x50, 0x4e, 0x47)) return 'a PNG image';
  if (startsWith(0xff, 0xd8, 0xff)) return 'a JPEG image';
  if (startsWith(0x50, 0x4b, 0x03, 0x04)) return 'a zip archive (a .npz or PyTorch file?)';
  if (startsWith(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59)) return 'a NumPy .npy file';
  if (startsWith(0x1f, 0x8b)) return 'a gzip file';
  // A serialized ModelProto starts with field 1 (ir_version, tag 0x08); '{' and '[' never do.
  if (b[0] === 0x7b || b[0] === 0x5b) return 'JSON text';
  return undefined;
}
