// How a tensor payload is rebuilt from its decoded streams (docs/pack-format.md, "Layouts"):
// byte planes (optionally with each element's bits rotated so the exponent fills one plane), a
// codebook with one-byte codes, or sparse positions with the nonzero elements in a nested layout.
// The forward transforms live in src/methods/pack/layouts.ts; these are their inverses.
import { type ByteReader, Layout, LITTLE_ENDIAN, ROTATE_FLAG } from './pack-format.js';

export type LayoutNode =
  | { kind: typeof Layout.PLANES; rotate: boolean }
  | { kind: typeof Layout.CODEBOOK; entries: number }
  | { kind: typeof Layout.SPARSE; nonzero: number; values: LayoutNode }
  | { kind: typeof Layout.COPY; source: number };

/** Reads a layout descriptor; `count` elements of `elementBytes` each, for the range checks. */
export function readLayout(reader: ByteReader, count: number, elementBytes: number): LayoutNode {
  const kind = reader.byte();
  switch (kind) {
    case Layout.PLANES: {
      const flags = reader.byte();
      if ((flags & ~ROTATE_FLAG) !== 0 || ((flags & ROTATE_FLAG) !== 0 && elementBytes === 1)) throw new Error(`unknown plane flags ${flags}`);
      return { kind, rotate: (flags & ROTATE_FLAG) !== 0 };
    }
    case Layout.CODEBOOK: {
      const entries = reader.varint();
      if (entries < 1 || entries > 256) throw new Error(`codebook of ${entries} entries (1 to 256 allowed)`);
      return { kind, entries };
    }
    case Layout.SPARSE: {
      const nonzero = reader.varint();
      if (nonzero > count) throw new Error(`${nonzero} nonzero elements in a tensor of ${count}`);
      const values = readLayout(reader, nonzero, elementBytes);
      if (values.kind === Layout.SPARSE || values.kind === Layout.COPY) throw new Error('sparse values must be planes or a codebook');
      return { kind, nonzero, values };
    }
    case Layout.COPY:
      return { kind, source: reader.varint() };
    default:
      throw new Error(`unknown layout ${kind}`);
  }
}

/** The decoded length of each stream the layout reads, in order (-1: any length). */
export function streamLengths(node: LayoutNode, count: number, elementBytes: number): number[] {
  switch (node.kind) {
    case Layout.PLANES:
      return new Array<number>(elementBytes).fill(count);
    case Layout.CODEBOOK:
      return [node.entries * elementBytes, count];
    case Layout.SPARSE:
      return [-1, ...streamLengths(node.values, node.nonzero, elementBytes)];
    case Layout.COPY:
      return [];
  }
}

/** The payload (count * elementBytes bytes) from its decoded streams. */
export function rebuildPayload(node: LayoutNode, streams: readonly Uint8Array[], count: number, elementBytes: number): Uint8Array {
  switch (node.kind) {
    case Layout.PLANES:
      return joinPlanes(streams, count, elementBytes, node.rotate);
    case Layout.CODEBOOK:
      return expandCodebook(streams[0], streams[1], count, elementBytes);
    case Layout.SPARSE: {
      const values = rebuildPayload(node.values, streams.slice(1), node.nonzero, elementBytes);
      return scatter(streams[0], values, node.nonzero, count, elementBytes);
    }
    case Layout.COPY:
      throw new Error('a copy is resolved by the decoder, which holds the earlier payloads');
  }
}

/** Interleaves byte planes back into elements, undoing the rotation when asked. */
function joinPlanes(planes: readonly Uint8Array[], count: number, eb: number, rotate: boolean): Uint8Array {
  if (eb === 1) return planes[0];
  const out = new Uint8Array(count * eb);
  if (LITTLE_ENDIAN && eb === 4) {
    const [p0, p1, p2, p3] = planes;
    const o = new Uint32Array(out.buffer);
    if (rotate) {
      for (let i = 0; i < count; i++) {
        const r = p0[i] | (p1[i] << 8) | (p2[i] << 16) | (p3[i] << 24);
        o[i] = (r >>> 1) | (r << 31);
      }
    } else {
      for (let i = 0; i < count; i++) o[i] = p0[i] | (p1[i] << 8) | (p2[i] << 16) | (p3[i] << 24);
    }
    return out;
  }
  if (LITTLE_ENDIAN && eb === 2) {
    const [p0, p1] = planes;
    const o = new Uint16Array(out.buffer);
    if (rotate) {
      for (let i = 0; i < count; i++) {
        const r = p0[i] | (p1[i] << 8);
        o[i] = (r >>> 1) | ((r & 1) << 15);
      }
    } else {
      for (let i = 0; i < count; i++) o[i] = p0[i] | (p1[i] << 8);
    }
    return out;
  }
  for (let k = 0; k < eb; k++) {
    const plane = planes[k];
    for (let i = 0, j = k; i < count; i++, j += eb) out[j] = plane[i];
  }
  if (rotate) rotateRight(out, count, eb);
  return out;
}

/** Rotates each little-endian element of `eb` bytes right by one bit, in place (any width). */
export function rotateRight(bytes: Uint8Array, count: number, eb: number): void {
  for (let i = 0; i < count; i++) {
    const base = i * eb;
    const low = bytes[base] & 1;
    for (let k = 0; k < eb - 1; k++) bytes[base + k] = (bytes[base + k] >>> 1) | ((bytes[base + k + 1] & 1) << 7);
    bytes[base + eb - 1] = (bytes[base + eb - 1] >>> 1) | (low << 7);
  }
}

function expandCodebook(codebook: Uint8Array, codes: Uint8Array, count: number, eb: number): Uint8Array {
  const entries = codebook.length / eb;
  const out = new Uint8Array(count * eb);
  if (LITTLE_ENDIAN && (eb === 4 || eb === 2)) {
    // A copy at offset 0 (new Uint8Array, not slice(): a Node Buffer's slice is a view of the file).
    const aligned = new Uint8Array(codebook);
    const book = eb === 4 ? new Uint32Array(aligned.buffer) : new Uint16Array(aligned.buffer);
    const o = eb === 4 ? new Uint32Array(out.buffer) : new Uint16Array(out.buffer);
    for (let i = 0; i < count; i++) {
      const c = codes[i];
      if (c >= entries) throw new Error(`code ${c} at element ${i} is past the codebook's ${entries} entries`);
      o[i] = book[c];
    }
    return out;
  }
  for (let i = 0; i < count; i++) {
    const c = codes[i];
    if (c >= entries) throw new Error(`code ${c} at element ${i} is past the codebook's ${entries} entries`);
    for (let k = 0; k < eb; k++) out[i * eb + k] = codebook[c * eb + k];
  }
  return out;
}

/** Places the nonzero elements at positions given as gaps (zeros skipped), LEB128 coded. */
function scatter(gaps: Uint8Array, values: Uint8Array, nonzero: number, count: number, eb: number): Uint8Array {
  const out = new Uint8Array(count * eb);
  let p = 0;
  let position = -1;
  for (let j = 0; j < nonzero; j++) {
    let gap = 0;
    let scale = 1;
    for (;;) {
      if (p >= gaps.length) throw new Error(`positions end at nonzero element ${j} of ${nonzero}`);
      const b = gaps[p++];
      gap += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 128;
    }
    position += gap + 1;
    if (position >= count) throw new Error(`nonzero element ${j} lands at ${position}, past the tensor's ${count} elements`);
    // Byte copies: a subarray per element would allocate millions of views.
    for (let k = 0, s = j * eb, d = position * eb; k < eb; k++) out[d + k] = values[s + k];
  }
  if (p !== gaps.length) throw new Error(`${gaps.length - p} bytes left in the positions stream`);
  return out;
}
