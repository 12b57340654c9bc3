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
