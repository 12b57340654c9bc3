// Training progress for long bench runs: a log line every `every` steps with the elapsed time and
// the load average, so a run can be watched from its log file (and a slow one explained).
import { loadavg } from 'node:os';
import type { Progress } from '../../src/pipeline/progress.js';
import { round } from './stats.js';

export function loggedProgress(log: (line: string) => void, every = 20): Progress {
  let label = '';
  let total: number | undefined;
  let steps = 0;
  let started = 0;
  return {
    start(l, t) {
      label = l;
      total = t;
      steps = 0;
      started = performance.now();
    },
    tick(n = 1) {
      steps += n;
      if (steps % every === 0) log(`${label}: ${steps}/${total ?? '?'} in ${round((performance.now() - started) / 1000)} s, load ${round(loadavg()[0])}`);
    },
    done() {},
  };
}
