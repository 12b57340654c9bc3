// The entropy coders of the pack against their slow references (src/kernels/*-ref.ts): the same
// bytes out of rANS, the same bytes out of Huffman given the same code lengths, code lengths as
// short as the optimal length-limited ones (package-merge) or within a hair of them, and round
// trips through both decoders on random, skewed, single-symbol, two-symbol and empty inputs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from '../src/kernels/crc32.js';
import { byteCounts, huffmanCodeLengths, huffmanDecode, huffmanEncode, huffmanEncodeWithLengths, HUFFMAN_MAX_BITS } from '../src/kernels/huffman.js';
import { codedBitsRef, huffmanCodeLengthsRef, huffmanDecodeRef, huffmanEncodeRef, huffmanEncodeWithLengthsRef } from '../src/kernels/huffman-ref.js';
import { normalizeFrequencies, ransDecode, ransEncode } from '../src/kernels/rans.js';
import { normalizeFrequenciesRef, ransDecodeRef, ransEncodeRef } from '../src/kernels/rans-ref.js';
import { INPUT_KINDS } from './helpers/pack-inputs.js';

test('rANS: identical bytes to the BigInt reference, and both decoders give the input back', () => {
  for (const { name, bytes } of INPUT_KINDS(3000)) {
    const fast = ransEncode(bytes);
    const ref = ransEncodeRef(bytes);
    assert.deepEqual(fast, ref, `${name}: encoded bytes`);
    assert.deepEqual(ransDecode(fast, bytes.length), bytes, `${name}: fast decode`);
    assert.deepEqual(ransDecodeRef(fast, bytes.length), bytes, `${name}: reference decode`);
  }
});

test('rANS: frequency normalization equals the reference and sums to 4096', () => {
  for (const { name, bytes } of INPUT_KINDS(5000)) {
    const counts = byteCounts(bytes);
    const fast = normalizeFrequencies(counts);
    assert.deepEqual([...fast], normalizeFrequenciesRef(counts), name);
    if (bytes.length > 0) assert.equal(fast.reduce((a, b) => a + b, 0), 4096, name);
    for (let s = 0; s < 256; s++) assert.equal(fast[s] > 0, counts[s] > 0, `${name}: symbol ${s} present iff counted`);
  }
});

test('rANS: a skewed source codes near its entropy; a single symbol costs nothing per symbol', () => {
  const { bytes } = INPUT_KINDS(200_000).find((k) => k.name === 'geometric')!;
  const counts = byteCounts(bytes);
  let entropyBits = 0;
  for (const c of counts) if (c > 0) entropyBits -= c * Math.log2(c / bytes.length);
  const coded = ransEncode(bytes);
  assert.ok(coded.length * 8 < entropyBits * 1.01 + 8 * 200, `rANS ${coded.length} B vs entropy ${(entropyBits / 8).toFixed(0)} B`);
  const single = ransEncode(new Uint8Array(100_000).fill(7));
  assert.ok(single.length <= 32 + 2 + 16, `single symbol: ${single.length} B (bitmap, one frequency, four states)`);
  assert.deepEqual(ransDecode(single, 100_000), new Uint8Array(100_000).fill(7));
});

test('Huffman: the same bytes as the reference for the same code lengths; cross decoding', () => {
  for (const { name, bytes } of INPUT_KINDS(3000)) {
    const lengths = huffmanCodeLengths(byteCounts(bytes));
    assert.deepEqual(huffmanEncodeWithLengths(bytes, lengths), huffmanEncodeWithLengthsRef(bytes, lengths), `${name}: encoded bytes`);
    const fast = huffmanEncode(bytes);
    assert.deepEqual(huffmanDecode(fast, bytes.length), bytes, `${name}: fast decode`);
    assert.deepEqual(huffmanDecodeRef(fast, bytes.length), bytes, `${name}: reference decode of fast`);
    assert.deepEqual(huffmanDecode(huffmanEncodeRef(bytes), bytes.length), bytes, `${name}: fast decode of reference`);
  }
});

test('Huffman: code lengths are a prefix code within 15 bits, optimal when no limit bites, near optimal when it does', () => {
  // Fibonacci counts make the unlimited tree 30+ deep, so the limit must bite.
  const fibonacci = new Array<number>(256).fill(0);
  let [a, b] = [1, 1];
  for (let s = 0; s < 32; s++) {
    fibonacci[s] = a;
    [a, b] = [b, a + b];
  }
  const cases = [...INPUT_KINDS(20_000).map((k) => ({ name: k.name, counts: Array.from(byteCounts(k.bytes)) })), { name: 'fibonacci', counts: fibonacci }];
  for (const { name, counts } of cases) {
    const fast = huffmanCodeLengths(counts);
    const ref = huffmanCodeLengthsRef(counts);
    const kraft = fast.reduce((sum, len) => sum + (len > 0 ? 2 ** -len : 0), 0);
    assert.ok(kraft <= 1 + 1e-12, `${name}: Kraft sum ${kraft}`);
    assert.ok(Math.max(...fast) <= HUFFMAN_MAX_BITS, `${name}: longest code ${Math.max(...fast)}`);
    for (let s = 0; s < 256; s++) assert.equal(fast[s] > 0, counts[s] > 0, `${name}: symbol ${s} has a code iff it occurs`);
    const fastBits = codedBitsRef(counts, fast);
    const optimalBits = codedBitsRef(counts, ref);
    if (name === 'fibonacci') assert.ok(fastBits <= optimalBits * 1.02, `${name}: ${fastBits} bits vs optimal ${optimalBits}`);
    else assert.equal(fastBits, optimalBits, `${name}: Huffman is optimal when the limit does not bite`);
  }
  const limited = Uint8Array.from(fibonacci.flatMap((count, s) => new Array<number>(Math.min(count, 50_000)).fill(s)));
  assert.deepEqual(huffmanDecode(huffmanEncode(limited), limited.length), limited);
});

test('decoders reject a stream that is cut, padded or scrambled instead of returning garbage quietly', () => {
  const { bytes } = INPUT_KINDS(5000).find((k) => k.name === 'geometric')!;
  for (const [coder, encode, decode] of [
    ['rans', ransEncode, ransDecode],
    ['huffman', huffmanEncode, huffmanDecode],
  ] as const) {
    const coded = encode(bytes);
    assert.throws(() => decode(coded.subarray(0, coded.length - 3), bytes.length), /./, `${coder}: cut`);
    const padded = new Uint8Array(coded.length + 2);
    padded.set(coded);
    assert.throws(() => decode(padded, bytes.length), /left/, `${coder}: padded`);
    assert.throws(() => decode(coded, bytes.length + 500), /./, `${coder}: longer count`);
  }
});

test('CRC-32 matches the standard check value and continues across chunks', () => {
  const text = new TextEncoder().encode('123456789');
  assert.equal(crc32(text), 0xcbf43926);
  const { bytes } = INPUT_KINDS(10_001).find((k) => k.name === 'uniform')!;
  assert.equal(crc32(bytes.subarray(4567), crc32(bytes.subarray(0, 4567))), crc32(bytes));
  assert.equal(crc32(new Uint8Array(0)), 0);
});
