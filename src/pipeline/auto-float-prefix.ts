// Static int8 with a float prefix for `shrink auto`: when static int8 misses the budget, the start
// of the network kept in float32 (`float_prefix` N: the first N weighted layers and every node
// before the next, activations included) is the cheapest repair measured so far. On PP-OCRv4 det
// static int8 at the defaults reads text-mask IoU 0.93-0.96 depending on the calibration pages,
// N=7 0.970-0.983 on 7 page sets at ~2.2x float32 (NOTES.md, issue 15): the start sees the raw
// input, its ranges move most with the samples, and its noise passes through everything. Without a
// metric the default can only bound the prefix by a share of the work; auto has the user's metric,
// so when that default misses it measures: a short ascending ladder (fewer float layers run faster, so the smallest N that
// holds is wanted), stopped at the first N that holds on the tuning samples, then a bisection
// between the last miss and that hit. Static int8's default keeps a prefix of its own ('auto', by
// share of the multiply-accumulates: det 10 layers): when that misses, the ladder's rungs count
// from it (fewer layers than the default's would be repairing less). Calibration statistics of the float graph do not depend on
// N (the prefix only decides which of them are used), so they are collected once for the ladder.
// Each candidate is a recipe (static int8 with `float_prefix`) that `shrink run` reproduces,
// judged, timed and cached like the plan's; the smallest N that held is handed to the pruned +
// int8 composite (auto-prune.ts).
import { collectStatistics } from '../eval/activation-stats.js';
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import { nodeOrder } from '../ir/toposort.js';
import { weightedLayers } from '../graph-edit/weighted-layers.js';
import type { AutoCandidate, AutoGeneratorInput, CandidateOutcome } from './auto.js';
import { evaluateCandidate } from './auto.js';
import { accumulatedStatistics } from './auto-mixed.js';
import type { RecipeContext } from './context.js';

/** Prefix lengths tried in order until one holds (det's error sits in its first 7 layers of 64). */
export const FLOAT_PREFIX_LADDER = [3, 6, 9, 12] as const;
/** Builds between the last miss and the first hit, at most (each is a whole static int8 build). */
const MAX_REFINE = 2;

/** The base static int8 recipe with its first `layers` weighted layers kept float32. */
export function floatPrefixCandidate(base: AutoCandidate, layers: number): AutoCandidate {
  const name = `${base.name}-float-prefix-${layers}`;
  const steps = base.recipe.steps.map((step) => {
    const q = step.quantize as Record<string, unknown> | undefined;
    return q === undefined ? step : { quantize: { ...q, float_prefix: layers } };
  });
  return { name, recipe: { description: `shrink auto: ${name} (${base.name} with the first ${layers} weighted layers and the nodes before the next in float32)`, steps } };
}

/**
 * The ladder for a model of `weighted` weighted layers whose base already keeps `from` float:
 * from + FLOAT_PREFIX_LADDER below `weighted` (a prefix of every layer is the float model), or
 * every N above `from` on a model too small for the first step.
 */
export function floatPrefixLadder(weighted: number, from = 0): number[] {
  const ladder = FLOAT_PREFIX_LADDER.map((n) => from + n).filter((n) => n < weighted);
  return ladder.length > 0 ? ladder : Array.from({ length: Math.max(0, weighted - 1 - from) }, (_, i) => from + i + 1);
}

export interface FloatPrefixSearchInput extends AutoGeneratorInput {
  /** The static int8 candidate that missed the budget. */
  base: AutoCandidate;
  /** Layers the base kept float (its default prefix): the ladder starts above them. */
  baseLayers?: number;
}

export interface FloatPrefixSearchResult {
  outcomes: CandidateOutcome[];
  models: Map<string, Model>;
  evals: Map<string, EvalReport>;
  /** The smallest N measured to hold the budget on the tuning samples, if any. */
  layers?: number;
  /** Candidates not started because the time budget was spent. */
  skipped: string[];
}

/** Runs the ladder, then the bisection below its first hit; cached candidates are read, not rebuilt. */
export async function searchFloatPrefix(input: FloatPrefixSearchInput): Promise<FloatPrefixSearchResult> {
  const { model, data, budget, ctx, hooks, base } = input;
  const weighted = weightedLayers(model.graph, nodeOrder(model.graph).order).length;
  const from = input.baseLayers ?? 0;
  const ladder = floatPrefixLadder(weighted, from);
  const prefixCtx: RecipeContext = { ...ctx, collectStatistics: accumulatedStatistics(ctx.collectStatistics ?? ((m, values, samples, o) => collectStatistics(ctx.ort, m, values, samples, o))) };
  const models = new Map<string, Model>();
  const evals = new Map<string, EvalReport>();
  const outcomes = new Map<number, CandidateOutcome>();
  const skipped: string[] = [];
  /** The outcome at `layers`, or undefined when the time is up before it could be built. */
  const evaluate = async (layers: number): Promise<CandidateOutcome | undefined> => {
    const candidate = floatPrefixCandidate(base, layers);
    const cached = hooks.cached(candidate);
    if (cached !== undefined) {
      const outcome = { ...cached, cached: true };
      outcomes.set(layers, outcome);
      return outcome;
    }
    if (hooks.timeLeft() <= 0) {
      skipped.push(candidate.name);
      return undefined;
    }
    hooks.log(`auto: ${candidate.name}: running`);
    let outcome: CandidateOutcome;
    if (hooks.evaluateMany !== undefined) [outcome] = await hooks.evaluateMany([candidate]);
    else {
      const evaluated = await evaluateCandidate(model, candidate, data, budget, prefixCtx, hooks.latency);
      if (evaluated.model !== undefined) models.set(candidate.name, evaluated.model);
      if (evaluated.fidelity !== undefined) evals.set(candidate.name, evaluated.fidelity);
      outcome = evaluated.outcome;
    }
    hooks.store(outcome);
    outcomes.set(layers, outcome);
    return outcome;
  };
  let miss = from;
  let hit: number | undefined;
  for (const layers of ladder) {
    const outcome = await evaluate(layers);
    if (outcome === undefined) break;
    if (outcome.feasible) {
      hit = layers;
      break;
    }
    // A build that failed says nothing about the next N; the ladder goes on.
    if (outcome.bytes > 0) miss = layers;
  }
  for (let step = 0; hit !== undefined && hit - miss > 1 && step < MAX_REFINE; step++) {
    const mid = Math.floor((miss + hit) / 2);
    const outcome = await evaluate(mid);
    if (outcome === undefined) break;
    if (outcome.feasible) hit = mid;
    else miss = mid;
  }
  // Ordered by N, as the ladder reads in the report.
  const ordered = [...outcomes.entries()].sort((a, b) => a[0] - b[0]).map(([, o]) => o);
  return { outcomes: ordered, models, evals, layers: hit, skipped };
}
