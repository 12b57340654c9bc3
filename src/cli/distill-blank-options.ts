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
