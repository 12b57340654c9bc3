// Latency-aware placement for static int8: some layers run slower in onnxruntime's integer kernels
// than in its float ones on a given machine (PP-OCR cls on x86: depthwise QLinearConv 4-6x slower
// than the NCHWc float kernel, a uint8 MaxPool 10x slower), so the all-int8 model can be slower than
// the original. Both models are profiled once (kernel times per node, through a profiler the caller
// gives: onnxruntime's profiler writes files, so it lives in the Node adapter), the layers whose
// float kernel plus the converts at their edges would cost less than their int8 kernel are picked
// (latency-model.ts), the model is quantized again with those left in float32, and the two results
// are timed side by side: the faster one is kept. The profile only proposes; the timing decides,
// because float islands in a QDQ model cost more than their kernels (layout reorders, lost fusions).
import { benchmarkModels } from '../eval/benchmark.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { writeModel } from '../onnx/model-io.js';
import type { RecipeContext } from './context.js';
import { buildLatencyModel, floatCost, type LatencyModel, type NodeProfile, predictLatency } from './latency-model.js';

/** Kernel times of one model on `inputs` (onnxruntime's profiler, 1 thread, level 'all'). */
export type NodeProfiler = (model: Uint8Array, inputs: Readonly<Record<string, Tensor>>) => Promise<NodeProfile>;

export interface LatencyPlacementOptions {
  profile: NodeProfiler;
  /** What to profile and time on (the speed check's input: the first sample). */
  inputs: Readonly<Record<string, Tensor>>;
  /**
   * The mixed model is tried only when all-int8 profiles less than this much faster than float32
   * (default 1.2): building it quantizes again (bias correction included), and where int8 already
   * wins the profile's proposals mostly lose when timed (PP-OCRv4 det: 147 -> 112 ms predicted,
   * 154 -> 173 ms timed; float islands pay layout reorders the profile does not see).
   */
  tryBelowSpeedup?: number;
  /** ... and when the profile predicts at least this gain (default 0.05: 5%). */
  minPredictedGain?: number;
  /** ... and kept only when it times at least this much faster than all-int8 (default 0.03). */
  minTimedGain?: number;
}

export interface LatencyPlacementReport {
  /** Layers the profile found faster in float32 (with their predicted saving, ms). */
  proposed: { node: string; op: string; saves_ms: number }[];
  /** Latency of all-int8 (the profile's median run) and the mixed model's predicted from the kernel times. */
  predicted_int8_ms: number;
  predicted_mixed_ms?: number;
  /** Timed side by side (median, 1 thread), when a mixed model was built. */
  timed?: { int8_ms: number; mixed_ms: number; runs: number };
  /** Layers the written model keeps in float32 for speed (empty: all-int8 was kept). */
  kept_float: string[];
  /** Why the all-int8 model was kept, when it was. */
  reason?: string;
}

/**
 * Returns the faster of the all-int8 `quantized` and the same with the profile's slow int8 layers
 * left in float32 (`requantize(keep)` builds it), with what was measured.
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
  const keep = new Set(proposed.map((p) => p.node));
  const report: LatencyPlacementReport = { proposed, predicted_int8_ms: latency.int8_ms, kept_float: [] };
  if (keep.size === 0) return { model: quantized, report: { ...report, reason: 'no layer is predicted faster in float32' } };
  const speedup = floatProfile.run_ms / int8Profile.run_ms;
  if (speedup >= (options.tryBelowSpeedup ?? 1.2)) {
    return { model: quantized, report: { ...report, reason: `all-int8 already profiles ${speedup.toFixed(2)}x faster than float32` } };
  }
  const predicted = predictLatency(latency, keep);
  report.predicted_mixed_ms = predicted;
  if (predicted > latency.int8_ms * (1 - (options.minPredictedGain ?? 0.05))) {
    return { model: quantized, report: { ...report, reason: `the predicted gain is too small (${latency.int8_ms.toPrecision(3)} -> ${predicted.toPrecision(3)} ms)` } };
  }
  const mixed = await requantize(keep);
  const timing = await benchmarkModels(
    ctx.ort,
    [
      { name: 'int8', source: int8Bytes, model: quantized },
      { name: 'mixed', source: writeModel(mixed), model: mixed },
    ],
    { runs: 50, warmup: 2, threads: 1, maxMs: 1500, inputs: [options.inputs, options.inputs] },
  );
  const [int8, mixedResult] = timing.models;
  report.timed = { int8_ms: int8.latency_ms.median, mixed_ms: mixedResult.latency_ms.median, runs: timing.runs };
  if (mixedResult.latency_ms.median > int8.latency_ms.median * (1 - (options.minTimedGain ?? 0.03))) {
    return { model: quantized, report: { ...report, reason: 'the mixed model was not faster when timed' } };
  }
  return { model: mixed, report: { ...report, kept_float: [...keep] } };
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
