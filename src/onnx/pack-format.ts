// Constants and byte helpers of the pack container (docs/pack-format.md), shared by the decoder
// (pack-decode.ts, beside it) and the encoder (src/methods/pack/). Nothing here touches Node.

/** 0x89 'S' 'H' 'R' 'K' '\r' '\n' 0x1a: high bit and line endings catch text-mode transfers, as PNG's does. */
export const PACK_MAGIC = Uint8Array.of(0x89, 0x53, 0x48, 0x52, 0x4b, 0x0d, 0x0a, 0x1a);
export const PACK_VERSION = 1;

/** What a record holds. */
export const RecordKind = { END: 0, SKELETON: 1, TENSOR: 2 } as const;

/** How one stream's bytes are coded. */
export const Coding = { RAW: 0, HUFFMAN: 1, RANS: 2, DEFLATE: 3 } as const;
export type CodingId = (typeof Coding)[keyof typeof Coding];
export const CODING_NAMES = ['raw', 'huffman', 'rans', 'deflate'] as const;

/** How a tensor payload is laid out in streams. */
export const Layout = { PLANES: 1, CODEBOOK: 2, SPARSE: 3, COPY: 4 } as const;

/** Tensor record flag: a later record copies this payload, so a streaming decoder keeps it. */
export const KEEP_FLAG = 1;

/** PLANES flag: each element's bits were rotated left by one (sign to bit 0, exponent to the top byte). */
export const ROTATE_FLAG = 1;

/** Little-endian host: typed-array views give the file's byte order (every current JS host). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Growable byte buffer for headers. */
export class ByteWriter {
  private buffer = new Uint8Array(64);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const next = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
  }

  byte(value: number): this {
    this.room(1);
    this.buffer[this.length++] = value & 0xff;
    return this;
  }

  varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`pack: varint out of range: ${value}`);
    while (value >= 0x80) {
      this.byte((value % 0x80) | 0x80);
      value = Math.floor(value / 0x80);
    }
    return this.byte(value);
  }

  u32(value: number): this {
    for (let k = 0; k < 4; k++) this.byte((value >>> (8 * k)) & 0xff);
    return this;
  }

  bytes(value: Uint8Array): this {
    this.room(value.length);
    this.buffer.set(value, this.length);
    this.length += value.length;
    return this;
  }

  string(value: string): this {
    const utf8 = new TextEncoder().encode(value);
    return this.varint(utf8.length).bytes(utf8);
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

/** Reads a header; every read past its end throws `what` ended early. */
export class ByteReader {
  p = 0;
  constructor(
    readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}

  private need(n: number): void {
    if (this.p + n > this.bytes.length) throw new Error(`${this.what} ends early`);
  }

  byte(): number {
    this.need(1);
    return this.bytes[this.p++];
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(value)) break;
        return value;
      }
      scale *= 128;
    }
    throw new Error(`${this.what} holds a malformed number`);
  }

  u32(): number {
    this.need(4);
    const b = this.bytes;
    const v = (b[this.p] | (b[this.p + 1] << 8) | (b[this.p + 2] << 16) | (b[this.p + 3] << 24)) >>> 0;
    this.p += 4;
    return v;
  }

  string(): string {
    const n = this.varint();
    this.need(n);
    const s = new TextDecoder().decode(this.bytes.subarray(this.p, this.p + n));
    this.p += n;
    return s;
  }

  get done(): boolean {
    return this.p === this.bytes.length;
  }
}
