// Static rANS over bytes (Duda's asymmetric numeral systems, in the byte-wise form of
// ryg_rans): frequencies normalized to 12 bits (they sum to 4096), four interleaved 32-bit states
// (symbol i uses state i % 4) kept in [2^23, 2^31), renormalized a byte at a time into one shared
// byte stream. Layout of a coded stream (docs/pack-format.md):
//
//   32 bytes  bitmap of the symbols present
//   varints   (frequency - 1) of each present symbol, in symbol order
//   16 bytes  the encoder's final states 0..3, u32 little-endian (the decoder's initial states)
//   ...       renormalization bytes, in the order the decoder reads them
//
// The encoder walks the input backwards and writes bytes from the end of its buffer, so the
// decoder runs forwards. A finished decode must land exactly on the stream's end with every state
// back at 2^23 (the encoder's start): a free integrity check. Slow reference: rans-ref.ts.

export const RANS_SCALE_BITS = 12;
const M = 1 << RANS_SCALE_BITS;
const L = 1 << 23;
const BITMAP_BYTES = 32;
/** Interleaved states (a power of two). */
export const RANS_STATES = 4;
const STATES = RANS_STATES;

/**
 * Frequencies summing to 4096, every present symbol at least 1: floor(count * 4096 / total)
 * (raised to 1), then the remainder added to (or taken from, one at a time, the largest) the
 * symbols with the largest counts. The rule is part of the format's reproducibility, not of
 * decoding (the table travels in the stream).
 */
export function normalizeFrequencies(counts: ArrayLike<number>): Uint16Array {
  const freqs = new Uint16Array(256);
  let total = 0;
  for (let s = 0; s < 256; s++) total += counts[s];
  if (total === 0) return freqs;
  let sum = 0;
  let largest = -1;
  for (let s = 0; s < 256; s++) {
    if (counts[s] === 0) continue;
    freqs[s] = Math.max(1, Math.floor((counts[s] * M) / total));
    sum += freqs[s];
    if (largest < 0 || counts[s] > counts[largest]) largest = s;
  }
  if (sum < M) freqs[largest] += M - sum;
  while (sum > M) {
    let best = -1;
    for (let s = 0; s < 256; s++) if (freqs[s] > 1 && (best < 0 || freqs[s] > freqs[best])) best = s;
    freqs[best]--;
    sum--;
  }
  return freqs;
}

function writeVarint(out: Uint8Array, p: number, value: number): number {
  while (value >= 0x80) {
    out[p++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[p++] = value;
  return p;
}

/** rANS-codes `input` with normalized frequencies (see normalizeFrequencies). */
export function ransEncodeWithFrequencies(input: Uint8Array, freqs: Uint16Array): Uint8Array {
  const start = new Uint32Array(256);
  let cumulative = 0;
  for (let s = 0; s < 256; s++) {
    start[s] = cumulative;
    cumulative += freqs[s];
  }
  if (input.length > 0 && cumulative !== M) throw new Error(`rans: frequencies sum to ${cumulative}, not ${M}`);
  // Header in front, then room for the worst case (12 bits per symbol, rounded up) and the state.
  const header = new Uint8Array(BITMAP_BYTES + 2 * 256);
  let h = BITMAP_BYTES;
  for (let s = 0; s < 256; s++) {
    if (freqs[s] === 0) continue;
    header[s >> 3] |= 1 << (s & 7);
    h = writeVarint(header, h, freqs[s] - 1);
  }
  const body = new Uint8Array(2 * input.length + 4 * STATES);
  let p = body.length;
  // Four states take the symbols in turn (symbol i goes to state i % 4), so the decoder's four
  // dependency chains overlap; they share one byte stream.
  const states = new Array<number>(STATES).fill(L);
  // x < 2^19 * freq before each step keeps the next state below 2^31 (plain integer arithmetic).
  for (let i = input.length - 1; i >= 0; i--) {
    const s = input[i];
    const f = freqs[s];
    if (f === 0) throw new Error(`rans: symbol ${s} occurs but has frequency 0`);
    const xMax = (L >>> RANS_SCALE_BITS) * 256 * f;
    let x = states[i & (STATES - 1)];
    while (x >= xMax) {
      body[--p] = x & 0xff;
      x >>>= 8;
    }
    const q = Math.floor(x / f);
    states[i & (STATES - 1)] = q * M + (x - q * f) + start[s];
  }
  // State 0 is read first: written last, at the lowest address.
  for (let k = STATES - 1; k >= 0; k--) {
    const x = states[k];
    p -= 4;
    body[p] = x & 0xff;
    body[p + 1] = (x >>> 8) & 0xff;
    body[p + 2] = (x >>> 16) & 0xff;
    body[p + 3] = (x >>> 24) & 0xff;
  }
  const out = new Uint8Array(h + body.length - p);
  out.set(header.subarray(0, h));
  out.set(body.subarray(p), h);
  return out;
}

export function ransEncode(input: Uint8Array): Uint8Array {
  const counts = new Uint32Array(256);
  for (let i = 0; i < input.length; i++) counts[input[i]]++;
  return ransEncodeWithFrequencies(input, normalizeFrequencies(counts));
}

const TABLE = new Uint32Array(M);

/** Decodes `count` symbols into `out`; throws when the stream is malformed or its length is off. */
export function ransDecodeInto(coded: Uint8Array, out: Uint8Array, count: number): void {
  if (coded.length < BITMAP_BYTES) throw new Error('rans: stream shorter than its symbol bitmap');
  // Decoding is synchronous, so one set of tables serves every call (a model has hundreds of
  // small streams); a valid table overwrites every slot.
  const table = TABLE;
  let p = BITMAP_BYTES;
  let cumulative = 0;
  for (let s = 0; s < 256; s++) {
    if ((coded[s >> 3] & (1 << (s & 7))) === 0) continue;
    let f = 0;
    let shift = 0;
    for (;;) {
      if (p >= coded.length || shift > 14) throw new Error('rans: malformed frequency table');
      const b = coded[p++];
      f |= (b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80) break;
    }
    f += 1;
    if (cumulative + f > M) throw new Error('rans: frequencies sum to more than 4096');
    // x' = f * (x >> 12) + (x & 4095) - start: per slot, one word with the symbol (bits 0-7),
    // f - 1 (bits 8-19) and slot - start (bits 20-31), so a step makes one table load.
    for (let slot = cumulative; slot < cumulative + f; slot++) table[slot] = s | ((f - 1) << 8) | ((slot - cumulative) << 20);
    cumulative += f;
  }
  if (count === 0) {
    if (p + 4 * STATES !== coded.length && p !== coded.length) throw new Error('rans: bytes left after an empty stream');
    return;
  }
  if (cumulative !== M) throw new Error(`rans: frequencies sum to ${cumulative}, not ${M}`);
  if (p + 4 * STATES > coded.length) throw new Error('rans: stream ends before its states');
  const read32 = (at: number) => (coded[at] | (coded[at + 1] << 8) | (coded[at + 2] << 16) | (coded[at + 3] << 24)) >>> 0;
  let x0 = read32(p);
  let x1 = read32(p + 4);
  let x2 = read32(p + 8);
  let x3 = read32(p + 12);
  p += 16;
  for (const x of [x0, x1, x2, x3]) if (x < L || x >= 2 ** 31) throw new Error('rans: initial state out of range');
  const end = coded.length;
  const mask = M - 1;
  const shift = RANS_SCALE_BITS;
  // Past-the-end reads give undefined (0 after |): caught by the checks below. Each state needs
  // at most two bytes per symbol (12 bits out, refilled 8 at a time from >= 2^11).
  let i = 0;
  for (const last = count - 3; i < last; i += 4) {
    let e = table[x0 & mask];
    out[i] = e & 0xff;
    x0 = (((e >>> 8) & 0xfff) + 1) * (x0 >>> shift) + (e >>> 20);
    e = table[x1 & mask];
    out[i + 1] = e & 0xff;
    x1 = (((e >>> 8) & 0xfff) + 1) * (x1 >>> shift) + (e >>> 20);
    e = table[x2 & mask];
    out[i + 2] = e & 0xff;
    x2 = (((e >>> 8) & 0xfff) + 1) * (x2 >>> shift) + (e >>> 20);
    e = table[x3 & mask];
    out[i + 3] = e & 0xff;
    x3 = (((e >>> 8) & 0xfff) + 1) * (x3 >>> shift) + (e >>> 20);
    if (x0 < L) {
      x0 = (x0 << 8) | coded[p++];
      if (x0 < L) x0 = (x0 << 8) | coded[p++];
    }
    if (x1 < L) {
      x1 = (x1 << 8) | coded[p++];
      if (x1 < L) x1 = (x1 << 8) | coded[p++];
    }
    if (x2 < L) {
      x2 = (x2 << 8) | coded[p++];
      if (x2 < L) x2 = (x2 << 8) | coded[p++];
    }
    if (x3 < L) {
      x3 = (x3 << 8) | coded[p++];
      if (x3 < L) x3 = (x3 << 8) | coded[p++];
    }
  }
  const states = [x0, x1, x2, x3];
  for (; i < count; i++) {
    let x = states[i & 3];
    const e = table[x & mask];
    out[i] = e & 0xff;
    x = (((e >>> 8) & 0xfff) + 1) * (x >>> shift) + (e >>> 20);
    while (x < L) x = (x << 8) | coded[p++];
    states[i & 3] = x;
  }
  if (p > end) throw new Error(`rans: stream ends ${p - end} bytes early`);
  if (p !== end) throw new Error(`rans: ${end - p} bytes left after ${count} symbols`);
  if (states.some((x) => x !== L)) throw new Error('rans: final state is wrong (corrupt stream)');
}

export function ransDecode(coded: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count);
  ransDecodeInto(coded, out, count);
  return out;
}
