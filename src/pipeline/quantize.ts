// The quantize recipe step: a method from the registry (with a precision config's other
// precisions as passes of their own), optionally the fp32 search, then the proof: fidelity
// against the original on samples, a verdict that says what to try when the result is damaged,
// and a gate that refuses it. Takes a Model and returns a new one; the input is not changed.
// The CLI, the page and the automatic search all quantize through this function.
import { type CollectedStatistics, collectStatistics, type StatisticsCollector } from '../eval/activation-stats.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import { exactNamePattern, firstAndLastLayers } from '../methods/quantize/first-last-layers.js';
import { type QuantizeStep, quantizeSteps } from '../methods/quantize/mixed-precision.js';
import { nodeSelector } from '../methods/quantize/node-selector.js';
import { type QuantizeMethod, type QuantizeMethodName, type QuantizeSettings, quantizeMethod } from '../methods/quantize/registry.js';
import { modelBytes } from '../onnx/model-size.js';
import type { OutputOffsetFitOptions } from '../methods/quantize/output-offsets.js';
import type { RecipeContext } from './context.js';
import { fitOutputBiasOnSamples, type OutputBiasReport } from './fit-output-bias.js';
import { comparisonWontFit, type FidelityOptions, measureFidelity } from './fidelity.js';
import { readFloatInputs } from './float-inputs.js';
import { type LatencyPlacementOptions, type LatencyPlacementReport, placeByLatency } from './latency-placement.js';
import { type Fp32SearchRound, searchFp32Layers } from './fp32-search.js';
import { checkGate, type Gate, GateFailedError, isEmptyGate } from './gate.js';
import { type PassReport, runPass } from './pass.js';
import { buildQuantizeReport, type QuantizeReport } from './quantize-report.js';
import { type VerdictThresholds, verdictOf } from './verdict.js';

export interface QuantizeOptions extends QuantizeSettings {
  method: QuantizeMethodName;
  /** Keep layers in float32 from the input on until no layer's SQNR is below `toleranceDb`. */
  fp32Search?: {
    toleranceDb: number;
    /** At most this many quantize-and-compare rounds (default 8). */
    maxRounds?: number;
    /** Samples to compare layer by layer on (default: the fidelity samples, else the calibration samples). */
    samples?: SampleSource;
  };
  /**
   * static-int8: profile the float32 and int8 models and leave in float32 the layers whose int8
   * kernels are slower on this machine, when the result times faster (latency-placement.ts).
   */
  latencyPlacement?: LatencyPlacementOptions;
  /** Where and how to measure the result; without it fidelity is not measured (`fidelitySkipped` says why). */
  fidelity?: FidelityOptions;
  /** Why fidelity is not measured, when `fidelity` is absent (shown in the report and the verdict). */
  fidelitySkipped?: string;
  /** Figures the result must reach; a miss throws GateFailedError. */
  gate?: Gate;
  /** When the verdict turns into a warning (default cosine 0.99, top-1 agreement 98%). */
  verdict?: VerdictThresholds;
  /**
   * Fitted output offsets on `value` (the logits) after quantizing, fitted on `samples` (the
   * calibration samples; never the fidelity data, which judges the result): fit-output-bias.ts.
   */
  outputBias?: OutputOffsetFitOptions & { value: string; samples: SampleSource; limit?: number };
}

export interface QuantizeResult {
  model: Model;
  report: QuantizeReport;
}

/** Quantizes a copy of `model`; throws GateFailedError when `options.gate` is missed. */
export async function quantize(model: Model, options: QuantizeOptions, ctx: RecipeContext): Promise<QuantizeResult> {
  const method = quantizeMethod(options.method);
  if (method.pass === undefined) throw new Error(`quantize: method '${method.name}' is not implemented yet`);
  if (method.name === 'static-int8' && options.calibration === undefined) {
    throw new Error('quantize: static-int8 needs calibration data: give --calib DATA (an ONNX test-data folder, .npy, .npz or .json)');
  }
  const { method: _method, fp32Search, latencyPlacement, fidelity, fidelitySkipped, gate, verdict, outputBias: outputBiasOptions, ...settings } = options;
  const placement = method.name === 'static-int8' && fp32Search === undefined ? latencyPlacement : undefined;
  // The first and last layers are named before the method runs (its own graph clean-up may rename).
  const ends = firstAndLastLayers(model, settings.keepFirstLast ?? 0).map(exactNamePattern);
  const resolved: QuantizeSettings = ends.length === 0 ? settings : { ...settings, exclude: [...(settings.exclude ?? []), ...ends] };
  const plan = quantizeSteps(method, resolved);
  const outcomes = new WeakMap<Model, { main: PassReport; extra: PassReport[] }>();
  // The fp32 search and the placement quantize more than once: calibration statistics of the float
  // graph do not depend on which nodes stay float, so they are collected once and reused.
  const stepCtx = fp32Search === undefined && placement === undefined ? ctx : { ...ctx, collectStatistics: reusedStatistics(ctx.collectStatistics ?? ((m, values, samples, o) => collectStatistics(ctx.ort, m, values, samples, o))) };
  /** Every step on a fresh copy of the input, with `keep` left in float32 by the main method. */
  const quantizeCopy = async (keep: ReadonlySet<string>, mainOverrides: Partial<QuantizeSettings> = {}): Promise<Model> => {
    const copy = model.clone();
    const kept = [...keep].map(exactNamePattern);
    const reports = new Map<QuantizeStep, PassReport>();
    for (const step of plan.steps) {
      const pass = step.method.pass;
      if (pass === undefined) throw new Error(`quantize: method '${step.method.name}' is not implemented yet`);
      const stepSettings = step !== plan.main ? step.settings : { ...step.settings, ...mainOverrides, ...(kept.length > 0 ? { exclude: [...(step.settings.exclude ?? []), ...kept] } : {}) };
      reports.set(step, await runPass(pass, copy, step.method.options(stepSettings) as never, stepCtx));
      // Excluded layers stay float at run time only when they read float (float-inputs.ts).
      if (step === plan.main && step.method.name === 'static-int8' && (stepSettings.exclude ?? []).length > 0) {
        const selectors = (stepSettings.exclude ?? []).map((text) => nodeSelector(text, 'exclude'));
        readFloatInputs(copy, copy.graph.nodes.filter((node) => selectors.some((s) => s.matches(node))));
      }
    }
    outcomes.set(copy, {
      main: reports.get(plan.main) as PassReport,
      extra: plan.steps.filter((s) => s !== plan.main).map((s) => reports.get(s) as PassReport),
    });
    return copy;
  };

  let candidate: Model;
  let search: { rounds: Fp32SearchRound[]; kept: string[] } | undefined;
  let placed: LatencyPlacementReport | undefined;
  if (fp32Search === undefined) {
    const started = performance.now();
    candidate = await quantizeCopy(new Set());
    if (placement !== undefined) {
      // The mixed models may take 3 times what all-int8 took to build (10 s at least).
      const buildBudgetMs = placement.buildBudgetMs ?? Math.max(10_000, 3 * (performance.now() - started));
      // 'auto' bias correction turns on for shallow models: a mixed model is shallower than its
      // all-int8 one (cls: 54 -> 43 int8 layers deep), so it would be corrected where all-int8 was
      // not (a different model, and ~10x the time to build). It gets all-int8's decision.
      const stats = outcomes.get(candidate)?.main.stats ?? {};
      const overrides: Partial<QuantizeSettings> = stats.biasCorrectionAuto === 1 && stats.biasCorrectionOn === 0 ? { biasCorrection: false } : {};
      ({ model: candidate, report: placed } = await placeByLatency(model, candidate, (keep) => quantizeCopy(keep, overrides), { ...placement, buildBudgetMs }, ctx));
    }
  } else {
    const samples = fp32Search.samples ?? fidelity?.samples ?? settings.calibration;
    if (samples === undefined) throw new Error('quantize: the fp32 search compares layer by layer on samples: give --data or --calib');
    const found = await searchFp32Layers(ctx.ort, model, {
      quantize: quantizeCopy,
      samples,
      toleranceDb: fp32Search.toleranceDb,
      maxRounds: fp32Search.maxRounds,
      threads: ctx.threads,
      progress: ctx.progress,
    });
    candidate = found.model;
    search = { rounds: found.rounds, kept: found.kept };
  }
  const outcome = outcomes.get(candidate);
  if (outcome === undefined) throw new Error('quantize: the search returned a model it did not quantize');

  let outputBias: OutputBiasReport | undefined;
  if (outputBiasOptions !== undefined) {
    const { value, samples, ...fit } = outputBiasOptions;
    ({ model: candidate, report: outputBias } = await fitOutputBiasOnSamples(model, candidate, samples, value, ctx, fit));
  }

  const tooLarge = fidelity === undefined ? undefined : comparisonWontFit(model, candidate, ctx);
  const measured = fidelity === undefined || tooLarge !== undefined ? undefined : await measureFidelity(model, candidate, fidelity, ctx);
  const skipped = fidelity === undefined ? (fidelitySkipped ?? 'no samples given') : tooLarge;
  const before = modelBytes(model);
  const after = modelBytes(candidate);
  const report = buildQuantizeReport({
    method: method.name,
    bytesBefore: before,
    bytesAfter: after,
    outcome: outcome.main,
    extra: outcome.extra,
    fidelity: measured,
    fidelitySkipped: skipped,
    search: search?.rounds,
    searchKept: search?.kept,
    placement: placed,
    verdict: verdictOf(measured, { thresholds: verdict, hints: quantizeHints(method, settings), why: skipped }),
  });
  if (outputBias !== undefined) report.output_bias = outputBias;
  if (gate !== undefined && !isEmptyGate(gate)) {
    const misses = checkGate(gate, measured, after / before);
    report.gate = { passed: misses.length === 0, misses };
    if (misses.length > 0) throw new GateFailedError(misses, 'quantize gate');
  }
  return { model: candidate, report };
}

/** A collector that answers from its first collection when that covers the values asked for. */
function reusedStatistics(collect: StatisticsCollector): StatisticsCollector {
  let first: CollectedStatistics | undefined;
  return async (model, values, samples, options) => {
    const cached = first;
    if (cached !== undefined && values.every((v) => cached.stats.has(v) || cached.notFloat.has(v))) {
      return { ...cached, stats: new Map(values.filter((v) => cached.stats.has(v)).map((v) => [v, cached.stats.get(v) as NonNullable<ReturnType<typeof cached.stats.get>>])) };
    }
    first = await collect(model, values, samples, options);
    return first;
  };
}

/** Settings worth trying when `method` damaged the model, most promising first (CLI spelling). */
export function quantizeHints(method: QuantizeMethod, settings: QuantizeSettings): string[] {
  const hints: string[] = [];
  switch (method.name) {
    case 'static-int8':
      if (settings.perChannel === false) hints.push('--per-channel');
      if ((settings.calibrator ?? 'minmax') === 'minmax') hints.push('--calibrator entropy');
      // The start of a network sees the raw input: its ranges move most with the samples (float-prefix.ts).
      hints.push(settings.floatPrefix === 0 ? '--float-prefix auto' : '--float-prefix N (more of the first layers float32 than the report\'s float prefix)');
      hints.push('--fp32-search 20', '--exclude <op type> (the worst layers of `shrink eval --per-layer`)');
      break;
    case 'dynamic-int8':
      hints.push('--exclude Conv', '--keep-first-last');
      break;
    case 'int4':
    case 'int2':
    case 'ternary':
    case 'binary':
      if ((settings.blockSize ?? 32) > 16) hints.push('--block-size 16');
      if (settings.symmetric !== false) hints.push('--asymmetric');
      if (settings.algorithm !== 'gptq' && (method.name === 'int4' || method.name === 'int2')) hints.push('--algorithm gptq --calib DATA');
      hints.push('--keep-first-last', `--method ${method.name === 'int4' ? 'int8-weight' : 'int4'}`);
      break;
    default:
      hints.push('--keep-first-last', '--exclude <op type> (the worst layers of `shrink eval --per-layer`)');
  }
  return hints;
}
