// Fashion-MNIST test images as the files a user hands to the CLI: images.npy (float32 [N,1,28,28]
// in [0, 1], what models/fashion-mnist/mlp.onnx takes) and labels.npy (int64 class ids).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeNpy } from '../../src/eval/npy.js';
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { mulberry32 } from '../../src/kernels/random.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../../src/node/image-datasets.js';
import { runModel } from './run-model.js';

/** Writes the first `count` test images (from `offset`) into `folder`; returns the two paths. */
export function writeFashionFiles(folder: string, count: number, offset = 0): { images: string; labels: string } {
  const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const pixels = Float32Array.from(set.images.subarray(offset * 784, (offset + count) * 784), (v) => v / 255);
  const labels = BigInt64Array.from(set.labels.subarray(offset, offset + count), (v) => BigInt(v));
  const images = path.join(folder, `images-${offset}-${count}.npy`);
  const labelFile = path.join(folder, `labels-${offset}-${count}.npy`);
  fs.writeFileSync(images, writeNpy({ dataType: DataType.FLOAT, dims: [count, 1, 28, 28], data: new Uint8Array(pixels.buffer) }));
  fs.writeFileSync(labelFile, writeNpy({ dataType: DataType.INT64, dims: [count], data: new Uint8Array(labels.buffer) }));
  return { images, labels: labelFile };
}

/**
 * `count` training images picked by a seeded draw (the test images stay unseen), float32 in [0, 1],
 * as the .npy a user hands to --calib; returns its path.
 */
export function writeFashionCalibration(folder: string, count = 128, seed = 21): string {
  const train = readIdxImageSet(FASHION_MNIST_DIR, 'train');
  const next = mulberry32(seed);
  const pixels = new Float32Array(count * 784);
  for (let i = 0; i < count; i++) {
    const at = Math.floor(next() * train.count);
    for (let j = 0; j < 784; j++) pixels[i * 784 + j] = train.images[at * 784 + j] / 255;
  }
  const file = path.join(folder, `calib-${count}-${seed}.npy`);
  fs.writeFileSync(file, writeNpy({ dataType: DataType.FLOAT, dims: [count, 1, 28, 28], data: new Uint8Array(pixels.buffer) }));
  return file;
}

/** Top-1 accuracy (percent) of a Fashion-MNIST classifier on the 10,000 test images, in onnxruntime-node. */
export async function fashionTestAccuracy(model: Model): Promise<number> {
  const set = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const images = Tensor.fromArray('image', DataType.FLOAT, [10000, 1, 28, 28], Float32Array.from(set.images, (v) => v / 255));
  const logits = (await runModel(model, [images]))[0].data() as Float32Array;
  let right = 0;
  for (let i = 0; i < 10000; i++) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + best]) best = c;
    if (best === set.labels[i]) right++;
  }
  return right / 100;
}
