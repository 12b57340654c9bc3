// Static int8 quantization (QDQ): activations get fixed 8-bit scales calibrated on sample data, weights
// are stored as int8, and QuantizeLinear/DequantizeLinear pairs sit where onnxruntime fuses them into
// its integer kernels. Steps:
//   1. make sure the opset has QDQ (10; 13 for per-channel): raised as is when no op changes meaning,
//      upgraded with rewrites (optimize/upgrade-opset.ts) when some do;
//   2. optimize (level full: BatchNormalization folded into Conv, so it is quantized once, as the
//      runtime computes it) unless told not to;
//   3. plan the Q/DQ placement (qdq-placement.ts) over the main graph;
//   4. calibrate: run the model on the samples with the planned activations exposed, keeping
//      running statistics only (eval/activation-stats.ts), and turn them into ranges with the chosen
//      calibrator; values that share parameters (Concat, MaxPool, Resize) take the union;
//   5. write Q/DQ pairs, int8 weights and int32 biases (qdq-rewrite.ts); optionally turn the result
//      into QOperator form (QLinearConv, QLinearMatMul) for runtimes that want it.
// Optional: SmoothQuant (smooth-quant.ts) between 2 and 3, on the planned MatMul/Gemm layers, and
// bias correction (bias-correction.ts) after 5, against the float graph as it was before the rewrite.
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { topologicalSort } from '../../ir/toposort.js';
import { weightedOp } from '../../graph-edit/weighted-layers.js';
import { firstSamples, type SampleSource } from '../../eval/samples.js';
import { inferShapes } from '../../optimize/shape-inference/index.js';
import { optimizeModel } from '../../optimize/optimize.js';
import type { Pass, PassWarning } from '../../pipeline/pass.js';
import type { CalibrationRange, Calibrator } from './calibration/calibrator.js';
import { withoutDeadZones } from './calibration/dead-zones.js';
import { chooseCalibrators } from './calibration/measured-choice.js';
import { collectStatistics } from '../../eval/activation-stats.js';
import { type CalibratorName, calibratorNamed, DEFAULT_CALIBRATOR } from './calibration/registry.js';
import type { DetailedPassResult, NodeDecision, QuantizedTensor } from './details.js';
import { reachOpset } from './opset-raise.js';
import { QDQ_OP_RULES, planQdq } from './qdq-placement.js';
import { rewriteQdq } from './qdq-rewrite.js';
import { deriveScalarOpParams } from './scalar-op-params.js';
import { quantizeHardSigmoids } from './qdq-hardsigmoid.js';
import { padInputChannels } from './pad-input-channels.js';
import { FLOAT_STEM_REASON, floatStems } from './float-stem.js';
import { floatPrefixByMacShare, floatPrefixNodes, floatPrefixReason } from './float-prefix.js';
import { macsPerLayer } from '../prune/macs.js';
import { convTransposesAsConv } from './convtranspose-as-conv.js';
import { type BiasShiftEstimate, correctBiases, roundsByDepth } from './bias-correction.js';
import { smoothingSummary, smoothQuant } from './smooth-quant.js';
import { toQOperators } from './qoperator.js';
import { type Int8Type, type QuantParams, rangeParams } from './quant-params.js';

export interface StaticInt8Options {
  /** Calibration samples (the evaluation data adapters: .npy, .npz, JSON, test-data folders, generated). */
  calibration: SampleSource;
  /** Default 'minmax' (onnxruntime's default; see DEFAULT_CALIBRATOR for why not expected-minmax); 'measured' chooses per activation by measured output error (calibration/measured-choice.ts). */
  calibrator?: CalibratorName;
  /** Percentile calibrator's percentile (default 99.999). */
  percentile?: number;
  /** Weights with one scale per output channel (needs opset 13; the model is upgraded). Default true. */
  perChannel?: boolean;
  /** Activations symmetric around 0 (zero point 0). Default false: asymmetric uint8. */
  symmetric?: boolean;
  /** Default uint8 for asymmetric activations, int8 for symmetric ones. */
  activationType?: Int8Type;
  /** Default int8 (symmetric); uint8 weights are asymmetric. */
  weightType?: Int8Type;
  /** 7-bit weights, for CPUs without VNNI where u8 x s8 dot products can saturate. */
  reduceRange?: boolean;
  /** Optimize (fold BatchNormalization, ...) before quantizing. Default true. */
  optimize?: boolean;
  /** Op types to quantize (default: every type qdq-placement.ts knows). */
  opTypes?: readonly string[];
  exclude?: (node: Node, graph: Graph) => boolean;
  /** Calibration: at most this many samples; samples per run; activations exposed per session. */
  limit?: number;
  batch?: number;
  valuesPerRun?: number;
  threads?: number;
  /** 'qdq' (default) or 'qoperator' (QLinearConv/QLinearMatMul where the pattern allows). */
  format?: 'qdq' | 'qoperator';
  /** SmoothQuant's migration strength α in [0, 1] for the MatMul/Gemm layers; `smoothMul: false` leaves layers whose scales cannot fold unsmoothed. */
  smooth?: number;
  smoothMul?: boolean;
  /**
   * Empirical bias correction of the quantized Conv/Gemm layers on the calibration samples. 'auto'
   * (the command's default) corrects when the calibration data is real (not generated) and holds at
   * least BIAS_CORRECTION_AUTO_SAMPLES samples. Default false.
   */
  biasCorrection?: boolean | 'auto';
  /** Bias correction measures its means on at most this many calibration samples (default: 8 for 'auto', all when true): its cost is one pass per layer depth. */
  biasCorrectionSamples?: number;
  /**
   * Activation ranges from the first this many calibration samples (default: all, up to `limit`),
   * while bias correction measures on its own count (biasCorrectionSamples): minmax ranges widen
   * with every page, a bias shift's mean gets surer. Tried on PP-OCRv4 det (NOTES.md, issue 15).
   */
  rangeSamples?: number;
  /** How bias correction estimates each channel's shift from the runs: 'mean' (default), 'shrunk' or 'soft' (bias-shift.ts). */
  biasCorrectionShift?: BiasShiftEstimate;
  /** HardSigmoid between quantized values as an int8 Add whose range clips (default true; false keeps the float round trip). */
  int8HardSigmoid?: boolean;
  /** A quantized Mul/Add by a scalar takes its output grid from its input's (no rounding of its own; scalar-op-params.ts). Default true. */
  exactScalarOps?: boolean;
  /** Pad a graph-input Conv's input channels to a multiple of 4 (zeros) for onnxruntime's fast QLinearConv kernel. Default true. */
  padInputChannels?: boolean;
  /** Keep a 1- or 2-channel graph-input Conv and its MaxPool float (float-stem.ts: faster in onnxruntime than padded int8). Default true. */
  floatStem?: boolean;
  /** Rewrite a ConvTranspose whose kernel equals its stride as 1x1 Conv + DepthToSpace, so it runs as QLinearConv (convtranspose-as-conv.ts). Default true. */
  convTransposeAsConv?: boolean;
  /**
   * Each activation's range leaves out what its readers cannot tell apart (below -3 for a
   * HardSwish, below 0 for a Relu, outside a HardSigmoid's or Clip's bounds;
   * calibration/dead-zones.ts), so its step is finer, and bias correction compares the values as
   * those readers see them. Default false: exact, but on PP-OCRv4 det the held-out IoU moved by
   * -0.03..+0.03 with the calibration pages (mean +0.005 over 7 page sets) and rec's default
   * command read fewer tuning words (74.8% -> 67.7%); NOTES.md, issue 15.
   */
  deadZones?: boolean;
  /**
   * Keep the first N weighted layers, and every node before the next one, in float32
   * (float-prefix.ts): none of their activations is quantized. 'auto': the longest prefix holding
   * at most 12% of the multiply-accumulates, sized on the first calibration sample (the quantize
   * step's default). Default 0.
   */
  floatPrefix?: number | 'auto';
}

/** 'auto' bias correction needs this many real calibration samples: means of fewer are mostly one input's noise. */
export const BIAS_CORRECTION_AUTO_SAMPLES = 4;
/**
 * 'auto' bias correction's bound on the quantize time: its rounds by depth, each one session and one
 * pass over the samples. PP-OCRv4 det has 41 (about 4x the calibration time); PP-OCRv4 rec's 51 took
 * its default command past 3 minutes on a loaded machine.
 */
export const BIAS_CORRECTION_AUTO_DEPTH = 48;
/** 'auto' bias correction's sample cap (PP-OCRv4 det: 4 pages already gave held-out IoU 0.96). */
export const BIAS_CORRECTION_SAMPLES = 8;

/** Quantizes `model` in place; needs onnxruntime (`ort`) to calibrate. */
export async function quantizeStaticInt8(model: Model, options: StaticInt8Options, ctx: Parameters<Pass<StaticInt8Options>['run']>[2]): Promise<DetailedPassResult> {
  const ort = ctx.ort;
  if (ort === undefined) throw new Error('static-int8: calibration needs onnxruntime; pass ctx.ort (onnxruntime-node or -web)');
  const calibratorName = options.calibrator ?? DEFAULT_CALIBRATOR;
  // Checked before any work: 'measured' picks one of the others per activation after calibration.
  const calibrator = calibratorName === 'measured' ? undefined : calibratorNamed(calibratorName);
  const symmetric = options.symmetric ?? false;
  const activationType = options.activationType ?? (symmetric ? 'int8' : 'uint8');
  const weightType = options.weightType ?? 'int8';
  const warnings: PassWarning[] = [];
  // The opset first: the optimizer may fuse ops (LayerNormalization) that onnxruntime runs at any
  // opset but that the ONNX spec only has from 17, which the upgrade would not know.
  const perChannel = ensureQdqOpset(model, options.perChannel ?? true, warnings);
  if (options.optimize ?? true) await optimizeModel(model, { level: 'full' }, ctx);

  const graph = model.graph;
  // Before shapes are inferred: it may reorder a Relu and a MaxPool.
  const stem = new Set(options.floatStem === false ? [] : floatStems(graph));
  // A ConvTranspose the caller excludes (by name or op type) stays one, float.
  const convTransposesRewritten = options.convTransposeAsConv === false ? [] : convTransposesAsConv(model, graph, (node) => options.exclude?.(node, graph) ?? false);
  const prefixLength = options.floatPrefix === 'auto' ? await macSharePrefix(model, options.calibration, warnings) : { layers: options.floatPrefix ?? 0, macShare: undefined };
  const prefix = new Set(floatPrefixNodes(graph, prefixLength.layers));
  let types: ReadonlyMap<string, { elemType: number }> = new Map();
  const inferTypes = () => {
    try {
      types = inferShapes(model).main;
    } catch {
      // Unknown types are found out by calibration instead (onnxruntime returns every value's type).
    }
  };
  inferTypes();
  const plan = (notFloat: ReadonlySet<string>) =>
    planQdq(graph, {
      opTypes: options.opTypes,
      exclude: stem.size === 0 && prefix.size === 0 ? options.exclude : (node, g) => stem.has(node) || prefix.has(node) || (options.exclude?.(node, g) ?? false),
      foldActivations: !symmetric,
      elemType: (v) => (notFloat.has(v) ? 0 : types.get(v)?.elemType),
    });
  const stats: Record<string, number> = {};
  if (stem.size > 0) stats.floatStemNodes = stem.size;
  if (prefix.size > 0) stats.floatPrefixNodes = prefix.size;
  if (options.floatPrefix !== undefined) stats.floatPrefixLayers = prefixLength.layers;
  if (prefixLength.macShare !== undefined) stats.floatPrefixMacShare = Number(prefixLength.macShare.toFixed(4));
  if (convTransposesRewritten.length > 0) stats.convTransposesAsConv = convTransposesRewritten.length;
  if (options.smooth !== undefined) {
    const layers = plan(new Set()).nodes.filter((p) => p.node.opType === 'MatMul' || p.node.opType === 'Gemm').map((p) => p.node);
    const smoothed = await smoothQuant(model, layers, { alpha: options.smooth, calibration: options.calibration, limit: options.limit, batch: options.batch, threads: options.threads, mul: options.smoothMul }, ctx);
    const summary = smoothingSummary(smoothed, options.smooth);
    Object.assign(stats, summary.stats);
    warnings.push(...summary.warnings);
    if (summary.stats.smoothMul > 0) inferTypes();
  }
  let qdq = plan(new Set());
  // A first-layer Conv with 1 or 3 input channels: padded to 4 so QLinearConv takes its fast kernel.
  if (options.padInputChannels ?? true) {
    stats.inputChannelsPadded = padInputChannels(model, graph, qdq.nodes.map((p) => p.node)).length;
    if (stats.inputChannelsPadded > 0) qdq = plan(new Set());
  }
  // On a job queue (ctx.collectStatistics) the calibration samples are shared out to workers; the
  // merged statistics are what this process would have collected.
  const collectOptions = { limit: options.rangeSamples ?? options.limit, batch: options.batch, valuesPerRun: options.valuesPerRun, threads: options.threads, progress: ctx.progress };
  const collected =
    ctx.collectStatistics !== undefined
      ? await ctx.collectStatistics(model, [...qdq.groups.keys()], options.calibration, collectOptions)
      : await collectStatistics(ort, model, [...qdq.groups.keys()], options.calibration, collectOptions);
  if (collected.notFloat.size > 0) qdq = plan(new Set(collected.notFloat.keys()));

  // Ranges per value, then the union over each group of values that must share parameters.
  const levels = 256;
  let calibratorOf = (_value: string): Calibrator => calibrator as Calibrator;
  if (calibrator === undefined) {
    const values = [...qdq.groups.keys()].filter((v) => collected.stats.has(v));
    const choice = await chooseCalibrators(ort, model, values, options.calibration, { symmetric, activationType, percentile: options.percentile, levels, batch: options.batch, limit: options.limit, threads: options.threads, progress: ctx.progress });
    calibratorOf = (value) => calibratorNamed(choice.chosen.get(value) ?? 'minmax');
    Object.assign(stats, { calibratorsMeasured: choice.measured, calibratorChoiceSamples: choice.samples, calibratorChoiceRuns: choice.runs });
    for (const [name, count] of Object.entries(choice.counts)) stats[`chose${name.replace(/(^|-)(\w)/g, (_, __, c: string) => c.toUpperCase())}`] = count;
  }
  const ranges = new Map<string, CalibrationRange>();
  for (const value of qdq.groups.keys()) {
    const stats = collected.stats.get(value);
    if (stats === undefined) continue;
    const range = calibratorOf(value).range(stats, { symmetric, percentile: options.percentile, levels });
    ranges.set(value, options.deadZones === true ? withoutDeadZones(graph, value, range, levels) : range);
  }
  const groupRange = new Map<number, CalibrationRange>();
  for (const [value, group] of qdq.groups) {
    const r = ranges.get(value);
    if (r === undefined) continue;
    const g = groupRange.get(group);
    groupRange.set(group, g === undefined ? { ...r } : { min: Math.min(g.min, r.min), max: Math.max(g.max, r.max) });
  }
  const params = new Map<string, QuantParams>();
  for (const [value, group] of qdq.groups) {
    const r = groupRange.get(group);
    if (r !== undefined && ranges.has(value)) params.set(value, rangeParams(r, activationType, symmetric));
  }
  // Mul/Add by a scalar: output grids from their inputs', so they add no rounding (scalar-op-params.ts).
  stats.scalarOpsExact = symmetric || options.exactScalarOps === false ? 0 : deriveScalarOpParams(graph, qdq.nodes, qdq.groups, params);

  // Bias correction compares against the float graph as it is now (same value names).
  const weighted = qdq.nodes.map((p) => p.node).filter((n) => weightedOp(n) !== undefined);
  const depth = options.biasCorrection === 'auto' ? roundsByDepth(graph, weighted).length : 0;
  const correct = biasCorrectionWanted(options, collected.samples, depth);
  if (options.biasCorrection === 'auto') Object.assign(stats, { biasCorrectionAuto: 1, biasCorrectionOn: correct ? 1 : 0, biasCorrectionDepth: depth });
  const reference = correct ? model.clone() : undefined;
  const rewrite = rewriteQdq(model, graph, qdq, params, { perChannel, weightType, activationType, symmetric, reduceRange: options.reduceRange ?? false });
  // HardSigmoid between quantized values as a QLinearAdd whose range does the clip (qdq-hardsigmoid.ts).
  stats.hardSigmoidsInt8 = options.int8HardSigmoid === false ? 0 : quantizeHardSigmoids(model, graph);
  topologicalSort(graph);
  if (reference !== undefined) {
    // 'auto' bounds its cost with a sample cap; asked for explicitly, it measures on every sample.
    const cap = options.biasCorrectionSamples ?? (options.biasCorrection === 'auto' ? BIAS_CORRECTION_SAMPLES : Infinity);
    const limit = Math.min(options.limit ?? Infinity, cap);
    const corrected = await correctBiases(model, reference, weighted, { calibration: options.calibration, limit, batch: options.batch, threads: options.threads, shift: options.biasCorrectionShift, seenByReaders: options.deadZones === true }, ctx);
    const shifts = corrected.layers.map((l) => l.maxShift);
    Object.assign(stats, { biasCorrectionSamples: corrected.samples, biasCorrected: corrected.layers.length, biasCreated: corrected.layers.filter((l) => l.created).length, biasCorrectionRounds: corrected.rounds, biasShiftMax: shifts.length === 0 ? 0 : Math.max(...shifts) });
    for (const s of corrected.skipped) warnings.push({ code: 'bias-correction-skipped', message: `bias correction: '${s.node}' not corrected: ${s.reason}`, node: s.node });
    topologicalSort(graph);
  }
  let qoperators = 0;
  if (options.format === 'qoperator') qoperators = toQOperators(graph).converted;

  const nodes: NodeDecision[] = [
    ...qdq.nodes.map((p): NodeDecision => ({ node: p.node.label, op: p.node.opType, graph: graph.name, precision: 'int8', quantized: true })),
    ...qdq.nodes.flatMap((p) => p.folded.map((f): NodeDecision => ({ node: f.label, op: f.opType, graph: graph.name, precision: 'int8', quantized: true, reason: `folded into the output range of ${p.node.opType} '${p.node.label}'` }))),
    ...qdq.skipped.map((s): NodeDecision => ({ node: s.node.label, op: s.node.opType, graph: graph.name, precision: 'float32', quantized: false, reason: stem.has(s.node) ? FLOAT_STEM_REASON : prefix.has(s.node) ? floatPrefixReason(prefixLength.layers, prefixLength.macShare) : s.reason })),
  ];
  const nested = nestedQuantizable(model);
  if (nested > 0) warnings.push({ code: 'subgraph-float', message: `static-int8: ${nested} quantizable node${nested === 1 ? '' : 's'} inside If/Loop/Scan bodies stay float (their values cannot be calibrated as graph outputs)` });
  if (qdq.nodes.length === 0) warnings.push({ code: 'nothing-quantized', message: 'static-int8: the model has no float Conv, MatMul, Gemm, Add, Mul, Concat, pooling or Resize in its main graph to quantize' });
  const tensors: QuantizedTensor[] = rewrite.tensors.map((t) => ({
    name: t.name,
    graph: graph.name,
    from: 'float32',
    to: t.bytesAfter >= t.bytesBefore ? 'int32' : weightType,
    elements: 0,
    bytesBefore: t.bytesBefore,
    bytesAfter: t.bytesAfter,
    sqnrDb: t.sqnrDb,
    overflow: 0,
    underflow: 0,
  }));
  return {
    stats: {
      nodesQuantized: qdq.nodes.length,
      activationsFolded: qdq.nodes.reduce((n, p) => n + p.folded.length, 0),
      nodesSkipped: qdq.skipped.length,
      activations: rewrite.activations,
      constants: rewrite.tensors.length,
      calibrationSamples: collected.samples,
      calibrationPasses: collected.passes,
      perChannel: perChannel ? 1 : 0,
      qoperators,
      ...stats,
    },
    warnings,
    details: { tensors, nodes },
  };
}

/**
 * Whether to correct biases: as told, or for 'auto' when the calibration data is real, there is
 * enough of it, and the layers are at most BIAS_CORRECTION_AUTO_DEPTH deep (one pass per depth).
 */
function biasCorrectionWanted(options: StaticInt8Options, samples: number, depth: number): boolean {
  if (options.biasCorrection !== 'auto') return options.biasCorrection === true;
  return options.calibration.warning === undefined && samples >= BIAS_CORRECTION_AUTO_SAMPLES && depth <= BIAS_CORRECTION_AUTO_DEPTH;
}

/**
 * Makes the default-domain opset hold what the form needs (10, or 13 for per-channel weights):
 * raised as is when no op changes meaning, otherwise upgraded by rewriting the ops whose signature
 * changed (upgrade-opset.ts). Returns whether weights can be per channel.
 */
function ensureQdqOpset(model: Model, perChannel: boolean, warnings: PassWarning[]): boolean {
  const opset = model.opset('') ?? 1;
  const reached = reachOpset(model, perChannel ? 13 : 10, 'static-int8');
  if (!('refused' in reached)) {
    if (reached.warning !== undefined) warnings.push(reached.warning);
    return perChannel;
  }
  let refused = reached.refused;
  if (perChannel) {
    // Per-tensor weights need only opset 10: fall back to them, loudly.
    const perTensor = opset >= 10 ? {} : reachOpset(model, 10, 'static-int8');
    if (!('refused' in perTensor)) {
      if ('warning' in perTensor && perTensor.warning !== undefined) warnings.push(perTensor.warning);
      warnings.push({ code: 'per-tensor-weights', message: `static-int8: per-channel weights need opset 13 and the model's ${opset} cannot be upgraded (${reached.refused}); weights are per tensor` });
      return false;
    }
    refused = perTensor.refused;
  }
  throw new Error(`static-int8: the model imports ai.onnx opset ${opset}; QuantizeLinear/DequantizeLinear need 10, and the model cannot be upgraded: ${refused}`);
}

/** Weighted ops static int8 quantizes (Conv, MatMul, Gemm) that sit inside subgraphs. */
function nestedQuantizable(model: Model): number {
  let count = 0;
  for (const { node, graph } of model.graph.allNodes()) {
    if (graph !== model.graph && weightedOp(node) !== undefined && Object.hasOwn(QDQ_OP_RULES, node.opType)) count++;
  }
  return count;
}

export const staticInt8Pass: Pass<StaticInt8Options> = {
  name: 'static-int8',
  description: 'Static int8 (QDQ): activation scales calibrated on sample data, int8 weights, Q/DQ placed for onnxruntime integer kernels',
  run: (model, options, ctx) => quantizeStaticInt8(model, options, ctx),
};

/**
 * `floatPrefix: 'auto'`: the prefix by share of multiply-accumulates (float-prefix.ts), the layers
 * sized at the first calibration sample's input shapes (symbolic sizes have no count). None, with a
 * warning, when the sizes cannot be inferred.
 */
async function macSharePrefix(model: Model, calibration: SampleSource, warnings: PassWarning[]): Promise<{ layers: number; macShare: number | undefined }> {
  let shapes: Record<string, number[]> | undefined;
  for await (const sample of firstSamples(calibration, 1)) shapes = Object.fromEntries(Object.entries(sample.inputs).map(([name, t]) => [name, [...t.dims]]));
  try {
    if (shapes === undefined) throw new Error('no calibration sample');
    return floatPrefixByMacShare(model.graph, macsPerLayer(model, shapes));
  } catch (error) {
    warnings.push({ code: 'float-prefix-unsized', message: `float prefix: the layer sizes could not be inferred (${error instanceof Error ? error.message : String(error)}), so every layer is quantized; --float-prefix N keeps the first N float32` });
    return { layers: 0, macShare: undefined };
  }
}
