// Top-1 accuracy of a classifier on labelled training data (any inputs, class ids under one
// name), so QAT can report float, PTQ and QAT accuracy on data given as arrays, not only on
// image sets (classification.ts).
import { DataType } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { openSession } from '../runtime/ort-errors.js';
import { toOrtTensor } from '../runtime/session.js';
import type { TrainingData } from './trainer.js';

export interface DataAccuracyOptions {
  /** The field of `data` holding int64 class ids. */
  labels: string;
  /** The logits output [N, classes] (default: the model's first output). */
  output?: string;
  /** Samples per run (default 500). */
  batch?: number;
  threads?: number;
}

/** Percent of samples whose largest logit is at their class id, in data order. */
export async function dataAccuracy(ort: OrtModule, model: Model | Uint8Array, data: TrainingData, options: DataAccuracyOptions): Promise<number> {
  const session = await openSession(ort, model, { threads: options.threads });
  const output = options.output ?? session.outputNames[0];
  const batch = options.batch ?? 500;
  let correct = 0;
  try {
    for (let start = 0; start < data.size; start += batch) {
      const n = Math.min(batch, data.size - start);
      const fields = data.batch(Int32Array.from({ length: n }, (_, i) => start + i));
      const labels = fields[options.labels];
      if (labels?.dataType !== DataType.INT64) throw new Error(`accuracy: the data has no int64 '${options.labels}' field of class ids`);
      const feeds = Object.fromEntries(session.inputNames.map((name) => {
        const tensor = fields[name];
        if (tensor === undefined) throw new Error(`accuracy: the data has no '${name}' for the model's input`);
        return [name, toOrtTensor(ort, tensor)];
      }));
      const logits = (await session.run(feeds, [output]))[output].data as Float32Array;
      const ids = labels.data() as BigInt64Array;
      const classes = logits.length / n;
      for (let r = 0; r < n; r++) {
        let best = 0;
        for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
        if (BigInt(best) === ids[r]) correct++;
      }
    }
  } finally {
    await session.release();
  }
  return (100 * correct) / data.size;
}
