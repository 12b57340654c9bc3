// The slow, obvious Huffman of huffman.ts for tests: optimal length-limited code lengths by
// package-merge (Larmore and Hirschberg), codes written one bit at a time, and decoding by
// reading bits until they spell a code. Same stream layout as huffman.ts. Keep this boring.

const MAX_BITS = 15;

/** Optimal code lengths with no code longer than `maxBits` (package-merge). */
export function huffmanCodeLengthsRef(counts: ArrayLike<number>, maxBits = MAX_BITS): number[] {
  const lengths = new Array<number>(256).fill(0);
  const present: number[] = [];
  for (let s = 0; s < 256; s++) if (counts[s] > 0) present.push(s);
  if (present.length === 0) return lengths;
  if (present.length === 1) {
    lengths[present[0]] = 1;
    return lengths;
  }
  type Item = { weight: number; symbols: number[] };
  const leaves: Item[] = present.map((s) => ({ weight: counts[s], symbols: [s] })).sort((a, b) => a.weight - b.weight);
  let list: Item[] = leaves.slice();
  for (let level = 1; level < maxBits; level++) {
    const packages: Item[] = [];
    for (let i = 0; i + 1 < list.length; i += 2) {
      packages.push({ weight: list[i].weight + list[i + 1].weight, symbols: [...list[i].symbols, ...list[i + 1].symbols] });
    }
    list = [...leaves, ...packages].sort((a, b) => a.weight - b.weight);
  }
  // The 2n-2 lightest items; each appearance of a symbol adds one to its length.
  for (const item of list.slice(0, 2 * present.length - 2)) for (const s of item.symbols) lengths[s]++;
  return lengths;
}

/** Total coded bits of `counts` with `lengths`. */
export function codedBitsRef(counts: ArrayLike<number>, lengths: ArrayLike<number>): number {
  let bits = 0;
  for (let s = 0; s < 256; s++) bits += counts[s] * lengths[s];
  return bits;
}

/** Canonical codes as bit strings, e.g. '0110'. */
function canonicalCodesRef(lengths: ArrayLike<number>): Map<number, string> {
  const order = [...Array(256).keys()].filter((s) => lengths[s] > 0).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const codes = new Map<number, string>();
  let code = 0;
  let previous = 0;
  for (const s of order) {
    code <<= lengths[s] - previous;
    previous = lengths[s];
    codes.set(s, code.toString(2).padStart(lengths[s], '0'));
    code++;
  }
  return codes;
}

export function huffmanEncodeWithLengthsRef(input: Uint8Array, lengths: ArrayLike<number>): Uint8Array {
  const out: number[] = new Array(32).fill(0);
  const nibbles: number[] = [];
  for (let s = 0; s < 256; s++) {
    if (lengths[s] === 0) continue;
    out[Math.floor(s / 8)] |= 1 << s % 8;
    nibbles.push(lengths[s]);
  }
  for (let i = 0; i < nibbles.length; i += 2) out.push(nibbles[i] + 16 * (nibbles[i + 1] ?? 0));
  const codes = canonicalCodesRef(lengths);
  const bits: number[] = [];
  for (const s of input) for (const bit of codes.get(s)!) bits.push(Number(bit));
  for (let i = 0; i < bits.length; i += 8) {
    let byte = 0;
    for (let j = 0; j < 8 && i + j < bits.length; j++) byte += bits[i + j] * 2 ** j;
    out.push(byte);
  }
  return Uint8Array.from(out);
}

export function huffmanEncodeRef(input: Uint8Array): Uint8Array {
  const counts = new Array<number>(256).fill(0);
  for (const b of input) counts[b]++;
  return huffmanEncodeWithLengthsRef(input, huffmanCodeLengthsRef(counts));
}

export function huffmanDecodeRef(coded: Uint8Array, count: number): Uint8Array {
  const lengths = new Array<number>(256).fill(0);
  let p = 32;
  let low = true;
  for (let s = 0; s < 256; s++) {
    if ((coded[Math.floor(s / 8)] & (1 << s % 8)) === 0) continue;
    lengths[s] = low ? coded[p] % 16 : Math.floor(coded[p++] / 16);
    low = !low;
  }
  if (!low) p++;
  const bySpelling = new Map<string, number>();
  for (const [s, code] of canonicalCodesRef(lengths)) bySpelling.set(code, s);
  const out = new Uint8Array(count);
  let bit = 0;
  for (let i = 0; i < count; i++) {
    let spelling = '';
    while (!bySpelling.has(spelling)) {
      if (spelling.length > MAX_BITS || p + Math.floor(bit / 8) >= coded.length) throw new Error(`huffman ref: no code at symbol ${i}`);
      spelling += (coded[p + Math.floor(bit / 8)] >> bit % 8) & 1;
      bit++;
    }
    out[i] = bySpelling.get(spelling)!;
  }
  return out;
}
