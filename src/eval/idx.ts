// The IDX format of MNIST and Fashion-MNIST (after gunzip): a big-endian header with a magic number
// whose third byte is the element type and fourth the rank, then the dims, then the data.
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;

/** Parses an uncompressed IDX file of unsigned bytes (images or labels); `source` names it in errors. */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.byteLength < 4) throw new Error(`${source}: too short for an IDX file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint16(0) !== 0) throw new Error(`${source}: not an IDX file (bad magic number)`);
  const type = bytes[2];
  const rank = bytes[3];
  if (type !== UNSIGNED_BYTE) throw new Error(`${source}: IDX element type 0x${type.toString(16)} is not supported (only unsigned bytes)`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.byteLength < headerBytes) throw new Error(`${source}: IDX header is truncated`);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.byteLength < headerBytes + count) {
    throw new Error(`${source}: IDX data is truncated (dims [${dims.join(',')}] need ${count} bytes, file has ${bytes.byteLength - headerBytes})`);
  }
  return { dims, data: bytes.subarray(headerBytes, headerBytes + count) };
}
