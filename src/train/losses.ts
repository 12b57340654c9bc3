// Losses as graph pieces, built from standard ops so autodiff differentiates them like any other
// part of the model. Each returns the name of a scalar value (the mean over the batch).
import { attr } from '../ir/attribute.js';
import { DataType } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import type { Emitter } from './emitter.js';

export interface CrossEntropyOptions {
  /** Number of classes (the logits' last axis). */
  classes: number;
  /** Share of the target mass spread evenly over all classes (0 = hard labels). */
  labelSmoothing?: number;
}

/**
 * Mean cross-entropy of `logits` [N, C] against int64 class ids `labels` [N]:
 * -mean_n sum_c target[n, c] * log_softmax(logits)[n, c], the target one-hot and optionally smoothed.
 */
export function crossEntropy(e: Emitter, logits: string, labels: string, type: DataType, options: CrossEntropyOptions): string {
  const smoothing = options.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`label smoothing must be in [0, 1), not ${smoothing}`);
  const off = smoothing / options.classes;
  const on = 1 - smoothing + off;
  const values = type === DataType.DOUBLE ? Float64Array.of(off, on) : Float32Array.of(off, on);
  const target = e.op('OneHot', [labels, e.int64(options.classes), e.builder.node('Constant', [], [attr.tensor('value', Tensor.fromArray('v', type, [2], values))], { nameBase: 'loss/onehot_values' })], [attr.int('axis', -1)]);
  const logp = e.op('LogSoftmax', [logits], [attr.int('axis', -1)]);
  const perSample = e.reduce('ReduceSum', e.op('Mul', [target, logp]), [-1], false);
  return e.op('Neg', [e.reduce('ReduceMean', perSample, [0], false)]);
}

/** Mean squared error over every element. */
export function meanSquaredError(e: Emitter, prediction: string, target: string, rank: number): string {
  const diff = e.op('Sub', [prediction, target]);
  return e.reduce('ReduceMean', e.op('Mul', [diff, diff]), Array.from({ length: rank }, (_, i) => i), false);
}

/**
 * Distillation term T^2 * mean_n KL(softmax(teacher/T) || softmax(student/T)) over the last axis
 * of [N, C] logits (the T^2 keeps its gradient on the scale of the hard-label loss, as Hinton et al.).
 */
export function distillationKl(e: Emitter, studentLogits: string, teacherLogits: string, temperature: number, type: DataType): string {
  const { perRow } = klPerRow(e, studentLogits, teacherLogits, temperature, type);
  return e.op('Mul', [e.reduce('ReduceMean', perRow, [0], false), e.scalarOf(temperature * temperature, type)]);
}

/** KL(softmax(teacher/T) || softmax(student/T)) of each row of [N, C] logits, the teacher's probabilities and the student's log-probabilities. */
function klPerRow(e: Emitter, studentLogits: string, teacherLogits: string, temperature: number, type: DataType): { perRow: string; teacherP: string; studentLogp: string } {
  const t = e.scalarOf(temperature, type);
  const teacherLogp = e.op('LogSoftmax', [e.op('Div', [teacherLogits, t])], [attr.int('axis', -1)]);
  const studentLogp = e.op('LogSoftmax', [e.op('Div', [studentLogits, t])], [attr.int('axis', -1)]);
  const teacherP = e.op('Exp', [teacherLogp]);
  return { perRow: e.reduce('ReduceSum', e.op('Mul', [teacherP, e.op('Sub', [teacherLogp, studentLogp])]), [-1], false), teacherP, studentLogp };
}

/**
 * Additions to the blank-weighted KL for the steps a greedy CTC decoder gets wrong most: a focus
 * class whose steps weigh more, and a top-1 term. Both read only the teacher's logits for their
 * weights and targets.
 */
export interface CtcKlExtras {
  /**
   * A class whose steps count more: each step's weight gains `weight * p_teacher(index)`. PP-OCR's
   * space (its last class): a student drops or adds a space where the teacher's space-vs-blank
   * margin is small, and space steps are under 1% of a line's steps.
   */
  focus?: { index: number; weight: number };
  /**
   * Weight of a top-1 term added to each step's KL: the student's cross-entropy against the
   * teacher's arg-max class (at temperature T). KL alone is content with a student that matches a
   * 0.55/0.45 split to within 0.05, which flips the greedy reading; the cross-entropy pushes the
   * student's decision past the teacher's (its optimum for that step at weight a is
   * (0.55 + a) / (1 + a)). A tie for the teacher's maximum counts each tied class.
   */
  top1?: number;
}

/**
 * Distillation KL per row, weighted for CTC: T^2 * sum_n(w_n * KL_n) / sum_n(w_n) over [N, C]
 * logits, w_n = blankWeight + (1 - blankWeight) * (1 - p_teacher(blank)) at temperature T. The
 * weights read only the teacher's logits (a graph input: constants to autodiff). Why: most time
 * steps of a text line are confident blanks, and a plain mean spends most of its gradient there;
 * the steps the decoder reads (a character, or a space whose margin over blank is small) count
 * fully, confident blanks `blankWeight` (1 gives plain `distillationKl`). `extras` (CtcKlExtras):
 * w_n gains focusWeight * p_teacher(focus), and each step's KL_n gains top1 * CE_n, the student's
 * cross-entropy against the teacher's arg-max class.
 */
export function blankWeightedKl(e: Emitter, studentLogits: string, teacherLogits: string, temperature: number, type: DataType, blank: number, blankWeight: number, extras: CtcKlExtras = {}): string {
  if (!Number.isInteger(blank) || blank < 0) throw new Error(`the blank class must be a class index (an integer >= 0), not ${blank}`);
  if (!(blankWeight >= 0 && blankWeight <= 1)) throw new Error(`the blank weight must be in [0, 1], not ${blankWeight}`);
  const { focus, top1 } = extras;
  if (focus !== undefined && !(Number.isInteger(focus.index) && focus.index >= 0)) throw new Error(`the focus class must be a class index (an integer >= 0), not ${focus.index}`);
  if (focus !== undefined && !(focus.weight >= 0 && Number.isFinite(focus.weight))) throw new Error(`the focus weight must be a number >= 0, not ${focus.weight}`);
  if (top1 !== undefined && !(top1 >= 0 && Number.isFinite(top1))) throw new Error(`the top-1 weight must be a number >= 0, not ${top1}`);
  const { perRow, teacherP, studentLogp } = klPerRow(e, studentLogits, teacherLogits, temperature, type);
  const classP = (index: number) => e.op('Gather', [teacherP, e.int64(index)], [attr.int('axis', 1)]);
  // w = 1 - (1 - blankWeight) * p(blank), the same as the formula above.
  let weights = e.op('Sub', [e.scalarOf(1, type), e.op('Mul', [classP(blank), e.scalarOf(1 - blankWeight, type)])]);
  if (focus !== undefined && focus.weight > 0) weights = e.op('Add', [weights, e.op('Mul', [classP(focus.index), e.scalarOf(focus.weight, type)])]);
  let perStep = perRow;
  if (top1 !== undefined && top1 > 0) {
    // The teacher's arg-max as a 0/1 mask over the classes (Equal to the row's maximum).
    const isTop = e.op('Cast', [e.op('Equal', [teacherLogits, e.reduce('ReduceMax', teacherLogits, [-1], true)])], [attr.int('to', type)]);
    const crossEntropy = e.op('Neg', [e.reduce('ReduceSum', e.op('Mul', [isTop, studentLogp]), [-1], false)]);
    perStep = e.op('Add', [perRow, e.op('Mul', [crossEntropy, e.scalarOf(top1, type)])]);
  }
  const weighted = e.reduce('ReduceSum', e.op('Mul', [weights, perStep]), [0], false);
  const total = e.reduce('ReduceSum', weights, [0], false);
  return e.op('Mul', [e.op('Div', [weighted, total]), e.scalarOf(temperature * temperature, type)]);
}
