// NumPy's .npy format (numpy.lib.format, versions 1.0-3.0): the magic "\x93NUMPY", a version,
// a little-endian header length, a Python dict literal {'descr', 'fortran_order', 'shape'}, then
// the raw elements. shrink reads and writes the numeric types onnxruntime takes, little-endian
// and in C order; anything else gets an error that says how to re-save the array.
import { DataType, dataTypeName } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import type { ByteReader } from './byte-source.js';

/** A numeric array: element type, dims and its raw little-endian bytes in C order. */
export interface NpyArray {
  dataType: DataType;
  dims: number[];
  data: Uint8Array;
}

export interface NpyHeader {
  dataType: DataType;
  dims: number[];
  /** Bytes before the data: magic, version, length field and the padded header. */
  dataOffset: number;
  /** Bytes the data occupies. */
  dataLength: number;
}

/** NumPy type codes (kind + item size) <-> ONNX types; the set onnxruntime's JS API takes. */
const NPY_TYPES: ReadonlyArray<readonly [string, DataType]> = [
  ['f2', DataType.FLOAT16],
  ['f4', DataType.FLOAT],
  ['f8', DataType.DOUBLE],
  ['i1', DataType.INT8],
  ['i2', DataType.INT16],
  ['i4', DataType.INT32],
  ['i8', DataType.INT64],
  ['u1', DataType.UINT8],
  ['u2', DataType.UINT16],
  ['u4', DataType.UINT32],
  ['u8', DataType.UINT64],
  ['b1', DataType.BOOL],
];
const TYPE_BY_CODE = new Map(NPY_TYPES);
const CODE_BY_TYPE = new Map(NPY_TYPES.map(([code, type]) => [type, code]));
const SUPPORTED = NPY_TYPES.map(([code]) => code).join(', ');

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
/** Magic, two version bytes and the shorter (v1) length field. */
const PREFIX_BYTES = 10;

function itemSize(type: DataType): number {
  return Number(CODE_BY_TYPE.get(type)?.slice(1) ?? 0);
}

/** Parses a whole .npy file; the data is a view into `bytes`. `source` names the file in errors. */
export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  const header = parseNpyHeader(bytes, source);
  const available = bytes.byteLength - header.dataOffset;
  if (available < header.dataLength) throw truncated(header, available, source);
  // Bytes after the array are ignored, as numpy.load does.
  const data = bytes.subarray(header.dataOffset, header.dataOffset + header.dataLength);
  return { dataType: header.dataType, dims: header.dims, data };
}

/** Reads the header from the start of a stream, leaving the reader at the first data byte. */
export async function readNpyHeader(reader: ByteReader, source: string): Promise<NpyHeader> {
  const prefix = await reader.read(PREFIX_BYTES).catch(() => {
    throw new Error(`${source}: too short for a .npy file`);
  });
  checkMagic(prefix, source);
  const wide = prefix[6] >= 2;
  const lengthBytes = wide ? await reader.read(2) : new Uint8Array(0);
  const all = new Uint8Array(PREFIX_BYTES + lengthBytes.byteLength);
  all.set(prefix);
  all.set(lengthBytes, PREFIX_BYTES);
  const headerLength = headerLengthOf(all, source);
  const text = await reader.read(headerLength).catch(() => {
    throw new Error(`${source}: .npy header is truncated`);
  });
  const start = all.byteLength;
  return interpretHeader(decodeHeaderText(text, prefix[6], source), start + headerLength, source);
}

/** Parses the header at the start of `bytes` (which must hold at least the whole header). */
export function parseNpyHeader(bytes: Uint8Array, source: string): NpyHeader {
  if (bytes.byteLength < PREFIX_BYTES) throw new Error(`${source}: too short for a .npy file`);
  checkMagic(bytes, source);
  const headerLength = headerLengthOf(bytes, source);
  const start = bytes[6] >= 2 ? 12 : 10;
  if (bytes.byteLength < start + headerLength) throw new Error(`${source}: .npy header is truncated`);
  const text = decodeHeaderText(bytes.subarray(start, start + headerLength), bytes[6], source);
  return interpretHeader(text, start + headerLength, source);
}

function checkMagic(bytes: Uint8Array, source: string): void {
  if (MAGIC.some((b, i) => bytes[i] !== b)) throw new Error(`${source}: not a .npy file (bad magic; expected "\\x93NUMPY")`);
  const major = bytes[6];
  if (major < 1 || major > 3) throw new Error(`${source}: .npy format version ${major}.${bytes[7]} is not supported (1.0-3.0)`);
}

function headerLengthOf(bytes: Uint8Array, source: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[6] === 1) return view.getUint16(8, true);
  if (bytes.byteLength < 12) throw new Error(`${source}: .npy header is truncated`);
  return view.getUint32(8, true);
}

function decodeHeaderText(bytes: Uint8Array, major: number, source: string): string {
  // Versions 1 and 2 store the header in latin1; version 3 in UTF-8.
  try {
    return new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: major === 3 }).decode(bytes);
  } catch {
    throw new Error(`${source}: .npy header is not valid UTF-8`);
  }
}

function interpretHeader(text: string, dataOffset: number, source: string): NpyHeader {
  let dict: unknown;
  try {
    dict = parsePythonLiteral(text);
  } catch (error) {
    throw new Error(`${source}: .npy header is not a valid dict literal (${(error as Error).message})`);
  }
  if (typeof dict !== 'object' || dict === null || Array.isArray(dict)) throw new Error(`${source}: .npy header is not a dict`);
  const { descr, fortran_order: fortran, shape } = dict as Record<string, unknown>;
  if (descr === undefined || fortran === undefined || shape === undefined) {
    throw new Error(`${source}: .npy header lacks 'descr', 'fortran_order' or 'shape'`);
  }
  if (typeof descr !== 'string') throw new Error(`${source}: structured arrays (record dtypes) are not supported; save one plain array per input`);
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
    throw new Error(`${source}: .npy shape ${JSON.stringify(shape)} is not a tuple of sizes`);
  }
  const dims = shape as number[];
  const dataType = dataTypeOfDescr(descr, source);
  // A Fortran-ordered array with at most one dim above 1 has the same bytes as in C order.
  if (fortran === true && dims.filter((d) => d > 1).length > 1) {
    throw new Error(`${source}: array is in Fortran order; save it in C order (numpy.ascontiguousarray)`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  return { dataType, dims, dataOffset, dataLength: count * itemSize(dataType) };
}

function dataTypeOfDescr(descr: string, source: string): DataType {
  const match = /^([<>|=]?)([a-zA-Z?])(\d*)/.exec(descr);
  const order = match?.[1] ?? '';
  const kind = match?.[2] ?? '';
  const code = `${kind === '?' ? 'b' : kind}${match?.[3] || (kind === '?' ? '1' : '')}`;
  if (kind === 'O') throw new Error(`${source}: array holds Python objects (dtype object); save a numeric array`);
  const type = TYPE_BY_CODE.get(code);
  if (match === null || type === undefined || match[0] !== descr) {
    throw new Error(`${source}: dtype '${descr}' is not supported (supported: ${SUPPORTED}, little-endian)`);
  }
  if (order === '>' && itemSize(type) > 1) {
    throw new Error(`${source}: array is big-endian ('${descr}'); save it little-endian (arr.astype('<${code}'))`);
  }
  return type;
}

function truncated(header: NpyHeader, available: number, source: string): Error {
  const shape = `(${header.dims.join(', ')}${header.dims.length === 1 ? ',' : ''})`;
  return new Error(
    `${source}: data is truncated: shape ${shape} of ${dataTypeName(header.dataType)} needs ${header.dataLength} bytes, file has ${available}`,
  );
}

/** Writes a .npy file (version 1.0 unless the header needs more room), in C order. */
export function writeNpy(array: NpyArray): Uint8Array {
  const header = npyHeaderBytes(array.dataType, array.dims);
  const out = new Uint8Array(header.byteLength + array.data.byteLength);
  out.set(header);
  out.set(array.data, header.byteLength);
  return out;
}

/** The preamble of a .npy file holding `dims` of `dataType`: padded to 64 bytes as numpy does. */
export function npyHeaderBytes(dataType: DataType, dims: readonly number[]): Uint8Array {
  const code = CODE_BY_TYPE.get(dataType);
  if (code === undefined) throw new Error(`.npy cannot hold ${dataTypeName(dataType)} (supported: ${SUPPORTED})`);
  const descr = `${code.endsWith('1') ? '|' : '<'}${code}`;
  const shape = `(${dims.join(', ')}${dims.length === 1 ? ',' : ''})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const wide = dict.length + 1 + PREFIX_BYTES > 0xffff;
  const fixed = wide ? 12 : 10;
  const total = Math.ceil((fixed + dict.length + 1) / 64) * 64;
  const text = `${dict.padEnd(total - fixed - 1, ' ')}\n`;
  const out = new Uint8Array(total);
  out.set(MAGIC);
  out[6] = wide ? 2 : 1;
  const view = new DataView(out.buffer);
  if (wide) view.setUint32(8, text.length, true);
  else view.setUint16(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[fixed + i] = text.charCodeAt(i);
  return out;
}

/** The .npy type code ('f4', 'i8', ...) for an ONNX type, or undefined when .npy cannot hold it. */
export function npyTypeCode(dataType: DataType): string | undefined {
  return CODE_BY_TYPE.get(dataType);
}

export function npyToTensor(array: NpyArray, name: string): Tensor {
  return Tensor.fromBytes(name, array.dataType, array.dims, array.data);
}

export function tensorToNpy(tensor: Tensor): NpyArray {
  return { dataType: tensor.dataType, dims: [...tensor.dims], data: tensor.bytes() };
}

/**
 * Parses the Python literals a .npy header uses: dicts, tuples, lists, quoted strings, integers,
 * True/False/None. numpy writes them with repr(), so no other syntax appears.
 */
function parsePythonLiteral(text: string): unknown {
  let i = 0;
  const skip = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const expect = (char: string) => {
    skip();
    if (text[i] !== char) throw new Error(`expected '${char}' at ${i}`);
    i++;
  };
  const sequence = (close: string): unknown[] => {
    const items: unknown[] = [];
    for (;;) {
      skip();
      if (text[i] === close) break;
      items.push(value());
      skip();
      if (text[i] === ',') i++;
      else if (text[i] !== close) throw new Error(`expected ',' or '${close}' at ${i}`);
    }
    i++;
    return items;
  };
  const value = (): unknown => {
    skip();
    const char = text[i];
    if (char === '{') {
      i++;
      const dict: Record<string, unknown> = {};
      for (;;) {
        skip();
        if (text[i] === '}') break;
        const key = value();
        expect(':');
        dict[String(key)] = value();
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') throw new Error(`expected ',' or '}' at ${i}`);
      }
      i++;
      return dict;
    }
    if (char === '(' || char === '[') {
      i++;
      return sequence(char === '(' ? ')' : ']');
    }
    if (char === "'" || char === '"') {
      const end = text.indexOf(char, i + 1);
      if (end < 0) throw new Error(`unterminated string at ${i}`);
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const word = /^(True|False|None|-?\d+)L?/.exec(text.slice(i));
    if (word === null) throw new Error(`unexpected '${text.slice(i, i + 10)}'`);
    i += word[0].length;
    if (word[1] === 'True') return true;
    if (word[1] === 'False') return false;
    if (word[1] === 'None') return null;
    return Number(word[1]);
  };
  const result = value();
  skip();
  if (i < text.length) throw new Error(`unexpected '${text.slice(i, i + 10)}' after the dict`);
  return result;
}
