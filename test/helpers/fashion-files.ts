// Fashion-MNIST test images as the files a user hands to the CLI: images.npy (float32 [N,1,28,28]
// in [0, 1], what models/fashion-mnist/mlp.onnx takes) and labels.npy (int64 class ids).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeNpy } from '../../src/eval/npy.js';
import { DataType } from '../../src/ir/dtype.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../../src/node/image-datasets.js';

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
