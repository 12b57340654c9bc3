// SHRINK_DEBUG=1 lines for a recipe step's phases (measure accuracy, train, precompute the
// teacher): what ran and how long it took, through the context's debug writer, so a slow run
// shows where its time went in Node and in a worker alike.
import type { PassContext } from './pass.js';

/** Runs `work` and writes `label: N ms` at debug level 1. */
export async function debugPhase<T>(debug: PassContext['debug'], label: string, work: () => Promise<T> | T): Promise<T> {
  const started = performance.now();
  const result = await work();
  debug?.(1, `${label}: ${(performance.now() - started).toFixed(1)} ms`);
  return result;
}
