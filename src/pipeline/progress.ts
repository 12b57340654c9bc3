// Progress of long work (calibration, training, conformance-size batches). The core only calls
// this interface; the Node CLI draws a bar on a terminal and prints plain lines otherwise
// (src/node/progress.ts), and a browser page can forward it to its UI.
export interface Progress {
  /** Starts a task of `total` steps (undefined when the total is not known). */
  start(label: string, total?: number): void;
  /** Advances the current task by `steps` (default 1). */
  tick(steps?: number): void;
  done(): void;
}

/** Progress that goes nowhere, for library calls that did not ask for it. */
export const silentProgress: Progress = {
  start() {},
  tick() {},
  done() {},
};

/**
 * Forwards progress only once a task has lasted `ms`: quick runs print nothing (and a failure
 * stays one line), long ones show where they are.
 */
export function delayedProgress(inner: Progress, ms: number): Progress {
  let label = '';
  let total: number | undefined;
  let startedAt = 0;
  let steps = 0;
  let shown = false;
  return {
    start(l, t) {
      label = l;
      total = t;
      startedAt = Date.now();
      steps = 0;
      shown = false;
    },
    tick(n = 1) {
      steps += n;
      if (shown) inner.tick(n);
      else if (Date.now() - startedAt >= ms) {
        shown = true;
        inner.start(label, total);
        inner.tick(steps);
      }
    },
    done() {
      if (shown) inner.done();
    },
  };
}
