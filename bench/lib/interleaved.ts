// Float32 against its compressed model, timed in turns in one process: each round runs one then the
// other on the same feeds, so load that comes and goes falls on both alike, and the ratio of the
// medians is what a shared machine can still tell.
import { loadavg } from 'node:os';
import type { OrtTensor } from '../../src/runtime/ort-types.js';
import { ModelSession } from '../../src/runtime/session.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { median, round } from './stats.js';

export interface InterleavedTiming {
  threads: number;
  fp32Ms: number;
  int8Ms: number;
  speedup: number;
  /** 1-minute load average before and after. */
  load: [number, number];
}

/** Medians of `rounds` interleaved runs of each model (2 warm-up runs each), at graph optimization 'all'. */
export async function timeInterleaved(fp32: Uint8Array, int8: Uint8Array, feeds: Record<string, OrtTensor>, threads: number, rounds: number): Promise<InterleavedTiming> {
  const options = { threads, graphOptimization: 'all' as const };
  const sessions = [await ModelSession.create(nodeOrt, fp32, options), await ModelSession.create(nodeOrt, int8, options)];
  try {
    const before = round(loadavg()[0]);
    for (const s of sessions) for (let i = 0; i < 2; i++) await s.run(feeds);
    const samples: number[][] = [[], []];
    for (let r = 0; r < rounds; r++) {
      for (const [i, s] of sessions.entries()) {
        const t0 = performance.now();
        await s.run(feeds);
        samples[i].push(performance.now() - t0);
      }
    }
    const [fp32Ms, int8Ms] = samples.map(median);
    return { threads, fp32Ms: round(fp32Ms), int8Ms: round(int8Ms), speedup: round(fp32Ms / int8Ms), load: [before, round(loadavg()[0])] };
  } finally {
    for (const s of sessions) await s.release();
  }
}
