// The slow, obvious rANS of rans.ts for tests: the four interleaved states are BigInts, symbols are found by
// walking the cumulative frequencies, bytes are collected in an array and reversed. Same
// normalization rule and stream layout as rans.ts, so the two must give identical bytes.
// Keep this boring.

const SCALE = 4096n;
const LOW = 1n << 23n;

export function normalizeFrequenciesRef(counts: ArrayLike<number>): number[] {
  const freqs = new Array<number>(256).fill(0);
  const present = [...Array(256).keys()].filter((s) => counts[s] > 0);
  if (present.length === 0) return freqs;
  const total = present.reduce((a, s) => a + counts[s], 0);
  for (const s of present) freqs[s] = Math.max(1, Math.floor((counts[s] * 4096) / total));
  let sum = freqs.reduce((a, b) => a + b, 0);
  // The largest count, first symbol on ties, takes what is missing.
  const largest = present.reduce((best, s) => (counts[s] > counts[best] ? s : best), present[0]);
  if (sum < 4096) freqs[largest] += 4096 - sum;
  while (sum > 4096) {
    const candidates = present.filter((s) => freqs[s] > 1);
    const best = candidates.reduce((b, s) => (freqs[s] > freqs[b] ? s : b), candidates[0]);
    freqs[best]--;
    sum--;
  }
  return freqs;
}

function cumulativeOf(freqs: readonly number[], symbol: number): number {
  let c = 0;
  for (let s = 0; s < symbol; s++) c += freqs[s];
  return c;
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b += 128;
    bytes.push(b);
  } while (value > 0);
  return bytes;
}

export function ransEncodeWithFrequenciesRef(input: Uint8Array, freqs: readonly number[]): Uint8Array {
  const header: number[] = new Array(32).fill(0);
  for (let s = 0; s < 256; s++) {
    if (freqs[s] === 0) continue;
    header[Math.floor(s / 8)] |= 1 << s % 8;
    header.push(...varint(freqs[s] - 1));
  }
  const starts = [...Array(256).keys()].map((s) => cumulativeOf(freqs, s));
  const reversedBody: number[] = [];
  // Four states: symbol i is coded by state i % 4.
  const states = [LOW, LOW, LOW, LOW];
  for (let i = input.length - 1; i >= 0; i--) {
    let x = states[i % 4];
    const f = BigInt(freqs[input[i]]);
    // Renormalize: keep x below (2^23 / 4096) * 256 * f so the step stays under 2^31.
    while (x >= (LOW / SCALE) * 256n * f) {
      reversedBody.push(Number(x % 256n));
      x /= 256n;
    }
    states[i % 4] = (x / f) * SCALE + (x % f) + BigInt(starts[input[i]]);
  }
  const stateBytes = states.flatMap((x) => [0, 1, 2, 3].map((k) => Number((x >> BigInt(8 * k)) % 256n)));
  return Uint8Array.from([...header, ...stateBytes, ...reversedBody.reverse()]);
}

export function ransEncodeRef(input: Uint8Array): Uint8Array {
  const counts = new Array<number>(256).fill(0);
  for (const b of input) counts[b]++;
  return ransEncodeWithFrequenciesRef(input, normalizeFrequenciesRef(counts));
}

export function ransDecodeRef(coded: Uint8Array, count: number): Uint8Array {
  const freqs = new Array<number>(256).fill(0);
  let p = 32;
  for (let s = 0; s < 256; s++) {
    if ((coded[Math.floor(s / 8)] & (1 << s % 8)) === 0) continue;
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = coded[p++];
      value += (b % 128) * scale;
      scale *= 128;
      if (b < 128) break;
    }
    freqs[s] = value + 1;
  }
  const states = [0n, 0n, 0n, 0n];
  for (let j = 0; j < 4; j++) for (let k = 0; k < 4; k++) states[j] += BigInt(coded[p++]) << BigInt(8 * k);
  const starts = [...Array(257).keys()].map((s) => cumulativeOf(freqs, s));
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    let x = states[i % 4];
    const slot = Number(x % SCALE);
    let s = 0;
    while (starts[s + 1] <= slot) s++;
    out[i] = s;
    x = BigInt(freqs[s]) * (x / SCALE) + BigInt(slot - starts[s]);
    while (x < LOW) {
      if (p >= coded.length) throw new Error(`rans ref: stream ends at symbol ${i}`);
      x = x * 256n + BigInt(coded[p++]);
    }
    states[i % 4] = x;
  }
  return out;
}
