// PP-OCR's text detector (DBNet) at the boundary: its input as PaddleOCR builds it, and the
// text-mask IoU that says whether a compressed detector still finds the same text.
//
// Input: BGR pixels, (x / 255 - mean) / std with ImageNet's mean and std applied in that (BGR)
// channel order, as PaddleOCR's NormalizeImage does, laid out [1, 3, H, W] (H, W multiples of 32).
// Text mask: the probability map thresholded at 0.3, DBPostProcess's default `thresh`; IoU of two
// masks is |A and B| / |A or B| (1 when both are empty).
import { DataType } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';

const DET_MEAN = [0.485, 0.456, 0.406];
const DET_STD = [0.229, 0.224, 0.225];
/** DBPostProcess's binarization threshold. */
export const DB_THRESHOLD = 0.3;

/** uint8 [H, W, 3] BGR pixels (a view is fine) -> float32 [1, 3, H, W] detector input. */
export function detInputFromPixels(pixels: Uint8Array, height: number, width: number, name = 'x'): Tensor {
  const plane = width * height;
  if (pixels.length !== plane * 3) throw new Error(`detector input: ${pixels.length} bytes for a ${height}x${width} BGR image (expected ${plane * 3})`);
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) out[c * plane + p] = (pixels[p * 3 + c] / 255 - DET_MEAN[c]) / DET_STD[c];
  }
  return Tensor.fromArray(name, DataType.FLOAT, [1, 3, height, width], out);
}

/** IoU of the text masks of two probability maps of one shape (thresholded at `threshold`). */
export function textMaskIou(reference: ArrayLike<number>, candidate: ArrayLike<number>, threshold = DB_THRESHOLD): number {
  if (reference.length !== candidate.length) throw new Error(`text-mask IoU: maps of ${reference.length} and ${candidate.length} values`);
  let both = 0;
  let either = 0;
  for (let i = 0; i < reference.length; i++) {
    const a = reference[i] > threshold;
    const b = candidate[i] > threshold;
    if (a && b) both++;
    if (a || b) either++;
  }
  return either === 0 ? 1 : both / either;
}
