// Latency-aware placement for static int8: some layers run slower in onnxruntime's integer kernels
// than in its float ones on a given machine (PP-OCR cls on x86: depthwise QLinearConv 4-6x slower
// than the NCHWc float kernel, a uint8 MaxPool 10x slower), so the all-int8 model can be slower than
// the original. Both models are profiled once (kernel times per node, through a profiler the caller
// gives: onnxruntime's profiler writes files, so it lives in the Node adapter). The profile proposes
// a few mixed models: the layers whose float kernel plus the converts at their edges would cost less
// than their int8 kernel (latency-model.ts), and whole groups of layers of one kind (layer-groups.ts:
// depthwise Convs, MaxPools, squeeze-and-excitation gates, ...) whose kernels are faster in float,
// added one group at a time. Each is quantized again with its layers left in float32 and all are
// timed side by side with all-int8: the fastest is kept. The profile only proposes; the timing
// decides, because a float island in a QDQ model costs more or less than its kernels (layout
// reorders, lost fusions, islands that merge): on cls the per-layer prediction saw 9.14 -> 8.87 ms
// while depthwise + MaxPool in float timed 10-15% faster than all-int8 (and than float32).
import { benchmarkModels } from '../eval/benchmark.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { writeModel } from '../onnx/model-io.js';
import type { RecipeContext } from './context.js';
import { buildLatencyModel, floatCost, type LatencyModel, type NodeProfile, predictLatency } from './latency-model.js';
import { layerGroups } from './layer-groups.js';

/** Kernel times of one model on `inputs` (onnxruntime's profiler, 1 thread, level 'all'). */
export type NodeProfiler = (model: Uint8Array, inputs: Readonly<Record<string, Tensor>>) => Promise<NodeProfile>;

export interface LatencyPlacementOptions {
  profile: NodeProfiler;
  /** What to profile and time on (the speed check's input: the first sample). */
  inputs: Readonly<Record<string, Tensor>>;
  /**
   * Mixed models are tried only when all-int8 times less than this much faster than float32
   * (default 1.2): each quantizes again (bias correction included), and where int8 already wins
   * the profile's proposals mostly lose when timed (PP-OCRv4 det: 147 -> 112 ms predicted,
   * 154 -> 173 ms timed; float islands pay layout reorders the profile does not see).
   */
  tryBelowSpeedup?: number;
  /**
   * ... and when the largest proposal's predicted gain (its kernels' difference, converts left out
   * for the groups) is at least this share of the int8 latency (default 0.05: 5%).
   */
  minPredictedGain?: number;
  /** ... and one is kept only when it times at least this much faster than all-int8 (default 0.03). */
  minTimedGain?: number;
  /** Groups added one at a time, at most (default 4: at most 6 models quantized again and timed). */
  maxGroups?: number;
  /** No further mixed model is built once building them has taken this long (ms; default: no limit). */
  buildBudgetMs?: number;
}

/** One mixed model the profile proposed: which groups (or 'per-layer') it keeps in float32. */
export interface PlacementCandidate {
  name: string;
  keep: string[];
  /** Predicted milliseconds saved against all-int8 (kernels; the per-layer proposal with its converts). */
  predicted_gain_ms: number;
}

export interface LatencyPlacementReport {
  /** Layers the profile found faster in float32 one at a time (with their predicted saving, ms). */
  proposed: { node: string; op: string; saves_ms: number }[];
  /** Latency of all-int8 (the profile's median run) and the per-layer proposal's predicted from the kernel times. */
  predicted_int8_ms: number;
  predicted_mixed_ms?: number;
  /** The mixed models proposed, and what each timed (median, 1 thread, interleaved with all-int8) when built. */
  candidates?: { name: string; layers: number; predicted_gain_ms: number; timed_ms?: number }[];
  /** All-int8 and the fastest mixed model, timed side by side (median, 1 thread), when any was built. */
  timed?: { int8_ms: number; mixed_ms: number; runs: number };
  /** Float32 and all-int8 timed side by side (median, 1 thread) to decide whether mixed models are tried, and what the profile said. */
  gate?: { float32_ms: number; int8_ms: number; profiled_speedup: number };
  /** Layers the written model keeps in float32 for speed (empty: all-int8 was kept). */
  kept_float: string[];
  /** The candidate kept ('' none). */
  kept_candidate?: string;
  /** Why the all-int8 model was kept, when it was. */
  reason?: string;
}

/**
 * Returns the fastest of the all-int8 `quantized` and the mixed models the profile proposes
 * (`requantize(keep)` builds one), with what was measured.
 */
export async function placeByLatency(
  original: Model,
  quantized: Model,
  requantize: (keep: ReadonlySet<string>) => Promise<Model>,
  options: LatencyPlacementOptions,
  ctx: RecipeContext,
): Promise<{ model: Model; report: LatencyPlacementReport }> {
  const floatBytes = writeModel(original);
  const int8Bytes = writeModel(quantized);
  ctx.progress?.start('placement: profiling float32 and int8 kernels');
  const [floatProfile, int8Profile] = [await options.profile(floatBytes, options.inputs), await options.profile(int8Bytes, options.inputs)];
  ctx.progress?.done();
  const latency = buildLatencyModel(original, quantized, { float: floatProfile, int8: int8Profile }, { float_ms: floatProfile.run_ms, int8_ms: int8Profile.run_ms });
  const proposed = slowInt8Layers(latency);
  const report: LatencyPlacementReport = { proposed, predicted_int8_ms: latency.int8_ms, kept_float: [] };
  if (proposed.length > 0) report.predicted_mixed_ms = predictLatency(latency, proposed.map((p) => p.node));
  // The gate is timed, not profiled: kernel sums can call all-int8 faster when it is not (PP-OCR cls
  // at batch 8, quiet: profiled 1.21x, timed 0.88x), and then no mixed model would be tried.
  const gate = await benchmarkModels(
    ctx.ort,
    [
      { name: 'float32', source: floatBytes, model: original },
      { name: 'int8', source: int8Bytes, model: quantized },
    ],
    { runs: 30, warmup: 2, threads: 1, maxMs: 1500, inputs: [options.inputs, options.inputs] },
  );
  const speedup = gate.models[0].latency_ms.median / gate.models[1].latency_ms.median;
  report.gate = { float32_ms: gate.models[0].latency_ms.median, int8_ms: gate.models[1].latency_ms.median, profiled_speedup: round(floatProfile.run_ms / int8Profile.run_ms) };
  if (speedup >= (options.tryBelowSpeedup ?? 1.2)) {
    return { model: quantized, report: { ...report, reason: `all-int8 already times ${speedup.toFixed(2)}x faster than float32` } };
  }
  const candidates = placementCandidates(latency, layerGroups(quantized), proposed, options.maxGroups ?? 4);
  report.candidates = candidates.map((c) => ({ name: c.name, layers: c.keep.length, predicted_gain_ms: round(c.predicted_gain_ms) }));
  if (candidates.length === 0) return { model: quantized, report: { ...report, reason: 'no layer is predicted faster in float32' } };
  const best = Math.max(...candidates.map((c) => c.predicted_gain_ms));
  if (best < latency.int8_ms * (options.minPredictedGain ?? 0.05)) {
    return { model: quantized, report: { ...report, reason: `the predicted gain is too small (${latency.int8_ms.toPrecision(3)} -> ${(latency.int8_ms - best).toPrecision(3)} ms)` } };
  }
  // Built by predicted gain, the largest first, while the time spent building stays in budget: a
  // model that quantizes slowly (bias correction on a large one) gets fewer candidates, not hours.
  const byGain = [...candidates].sort((a, b) => b.predicted_gain_ms - a.predicted_gain_ms);
  const built: { candidate: PlacementCandidate; model: Model }[] = [];
  const buildStarted = performance.now();
  for (const [i, candidate] of byGain.entries()) {
    if (i > 0 && performance.now() - buildStarted > (options.buildBudgetMs ?? Infinity)) break;
    ctx.progress?.start(`placement: quantizing mixed model ${i + 1}/${byGain.length} (${candidate.name} in float32)`);
    built.push({ candidate, model: await requantize(new Set(candidate.keep)) });
    ctx.progress?.done();
  }
  ctx.progress?.start(`placement: timing all-int8 and ${built.length} mixed models`);
  const timing = await benchmarkModels(
    ctx.ort,
    [{ name: 'int8', source: int8Bytes, model: quantized }, ...built.map((b) => ({ name: b.candidate.name, source: writeModel(b.model), model: b.model }))],
    { runs: 50, warmup: 2, threads: 1, maxMs: 1500 + 750 * built.length, inputs: Array.from({ length: built.length + 1 }, () => options.inputs) },
  );
  ctx.progress?.done();
  const [int8, ...mixed] = timing.models;
  const timedMs = mixed.map((m) => m.latency_ms.median);
  const timedByName = new Map(built.map((b, i) => [b.candidate.name, timedMs[i]]));
  report.candidates = report.candidates.map((c) => (timedByName.has(c.name) ? { ...c, timed_ms: round(timedByName.get(c.name) as number) } : c));
  const fastest = timedMs.indexOf(Math.min(...timedMs));
  report.timed = { int8_ms: int8.latency_ms.median, mixed_ms: timedMs[fastest], runs: timing.runs };
  // The fastest candidate is the one kept, when it beats all-int8 by enough.
  const choice = fastestCandidate(int8.latency_ms.median, timedMs, options.minTimedGain ?? 0.03);
  if (choice === undefined) return { model: quantized, report: { ...report, reason: 'no mixed model was faster when timed' } };
  const kept = built[choice];
  return { model: kept.model, report: { ...report, kept_float: kept.candidate.keep, kept_candidate: kept.candidate.name } };
}

/**
 * The mixed models worth timing: the groups whose layers' kernels are faster in float32 (their
 * profiled int8 time minus float time, summed over the group), the fastest-gaining first, kept in
 * float one more group at a time (up to `maxGroups`): islands of neighbouring groups merge and save
 * their converts, which one group alone does not show. Then every group in float but those whose
 * kernels are faster in int8, and the per-layer proposal, when they differ.
 * Groups gaining less than 1% of the int8 latency are left out (noise in the profile); a group's
 * layers all stay float together, even those that gain nothing alone.
 */
export function placementCandidates(latency: LatencyModel, groups: ReadonlyMap<string, readonly string[]>, proposed: readonly { node: string }[], maxGroups: number): PlacementCandidate[] {
  // A layer no float kernel claimed was fused into a neighbour's there (a hard-swish Mul into its
  // Conv): alone in float it would run unfused, so the profile cannot say what it saves (nothing).
  const saves = (n: string) => {
    const layer = latency.layers[n];
    return layer === undefined || layer.float_ms <= 0 ? 0 : layer.int8_ms - layer.float_ms;
  };
  const gain = (names: readonly string[]) => names.reduce((s, n) => s + saves(n), 0);
  const faster = [...groups]
    .map(([key, names]) => ({ key, names: names.filter((n) => latency.layers[n] !== undefined), gain: gain(names) }))
    .filter((g) => g.names.length > 0 && g.gain > 0.01 * latency.int8_ms)
    .sort((a, b) => b.gain - a.gain)
    .slice(0, Math.max(0, maxGroups));
  const candidates: PlacementCandidate[] = [];
  for (let k = 1; k <= faster.length; k++) {
    const chosen = faster.slice(0, k);
    candidates.push({ name: chosen.map((g) => g.key).join(' + '), keep: chosen.flatMap((g) => g.names), predicted_gain_ms: chosen.reduce((s, g) => s + g.gain, 0) });
  }
  // The other end: every layer float but the groups whose kernels profile faster in int8. Layers
  // fused into a neighbour in the float model (a hard-swish Mul) gain nothing in the profile yet,
  // all float together, can time faster than any union above (cls at batch 1: 1.05 ms against
  // 1.24 for the unions and 1.35-1.44 for float32).
  const int8Faster = new Set([...groups].filter(([, names]) => gain(names) < 0).map(([key]) => key));
  const rest = [...groups].filter(([key]) => !int8Faster.has(key)).flatMap(([, names]) => names.filter((n) => latency.layers[n] !== undefined));
  const largest = candidates.at(-1)?.keep ?? [];
  if (int8Faster.size > 0 && rest.length > largest.length) {
    candidates.push({ name: `all but ${[...int8Faster].join(', ')}`, keep: rest, predicted_gain_ms: gain(rest) });
  }
  const perLayer = proposed.map((p) => p.node);
  const same = (keep: readonly string[]) => keep.length === perLayer.length && perLayer.every((n) => keep.includes(n));
  if (perLayer.length > 0 && !candidates.some((c) => same(c.keep))) {
    candidates.push({ name: 'per-layer proposal', keep: perLayer, predicted_gain_ms: latency.int8_ms - predictLatency(latency, perLayer) });
  }
  return candidates;
}

/** Index of the fastest timed candidate when it beats all-int8 by `minGain`, else undefined. */
export function fastestCandidate(int8Ms: number, timedMs: readonly number[], minGain: number): number | undefined {
  if (timedMs.length === 0) return undefined;
  const fastest = timedMs.indexOf(Math.min(...timedMs));
  return timedMs[fastest] <= int8Ms * (1 - minGain) ? fastest : undefined;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Layers whose float32 kernel, with the converts at its edges to int8 neighbours, is predicted
 * faster than its int8 kernel. Chosen together: a layer next to another chosen one needs no
 * convert between them, so the set grows until it is stable.
 */
export function slowInt8Layers(latency: LatencyModel): { node: string; op: string; saves_ms: number }[] {
  const chosen = new Set<string>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const name of Object.keys(latency.layers)) {
      if (chosen.has(name)) continue;
      if (floatCost(latency, name, chosen) < 0) {
        chosen.add(name);
        changed = true;
      }
    }
  }
  return [...chosen]
    .map((node) => ({ node, op: latency.layers[node].op, saves_ms: -floatCost(latency, node, chosen) }))
    .sort((a, b) => b.saves_ms - a.saves_ms);
}
