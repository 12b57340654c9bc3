// Random-access and sequential byte reading for sample files. Data files can be far larger than
// memory, so readers pull them in chunks: a ByteSource answers "bytes at offset", a ByteReader
// hands out the next N bytes of a stream (a file range, or a deflate stream being inflated).
// Both are async so that a browser can back them with a File/Blob.

/** Random access to a file's bytes; `where` strings in errors name the file. */
export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset` (the caller keeps within `size`). */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** A ByteSource over bytes already in memory (no copies: reads are views). */
export function memoryByteSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    read: async (offset, length) => bytes.subarray(offset, offset + length),
  };
}

/** A ByteSource over a Blob or File (browser uploads; Node 20 has Blob too). */
export function blobByteSource(blob: Blob): ByteSource {
  return {
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  };
}

/** Reads a stream front to back. */
export interface ByteReader {
  /** Bytes handed out so far. */
  readonly position: number;
  /** The next `length` bytes; throws, naming the stream, when it ends first. */
  read(length: number): Promise<Uint8Array>;
  /** Reads past whatever is left, so that end-of-stream checks (a zip member's CRC) run. */
  finish(): Promise<void>;
}

/** Default read size: large enough to amortize file calls, small enough to keep memory flat. */
export const CHUNK_BYTES = 1 << 20;

/**
 * A ByteReader over a stream of chunks. `next` returns the next chunk, or undefined at the end;
 * `where` names the stream in the truncation error.
 */
export function chunkReader(next: () => Promise<Uint8Array | undefined>, where: string): ByteReader {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let position = 0;
  let ended = false;
  return {
    get position() {
      return position;
    },
    async read(length: number): Promise<Uint8Array> {
      // Zero-sized arrays (a decoder's past_key_values of length 0) read nothing.
      if (length === 0) return new Uint8Array(0);
      while (queued < length && !ended) {
        const chunk = await next();
        if (chunk === undefined) ended = true;
        else if (chunk.byteLength > 0) {
          queue.push(chunk);
          queued += chunk.byteLength;
        }
      }
      if (queued < length) {
        throw new Error(`${where}: data is truncated (needed ${length} bytes at byte ${position}, only ${queued} left)`);
      }
      position += length;
      queued -= length;
      // One chunk covers the request: hand out a view and keep the rest queued.
      if (queue[0].byteLength >= length) {
        const head = queue[0];
        if (head.byteLength === length) queue.shift();
        else queue[0] = head.subarray(length);
        return head.subarray(0, length);
      }
      const out = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        const head = queue[0];
        const take = Math.min(head.byteLength, length - filled);
        out.set(head.subarray(0, take), filled);
        filled += take;
        if (take === head.byteLength) queue.shift();
        else queue[0] = head.subarray(take);
      }
      return out;
    },
    async finish(): Promise<void> {
      while (!ended) {
        const chunk = await next();
        if (chunk === undefined) ended = true;
        else position += chunk.byteLength;
      }
      position += queued;
      queue.length = 0;
      queued = 0;
    },
  };
}

/** A ByteReader over `length` bytes of `source` starting at `offset`, read `chunk` bytes at a time. */
export function rangeReader(source: ByteSource, offset: number, length: number, where: string, chunk = CHUNK_BYTES): ByteReader {
  let done = 0;
  return chunkReader(async () => {
    if (done >= length) return undefined;
    const take = Math.min(chunk, length - done);
    const bytes = await source.read(offset + done, take);
    done += take;
    return bytes;
  }, where);
}
