// Byte inputs for the entropy-coder tests: the shapes of data the pack meets (uniform noise like
// mantissa bytes, geometric like exponents and cluster codes, a single symbol like the high bytes
// of small int64s, two symbols, a few symbols, and nothing at all), seeded and reproducible.
import { mulberry32 } from '../../src/kernels/random.js';

export interface ByteInput {
  name: string;
  bytes: Uint8Array;
}

export function INPUT_KINDS(length: number, seed = 1): ByteInput[] {
  const next = mulberry32(seed);
  const make = (f: (i: number) => number) => Uint8Array.from({ length }, (_, i) => f(i));
  return [
    { name: 'uniform', bytes: make(() => Math.floor(next() * 256)) },
    // P(s) ~ 2^-s/2: a few symbols carry most of the mass, with a long tail.
    { name: 'geometric', bytes: make(() => Math.min(255, Math.floor(-Math.log2(1 - next()) * 2))) },
    { name: 'single', bytes: make(() => 42) },
    { name: 'two', bytes: make(() => (next() < 0.9 ? 0 : 255)) },
    { name: 'few', bytes: make(() => [3, 17, 200, 201][Math.floor(next() * next() * 4)]) },
    { name: 'empty', bytes: new Uint8Array(0) },
    { name: 'one byte', bytes: Uint8Array.of(9) },
  ];
}
