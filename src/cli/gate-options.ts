// --min-cosine and --max-drop: a one-step gate on quantize and eval (eval as a CI gate). A miss
// exits with code 3 and, for quantize, writes nothing.
import type { Command } from 'commander';
import type { Gate } from '../pipeline/gate.js';
import { UsageError } from './errors.js';

export interface GateFlags {
  minCosine?: string;
  maxDrop?: string;
}

export function addGateOptions(command: Command): Command {
  return command
    .option('--min-cosine <c>', 'fail (exit 3, nothing written) unless every output keeps at least this cosine similarity, e.g. 0.99')
    .option('--max-drop <points>', 'fail (exit 3, nothing written) if accuracy against --labels drops by more than this many percentage points');
}

export function gateFromFlags(flags: GateFlags, hasLabels: boolean): Gate {
  const gate: Gate = {};
  if (flags.minCosine !== undefined) {
    const value = Number(flags.minCosine);
    if (!/\S/.test(flags.minCosine) || !(value >= -1 && value <= 1)) throw new UsageError(`--min-cosine must be a number from -1 to 1, got '${flags.minCosine}'`);
    gate.minCosine = value;
  }
  if (flags.maxDrop !== undefined) {
    const value = Number(flags.maxDrop);
    if (!/\S/.test(flags.maxDrop) || !(value >= 0 && Number.isFinite(value))) throw new UsageError(`--max-drop must be a number of percentage points >= 0, got '${flags.maxDrop}'`);
    if (!hasLabels) throw new UsageError('--max-drop measures accuracy: give --labels (and --data)');
    gate.maxAccuracyDrop = value;
  }
  return gate;
}
