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
import type { SampleSource } from '../eval/samples.js';
import { openSession } from '../runtime/ort-errors.js';
import { toOrtTensor } from '../runtime/session.js';
import type { ArrayField } from '../train/array-data.js';
import { type PrecomputedValue, precomputeTeacher } from '../train/distill-teacher.js';
import type { RecipeContext } from './context.js';
import { teacherValue } from './recovery.js';

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
  checkValue(original, candidate, value);
  // The original's logits are cached per model and inputs, shared with distillation (QAT fits after every epoch).
  const reference = (await teacherValue(original, inputs, value, ctx)) as PrecomputedValue;
  const mine = (await precomputeTeacher(ctx.ort, candidate, inputs, [value], { threads: ctx.threads, progress: ctx.progress, batch: 8 })).get(value) as PrecomputedValue;
  return fitted(candidate, value, asFloat32(reference), reference.sampleDims, asFloat32(mine), mine.sampleDims, options);
}

/**
 * The same on a SampleSource (the first `limit` samples; e.g. `shrink quantize`'s --calib), for
 * inputs whose size varies between samples: each sample is run alone and its rows appended.
 */
export async function fitOutputBiasOnSamples(original: Model, candidate: Model, samples: SampleSource, value: string, ctx: RecipeContext, options: OutputOffsetFitOptions & { limit?: number } = {}): Promise<{ model: Model; report: OutputBiasReport }> {
  checkValue(original, candidate, value);
  const logits = async (model: Model, subject: string) => {
    const session = await openSession(ctx.ort, model, { threads: ctx.threads, extraOutputs: model.graph.isGraphOutput(value) ? [] : [value] }, subject);
    const parts: Float32Array[] = [];
    let dims: number[] = [];
    try {
      for await (const sample of samples) {
        if (sample.index >= (options.limit ?? Number.POSITIVE_INFINITY)) break;
        const feeds = Object.fromEntries(Object.entries(sample.inputs).map(([name, tensor]) => [name, toOrtTensor(ctx.ort, tensor)]));
        const out = (await session.run(feeds, [value]))[value];
        if (out.type !== 'float32') throw new Error(`${WHO}: '${value}' is ${out.type} in ${subject}, not float32`);
        dims = [...out.dims];
        parts.push(Float32Array.from(out.data as Float32Array));
      }
    } finally {
      await session.release();
    }
    if (parts.length === 0) throw new Error(`${WHO}: no samples to fit on`);
    const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return { all, classes: dims.at(-1) as number };
  };
  const reference = await logits(original, 'the original');
  const mine = await logits(candidate, 'the candidate');
  return fitted(candidate, value, reference.all, [reference.classes], mine.all, [mine.classes], options);
}

const WHO = 'fit output bias';

function checkValue(original: Model, candidate: Model, value: string): void {
  for (const [m, name] of [
    [original, 'the original'],
    [candidate, 'the candidate'],
  ] as const) {
    if (!m.graph.isGraphOutput(value) && m.graph.producer(value) === undefined) throw new Error(`${WHO}: ${name} has no value '${value}' (name the logits, e.g. the input of the final Softmax)`);
  }
}

function fitted(candidate: Model, value: string, reference: Float32Array, referenceDims: readonly number[], mine: Float32Array, mineDims: readonly number[], options: OutputOffsetFitOptions): { model: Model; report: OutputBiasReport } {
  const classes = referenceDims.at(-1);
  if (classes === undefined || mineDims.join(',') !== referenceDims.join(',') || reference.length !== mine.length) {
    throw new Error(`${WHO}: '${value}' is [${mineDims.join(', ')}] per sample in the candidate and [${referenceDims.join(', ')}] in the original; need the same [..., classes]`);
  }
  const fit = fitOutputOffsets(rowArgmax(reference, classes), mine, classes, options);
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
