// A metric module for `shrink eval --metric` and `shrink auto --metric`: the text-mask IoU of a
// text detector (PP-OCR det / DBNet) against the original, its probability maps thresholded at
// PaddleOCR's 0.3 (src/eval/ocr-det.ts). One number per sample: the mean over the outputs (the
// detector has one). From the sources or the built package:
//
//   shrink eval det.onnx det_int8.onnx --data pages.npz --metric src/eval/text-mask-metric.ts
//   shrink auto det.onnx -o out --data pages.npz --metric dist/eval/text-mask-metric.js --min-metric 0.95
import type { CustomMetric } from './metrics.js';
import { textMaskIou } from './ocr-det.js';

export const name = 'text-mask IoU';

export const metric: CustomMetric = (reference, candidate) => {
  const outputs = Object.keys(reference);
  let sum = 0;
  for (const output of outputs) {
    const b = candidate[output];
    if (b === undefined) throw new Error(`text-mask IoU: the candidate has no output '${output}'`);
    sum += textMaskIou(reference[output].data() as Float32Array, b.data() as Float32Array);
  }
  return sum / outputs.length;
};
