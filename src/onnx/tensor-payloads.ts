// Where the weight bytes of an ONNX file are, found by walking its protobuf wire format (not by
// decoding it): the byte range of every TensorProto's raw_data, packed float_data and packed
// double_data, with the tensor's data type and a name to call it by. The pack cuts these ranges
// out of the file and codes them by what they hold; everything else (the "skeleton") is kept
// verbatim, which is why unpack gives back the original bytes exactly, whatever order or
// encoding quirks the writer of the file had.
//
// Only the messages that can hold tensors are entered (schema below, field numbers from
// proto/onnx.proto); every other field is skipped by its wire type.

/**
 * ONNX TensorProto.DataType values the pack treats specially. Spelled out here, not imported:
 * onnx/ sits below ir/ (and its dtype table), and a page's decoder bundle must not pull in the
 * generated schema for a handful of numbers.
 */
export const TensorDataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
} as const;

export interface TensorPayload {
  /** First byte of the payload in the file (after the field's tag and length). */
  start: number;
  /** One past its last byte. */
  end: number;
  /** TensorProto.data_type (0 when the tensor does not say). */
  dataType: number;
  /** Bytes per element of the payload's layout: 1, 2, 4 or 8. */
  elementBytes: number;
  /** The elements are IEEE floats (float16, bfloat16, float32, float64, complex parts). */
  float: boolean;
  /** The tensor's name, or the output of the Constant node that holds it, or `#<n>`. */
  name: string;
  /** Which TensorProto field: raw_data (9), float_data (4) or double_data (10). */
  field: number;
}

export interface PayloadScan {
  payloads: TensorPayload[];
  /** Names of tensors whose data lives in external files. */
  external: string[];
}

type MessageKind = 'model' | 'graph' | 'node' | 'attribute' | 'tensor' | 'sparse' | 'function' | 'training';

/** Fields (number -> message kind) that hold messages which can hold tensors. */
const SCHEMA: Record<Exclude<MessageKind, 'tensor'>, Record<number, MessageKind>> = {
  model: { 7: 'graph', 20: 'training', 25: 'function' },
  training: { 1: 'graph', 2: 'graph' },
  function: { 7: 'node', 11: 'attribute' },
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse' },
  node: { 5: 'attribute' },
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse' },
  sparse: { 1: 'tensor', 2: 'tensor' },
};

const textDecoder = new TextDecoder();

interface Field {
  number: number;
  wireType: number;
  /** For wire type 0: the value; else unused. */
  value: number;
  /** For wire type 2: the content range. */
  start: number;
  end: number;
}

/** Reads a varint at `p`; returns [value, next position]. Values above 2^53 lose precision (never lengths). */
function readVarint(bytes: Uint8Array, p: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (p >= end) throw new Error('varint runs past the end of its message');
    const b = bytes[p++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, p];
    scale *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

/** The fields of the message in bytes[start, end), in file order. */
function fieldsOf(bytes: Uint8Array, start: number, end: number): Field[] {
  const fields: Field[] = [];
  let p = start;
  while (p < end) {
    const [key, afterKey] = readVarint(bytes, p, end);
    p = afterKey;
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    if (number === 0) throw new Error(`field number 0 at byte ${p}`);
    switch (wireType) {
      case 0: {
        const [value, next] = readVarint(bytes, p, end);
        fields.push({ number, wireType, value, start: p, end: next });
        p = next;
        break;
      }
      case 1:
        p += 8;
        break;
      case 5:
        p += 4;
        break;
      case 2: {
        const [length, next] = readVarint(bytes, p, end);
        if (next + length > end) throw new Error(`field ${number} at byte ${p} runs past the end of its message`);
        fields.push({ number, wireType, value: 0, start: next, end: next + length });
        p = next + length;
        break;
      }
      default:
        throw new Error(`unsupported wire type ${wireType} at byte ${p}`);
    }
    if (p > end) throw new Error('field runs past the end of its message');
  }
  return fields;
}

/** Element width and float-ness of a data type's raw_data layout; sub-byte types count as bytes. */
function layoutOf(dataType: number): { elementBytes: number; float: boolean } {
  switch (dataType) {
    case TensorDataType.FLOAT:
    case TensorDataType.COMPLEX64:
      return { elementBytes: 4, float: true };
    case TensorDataType.DOUBLE:
    case TensorDataType.COMPLEX128:
      return { elementBytes: 8, float: true };
    case TensorDataType.FLOAT16:
    case TensorDataType.BFLOAT16:
      return { elementBytes: 2, float: true };
    case TensorDataType.INT16:
    case TensorDataType.UINT16:
      return { elementBytes: 2, float: false };
    case TensorDataType.INT32:
    case TensorDataType.UINT32:
      return { elementBytes: 4, float: false };
    case TensorDataType.INT64:
    case TensorDataType.UINT64:
      return { elementBytes: 8, float: false };
    default:
      return { elementBytes: 1, float: false };
  }
}

/**
 * Every tensor payload of at least `minBytes` in an ONNX file, in file order. Throws when the
 * bytes are not well-formed protobuf along the way (the caller decides what that means).
 */
export function scanTensorPayloads(bytes: Uint8Array, minBytes = 64): PayloadScan {
  const payloads: TensorPayload[] = [];
  const external: string[] = [];
  let anonymous = 0;

  const visitTensor = (start: number, end: number, hint: string | undefined) => {
    const fields = fieldsOf(bytes, start, end);
    let dataType = 0;
    let name = '';
    let isExternal = false;
    for (const f of fields) {
      if (f.number === 2 && f.wireType === 0) dataType = f.value;
      else if (f.number === 8 && f.wireType === 2) name = textDecoder.decode(bytes.subarray(f.start, f.end));
      else if ((f.number === 14 && f.wireType === 0 && f.value === 1) || f.number === 13) isExternal = true;
    }
    const label = name !== '' ? name : (hint ?? `#${anonymous++}`);
    if (isExternal) external.push(label);
    for (const f of fields) {
      if (f.wireType !== 2 || f.end - f.start < minBytes) continue;
      let layout: { elementBytes: number; float: boolean } | undefined;
      if (f.number === 9) layout = layoutOf(dataType);
      else if (f.number === 4) layout = { elementBytes: 4, float: true };
      else if (f.number === 10) layout = { elementBytes: 8, float: true };
      if (layout === undefined) continue;
      // A length that is not a whole number of elements is coded as plain bytes.
      if ((f.end - f.start) % layout.elementBytes !== 0) layout = { elementBytes: 1, float: false };
      payloads.push({ start: f.start, end: f.end, dataType, ...layout, name: label, field: f.number });
    }
  };

  const visit = (kind: MessageKind, start: number, end: number, hint: string | undefined) => {
    if (kind === 'tensor') return visitTensor(start, end, hint);
    const fields = fieldsOf(bytes, start, end);
    let inner = hint;
    if (kind === 'node') {
      // A Constant's tensor is usually nameless: call it by the node's first output.
      const output = fields.find((f) => f.number === 2 && f.wireType === 2);
      if (output !== undefined) inner = textDecoder.decode(bytes.subarray(output.start, output.end));
    }
    if (kind === 'sparse') {
      // The values tensor carries the sparse tensor's name; the indices are named after it.
      const values = fields.find((f) => f.number === 1 && f.wireType === 2);
      const named = values === undefined ? undefined : fieldsOf(bytes, values.start, values.end).find((f) => f.number === 8 && f.wireType === 2);
      inner = named === undefined ? (hint ?? `#${anonymous++}`) : textDecoder.decode(bytes.subarray(named.start, named.end));
    }
    const children = SCHEMA[kind];
    for (const f of fields) {
      const child = children[f.number];
      if (child !== undefined && f.wireType === 2) visit(child, f.start, f.end, kind === 'sparse' && f.number === 2 ? `${inner}.indices` : inner);
    }
  };

  visit('model', 0, bytes.length, undefined);
  return { payloads, external };
}
