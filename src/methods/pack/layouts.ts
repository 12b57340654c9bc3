// The forward side of the pack's tensor layouts (inverses in src/onnx/pack-layouts.ts): each
// payload is tried as byte planes, as a codebook with one-byte codes (at most 256 distinct
// elements: what k-means weight sharing leaves), and, when at least a fifth of its elements are
// zero, as positions plus nonzero values (what pruning leaves); the smallest after coding wins.
import { Layout, LITTLE_ENDIAN, ROTATE_FLAG } from '../../onnx/pack-format.js';
import { codeStream, type CodedStream } from './streams.js';

/** What a stream holds, for the report's per-kind sizes. */
export type StreamKind = 'skeleton' | 'float_exponents' | 'float_mantissas' | 'integer_bytes' | 'codebooks' | 'codes' | 'sparse_positions';

export interface LabelledStream extends CodedStream {
  kind: StreamKind;
}

export interface EncodedLayout {
  /** The layout descriptor as written in the tensor header. */
  descriptor: number[];
  streams: LabelledStream[];
  name: 'planes' | 'codebook' | 'sparse' | 'copy';
  /** Coded bytes of all streams plus the descriptor. */
  size: number;
}

function finish(name: EncodedLayout['name'], descriptor: number[], streams: LabelledStream[]): EncodedLayout {
  return { name, descriptor, streams, size: descriptor.length + 6 * streams.length + streams.reduce((a, s) => a + s.coded.length, 0) };
}

function varintBytes(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
  return out;
}

/** Rotates each little-endian element left by one bit (sign to bit 0), into a copy. */
export function rotateLeft(bytes: Uint8Array, eb: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  const count = bytes.length / eb;
  for (let i = 0; i < count; i++) {
    const base = i * eb;
    const high = bytes[base + eb - 1] >>> 7;
    for (let k = eb - 1; k > 0; k--) out[base + k] = ((bytes[base + k] << 1) | (bytes[base + k - 1] >>> 7)) & 0xff;
    out[base] = ((bytes[base] << 1) | high) & 0xff;
  }
  return out;
}

/** Byte k of every element, for k = 0..eb-1. */
export function splitPlanes(bytes: Uint8Array, eb: number): Uint8Array[] {
  const count = bytes.length / eb;
  const planes = Array.from({ length: eb }, () => new Uint8Array(count));
  for (let k = 0; k < eb; k++) {
    const plane = planes[k];
    for (let i = 0, j = k; i < count; i++, j += eb) plane[i] = bytes[j];
  }
  return planes;
}

export function planesLayout(bytes: Uint8Array, eb: number, float: boolean): EncodedLayout {
  if (eb === 1) return finish('planes', [Layout.PLANES, 0], [{ ...codeStream(bytes), kind: 'integer_bytes' }]);
  const rotate = float;
  const planes = splitPlanes(rotate ? rotateLeft(bytes, eb) : bytes, eb);
  const streams = planes.map((plane, k): LabelledStream => ({
    ...codeStream(plane),
    kind: !float ? 'integer_bytes' : k === eb - 1 ? 'float_exponents' : 'float_mantissas',
  }));
  return finish('planes', [Layout.PLANES, rotate ? ROTATE_FLAG : 0], streams);
}

/** Element i as a key (numbers for widths up to 4 bytes). */
function elementKeys(bytes: Uint8Array, eb: number): ArrayLike<number> | string[] {
  // A copy when misaligned (new Uint8Array, not slice(): a Node Buffer's slice is a view).
  const aligned = bytes.byteOffset % eb === 0 ? bytes : new Uint8Array(bytes);
  if (LITTLE_ENDIAN && eb === 4) return new Uint32Array(aligned.buffer, aligned.byteOffset, bytes.length / 4);
  if (LITTLE_ENDIAN && eb === 2) return new Uint16Array(aligned.buffer, aligned.byteOffset, bytes.length / 2);
  const keys: string[] = [];
  for (let i = 0; i < bytes.length; i += eb) keys.push(Array.from(bytes.subarray(i, i + eb)).join(','));
  return keys;
}

/** The codebook layout, or undefined when the payload has more than 256 distinct elements. */
export function codebookLayout(bytes: Uint8Array, eb: number): EncodedLayout | undefined {
  if (eb === 1 || bytes.length === 0) return undefined;
  const keys = elementKeys(bytes, eb);
  const seen = new Map<number | string, number>();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (!seen.has(key)) {
      if (seen.size === 256) return undefined;
      seen.set(key, i);
    }
  }
  // Entries in ascending order of their bits, so codes follow the values.
  const entries = [...seen.entries()].sort((a, b) => (typeof a[0] === 'number' ? (a[0] as number) - (b[0] as number) : compareBytes(bytes, a[1], b[1], eb)));
  const index = new Map(entries.map(([key], k) => [key, k]));
  const codebook = new Uint8Array(entries.length * eb);
  entries.forEach(([, first], k) => codebook.set(bytes.subarray(first * eb, first * eb + eb), k * eb));
  const codes = new Uint8Array(keys.length);
  for (let i = 0; i < keys.length; i++) codes[i] = index.get(keys[i])!;
  return finish('codebook', [Layout.CODEBOOK, ...varintBytes(entries.length)], [
    { ...codeStream(codebook, { deflate: true }), kind: 'codebooks' },
    { ...codeStream(codes), kind: 'codes' },
  ]);
}

/** Little-endian elements compared as unsigned numbers, most significant byte first. */
function compareBytes(bytes: Uint8Array, a: number, b: number, eb: number): number {
  for (let k = eb - 1; k >= 0; k--) {
    const d = bytes[a * eb + k] - bytes[b * eb + k];
    if (d !== 0) return d;
  }
  return 0;
}

/** The positions of nonzero elements (all bytes zero counts as zero) and the gaps between them. */
function nonzeroSplit(bytes: Uint8Array, eb: number): { gaps: Uint8Array; values: Uint8Array; nonzero: number } | undefined {
  const count = bytes.length / eb;
  const isNonzero = (i: number) => {
    for (let k = 0; k < eb; k++) if (bytes[i * eb + k] !== 0) return true;
    return false;
  };
  // Dense tensors (most of them) leave after one counting pass.
  let nonzero = 0;
  for (let i = 0; i < count; i++) if (isNonzero(i)) nonzero++;
  if (nonzero > count * 0.8) return undefined;
  const nonzeroAt: number[] = [];
  for (let i = 0; i < count; i++) if (isNonzero(i)) nonzeroAt.push(i);
  const gapBytes: number[] = [];
  const values = new Uint8Array(nonzeroAt.length * eb);
  let previous = -1;
  nonzeroAt.forEach((position, j) => {
    gapBytes.push(...varintBytes(position - previous - 1));
    previous = position;
    values.set(bytes.subarray(position * eb, position * eb + eb), j * eb);
  });
  return { gaps: Uint8Array.from(gapBytes), values, nonzero: nonzeroAt.length };
}

export function sparseLayout(bytes: Uint8Array, eb: number, float: boolean): EncodedLayout | undefined {
  const split = nonzeroSplit(bytes, eb);
  if (split === undefined) return undefined;
  const inner = [planesLayout(split.values, eb, float), codebookLayout(split.values, eb)].filter((l) => l !== undefined);
  const values = inner.reduce((a, b) => (b.size < a.size ? b : a));
  return finish('sparse', [Layout.SPARSE, ...varintBytes(split.nonzero), ...values.descriptor], [
    { ...codeStream(split.gaps, { deflate: true }), kind: 'sparse_positions' },
    ...values.streams,
  ]);
}

/** The smallest layout of a payload. */
export function bestLayout(bytes: Uint8Array, eb: number, float: boolean): EncodedLayout {
  const candidates = [planesLayout(bytes, eb, float), codebookLayout(bytes, eb), sparseLayout(bytes, eb, float)].filter((l) => l !== undefined);
  return candidates.reduce((a, b) => (b.size < a.size ? b : a));
}
