// `shrink auto`: compress to a budget. A candidate is a recipe (the same JSON `shrink run` reads);
// the search runs candidates in a planned order, each measured against the input on the tuning
// samples (accuracy with labels, else the lowest output cosine), its size, and its latency beside
// the input on this machine (a hook: timing needs onnxruntime's host). Later candidates depend on
// what earlier ones measured, so the search does not try everything: another calibrator, and bias
// correction, only when minmax static int8 misses the budget, the per-layer float32 search (layers
// where error starts kept in float32: sensitivity) only when all of those miss, static int8 with the
// start of the network in float32 (a ladder of prefix lengths, auto-float-prefix.ts) when static
// int8 misses, int4 variants only when plain
// int4 misses, channel pruning with recovery only when training arrays with labels exist and the
// target includes latency; without labels, when latency counts, the channel groups that cost the
// budget least are cut, distilled and quantized (auto-prune.ts). Results are cached by the caller (a search resumes where it stopped),
// and the search stops starting candidates when its time is up. Nothing here touches files.
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import { writeModel } from '../onnx/model-io.js';
import { type FinalistTiming, retimeFinalists } from './auto-finalists.js';
import { searchFloatPrefix } from './auto-float-prefix.js';
import { type LayerProfile, searchMixedPrecision } from './auto-mixed.js';
import { type GroupScan, PrunedSearchTimeUp, searchPrunedInt8 } from './auto-prune.js';
import type { RecipeContext } from './context.js';
import type { NodeProfile } from './latency-model.js';
import { recipeFromData } from './recipe.js';
import { type RecipeData, type RecipeReport, runRecipe } from './run-recipe.js';

export type AutoTarget = 'size' | 'latency' | 'both';

export interface AutoBudget {
  /** Largest accuracy loss allowed, in points (needs labels). */
  maxDrop?: number;
  /** Lowest output cosine allowed against the input (default 0.99 without maxDrop or minMetric). */
  minCosine?: number;
  /** Lowest mean of the user's metric (`--metric`) allowed. */
  minMetric?: number;
}

/** A recipe to try, as recipe-file data. */
export interface AutoCandidate {
  name: string;
  recipe: { description: string; steps: Record<string, unknown>[] };
}

export interface CandidateOutcome {
  name: string;
  recipe: AutoCandidate['recipe'];
  /** Encoded size, and against the input's. */
  bytes: number;
  size_ratio: number;
  /**
   * Accuracies on the tuning samples, the drop, and one standard error of the drop: at most
   * sqrt(d / n) for n samples on which the two models' predictions differ in a share d (only those
   * can change the count). A candidate is within --max-drop when drop + error is.
   */
  accuracy?: { original: number; candidate: number; drop_points: number; error_points: number };
  /** Lowest cosine over the outputs. */
  cosine?: number;
  /** Mean of the user's metric, when one is given. */
  metric?: number;
  latency?: { original_ms: number; candidate_ms: number; speedup: number };
  feasible: boolean;
  /** Why it is outside the budget, or failed. */
  why_not?: string;
  seconds: number;
  /** Read from the cache of an earlier run. */
  cached?: boolean;
  /** On the Pareto front of quality, size and latency among the feasible. */
  pareto?: boolean;
  /** Its latency is the cost model's prediction, not timed (mixed-precision candidates but the finalist). */
  latency_predicted?: boolean;
  /** What the cost model predicted, ms (mixed-precision candidates). */
  predicted_ms?: number;
  /** Not a contender: why (a variant of the same generator did better on the tuning samples). */
  superseded?: string;
  /** Weighted layers its static int8 step kept float32 at the start (`float_prefix`, the default's 'auto' included). */
  float_prefix_layers?: number;
  /** Its latency is from the finalists' timing together (auto-finalists.ts), not its own. */
  retimed?: boolean;
}

export interface AutoHooks {
  /** Median latency of the input and of a candidate (its encoded bytes), interleaved. */
  latency(candidate: Uint8Array): Promise<{ original_ms: number; candidate_ms: number }>;
  /**
   * The input and several candidates timed in one interleaved run: the finalists are timed so
   * before the choice for speed (auto-finalists.ts). Without it each keeps its own timing.
   */
  latencyTogether?: FinalistTiming;
  /** Results of earlier runs, by candidate name (the caller keys them by input, data and recipe). */
  cached(candidate: AutoCandidate): CandidateOutcome | undefined;
  store(outcome: CandidateOutcome): void;
  /** Milliseconds left of the time budget. */
  timeLeft(): number;
  /**
   * Evaluates candidates elsewhere (workers of a job queue), all at once; each outcome as
   * `evaluateCandidate` gives it. Without it, candidates run here one after another.
   */
  evaluateMany?(candidates: AutoCandidate[]): Promise<CandidateOutcome[]>;
  /**
   * The layer profile of the all-int8 candidate (per-layer sensitivity, latency cost model):
   * the caller's cached one, else `measure`'s, which the caller then caches. Without it (and
   * `profileNodes`) there is no per-layer mixed-precision search.
   */
  layerProfile?(base: AutoCandidate, measure: () => Promise<LayerProfile>): Promise<LayerProfile>;
  /**
   * The channel-group scan of the pruned + int8 generator: the caller's cached one, else
   * `measure`'s, which the caller then caches. Without it the scan runs each time.
   */
  groupScan?(measure: () => Promise<GroupScan>): Promise<GroupScan>;
  /** onnxruntime's per-kernel times of a model (its bytes) on this machine, at the timing's settings. */
  profileNodes?(model: Uint8Array): Promise<NodeProfile>;
  log(line: string): void;
}

/** What every candidate generator of the search (float prefix, mixed precision, pruned + int8) works from. */
export interface AutoGeneratorInput {
  model: Model;
  data: RecipeData;
  budget: AutoBudget;
  ctx: RecipeContext;
  hooks: AutoHooks;
}

export interface AutoOptions {
  budget: AutoBudget;
  target: AutoTarget;
  /** Training arrays with labels exist: pruning with recovery can be tried. */
  canTrain: boolean;
}

export interface AutoResult {
  candidates: CandidateOutcome[];
  /** The chosen candidate (the best feasible one, else the closest to the budget), with its model. */
  best: CandidateOutcome | undefined;
  model: Model | undefined;
  /** The models of the candidates run in this search (not those read from the cache). */
  models: Map<string, Model>;
  evals: Map<string, EvalReport>;
  /** Set when no candidate met the budget: by how much the chosen one misses. */
  missed?: string;
  /** Candidates not started because the time was up. */
  skipped: string[];
}

const quantize = (name: string, options: Record<string, unknown>, extra: Record<string, unknown>[] = []): AutoCandidate => ({
  name,
  recipe: { description: `shrink auto: ${name}`, steps: [{ optimize: {} }, ...extra, { quantize: options }] },
});

interface PlannedCandidate {
  candidate: AutoCandidate;
  /** Candidates whose outcome `when` reads: this one waits for them (a wave of the search). */
  after?: readonly string[];
  /** Tried only when this holds for what was measured so far. */
  when?: (done: ReadonlyMap<string, CandidateOutcome>, options: AutoOptions) => boolean;
}

const missed = (...names: string[]) => ({ after: names, when: (done: ReadonlyMap<string, CandidateOutcome>) => names.every((n) => done.get(n)?.feasible === false) });

/** The candidates in the order the search considers them. */
export const AUTO_PLAN: readonly PlannedCandidate[] = [
  { candidate: quantize('static-int8', { method: 'static-int8' }) },
  { candidate: quantize('static-int8-entropy', { method: 'static-int8', calibrator: 'entropy' }), ...missed('static-int8') },
  { candidate: quantize('static-int8-percentile', { method: 'static-int8', calibrator: 'percentile' }), ...missed('static-int8', 'static-int8-entropy') },
  // Bias correction moves each layer's output mean back to the float model's (PP-OCRv4 det: text-mask IoU 0.895 -> 0.963) at int8 speed.
  { candidate: quantize('static-int8-bias-correction', { method: 'static-int8', bias_correction: true }), ...missed('static-int8') },
  { candidate: quantize('static-int8-fp32-search', { method: 'static-int8', fp32_search: { tolerance_db: 20 } }), ...missed('static-int8', 'static-int8-entropy', 'static-int8-percentile', 'static-int8-bias-correction') },
  { candidate: quantize('dynamic-int8', { method: 'dynamic-int8' }) },
  { candidate: quantize('int8-weight', { method: 'int8-weight' }) },
  { candidate: quantize('int4', { method: 'int4' }) },
  { candidate: quantize('int4-gptq', { method: 'int4', algorithm: 'gptq' }), ...missed('int4') },
  { candidate: quantize('int4-asymmetric-b16', { method: 'int4', block_size: 16, symmetric: false }), ...missed('int4', 'int4-gptq') },
  { candidate: quantize('fp16', { method: 'fp16' }) },
  {
    candidate: quantize('channels-30-static-int8', { method: 'static-int8' }, [{ prune: { method: 'channels', sparsity: 0.3, epochs: 1 } }]),
    when: (_, options) => options.canTrain && options.target !== 'size',
  },
];

/** Runs the plan on `model`; `data` holds the tuning samples (and calibration, training arrays). */
export async function autoSearch(model: Model, data: RecipeData, options: AutoOptions, ctx: RecipeContext, hooks: AutoHooks): Promise<AutoResult> {
  const done = new Map<string, CandidateOutcome>();
  const evals = new Map<string, EvalReport>();
  const models = new Map<string, Model>();
  const skipped: string[] = [];
  // Decided: measured, cached, not wanted, or not started for lack of time.
  const decided = new Set<string>();
  let pending = [...AUTO_PLAN];
  const base = AUTO_PLAN[0].candidate;
  // Pruned + int8 without labels, when latency counts (with labels the plan's channels-30 candidate
  // trains on them). It runs right after the wave that measured all-int8: only a smaller network can
  // run faster than all-int8, while the calibrator fallbacks can at best match its speed, so a time
  // budget spent on them must not starve it.
  // Static int8 with a float prefix, right after all-int8 missed: the smallest prefix that holds the
  // budget on the tuning samples, which the pruned + int8 composite then quantizes with.
  let prefixTried = false;
  let floatPrefix: number | undefined;
  const tryFloatPrefix = async () => {
    const baseOutcome = done.get(base.name);
    if (prefixTried || baseOutcome === undefined || baseOutcome.bytes === 0 || baseOutcome.feasible) return;
    prefixTried = true;
    try {
      const found = await searchFloatPrefix({ model, data, budget: options.budget, ctx, hooks, base, baseLayers: baseOutcome.float_prefix_layers ?? 0 });
      for (const [name, m] of found.models) models.set(name, m);
      for (const [name, e] of found.evals) evals.set(name, e);
      for (const outcome of found.outcomes) {
        hooks.log(`auto: ${outcome.name}: ${outcome.cached ? 'cached (' : ''}${describe(outcome)}${outcome.cached ? ')' : ''}`);
        done.set(outcome.name, outcome);
      }
      skipped.push(...found.skipped);
      floatPrefix = found.layers;
    } catch (error) {
      hooks.log(`auto: float prefix not searched: ${(error as Error).message}`);
    }
  };
  let prunedTried = false;
  const tryPruned = async () => {
    const baseOutcome = done.get(base.name);
    if (prunedTried || options.canTrain || options.budget.maxDrop !== undefined || options.target === 'size' || data.training === undefined || baseOutcome === undefined || baseOutcome.bytes === 0) return;
    prunedTried = true;
    // With the time spent, what is cached is still read (a resumed search keeps its candidates).
    try {
      const pruned = await searchPrunedInt8({ model, data, budget: options.budget, ctx, hooks, floatPrefix });
      for (const [name, m] of pruned.models) models.set(name, m);
      for (const [name, e] of pruned.evals) evals.set(name, e);
      for (const outcome of pruned.outcomes) {
        hooks.log(`auto: ${outcome.name}: ${describe(outcome)}${outcome.superseded === undefined ? '' : ` (${outcome.superseded})`}`);
        done.set(outcome.name, outcome);
      }
    } catch (error) {
      if (error instanceof PrunedSearchTimeUp) skipped.push('channels-groups-static-int8');
      else hooks.log(`auto: pruned + int8 not searched: ${(error as Error).message}`);
    }
  };
  while (pending.length > 0) {
    // A wave: every candidate whose prerequisites are decided. On a queue it runs at once.
    const wave = pending.filter((p) => (p.after ?? []).every((n) => decided.has(n)));
    pending = pending.filter((p) => !wave.includes(p));
    const toRun: AutoCandidate[] = [];
    for (const { candidate, when } of wave) {
      decided.add(candidate.name);
      if (when !== undefined && !when(done, options)) continue;
      const cached = hooks.cached(candidate);
      if (cached !== undefined) {
        hooks.log(`auto: ${candidate.name}: cached (${describe(cached)})`);
        done.set(candidate.name, { ...cached, cached: true });
        continue;
      }
      // The first candidate always runs, so even a spent budget leaves a model to write.
      if (hooks.timeLeft() <= 0 && done.size + toRun.length > 0) skipped.push(candidate.name);
      else toRun.push(candidate);
    }
    const outcomes: CandidateOutcome[] = [];
    if (hooks.evaluateMany !== undefined && toRun.length > 0) {
      hooks.log(`auto: ${toRun.map((c) => c.name).join(', ')}: sent to the workers`);
      outcomes.push(...(await hooks.evaluateMany(toRun)));
    } else {
      for (const candidate of toRun) {
        hooks.log(`auto: ${candidate.name}: running`);
        const evaluated = await evaluateCandidate(model, candidate, data, options.budget, ctx, hooks.latency);
        if (evaluated.model !== undefined) models.set(candidate.name, evaluated.model);
        if (evaluated.fidelity !== undefined) evals.set(candidate.name, evaluated.fidelity);
        outcomes.push(evaluated.outcome);
      }
    }
    for (const outcome of outcomes) {
      hooks.log(`auto: ${outcome.name}: ${describe(outcome)}`);
      hooks.store(outcome);
      done.set(outcome.name, outcome);
    }
    await tryFloatPrefix();
    await tryPruned();
  }
  const baseOutcome = done.get(base.name);
  // Per-layer mixed precision from the all-int8 candidate, when latency counts and it was measured.
  if (hooks.layerProfile !== undefined && hooks.profileNodes !== undefined && options.target !== 'size' && baseOutcome !== undefined && baseOutcome.bytes > 0) {
    if (hooks.timeLeft() <= 0) skipped.push(`${base.name}-mixed`);
    else {
      try {
        const mixed = await searchMixedPrecision({ model, data, budget: options.budget, ctx, hooks, base, baseFeasible: baseOutcome.feasible });
        for (const [name, m] of mixed.models) models.set(name, m);
        for (const [name, e] of mixed.evals) evals.set(name, e);
        for (const outcome of mixed.outcomes) {
          hooks.log(`auto: ${outcome.name}: ${describe(outcome)}${outcome.latency_predicted ? ' (predicted latency)' : ''}`);
          done.set(outcome.name, outcome);
        }
      } catch (error) {
        hooks.log(`auto: per-layer mixed precision not searched: ${(error as Error).message}`);
      }
    }
  }
  // For speed, the finalists are compared in one timing, not in separate ones from different minutes.
  const measured = options.target === 'size' || hooks.latencyTogether === undefined ? [...done.values()] : await retimeFinalists([...done.values()], models, evals, hooks.latencyTogether, model, data, ctx, hooks.log);
  const candidates = markPareto(measured);
  const best = choose(candidates, options);
  let chosen: Model | undefined;
  if (best !== undefined) {
    chosen = models.get(best.name);
    if (chosen === undefined) {
      // A cached winner: its recipe is deterministic, so run it once more for the model.
      hooks.log(`auto: ${best.name}: rebuilding the chosen model from its recipe`);
      const result = await runRecipe(model, recipeFromData(best.recipe, best.name), data, ctx);
      chosen = result.model;
      models.set(best.name, chosen);
      if (result.report.fidelity !== undefined) evals.set(best.name, result.report.fidelity);
    }
  }
  return { candidates, best, model: chosen, models, evals, skipped, missed: best !== undefined && !best.feasible ? best.why_not : undefined };
}

/** Runs one candidate's recipe on `model` and measures it (a failure is an outcome too). */
export async function evaluateCandidate(
  model: Model,
  candidate: AutoCandidate,
  data: RecipeData,
  budget: AutoBudget,
  ctx: RecipeContext,
  latency: AutoHooks['latency'],
): Promise<{ outcome: CandidateOutcome; model?: Model; fidelity?: EvalReport }> {
  const started = performance.now();
  const inputBytes = data.inputBytes ?? writeModel(model).byteLength;
  try {
    const result = await runRecipe(model, recipeFromData(candidate.recipe, candidate.name), data, ctx);
    const bytes = writeModel(result.model);
    const outcome = measure(candidate, result.report, bytes.byteLength, inputBytes, await latency(bytes), budget);
    outcome.seconds = (performance.now() - started) / 1000;
    // What the float-prefix ladder starts above when static int8's default already keeps a prefix.
    for (const step of result.report.steps) {
      const layers = step.step === 'quantize' ? Number(step.report.stats.float_prefix_layers) : Number.NaN;
      if (Number.isFinite(layers)) outcome.float_prefix_layers = layers;
    }
    return { outcome, model: result.model, fidelity: result.report.fidelity };
  } catch (error) {
    const why = `failed: ${(error as Error).message}`;
    return { outcome: { name: candidate.name, recipe: candidate.recipe, bytes: 0, size_ratio: 0, feasible: false, why_not: why, seconds: (performance.now() - started) / 1000 } };
  }
}

function measure(candidate: AutoCandidate, report: RecipeReport, bytes: number, inputBytes: number, timing: { original_ms: number; candidate_ms: number }, budget: AutoBudget): CandidateOutcome {
  const outcome: CandidateOutcome = {
    name: candidate.name,
    recipe: candidate.recipe,
    bytes,
    size_ratio: bytes / inputBytes,
    latency: { ...timing, speedup: timing.original_ms / timing.candidate_ms },
    feasible: true,
    seconds: 0,
  };
  const fidelity = report.fidelity;
  if (fidelity === undefined) return { ...outcome, feasible: false, why_not: `not measured: ${report.fidelity_skipped ?? 'no data'}` };
  const cosines = Object.values(fidelity.outputs).map((o) => (typeof o.cosine === 'number' ? o.cosine : Number.NaN));
  outcome.cosine = Math.min(...cosines);
  const a = fidelity.accuracy;
  if (a !== undefined) {
    const disagreement = 1 - (fidelity.outputs[a.output]?.top1_agreement ?? 0);
    outcome.accuracy = { original: a.original, candidate: a.candidate, drop_points: (a.original - a.candidate) * 100, error_points: 100 * Math.sqrt(disagreement / Math.max(1, a.total)) };
  }
  if (budget.maxDrop !== undefined) {
    const acc = outcome.accuracy;
    if (acc === undefined) return { ...outcome, feasible: false, why_not: 'no accuracy (labels) to hold --max-drop to' };
    // Held-out data is what counts: a drop that fits only by luck of the tuning samples does not.
    if (acc.drop_points + acc.error_points > budget.maxDrop) {
      return { ...outcome, feasible: false, why_not: `accuracy drops ${acc.drop_points.toFixed(2)} ± ${acc.error_points.toFixed(2)} points (one standard error on ${a?.total} samples), over --max-drop ${budget.maxDrop}` };
    }
  }
  if (fidelity.custom !== undefined && typeof fidelity.custom.mean === 'number') outcome.metric = fidelity.custom.mean;
  if (budget.minMetric !== undefined) {
    if (outcome.metric === undefined) return { ...outcome, feasible: false, why_not: 'the metric gave no number to hold --min-metric to' };
    if (outcome.metric < budget.minMetric) return { ...outcome, feasible: false, why_not: `${fidelity.custom?.name} ${outcome.metric.toFixed(4)}, under --min-metric ${budget.minMetric}` };
  }
  const minCosine = budget.minCosine ?? (budget.maxDrop === undefined && budget.minMetric === undefined ? 0.99 : undefined);
  if (minCosine !== undefined && !(outcome.cosine >= minCosine)) return { ...outcome, feasible: false, why_not: `lowest cosine ${outcome.cosine.toFixed(6)}, ${(minCosine - outcome.cosine).toFixed(6)} under ${minCosine}` };
  return outcome;
}

/** What `candidateQuality` measures for these outcomes, in words. */
export function qualityName(outcomes: readonly CandidateOutcome[]): string {
  if (outcomes.some((o) => o.metric !== undefined)) return 'the --metric mean';
  return outcomes.some((o) => o.accuracy !== undefined) ? 'accuracy change, points' : 'lowest output cosine';
}

/** Quality for ranking: higher is better (the user's metric, else negative accuracy drop, else cosine). */
export function candidateQuality(o: CandidateOutcome): number {
  return quality(o);
}

function quality(o: CandidateOutcome): number {
  if (o.metric !== undefined) return o.metric;
  return o.accuracy !== undefined ? -o.accuracy.drop_points : (o.cosine ?? Number.NEGATIVE_INFINITY);
}

/** Speed-up over the input, timed interleaved with it: steadier on a busy machine than either latency alone. */
const speed = (o: CandidateOutcome) => o.latency?.speedup ?? 0;

function markPareto(outcomes: CandidateOutcome[]): CandidateOutcome[] {
  const measured = outcomes.filter((o) => o.feasible && o.latency !== undefined && o.latency_predicted !== true);
  return outcomes.map((o) => {
    if (!measured.includes(o)) return { ...o, pareto: false };
    const dominated = measured.some(
      (p) =>
        p !== o &&
        quality(p) >= quality(o) &&
        p.bytes <= o.bytes &&
        speed(p) >= speed(o) &&
        (quality(p) > quality(o) || p.bytes < o.bytes || speed(p) > speed(o)),
    );
    return { ...o, pareto: !dominated };
  });
}

/**
 * The best feasible candidate for the target: smallest file (size), fastest (latency), or the
 * smallest that is faster than the input, else the smallest (both). Without a feasible one, the
 * one closest to the budget.
 */
function choose(outcomes: CandidateOutcome[], options: AutoOptions): CandidateOutcome | undefined {
  // A predicted latency is not compared with timed ones: those candidates are not chosen for speed.
  const feasible = outcomes.filter((o) => o.feasible && o.superseded === undefined && (o.latency_predicted !== true || options.target === 'size'));
  const smallest = (list: CandidateOutcome[]) => [...list].sort((a, b) => a.bytes - b.bytes || quality(b) - quality(a))[0];
  const fastest = (list: CandidateOutcome[]) => [...list].sort((a, b) => (b.latency?.speedup ?? 0) - (a.latency?.speedup ?? 0) || a.bytes - b.bytes)[0];
  if (feasible.length > 0) {
    if (options.target === 'size') return smallest(feasible);
    // The finalists were timed together (auto-finalists.ts): the fastest is among them, on that timing.
    const together = feasible.filter((o) => o.retimed === true);
    if (options.target === 'latency') return fastest(together.length > 0 ? together : feasible);
    const faster = feasible.filter((o) => (o.latency?.speedup ?? 0) > 1);
    return smallest(faster.length > 0 ? faster : feasible);
  }
  const measured = outcomes.filter((o) => o.bytes > 0);
  return [...measured].sort((a, b) => quality(b) - quality(a))[0];
}

function describe(o: CandidateOutcome): string {
  if (o.bytes === 0) return o.why_not ?? 'failed';
  const q = o.accuracy !== undefined ? `accuracy ${(o.accuracy.candidate * 100).toFixed(2)}% (${o.accuracy.drop_points > 0 ? '-' : '+'}${Math.abs(o.accuracy.drop_points).toFixed(2)} ± ${o.accuracy.error_points.toFixed(2)} points)` : `cosine ${o.cosine?.toFixed(6)}`;
  const speed = `${o.metric === undefined ? '' : `, metric ${o.metric.toFixed(4)}`}${o.latency === undefined ? '' : `, ${o.latency.speedup.toFixed(2)}x speed`}`;
  return `${q}, ${o.size_ratio.toFixed(3)}x size${speed}${o.feasible ? '' : `; outside the budget: ${o.why_not}`}`;
}

export { describe as describeOutcome };
