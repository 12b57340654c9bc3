// Canonical Huffman coding of bytes, code lengths limited to 15 bits, with table decoding (one
// lookup per symbol). The layout of a coded stream (docs/pack-format.md, "Huffman"):
//
//   32 bytes   bitmap of the symbols present (bit s%8 of byte s>>3)
//   ceil(k/2)  their code lengths, 4 bits each in symbol order, low nibble first (k = symbols present)
//   ...        the codes, packed least significant bit first (as DEFLATE does), so the decoder
//              indexes its table with the low bits of a little-endian bit buffer
//
// The symbol count is not stored: the container knows how many bytes a stream decodes to.
// Canonical codes: symbols sorted by (length, symbol) take consecutive codes; the bits of each
// code are written reversed so that the first bit read is the code's most significant bit.
// The slow reference is huffman-ref.ts.

export const HUFFMAN_MAX_BITS = 15;
const BITMAP_BYTES = 32;

/**
 * Code lengths (0 for absent symbols) from the byte counts: a Huffman tree built by merging the
 * two lightest nodes, then limited to `maxBits` by the Kraft-sum repair. Optimal whenever the
 * unlimited tree is no deeper than `maxBits`; close to optimal otherwise. One present symbol gets
 * length 1.
 */
export function huffmanCodeLengths(counts: ArrayLike<number>, maxBits = HUFFMAN_MAX_BITS): Uint8Array {
  const lengths = new Uint8Array(256);
  const symbols: number[] = [];
  for (let s = 0; s < 256; s++) if (counts[s] > 0) symbols.push(s);
  if (symbols.length === 0) return lengths;
  if (symbols.length === 1) {
    lengths[symbols[0]] = 1;
    return lengths;
  }
  // Two-queue Huffman: leaves sorted by weight, internal nodes come out in weight order.
  symbols.sort((a, b) => counts[a] - counts[b] || a - b);
  const n = symbols.length;
  const weight = new Float64Array(2 * n);
  const parent = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) weight[i] = counts[symbols[i]];
  let leaf = 0;
  let inner = n;
  let next = n;
  const takeLightest = (): number => {
    if (leaf < n && (inner >= next || weight[leaf] <= weight[inner])) return leaf++;
    return inner++;
  };
  while (next < 2 * n - 1) {
    const a = takeLightest();
    const b = takeLightest();
    weight[next] = weight[a] + weight[b];
    parent[a] = next;
    parent[b] = next;
    next++;
  }
  // Depths from the root (the last node) down.
  const depth = new Int32Array(2 * n);
  for (let i = 2 * n - 3; i >= 0; i--) depth[i] = depth[parent[i]] + 1;
  let longest = 0;
  for (let i = 0; i < n; i++) {
    lengths[symbols[i]] = Math.min(depth[i], maxBits);
    longest = Math.max(longest, depth[i]);
  }
  if (longest > maxBits) limitLengths(lengths, symbols, maxBits);
  return lengths;
}

/**
 * Makes clipped lengths a valid prefix code again: while the Kraft sum is over 1, lengthen the
 * least frequent symbol among those with the longest length below the limit; then, with room
 * left, shorten the most frequent symbols. `symbols` is sorted by ascending count.
 */
function limitLengths(lengths: Uint8Array, symbols: readonly number[], maxBits: number): void {
  const cap = 2 ** maxBits;
  let kraft = 0;
  for (const s of symbols) kraft += 2 ** (maxBits - lengths[s]);
  while (kraft > cap) {
    let best = -1;
    for (const s of symbols) if (lengths[s] < maxBits && (best < 0 || lengths[s] > lengths[best])) best = s;
    kraft -= 2 ** (maxBits - lengths[best] - 1);
    lengths[best]++;
  }
  for (let i = symbols.length - 1; i >= 0; i--) {
    const s = symbols[i];
    while (lengths[s] > 1 && kraft + 2 ** (maxBits - lengths[s]) <= cap) {
      kraft += 2 ** (maxBits - lengths[s]);
      lengths[s]--;
    }
  }
}

/** Canonical codes for the lengths (code value, most significant bit first). */
export function canonicalCodes(lengths: Uint8Array): Uint16Array {
  const perLength = new Uint16Array(HUFFMAN_MAX_BITS + 2);
  for (let s = 0; s < 256; s++) perLength[lengths[s]]++;
  perLength[0] = 0;
  const nextCode = new Uint16Array(HUFFMAN_MAX_BITS + 2);
  let code = 0;
  for (let len = 1; len <= HUFFMAN_MAX_BITS; len++) {
    code = (code + perLength[len - 1]) << 1;
    nextCode[len] = code;
  }
  const codes = new Uint16Array(256);
  for (let s = 0; s < 256; s++) if (lengths[s] > 0) codes[s] = nextCode[lengths[s]]++;
  return codes;
}

function reverseBits(code: number, length: number): number {
  let out = 0;
  for (let i = 0; i < length; i++) out = (out << 1) | ((code >>> i) & 1);
  return out;
}

export function byteCounts(input: Uint8Array): Float64Array {
  const counts = new Float64Array(256);
  const c = new Uint32Array(256);
  for (let i = 0; i < input.length; i++) c[input[i]]++;
  counts.set(c);
  return counts;
}

/** The stream header: bitmap of present symbols, then their lengths in nibbles. */
function writeHeader(lengths: Uint8Array, out: Uint8Array): number {
  let p = BITMAP_BYTES;
  let nibble = 0;
  for (let s = 0; s < 256; s++) {
    if (lengths[s] === 0) continue;
    out[s >> 3] |= 1 << (s & 7);
    if (nibble === 0) out[p] = lengths[s];
    else out[p++] |= lengths[s] << 4;
    nibble ^= 1;
  }
  return p + nibble;
}

/** Huffman-codes `input` with the given lengths (a valid prefix code; see huffmanCodeLengths). */
export function huffmanEncodeWithLengths(input: Uint8Array, lengths: Uint8Array): Uint8Array {
  const codes = canonicalCodes(lengths);
  const reversed = new Uint16Array(256);
  let bits = 0;
  for (let s = 0; s < 256; s++) {
    if (lengths[s] > 0) reversed[s] = reverseBits(codes[s], lengths[s]);
  }
  const counts = new Uint32Array(256);
  for (let i = 0; i < input.length; i++) counts[input[i]]++;
  for (let s = 0; s < 256; s++) {
    if (counts[s] > 0 && lengths[s] === 0) throw new Error(`huffman: symbol ${s} occurs but has no code`);
    bits += counts[s] * lengths[s];
  }
  const out = new Uint8Array(BITMAP_BYTES + 128 + Math.ceil(bits / 8));
  let p = writeHeader(lengths, out);
  let buffer = 0;
  let count = 0;
  for (let i = 0; i < input.length; i++) {
    const s = input[i];
    buffer |= reversed[s] << count;
    count += lengths[s];
    while (count >= 8) {
      out[p++] = buffer & 0xff;
      buffer >>>= 8;
      count -= 8;
    }
  }
  if (count > 0) out[p++] = buffer & 0xff;
  return out.subarray(0, p);
}

export function huffmanEncode(input: Uint8Array): Uint8Array {
  return huffmanEncodeWithLengths(input, huffmanCodeLengths(byteCounts(input)));
}

/** Reads the header; returns the code lengths and where the codes start. */
export function readHuffmanHeader(coded: Uint8Array): { lengths: Uint8Array; start: number } {
  if (coded.length < BITMAP_BYTES) throw new Error('huffman: stream shorter than its symbol bitmap');
  const lengths = new Uint8Array(256);
  let p = BITMAP_BYTES;
  let nibble = 0;
  for (let s = 0; s < 256; s++) {
    if ((coded[s >> 3] & (1 << (s & 7))) === 0) continue;
    if (p >= coded.length) throw new Error('huffman: stream ends inside its code lengths');
    const len = nibble === 0 ? coded[p] & 15 : coded[p++] >> 4;
    nibble ^= 1;
    if (len === 0) throw new Error(`huffman: symbol ${s} is marked present with code length 0`);
    lengths[s] = len;
  }
  return { lengths, start: p + nibble };
}

/**
 * Decodes `count` symbols into `out` (which must hold `count` bytes). Throws on a code the table
 * does not know or when the stream's length disagrees with what the codes consumed.
 */
const TABLE = new Uint16Array(1 << HUFFMAN_MAX_BITS);

export function huffmanDecodeInto(coded: Uint8Array, out: Uint8Array, count: number): void {
  const { lengths, start } = readHuffmanHeader(coded);
  let maxLen = 0;
  let kraft = 0;
  for (let s = 0; s < 256; s++) {
    if (lengths[s] > maxLen) maxLen = lengths[s];
    if (lengths[s] > 0) kraft += 2 ** (HUFFMAN_MAX_BITS - lengths[s]);
  }
  if (count === 0) {
    if (start !== coded.length) throw new Error('huffman: bytes left after an empty stream');
    return;
  }
  if (maxLen === 0) throw new Error('huffman: no symbols in a stream that should decode to bytes');
  if (kraft > 2 ** HUFFMAN_MAX_BITS) throw new Error('huffman: code lengths do not form a prefix code');
  // Table indexed by the next maxLen bits (least significant first): (symbol << 4) | length;
  // 0 marks bit patterns no code starts with (possible only for an incomplete code).
  // One table for every call (decoding is synchronous); cleared to the size this code needs.
  const table = TABLE.subarray(0, 1 << maxLen);
  table.fill(0);
  const codes = canonicalCodes(lengths);
  for (let s = 0; s < 256; s++) {
    const len = lengths[s];
    if (len === 0) continue;
    const entry = (s << 4) | len;
    for (let r = reverseBits(codes[s], len); r < table.length; r += 1 << len) table[r] = entry;
  }
  const mask = (1 << maxLen) - 1;
  const end = coded.length;
  let p = start;
  let buffer = 0;
  let bits = 0;
  let i = 0;
  // Fast loop: two bytes per refill while at least two remain, no bounds checks.
  const safeEnd = end - 2;
  while (i < count && p <= safeEnd) {
    if (bits < 16) {
      buffer |= (coded[p] | (coded[p + 1] << 8)) << bits;
      p += 2;
      bits += 16;
    }
    const entry = table[buffer & mask];
    if (entry === 0) throw new Error(`huffman: invalid code at symbol ${i}`);
    const len = entry & 15;
    out[i++] = entry >>> 4;
    buffer >>>= len;
    bits -= len;
  }
  while (i < count) {
    while (bits < maxLen && p < end) {
      buffer |= coded[p++] << bits;
      bits += 8;
    }
    const entry = table[buffer & mask];
    const len = entry & 15;
    if (entry === 0 || len > bits) throw new Error(`huffman: stream ends or breaks at symbol ${i} of ${count}`);
    out[i++] = entry >>> 4;
    buffer >>>= len;
    bits -= len;
  }
  // Whole bytes left unread mean the stream and its symbol count disagree.
  if (p - (bits >> 3) !== end) throw new Error(`huffman: ${end - p + (bits >> 3)} bytes left after ${count} symbols`);
}

export function huffmanDecode(coded: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count);
  huffmanDecodeInto(coded, out, count);
  return out;
}
