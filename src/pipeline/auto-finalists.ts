// `shrink auto`'s last step before it chooses for speed: the fastest feasible candidates timed
// again, together, interleaved with the input in one run. During the search each candidate was
// timed beside the input for about a second on its own, at whatever the machine was doing then;
// on PP-OCRv4 det those separate timings put static int8 17% ahead of the pruned + int8 composite
// where one interleaved run put the composite 11% ahead (bench auto-det, session 11). Speed-ups
// from one run compare with each other; speed-ups from different minutes do not.
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import { writeModel } from '../onnx/model-io.js';
import type { CandidateOutcome } from './auto.js';
import type { RecipeContext } from './context.js';
import { recipeFromData } from './recipe.js';
import { type RecipeData, runRecipe } from './run-recipe.js';

/** How many of the fastest feasible candidates are timed together. */
export const AUTO_FINALISTS = 4;

export interface FinalistTiming {
  /** Median latency of the input and of each candidate (their encoded bytes), interleaved in one run. */
  (candidates: Uint8Array[]): Promise<{ original_ms: number; candidate_ms: number[] }>;
}

/**
 * The outcomes with the finalists' latency replaced by one interleaved timing (`retimed` set):
 * the feasible, timed, not superseded candidates with the highest speed-ups so far, when there are
 * at least two. A finalist read from the cache has no model in memory: it is rebuilt from its
 * recipe (recipes are deterministic) and kept in `models`/`evals` for the caller.
 */
export async function retimeFinalists(
  outcomes: readonly CandidateOutcome[],
  models: Map<string, Model>,
  evals: Map<string, EvalReport>,
  time: FinalistTiming,
  input: Model,
  data: RecipeData,
  ctx: RecipeContext,
  log: (line: string) => void,
  count = AUTO_FINALISTS,
): Promise<CandidateOutcome[]> {
  const finalists = outcomes
    .filter((o) => o.feasible && o.bytes > 0 && o.superseded === undefined && o.latency !== undefined && o.latency_predicted !== true)
    .sort((a, b) => (b.latency?.speedup ?? 0) - (a.latency?.speedup ?? 0))
    .slice(0, count);
  if (finalists.length < 2) return [...outcomes];
  const bytes: Uint8Array[] = [];
  for (const finalist of finalists) {
    let model = models.get(finalist.name);
    if (model === undefined) {
      log(`auto: ${finalist.name}: rebuilding from its recipe to time it beside the other finalists`);
      const result = await runRecipe(input, recipeFromData(finalist.recipe, finalist.name), data, ctx);
      model = result.model;
      models.set(finalist.name, model);
      if (result.report.fidelity !== undefined) evals.set(finalist.name, result.report.fidelity);
    }
    bytes.push(writeModel(model));
  }
  const timed = await time(bytes);
  const retimed = new Map(
    finalists.map((f, i): [string, CandidateOutcome] => [
      f.name,
      { ...f, retimed: true, latency: { original_ms: timed.original_ms, candidate_ms: timed.candidate_ms[i], speedup: timed.original_ms / timed.candidate_ms[i] } },
    ]),
  );
  log(`auto: the ${finalists.length} fastest timed together with the input: ${finalists.map((f) => `${f.name} ${(retimed.get(f.name)?.latency?.speedup ?? 0).toFixed(2)}x (alone ${(f.latency?.speedup ?? 0).toFixed(2)}x)`).join(', ')}`);
  return outcomes.map((o) => retimed.get(o.name) ?? o);
}
