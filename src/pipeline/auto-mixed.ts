// Per-layer mixed precision for `shrink auto`: static int8 with some layers left in float32, the
// layers chosen by what was measured once and cached (the layer profile), not by brute force:
//   - sensitivity: each layer's isolated error in the all-int8 model (layer-sensitivity.ts);
//   - cost: what keeping the layer float costs on this machine (latency-model.ts, calibrated from
//     onnxruntime's profile of the float and the all-int8 model and their interleaved timing).
// Layers are ranked: first those whose int8 kernel is slower than their float one (keeping them
// float is free, and makes the model faster than all-int8), then by noise removed per millisecond
// lost. The search keeps the first k in float, bisecting on k until the budget holds on the tuning
// samples with the fewest layers; candidates are judged by predicted latency and only the one
// chosen (the finalist) is timed. Each candidate is a recipe (static int8 with `exclude` naming the
// kept layers), so it is cached, resumed and reproduced like every other candidate.
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import { exactNamePattern } from '../methods/quantize/first-last-layers.js';
import { writeModel } from '../onnx/model-io.js';
import type { AutoCandidate, AutoGeneratorInput, CandidateOutcome } from './auto.js';
import { evaluateCandidate } from './auto.js';
import type { RecipeContext } from './context.js';
import { measureLayerSensitivity, noisePower, type LayerSensitivity } from './layer-sensitivity.js';
import { buildLatencyModel, calibrateByOpType, floatCost, type LatencyModel, layersByOpType, predictLatency } from './latency-model.js';
import { collectStatistics, type StatisticsCollector } from '../eval/activation-stats.js';
import type { TensorStatistics } from '../eval/tensor-statistics.js';
import { recipeFromData } from './recipe.js';
import { runRecipe } from './run-recipe.js';

/** What the mixed-precision search measures once per input, data and base recipe (JSON, cached). */
export interface LayerProfile {
  /** The base candidate's name. */
  base: string;
  sensitivity: LayerSensitivity[];
  latency: LatencyModel;
  /** Seconds the measurement took. */
  seconds: number;
}

/** Samples the sensitivity is measured on (the calibration split: the tuning split stays for decisions). */
const SENSITIVITY_SAMPLES = 16;
/** Candidates the bisection may build at most. */
const MAX_STEPS = 6;

export interface MixedSearchInput extends AutoGeneratorInput {
  /** The all-int8 candidate. */
  base: AutoCandidate;
  /** The base met the budget: only the free layers are worth keeping in float (a faster model). */
  baseFeasible: boolean;
}

export interface MixedSearchResult {
  outcomes: CandidateOutcome[];
  models: Map<string, Model>;
  evals: Map<string, EvalReport>;
  profile: LayerProfile;
}

/** Layers in the order the search keeps them in float, with what each was ranked by. */
export function rankLayers(profile: LayerProfile): { node: string; noise: number; cost_ms: number }[] {
  const noise = new Map(profile.sensitivity.map((s) => [s.node, noisePower(s)]));
  const layers = Object.keys(profile.latency.layers).map((node) => ({ node, noise: noise.get(node) ?? 0, cost_ms: floatCost(profile.latency, node) }));
  const free = layers.filter((l) => l.cost_ms <= 0).sort((a, b) => a.cost_ms - b.cost_ms);
  const paid = layers.filter((l) => l.cost_ms > 0 && l.noise > 0).sort((a, b) => b.noise / b.cost_ms - a.noise / a.cost_ms);
  return [...free, ...paid];
}

/** The base recipe with the layers `keep` names left in float32. */
export function mixedCandidate(base: AutoCandidate, keep: readonly string[]): AutoCandidate {
  const name = `${base.name}-mixed-${keep.length}`;
  const steps = base.recipe.steps.map((step) => {
    const q = step.quantize as Record<string, unknown> | undefined;
    if (q === undefined) return step;
    return { quantize: { ...q, exclude: [...((q.exclude as string[] | undefined) ?? []), ...keep.map(exactNamePattern)] } };
  });
  return { name, recipe: { description: `shrink auto: ${name} (${keep.length} layers of ${base.name} kept in float32)`, steps } };
}

/** The layer profile: cached by the caller, else measured here on the all-int8 model. */
async function layerProfile(input: MixedSearchInput, mixedCtx: RecipeContext): Promise<LayerProfile> {
  const { model, data, hooks, base } = input;
  const { layerProfile: cachedProfile, profileNodes } = hooks;
  if (cachedProfile === undefined || profileNodes === undefined) throw new Error('auto: the mixed-precision search needs layerProfile and profileNodes hooks');
  return cachedProfile(base, async () => {
    const started = performance.now();
    hooks.log(`auto: measuring the layer profile of ${base.name} (per-layer sensitivity, per-kernel latency)`);
    const samples = data.calibration ?? data.data;
    if (samples === undefined) throw new Error('auto: per-layer sensitivity needs calibration samples');
    // Built again rather than taken from the plan's run: this collection is the one every variant reuses.
    const quantized = (await runRecipe(model, recipeFromData(base.recipe, base.name), { calibration: samples }, mixedCtx)).model;
    const sensitivity = await measureLayerSensitivity(mixedCtx.ort, model, quantized, samples, { limit: SENSITIVITY_SAMPLES, threads: mixedCtx.threads });
    const floatBytes = writeModel(model);
    const int8Bytes = writeModel(quantized);
    const wall = await hooks.latency(int8Bytes);
    const profiled = buildLatencyModel(model, quantized, { float: await profileNodes(floatBytes), int8: await profileNodes(int8Bytes) }, { float_ms: wall.original_ms, int8_ms: wall.candidate_ms });
    // One timed variant per op type (every layer of it in float), each beside the float input and
    // scaled to the first window's float latency, so load drifting between windows cancels.
    const timed: Record<string, number> = {};
    for (const [op, layers] of layersByOpType(profiled)) {
      const variant = await runRecipe(model, recipeFromData(mixedCandidate(base, layers).recipe, `${base.name} with every ${op} in float32`), { calibration: samples }, mixedCtx);
      const t = await hooks.latency(writeModel(variant.model));
      timed[op] = (wall.original_ms * t.candidate_ms) / t.original_ms;
      hooks.log(`auto: ${base.name} with its ${layers.length} ${op} layers in float32: ${timed[op].toPrecision(3)} ms (all-int8 ${wall.candidate_ms.toPrecision(3)} ms, float ${wall.original_ms.toPrecision(3)} ms)`);
    }
    const latency = calibrateByOpType(profiled, timed);
    return { base: base.name, sensitivity, latency, seconds: (performance.now() - started) / 1000 };
  });
}

/**
 * Bisects on the number of layers kept in float: the fewest (after the free ones) whose candidate
 * meets the budget on the tuning samples. The finalist is timed; the others carry predicted latency.
 */
export async function searchMixedPrecision(input: MixedSearchInput): Promise<MixedSearchResult> {
  const { model, data, budget, ctx, hooks } = input;
  // Calibration statistics of the float graph do not depend on which layers stay float: collected once for every variant and candidate.
  const mixedCtx: RecipeContext = { ...ctx, collectStatistics: accumulatedStatistics(ctx.collectStatistics ?? ((m, values, samples, o) => collectStatistics(ctx.ort, m, values, samples, o))) };
  const profile = await layerProfile(input, mixedCtx);
  const ranked = rankLayers(profile);
  const free = ranked.filter((l) => l.cost_ms <= 0).length;
  hooks.log(`auto: ${ranked.length} layers ranked (${free} faster in float32); float ${profile.latency.float_ms.toPrecision(3)} ms, int8 ${profile.latency.int8_ms.toPrecision(3)} ms`);
  const models = new Map<string, Model>();
  const evals = new Map<string, EvalReport>();
  const outcomes = new Map<number, CandidateOutcome>();
  const evaluate = async (k: number): Promise<CandidateOutcome> => {
    const keep = ranked.slice(0, k).map((l) => l.node);
    const candidate = mixedCandidate(input.base, keep);
    const predicted = predictLatency(profile.latency, keep);
    const cached = hooks.cached(candidate);
    let outcome: CandidateOutcome;
    if (cached !== undefined) {
      outcome = { ...cached, cached: true };
    } else {
      hooks.log(`auto: ${candidate.name}: running (predicted ${predicted.toPrecision(3)} ms)`);
      // Judged by predicted latency: only the finalist is timed.
      const evaluated = await evaluateCandidate(model, candidate, data, budget, mixedCtx, async () => ({ original_ms: profile.latency.float_ms, candidate_ms: predicted }));
      outcome = { ...evaluated.outcome, latency_predicted: true };
      if (evaluated.model !== undefined) models.set(candidate.name, evaluated.model);
      if (evaluated.fidelity !== undefined) evals.set(candidate.name, evaluated.fidelity);
      hooks.store(outcome);
    }
    outcome.predicted_ms = predicted;
    outcomes.set(k, outcome);
    return outcome;
  };
  // lo: a k known to miss (0 is the all-int8 base); hi: the smallest k known to hold, if any.
  let lo = 0;
  let hi: number | undefined;
  let steps = 0;
  if (input.baseFeasible && free === 0) {
    hooks.log(`auto: ${input.base.name} meets the budget and no layer is faster in float32: no mixed candidate`);
    return { outcomes: [], models, evals, profile };
  }
  const first = free > 0 ? free : Math.min(ranked.length, 1);
  if (first > 0 && (await evaluate(first)).feasible) hi = first;
  else lo = first;
  steps++;
  // The free layers all in float hold the budget (or the base did): fewer of them would be slower,
  // more would cost time: nothing left to search.
  if (input.baseFeasible || hi !== undefined) steps = MAX_STEPS;
  const ceiling = ranked.length;
  while (steps < MAX_STEPS && hooks.timeLeft() > 0) {
    // Without a k known to hold, all ranked layers in float (nearly the float model) is assumed to.
    const upper = hi ?? ceiling;
    if (upper - lo <= (hi === undefined ? 0 : 1)) break;
    // Few layers usually carry most of the error: the first step goes a third of the way up, not half.
    const mid = Math.min(ceiling, lo + Math.max(1, steps === 1 ? Math.ceil((upper - lo) / 3) : Math.floor((upper - lo) / 2)));
    const outcome = await evaluate(mid);
    steps++;
    if (outcome.feasible) hi = mid;
    else lo = mid;
  }
  // The finalist: timed beside the input, as every other candidate was.
  if (hi !== undefined) {
    const finalist = outcomes.get(hi) as CandidateOutcome;
    if (finalist.latency_predicted === true) {
      const finalModel = models.get(finalist.name);
      if (finalModel !== undefined) {
        const timed = await hooks.latency(writeModel(finalModel));
        finalist.latency = { ...timed, speedup: timed.original_ms / timed.candidate_ms };
        finalist.latency_predicted = false;
        hooks.log(`auto: ${finalist.name}: timed ${timed.candidate_ms.toPrecision(3)} ms (predicted ${finalist.predicted_ms?.toPrecision(3)} ms beside ${profile.latency.int8_ms.toPrecision(3)} ms all-int8), ${finalist.latency.speedup.toFixed(2)}x`);
        hooks.store(finalist);
      }
    }
  }
  return { outcomes: [...outcomes.values()], models, evals, profile };
}

/**
 * A collector that keeps every value's statistics it collected and collects only the values not
 * seen yet: a model with other layers in float asks for a slightly different set of values (same
 * samples, same calibrator), and collecting again from scratch cost a whole calibration each time.
 */
export function accumulatedStatistics(collect: StatisticsCollector): StatisticsCollector {
  const stats = new Map<string, TensorStatistics>();
  const notFloat = new Map<string, string>();
  let samples = 0;
  return async (model, values, source, options) => {
    const missing = values.filter((v) => !stats.has(v) && !notFloat.has(v));
    let passes = 0;
    if (missing.length > 0) {
      const got = await collect(model, missing, source, options);
      for (const [name, s] of got.stats) stats.set(name, s);
      for (const [name, type] of got.notFloat) notFloat.set(name, type);
      samples = got.samples;
      passes = got.passes;
    }
    const pick = <T>(map: Map<string, T>) => new Map(values.filter((v) => map.has(v)).map((v) => [v, map.get(v) as T]));
    return { stats: pick(stats), notFloat: pick(notFloat), samples, passes };
  };
}
