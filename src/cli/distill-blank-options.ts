// --distill-blank / --distill-blank-weight: the CTC-weighted KL of --distill-loss kl (pipeline/recovery.ts
// CtcBlank), shared by cluster, prune and qat so each words them and their mistakes alike.
import type { Command } from 'commander';
import { DEFAULT_BLANK_WEIGHT } from '../pipeline/recovery.js';
import { UsageError } from './errors.js';
import { wholeNumber } from './options.js';

export interface DistillBlankFlags {
  distillBlank?: string;
  distillBlankWeight?: string;
}

export function addDistillBlankOptions(command: Command): Command {
  return command
    .option('--distill-blank <class>', "with --distill-loss kl on CTC logits: the blank's class (PP-OCR: 0); each time step's KL is weighted by the original's 1 - p(blank), so steps that read a character or a space count fully and confident blanks count --distill-blank-weight")
    .option('--distill-blank-weight <w>', `with --distill-blank: a confident blank's weight, 0 to 1 (default ${DEFAULT_BLANK_WEIGHT}; 1 is plain KL)`);
}

/** The blank class and weight of the flags; `loss` is the --distill-loss in effect (its default included). */
export function parseDistillBlank(flags: DistillBlankFlags, loss: string | undefined): { distillBlank?: number; distillBlankWeight?: number } {
  if (flags.distillBlankWeight !== undefined && flags.distillBlank === undefined) throw new UsageError('--distill-blank-weight goes with --distill-blank');
  if (flags.distillBlank === undefined) return {};
  if (loss !== 'kl') throw new UsageError('--distill-blank goes with --distill-loss kl');
  const distillBlank = wholeNumber(flags.distillBlank, '--distill-blank', 0);
  if (flags.distillBlankWeight === undefined) return { distillBlank };
  const weight = Number(flags.distillBlankWeight);
  if (!/\S/.test(flags.distillBlankWeight) || !(weight >= 0 && weight <= 1)) throw new UsageError(`--distill-blank-weight must be a number from 0 to 1, got '${flags.distillBlankWeight}'`);
  return { distillBlank, distillBlankWeight: weight };
}

/** --distill-focus / --distill-focus-weight / --distill-top1: the blank-weighted KL's extras (pipeline/recovery.ts CtcBlank focus, top1); cluster only so far. */
export interface DistillCtcExtrasFlags {
  distillFocus?: string;
  distillFocusWeight?: string;
  distillTop1?: string;
}

export function addDistillCtcExtrasOptions(command: Command): Command {
  return command
    .option('--distill-focus <class>', "with --distill-blank: a class whose time steps count more (PP-OCR's space, its last class: 6624); each step's weight gains --distill-focus-weight x the original's p(class)")
    .option('--distill-focus-weight <w>', 'with --distill-focus: its weight, a number >= 0')
    .option('--distill-top1 <w>', "with --distill-blank: weight (>= 0) of a top-1 term beside each step's KL, the cross-entropy against the original's arg-max class (pushes the student's decision past the original's where its margin is small)");
}

/** The focus class, its weight and the top-1 weight of the flags; they go with --distill-blank. */
export function parseDistillCtcExtras(flags: DistillCtcExtrasFlags & DistillBlankFlags): { distillFocus?: number; distillFocusWeight?: number; distillTop1?: number } {
  const given = [flags.distillFocus !== undefined && '--distill-focus', flags.distillTop1 !== undefined && '--distill-top1'].find((f) => typeof f === 'string');
  if (given && flags.distillBlank === undefined) throw new UsageError(`${given} goes with --distill-blank`);
  if ((flags.distillFocus === undefined) !== (flags.distillFocusWeight === undefined)) throw new UsageError('--distill-focus and --distill-focus-weight go together');
  const weight = (text: string, flag: string) => {
    const value = Number(text);
    if (!/\S/.test(text) || !(value >= 0 && Number.isFinite(value))) throw new UsageError(`${flag} must be a number >= 0, got '${text}'`);
    return value;
  };
  return {
    ...(flags.distillFocus === undefined || flags.distillFocusWeight === undefined ? {} : { distillFocus: wholeNumber(flags.distillFocus, '--distill-focus', 0), distillFocusWeight: weight(flags.distillFocusWeight, '--distill-focus-weight') }),
    ...(flags.distillTop1 === undefined ? {} : { distillTop1: weight(flags.distillTop1, '--distill-top1') }),
  };
}
