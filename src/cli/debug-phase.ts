// SHRINK_DEBUG=1 lines for a command's phases (read the data, measure accuracy, train, save): what
// ran and how long it took, so a slow run shows where its time went.
import type { PassContext } from '../pipeline/pass.js';

export type DebugWriter = NonNullable<PassContext['debug']>;

/** Runs `work` and writes `label: N ms` at debug level 1. */
export async function debugPhase<T>(debug: DebugWriter | undefined, label: string, work: () => Promise<T> | T): Promise<T> {
  const started = performance.now();
  const result = await work();
  debug?.(1, `${label}: ${(performance.now() - started).toFixed(1)} ms`);
  return result;
}
