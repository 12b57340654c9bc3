// The checks every training-data command (prune, cluster, lowrank) makes of its layer patterns and
// data flags before any file is read, with the same one-line usage errors (exit 2).
import { nodeSelector } from '../methods/quantize/node-selector.js';
import type { Gate } from '../pipeline/gate.js';
import { UsageError } from './errors.js';
import { type GateFlags, gateFromFlags } from './gate-options.js';
import { wholeNumber } from './options.js';

/** Every --exclude and --only pattern parses (an op type or a valid node-name regex). */
export function checkLayerPatterns(exclude: readonly string[], only: readonly string[]): void {
  for (const [patterns, flag] of [
    [exclude, '--exclude'],
    [only, '--only'],
  ] as const) {
    for (const p of patterns) {
      try {
        nodeSelector(p, flag);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
  }
}

/**
 * --labels need --data, training (`trains`, what `--epochs` trains) needs --data, and a gate needs
 * the check --samples 0 would skip. Returns the sample count asked for and the gate.
 */
export function checkDataFlags(flags: GateFlags & { data?: string; labels?: string; samples?: string }, trains: boolean, trained: string): { samples: number | undefined; gate: Gate } {
  if (flags.labels !== undefined && flags.data === undefined) throw new UsageError('--labels go with --data (the samples they label)');
  if (trains && flags.data === undefined) throw new UsageError(`--epochs trains ${trained} on --data: give --data (with --labels to fine-tune, without to distil from the original)`);
  const samples = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 0);
  const gate = gateFromFlags(flags, flags.labels !== undefined || flags.data !== undefined);
  if (samples === 0 && Object.keys(gate).length > 0) throw new UsageError('--samples 0 skips the check that --min-cosine/--max-drop need');
  return { samples, gate };
}
