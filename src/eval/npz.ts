// NumPy's .npz format: a zip archive of .npy files, stored (numpy.savez) or deflate-compressed
// (numpy.savez_compressed). The archive's central directory gives each member's offset and sizes;
// members are then read as streams, so an archive larger than memory can feed samples one by one.
// numpy writes zip64 local headers (sizes 0xFFFFFFFF), so sizes come from the central directory.
import { Inflate, zipSync, type Zippable } from 'fflate';
import { type ByteReader, type ByteSource, CHUNK_BYTES, chunkReader, memoryByteSource, rangeReader } from './byte-source.js';
import { type NpyArray, parseNpy, writeNpy } from './npy.js';

export interface NpzEntry {
  /** The array's key: the member name without ".npy" (what numpy.load(...)[key] uses). */
  key: string;
  fileName: string;
  compression: 'stored' | 'deflate';
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_BYTES = 22;
const MAX_COMMENT = 0xffff;

/** Lists the arrays in an .npz archive. `where` names the file in errors. */
export async function listNpz(source: ByteSource, where: string): Promise<NpzEntry[]> {
  const tailLength = Math.min(source.size, EOCD_BYTES + MAX_COMMENT);
  const tail = view(await source.read(source.size - tailLength, tailLength));
  let eocd = -1;
  for (let i = tailLength - EOCD_BYTES; i >= 0; i--) {
    if (tail.getUint32(i, true) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${where}: not an .npz file (no zip directory found)`);
  let count = tail.getUint16(eocd + 10, true);
  let directorySize = tail.getUint32(eocd + 12, true);
  let directoryOffset = tail.getUint32(eocd + 16, true);
  // Zip64 archives keep the real values in a record that a locator just before the EOCD points to.
  if (eocd >= 20 && tail.getUint32(eocd - 20, true) === ZIP64_LOCATOR_SIGNATURE) {
    const recordOffset = bigToNumber(tail.getBigUint64(eocd - 20 + 8, true), where);
    const record = view(await source.read(recordOffset, 56));
    if (record.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) throw new Error(`${where}: corrupt zip64 directory record`);
    count = bigToNumber(record.getBigUint64(32, true), where);
    directorySize = bigToNumber(record.getBigUint64(40, true), where);
    directoryOffset = bigToNumber(record.getBigUint64(48, true), where);
  }
  if (directoryOffset + directorySize > source.size) throw new Error(`${where}: zip directory lies past the end of the file (truncated?)`);
  const directory = view(await source.read(directoryOffset, directorySize));
  const entries: NpzEntry[] = [];
  let at = 0;
  for (let n = 0; n < count; n++) {
    if (at + 46 > directorySize || directory.getUint32(at, true) !== CENTRAL_SIGNATURE) {
      throw new Error(`${where}: corrupt zip directory (entry ${n})`);
    }
    const method = directory.getUint16(at + 10, true);
    const crc32 = directory.getUint32(at + 16, true);
    let compressedSize = directory.getUint32(at + 20, true);
    let size = directory.getUint32(at + 24, true);
    const nameLength = directory.getUint16(at + 28, true);
    const extraLength = directory.getUint16(at + 30, true);
    const commentLength = directory.getUint16(at + 32, true);
    let localHeaderOffset = directory.getUint32(at + 42, true);
    const nameBytes = new Uint8Array(directory.buffer, directory.byteOffset + at + 46, nameLength);
    const fileName = new TextDecoder().decode(nameBytes);
    // The zip64 extra field holds, in this order, only the values whose 32-bit slot is 0xFFFFFFFF.
    const extra = at + 46 + nameLength;
    for (let e = extra; e + 4 <= extra + extraLength; ) {
      const id = directory.getUint16(e, true);
      const length = directory.getUint16(e + 2, true);
      if (id === 0x0001) {
        let field = e + 4;
        const next = () => {
          const value = bigToNumber(directory.getBigUint64(field, true), where);
          field += 8;
          return value;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
      }
      e += 4 + length;
    }
    at = extra + extraLength + commentLength;
    if (fileName.endsWith('/')) continue;
    if (method !== 0 && method !== 8) {
      throw new Error(`${where}: member '${fileName}' uses zip compression method ${method}; only stored and deflate are supported`);
    }
    const key = fileName.endsWith('.npy') ? fileName.slice(0, -4) : fileName;
    entries.push({ key, fileName, compression: method === 0 ? 'stored' : 'deflate', compressedSize, size, crc32, localHeaderOffset });
  }
  return entries;
}

/**
 * A stream of one member's uncompressed bytes (a whole .npy file). The CRC is checked once the
 * stream has been read to its end.
 */
export async function openNpzEntry(source: ByteSource, entry: NpzEntry, where: string, chunk = CHUNK_BYTES): Promise<ByteReader> {
  const place = `${where}[${entry.key}]`;
  const local = view(await source.read(entry.localHeaderOffset, 30));
  if (local.getUint32(0, true) !== LOCAL_SIGNATURE) throw new Error(`${place}: corrupt zip member header`);
  const dataStart = entry.localHeaderOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
  if (dataStart + entry.compressedSize > source.size) throw new Error(`${place}: zip member is truncated`);
  const raw = rangeReader(source, dataStart, entry.compressedSize, place, chunk);
  const crc = crc32Accumulator();
  let produced = 0;
  const check = (bytes: Uint8Array | undefined): Uint8Array | undefined => {
    if (bytes === undefined) {
      if (produced !== entry.size) throw new Error(`${place}: zip member holds ${produced} bytes, its directory says ${entry.size}`);
      if (crc.value() !== entry.crc32) throw new Error(`${place}: CRC mismatch; the archive is corrupt`);
      return undefined;
    }
    produced += bytes.byteLength;
    crc.update(bytes);
    return bytes;
  };
  if (entry.compression === 'stored') {
    let done = 0;
    return chunkReader(async () => {
      if (done >= entry.compressedSize) return check(undefined);
      const take = Math.min(chunk, entry.compressedSize - done);
      done += take;
      return check(await raw.read(take));
    }, place);
  }
  const pending: Uint8Array[] = [];
  let finished = false;
  let consumed = 0;
  const inflate = new Inflate((data, final) => {
    if (data.byteLength > 0) pending.push(data);
    if (final) finished = true;
  });
  return chunkReader(async () => {
    // Feed compressed chunks until the inflater yields output or the member ends.
    while (pending.length === 0 && !finished) {
      const take = Math.min(chunk, entry.compressedSize - consumed);
      const input = take > 0 ? await raw.read(take) : new Uint8Array(0);
      consumed += take;
      try {
        inflate.push(input, consumed >= entry.compressedSize);
      } catch (error) {
        throw new Error(`${place}: corrupt deflate data (${(error as Error).message})`);
      }
      if (take === 0 && !finished) throw new Error(`${place}: deflate data ends early`);
    }
    return check(pending.shift());
  }, place);
}

/** Reads every array of an .npz held in memory (for small files; large ones stream via samples). */
export async function readNpz(bytes: Uint8Array, where: string): Promise<Map<string, NpyArray>> {
  const source = memoryByteSource(bytes);
  const arrays = new Map<string, NpyArray>();
  for (const entry of await listNpz(source, where)) {
    const reader = await openNpzEntry(source, entry, where);
    const member = await reader.read(entry.size);
    await reader.finish();
    arrays.set(entry.key, parseNpy(member, `${where}[${entry.key}]`));
  }
  return arrays;
}

/** Writes an .npz archive: keys become "<key>.npy"; `compress` deflates like numpy.savez_compressed. */
export function writeNpz(arrays: Record<string, NpyArray>, options: { compress?: boolean } = {}): Uint8Array {
  const files: Zippable = {};
  for (const [key, array] of Object.entries(arrays)) files[`${key}.npy`] = [writeNpy(array), { level: options.compress ? 6 : 0 }];
  return zipSync(files);
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function bigToNumber(value: bigint, where: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${where}: zip offset ${value} is out of range`);
  return Number(value);
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (the zip/PNG polynomial 0xEDB88320), updated chunk by chunk. */
function crc32Accumulator(): { update(bytes: Uint8Array): void; value(): number } {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const table = crcTable;
  let crc = 0xffffffff;
  return {
    update(bytes) {
      for (let i = 0; i < bytes.byteLength; i++) crc = table[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    },
    value: () => (crc ^ 0xffffffff) >>> 0,
  };
}
