// Turns every in-protobuf storage form of a TensorProto into raw little-endian bytes, the one
// layout the rest of shrink works with. raw_data is returned as a view (zero-copy); the typed
// fields (float_data, int32_data, ...) are converted once into a fresh buffer.
import { type DataType, DataType as T, dataTypeInfo } from '../ir/dtype.js';
import type { TensorProto } from './onnx_pb.js';

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Raw bytes of a tensor stored inside the protobuf. `count` is the element count from its dims;
 * `where` names the tensor in error messages.
 */
export function inlineTensorBytes(proto: TensorProto, type: DataType, count: number, where: string): Uint8Array {
  if (!littleEndian) throw new Error('shrink needs a little-endian machine');
  const info = dataTypeInfo(type, where);
  if (proto.rawData.byteLength > 0 || !hasTypedData(proto)) return proto.rawData;
  const expected = Math.ceil((count * info.bits) / 8);
  const out = new Uint8Array(expected);
  const fail = (field: string, have: number, need: number): never => {
    throw new Error(`${where}: ${field} holds ${have} values, dims need ${need}`);
  };
  switch (info.protoField) {
    case 'float_data': {
      const values = count * (type === T.COMPLEX64 ? 2 : 1);
      if (proto.floatData.length !== values) fail('float_data', proto.floatData.length, values);
      new Float32Array(out.buffer).set(proto.floatData);
      break;
    }
    case 'double_data': {
      const values = count * (type === T.COMPLEX128 ? 2 : 1);
      if (proto.doubleData.length !== values) fail('double_data', proto.doubleData.length, values);
      new Float64Array(out.buffer).set(proto.doubleData);
      break;
    }
    case 'int64_data': {
      if (proto.int64Data.length !== count) fail('int64_data', proto.int64Data.length, count);
      const view = new BigInt64Array(out.buffer);
      for (let i = 0; i < count; i++) view[i] = BigInt(proto.int64Data[i]);
      break;
    }
    case 'uint64_data': {
      if (proto.uint64Data.length !== count) fail('uint64_data', proto.uint64Data.length, count);
      if (type === T.UINT64) {
        const view = new BigUint64Array(out.buffer);
        for (let i = 0; i < count; i++) view[i] = BigInt(proto.uint64Data[i]);
      } else {
        const view = new Uint32Array(out.buffer);
        for (let i = 0; i < count; i++) view[i] = Number(proto.uint64Data[i]);
      }
      break;
    }
    case 'int32_data':
      int32DataToBytes(proto.int32Data, info.bits, count, out, fail);
      break;
    case 'string_data':
      throw new Error(`${where}: string tensors have no raw bytes; read their string_data`);
  }
  return out;
}

/**
 * int32_data holds one element per entry for 8/16/32-bit types (fp16/bf16/fp8 as bit patterns)
 * and one packed byte per entry for 4-bit (two elements) and 2-bit (four elements) types.
 */
function int32DataToBytes(
  data: number[],
  bits: number,
  count: number,
  out: Uint8Array,
  fail: (field: string, have: number, need: number) => never,
): void {
  const entries = bits >= 8 ? count : Math.ceil((count * bits) / 8);
  if (data.length !== entries) fail('int32_data', data.length, entries);
  if (bits <= 8) {
    for (let i = 0; i < entries; i++) out[i] = data[i] & 0xff;
  } else if (bits === 16) {
    const view = new Uint16Array(out.buffer);
    for (let i = 0; i < entries; i++) view[i] = data[i] & 0xffff;
  } else {
    new Int32Array(out.buffer).set(data);
  }
}

function hasTypedData(proto: TensorProto): boolean {
  return (
    proto.floatData.length > 0 ||
    proto.int32Data.length > 0 ||
    proto.int64Data.length > 0 ||
    proto.uint64Data.length > 0 ||
    proto.doubleData.length > 0
  );
}
