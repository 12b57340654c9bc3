// SmoothQuant (Xiao et al. 2023) before static int8: activations with a few large channels get a
// per-tensor scale that leaves the other channels a handful of levels. For each MatMul/Gemm that
// static int8 quantizes, input feature j is divided by
//     s_j = max|X_j|^α / max|W_j|^(1−α)
// (max|X_j| over the calibration samples, max|W_j| over the weight's column j, of every layer that
// reads the same activation: Q, K and V share one s), and the weight's column j multiplied by it,
// so the float model computes what it did and the outliers move into the weights, which are
// quantized per output channel. The 1/s goes where it costs nothing, as AWQ's does (awq.ts
// foldInverse: a LayerNormalization's scale and bias, the output columns and bias of a producing
// MatMul/Gemm, a Mul's constant, through Add of a constant and Relu); where the activation is read
// by something else too (post-LN BERT: the residual Add), a Mul by 1/s is inserted before the
// layers (the Mul stays float in static int8; its output is what gets quantized), or, with
// `mul: false`, the group is left alone. The model is changed in place.
import { ChannelStats } from '../../eval/channel-stats.js';
import { collectActivations } from '../../eval/activation-stats.js';
import type { SampleSource } from '../../eval/samples.js';
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import type { PassContext, PassWarning } from '../../pipeline/pass.js';
import { type LayerMatrix, layerMatrix } from '../prune/layer-matrix.js';
import { pruneTargets } from '../prune/layers.js';
import { foldInverse, insertMul } from './awq.js';

export interface SmoothQuantSettings {
  /** Migration strength in [0, 1] (0.5 in the paper for most models). */
  alpha: number;
  calibration: SampleSource;
  /** At most this many calibration samples. */
  limit?: number;
  batch?: number;
  threads?: number;
  /** Insert a Mul by 1/s where it cannot fold into the producer (default true); false leaves those layers unsmoothed. */
  mul?: boolean;
}

/** The layers reading one activation, smoothed by one s. */
export interface SmoothGroup {
  input: string;
  layers: string[];
  channels: number;
  /** max over channels of max|X_j| divided by their median: how far the outliers stand out. */
  outlierRatio: number;
  /** Where 1/s went: folded into a producer, a Mul inserted (and why), or not smoothed (why). */
  placed: { into: string } | { mul: string; reason: string } | { skipped: string };
}

export interface SmoothQuantResult {
  groups: SmoothGroup[];
  samples: number;
  /** Layers left unsmoothed before grouping (shared weights, transA, inputs that are not float). */
  skipped: { node: string; reason: string }[];
}

/** s_j for one group; 1 where a channel's activation or weight is all zeros (nothing to balance). */
export function smoothingScales(activationMax: Float64Array, weightMax: Float64Array, alpha: number): Float32Array {
  return Float32Array.from(activationMax, (a, j) => {
    const w = weightMax[j];
    if (!(a > 0) || !(w > 0)) return 1;
    const s = a ** alpha / w ** (1 - alpha);
    return Number.isFinite(s) && s > 0 ? Math.min(1e4, Math.max(1e-4, s)) : 1;
  });
}

/** Smooths the MatMul/Gemm `layers` of `model` (nodes of its main graph) in place. */
export async function smoothQuant(model: Model, layers: readonly Node[], settings: SmoothQuantSettings, ctx: PassContext): Promise<SmoothQuantResult> {
  if (!(settings.alpha >= 0 && settings.alpha <= 1)) throw new Error(`smoothquant: alpha must be in [0, 1], got ${settings.alpha}`);
  if (ctx.ort === undefined) throw new Error('smoothquant: calibration needs onnxruntime; pass ctx.ort');
  const wanted = new Set(layers);
  const { targets } = pruneTargets(model, {});
  const skipped: { node: string; reason: string }[] = [];
  const byInput = new Map<string, LayerMatrix[]>();
  for (const target of targets) {
    const reader = target.readers.find((r) => wanted.has(r.node));
    if (reader === undefined) continue;
    if (target.weight.dataType !== DataType.FLOAT) {
      skipped.push({ node: reader.node.label, reason: `weight '${target.name}' is not float32` });
      continue;
    }
    const view = layerMatrix(target, model.graph);
    if ('reason' in view) {
      skipped.push({ node: reader.node.label, reason: view.reason });
      continue;
    }
    byInput.set(view.input, [...(byInput.get(view.input) ?? []), view]);
  }
  if (byInput.size === 0) return { groups: [], samples: 0, skipped };
  const statistics = [...byInput.keys()].map((input) => new ChannelStats(input, -1));
  const collected = await collectActivations(ctx.ort, model, statistics, settings.calibration, {
    limit: settings.limit,
    batch: settings.batch,
    threads: settings.threads ?? ctx.threads,
    progress: ctx.progress,
    purpose: 'smoothquant calibration',
  });
  // Every s from the float model and the original weights first, then the edits: a fold into a
  // producer that is itself smoothed scales its rows, its own s its columns, and the two commute.
  const planned = statistics.map((stats) => {
    const members = byInput.get(stats.value) as LayerMatrix[];
    const cols = members[0].cols;
    const notFloat = collected.notFloat.get(stats.value);
    const activationMax = stats.absMax();
    if (notFloat !== undefined || activationMax.length !== cols) {
      const reason = notFloat !== undefined ? `its input '${stats.value}' is ${notFloat}, not float32` : `its input '${stats.value}' has ${activationMax.length} channels on its last axis, the weight ${cols}`;
      for (const l of members) skipped.push({ node: l.node.label, reason });
      return undefined;
    }
    const weightMax = new Float64Array(cols);
    for (const l of members) {
      const w = l.read();
      for (let r = 0; r < l.rows; r++) for (let j = 0; j < cols; j++) weightMax[j] = Math.max(weightMax[j], Math.abs(w[r * cols + j]));
    }
    return { input: stats.value, members, cols, activationMax, scales: smoothingScales(activationMax, weightMax, settings.alpha) };
  });
  const groups: SmoothGroup[] = [];
  for (const p of planned) {
    if (p === undefined) continue;
    const { input, members, cols, scales } = p;
    const inverse = Float32Array.from(scales, (s) => 1 / s);
    const fold = foldInverse(model, input, new Set(members.map((l) => l.node)), inverse, cols);
    let placed: SmoothGroup['placed'];
    if (typeof fold === 'string') placed = { into: fold };
    else if (settings.mul === false) placed = { skipped: fold.reason };
    else placed = { mul: insertMul(model, input, members, inverse, 'smooth'), reason: fold.reason };
    if (!('skipped' in placed)) for (const l of members) scaleColumns(model, l, scales);
    groups.push({ input, layers: members.map((l) => l.node.label), channels: cols, outlierRatio: outlierRatio(p.activationMax), placed });
  }
  return { groups, samples: collected.samples, skipped };
}

/** The pass's counters (camelCase, as pass stats are) and warnings for a smoothing result. */
export function smoothingSummary(result: SmoothQuantResult, alpha: number): { stats: Record<string, number>; warnings: PassWarning[] } {
  const { groups } = result;
  const folded = groups.filter((g) => 'into' in g.placed).length;
  const notFolded = groups.filter((g) => !('into' in g.placed));
  const muls = notFolded.filter((g) => 'mul' in g.placed).length;
  const ratios = groups.map((g) => g.outlierRatio).sort((a, b) => a - b);
  const warnings: PassWarning[] = [];
  if (notFolded.length > 0) {
    const first = notFolded[0];
    const why = 'mul' in first.placed ? first.placed.reason : 'skipped' in first.placed ? first.placed.skipped : '';
    const what = muls === notFolded.length ? 'are divided by their scales in an inserted Mul (float)' : muls === 0 ? 'are not smoothed' : `are not smoothed or divided in an inserted Mul (${muls})`;
    warnings.push({ code: 'smooth-not-folded', message: `smoothquant: ${notFolded.length} of ${groups.length} layer inputs ${what}: their scales cannot fold into the producer (e.g. before '${first.layers[0]}': ${why}); ${folded} folded` });
  }
  for (const s of result.skipped) warnings.push({ code: 'smooth-skipped', message: `smoothquant: '${s.node}' not smoothed: ${s.reason}`, node: s.node });
  return {
    stats: {
      smoothAlpha: alpha,
      smoothGroups: groups.length,
      smoothFolded: folded,
      smoothMul: muls,
      smoothSkipped: notFolded.length - muls + result.skipped.length,
      smoothOutlierRatioMax: ratios.at(-1) ?? 0,
      smoothOutlierRatioMedian: ratios[Math.floor(ratios.length / 2)] ?? 0,
    },
    warnings,
  };
}

/** W·diag(s): input feature j of the layer's weight, as the weight is now, times s_j. */
function scaleColumns(model: Model, layer: LayerMatrix, scales: Float32Array): void {
  const { target, node } = layer;
  const weight = constantValue(target.scope, target.name);
  if (weight === undefined) throw new Error(`smoothquant: weight '${target.name}' of '${node.label}' is no longer a constant`);
  const values = weight.data() as Float32Array;
  const [d0, d1] = weight.dims;
  // MatMul B and Gemm B are [K, N] (feature = row), Gemm with transB [N, K] (feature = column).
  const transposed = node.opType === 'Gemm' && node.attrInt('transB', 0) !== 0;
  const scaled = values.map((v, i) => v * scales[transposed ? i % d1 : Math.floor(i / d1)]);
  if ((transposed ? d1 : d0) !== scales.length) throw new Error(`smoothquant: weight '${target.name}' [${weight.dims}] of '${node.label}' does not have ${scales.length} input features`);
  replaceConstant(model, target.scope, target.name, Tensor.fromArray(target.name, weight.dataType, weight.dims, scaled), target.readers);
}

/** max / median of the per-channel maxima. */
function outlierRatio(maxima: Float64Array): number {
  const sorted = Float64Array.from(maxima).sort();
  const median = sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return median > 0 ? sorted[sorted.length - 1] / median : Infinity;
}
