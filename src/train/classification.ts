// Classification helpers shared by training, QAT and distillation: image sets as training data,
// and test accuracy of a model run in onnxruntime in batches.
import { DataType } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { type GraphOptimization, ModelSession } from '../runtime/session.js';
import { arrayTrainingData } from './array-data.js';
import type { TrainingData } from './trainer.js';

export interface LabelledImages {
  images: Uint8Array | Float32Array;
  labels: Uint8Array;
  imageDims: number[];
  count: number;
}

/** Bytes are scaled to [0, 1]; float images are fed as they are. */
function pixelScale(set: LabelledImages): number {
  return set.images instanceof Uint8Array ? 1 / 255 : 1;
}

/** Training data feeding `inputName` with the images and `labelName` with int64 class ids. */
export function imageTrainingData(set: LabelledImages, inputName = 'input', labelName = 'train/labels'): TrainingData {
  return arrayTrainingData({
    [inputName]: { data: set.images, sampleDims: set.imageDims, dataType: DataType.FLOAT, scale: pixelScale(set) },
    [labelName]: { data: set.labels, sampleDims: [], dataType: DataType.INT64 },
  });
}

/** Top-1 accuracy (percent) of `model`'s `output` logits on the set, `batch` images per run. */
export async function classifierAccuracy(
  ort: OrtModule,
  model: Model | Uint8Array,
  set: LabelledImages,
  options: { input?: string; output?: string; batch?: number; threads?: number; graphOptimization?: GraphOptimization } = {},
): Promise<number> {
  const session = await ModelSession.create(ort, model, { threads: options.threads, graphOptimization: options.graphOptimization });
  const input = options.input ?? session.inputNames[0];
  const output = options.output ?? session.outputNames[0];
  const batch = options.batch ?? 1000;
  const per = set.imageDims.reduce((a, b) => a * b, 1);
  const scale = pixelScale(set);
  let correct = 0;
  try {
    for (let start = 0; start < set.count; start += batch) {
      const n = Math.min(batch, set.count - start);
      const x = new Float32Array(n * per);
      for (let k = 0; k < x.length; k++) x[k] = set.images[start * per + k] * scale;
      const logits = (await session.run({ [input]: new ort.Tensor('float32', x, [n, ...set.imageDims]) }, [output]))[output].data as Float32Array;
      const classes = logits.length / n;
      for (let r = 0; r < n; r++) {
        let best = 0;
        for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
        if (best === set.labels[start + r]) correct++;
      }
    }
  } finally {
    await session.release();
  }
  return (100 * correct) / set.count;
}
