// The contract of a training-graph rewrite: a change to the model being trained that keeps every
// value the loss sees and every gradient, and makes the training step cheaper to run. Rewrites
// work on the training graph's own copy of the model (the exported model keeps its graph).
import type { Graph } from '../../ir/graph.js';

export interface TrainingRewrite {
  name: string;
  description: string;
  /** Rewrites the main graph in place; returns how many places it changed. */
  run(graph: Graph): number;
}
