// The fitted-output-offsets step (methods/quantize/output-offsets.ts) on models: runs the original
// and the compressed candidate over the caller's samples (calibration or training data, never the
// data that will judge the result), takes `value` (the logits, [..., classes]: every position on
// the other axes a row, e.g. a CTC reader's time steps), fits offsets on the few classes where the
// two disagree most, and returns the candidate with them written into the logits' bias. Whether to
// keep it is the caller's choice, made on a split of its own (bench qat-static-rec: tuning lines).
//
//   const { model, report } = await fitOutputBias(original, int8, { x: { data, sampleDims: [3, 48, 320], dataType: DataType.FLOAT } }, 'p2o.Add.277', ctx);
import { float16ToFloat32 } from '../kernels/float16.js';
import type { Model } from '../ir/model.js';
import { fitOutputOffsets, type OutputOffsetFitOptions, rowArgmax, writeOutputOffsets } from '../methods/quantize/output-offsets.js';
import type { ArrayField } from '../train/array-data.js';
import { type PrecomputedValue, precomputeTeacher } from '../train/distill-teacher.js';
import type { RecipeContext } from './context.js';

export interface OutputBiasReport {
  value: string;
  /** Class index -> offset added to its logit. */
  offsets: Record<string, number>;
  /** The classes fitted (found from the disagreements unless given). */
  classes: number[];
  rows: number;
  /** Share of rows whose top-1 agrees with the original's, before and after (on the fitting samples). */
  agreementBefore: number;
  agreementAfter: number;
  /** Where the offsets went: the bias of the Add producing `value`, or a new Add. */
  written: 'bias' | 'add' | 'nothing';
}

function asFloat32(v: PrecomputedValue): Float32Array {
  return v.data instanceof Float32Array ? v.data : float16ToFloat32(v.data);
}

/** `candidate` with fitted offsets on `value`'s classes (a copy; `candidate` is not changed). */
export async function fitOutputBias(original: Model, candidate: Model, inputs: Record<string, ArrayField>, value: string, ctx: RecipeContext, options: OutputOffsetFitOptions = {}): Promise<{ model: Model; report: OutputBiasReport }> {
  const who = 'fit output bias';
  for (const [m, name] of [
    [original, 'the original'],
    [candidate, 'the candidate'],
  ] as const) {
    if (!m.graph.isGraphOutput(value) && m.graph.producer(value) === undefined) throw new Error(`${who}: ${name} has no value '${value}' (name the logits, e.g. the input of the final Softmax)`);
  }
  const run = { threads: ctx.threads, progress: ctx.progress, batch: 8 };
  const reference = (await precomputeTeacher(ctx.ort, original, inputs, [value], run)).get(value) as PrecomputedValue;
  const mine = (await precomputeTeacher(ctx.ort, candidate, inputs, [value], run)).get(value) as PrecomputedValue;
  const classes = reference.sampleDims.at(-1);
  if (classes === undefined || mine.sampleDims.join(',') !== reference.sampleDims.join(',')) {
    throw new Error(`${who}: '${value}' is [${mine.sampleDims.join(', ')}] per sample in the candidate and [${reference.sampleDims.join(', ')}] in the original; need the same [..., classes]`);
  }
  const fit = fitOutputOffsets(rowArgmax(asFloat32(reference), classes), asFloat32(mine), classes, options);
  const model = candidate.clone();
  const written = fit.offsets.size === 0 ? 'nothing' : writeOutputOffsets(model, value, classes, fit.offsets);
  return {
    model,
    report: {
      value,
      offsets: Object.fromEntries([...fit.offsets].map(([c, v]) => [String(c), v])),
      classes: fit.classes,
      rows: fit.rows,
      agreementBefore: fit.agreeingBefore / Math.max(1, fit.rows),
      agreementAfter: fit.agreeingAfter / Math.max(1, fit.rows),
      written,
    },
  };
}
