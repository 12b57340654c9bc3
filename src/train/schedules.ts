// Learning-rate schedules: the trainer computes the rate of each step here and feeds it to the
// training graph as a scalar input, so changing the schedule never rebuilds the graph.

export type Schedule =
  | { kind: 'constant'; rate: number }
  /** Cosine decay from `rate` to `min` (default 0) over the whole run, after `warmup` linear steps. */
  | { kind: 'cosine'; rate: number; min?: number; warmup?: number }
  /** `rate` multiplied by `gamma` every `every` steps. */
  | { kind: 'step'; rate: number; every: number; gamma?: number }
  /**
   * Steps offset.. of `schedule` laid over `total` steps: one fit that is a part of a longer run
   * (e.g. one epoch of static int8 QAT, which builds a trainer per epoch) follows the run's rates.
   */
  | { kind: 'window'; schedule: Schedule; offset: number; total: number };

/** Learning rate of step `step` (0-based) out of `total`. */
export function learningRate(schedule: Schedule, step: number, total: number): number {
  switch (schedule.kind) {
    case 'constant':
      return schedule.rate;
    case 'step':
      return schedule.rate * (schedule.gamma ?? 0.1) ** Math.floor(step / schedule.every);
    case 'window':
      return learningRate(schedule.schedule, schedule.offset + step, schedule.total);
    case 'cosine': {
      const warmup = schedule.warmup ?? 0;
      if (step < warmup) return (schedule.rate * (step + 1)) / warmup;
      const min = schedule.min ?? 0;
      const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
      return min + 0.5 * (schedule.rate - min) * (1 + Math.cos(Math.PI * progress));
    }
  }
}
