// Runs the optimizer registry over a model: the passes of the chosen level (or those named), in
// registry order, repeated while a round still removes nodes or initializers (one fold exposes
// the next: a Conv's Mul folded lets its Add fold, a removed Identity lets two Transposes meet).
// Returns one report per pass with its counters summed over the rounds and the last round's warnings.
// A structurally broken model (cycle, dangling input) is refused before any pass runs.
import type { Model } from '../ir/model.js';
import { type PassContext, type PassReport, runPass } from '../pipeline/pass.js';
import { assertOptimizable } from './check-model.js';
import { OPTIMIZER_PASSES, type OptimizeLevel, type OptimizerPassEntry } from './passes.js';
import { allGraphs, pruneValueInfo, totalNodes } from './util/graph-queries.js';

export interface OptimizeOptions {
  /** 'basic' removes what provably does nothing; 'full' also folds weights and merges ops. Default 'full'. */
  level?: OptimizeLevel;
  /** Run exactly these passes (registry order), whatever their level; opt-in passes included. */
  passes?: readonly string[];
  /** Leave these passes out. */
  skip?: readonly string[];
  /** Most rounds to run before stopping (default 4). */
  maxRounds?: number;
  /**
   * Called after every pass run (each round), with that run's report and the model as it now is;
   * the next pass waits for a returned promise (blame-pass.ts compares outputs there).
   */
  onPass?: (report: PassReport, model: Model) => void | Promise<void>;
  /** The passes to choose from (default OPTIMIZER_PASSES); `passes` and `skip` name entries of it. */
  registry?: readonly OptimizerPassEntry[];
}

/** Optimizes `model` in place; one report per pass that ran. */
export async function optimizeModel(model: Model, options: OptimizeOptions = {}, ctx: PassContext = {}): Promise<PassReport[]> {
  assertOptimizable(model);
  const selected = selectPasses(options);
  const reports = new Map<string, PassReport>();
  const maxRounds = options.maxRounds ?? 4;
  for (let round = 0; round < maxRounds; round++) {
    const before = size(model);
    for (const entry of selected) {
      const report = await runPass(entry.pass, model, {}, ctx);
      await options.onPass?.(report, model);
      reports.set(entry.pass.name, merge(reports.get(entry.pass.name), report));
    }
    ctx.debug?.(1, `optimize round ${round + 1}: ${before} -> ${size(model)} nodes + initializers`);
    if (size(model) >= before) break;
  }
  // Passes drop values; annotations of values no longer defined would only mislead readers.
  for (const graph of allGraphs(model.graph)) pruneValueInfo(graph);
  return [...reports.values()];
}

/** The registry entries `options` choose, in registry order. */
export function selectPasses(options: OptimizeOptions): OptimizerPassEntry[] {
  const registry = options.registry ?? OPTIMIZER_PASSES;
  const known = new Set(registry.map((e) => e.pass.name));
  for (const name of [...(options.passes ?? []), ...(options.skip ?? [])]) {
    if (!known.has(name)) throw new Error(`unknown optimizer pass '${name}'; known passes: ${[...known].join(', ')}`);
  }
  const skip = new Set(options.skip ?? []);
  if (options.passes !== undefined) {
    const wanted = new Set(options.passes);
    return registry.filter((e) => wanted.has(e.pass.name) && !skip.has(e.pass.name));
  }
  const level = options.level ?? 'full';
  return registry.filter((e) => !e.optIn && !skip.has(e.pass.name) && (level === 'full' || e.level === 'basic'));
}

/** Nodes and initializers in all scopes: every pass that changes something lowers it. */
function size(model: Model): number {
  let initializers = 0;
  for (const graph of allGraphs(model.graph)) initializers += graph.initializers.length;
  return totalNodes(model.graph) + initializers;
}

function merge(previous: PassReport | undefined, next: PassReport): PassReport {
  if (previous === undefined) return { ...next, stats: { ...next.stats }, warnings: [...next.warnings] };
  for (const [key, value] of Object.entries(next.stats)) previous.stats[key] = (previous.stats[key] ?? 0) + value;
  // The last round's warnings describe the final model; earlier ones may name since-folded nodes.
  previous.warnings = [...next.warnings];
  previous.ms += next.ms;
  return previous;
}
