// Where a tensor's bytes live when the model keeps them outside the protobuf (TensorProto
// data_location = EXTERNAL). The codec only describes the bytes; reading and writing files is the
// job of an adapter (src/node/ for Node, a map of Blobs or buffers in a browser).

/** Reads external tensor data. `location` is relative to the model's folder, as in the file. */
export interface ExternalDataSource {
  /** Size in bytes of the file at `location`; throws if it does not exist. */
  size(location: string): number;
  /** `length` bytes at `offset` of the file at `location`. */
  read(location: string, offset: number, length: number): Uint8Array;
  /**
   * The file's path on disk, where the data lives in files (Node): lets onnxruntime read a model's
   * weights from their own file instead of from a copy in memory.
   */
  path?(location: string): string;
}

export interface ExternalDataRef {
  location: string;
  offset: number;
  /** Undefined when the file omits it: the data then runs to the end of the file. */
  length: number | undefined;
  checksum?: string;
}

/** An in-memory source: a browser page hands over the files the user picked, tests hand buffers. */
export function memoryExternalData(files: Record<string, Uint8Array>): ExternalDataSource {
  const get = (location: string): Uint8Array => {
    const file = files[location];
    if (file === undefined) throw new Error(`external data file '${location}' was not provided`);
    return file;
  };
  return {
    size: (location) => get(location).byteLength,
    read: (location, offset, length) => get(location).subarray(offset, offset + length),
  };
}

/** Parses TensorProto.external_data key/value pairs; `where` names the tensor for errors. */
export function parseExternalDataEntries(entries: { key: string; value: string }[], where: string): ExternalDataRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  let checksum: string | undefined;
  for (const { key, value } of entries) {
    if (key === 'location') location = value;
    else if (key === 'offset') offset = parseByteCount(value, key, where);
    else if (key === 'length') length = parseByteCount(value, key, where);
    else if (key === 'checksum') checksum = value;
  }
  if (location === undefined || location === '') {
    throw new Error(`${where}: external data has no 'location'`);
  }
  if (location.startsWith('/') || location.split(/[\\/]/).includes('..')) {
    // The spec makes locations relative to the model's folder; refusing others keeps a model
    // from reading arbitrary files on the machine that opens it.
    throw new Error(`${where}: external data location '${location}' must be a relative path inside the model's folder`);
  }
  return { location, offset, length, checksum };
}

function parseByteCount(value: string, key: string, where: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw new Error(`${where}: external data ${key} '${value}' is not a byte count`);
  }
  return n;
}
