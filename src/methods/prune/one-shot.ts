// What Wanda and SparseGPT share: the layers they can prune (layer-matrix.ts), statistics of each
// layer's inputs from calibration samples run through onnxruntime (Wanda: ‖X_j‖ per input
// feature; SparseGPT: XᵀX), and the order. Layers are pruned in rounds by depth: a layer's round
// comes after every pruned layer upstream of its input, and its statistics are collected on the
// model as pruned so far, so each layer compensates for the error of the layers before it (the
// papers' sequential, block-by-block calibration). Layers of one round (Q, K and V of an attention
// block, say) share one pass over the samples, and layers reading the same activation share its
// statistics. `sequential: false` collects everything once, on the original model.
import { ChannelNorms } from '../../eval/channel-norms.js';
import { ActivationRecorder, CrossGram } from '../../eval/cross-gram.js';
import { collectActivations, type ActivationAccumulator } from '../../eval/activation-stats.js';
import { GramMatrix, OrtGram } from '../../eval/gram-matrix.js';
import { Im2colRows } from '../../eval/im2col.js';
import type { SampleSource } from '../../eval/samples.js';
import type { Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import { nodeOrder, nodeReads } from '../../ir/toposort.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import type { OneShotTarget } from '../../kernels/sparsegpt.js';
import { zeroCount } from '../../kernels/sparsity.js';
import type { PassContext, PassReport } from '../../pipeline/pass.js';
import type { OrtModule } from '../../runtime/ort-types.js';
import type { PruneDetails, PrunedTensor } from './details.js';
import { type LayerMatrix, layerMatrix } from './layer-matrix.js';
import { type LayerChoice, pruneTargets } from './layers.js';

export interface OneShotOptions extends LayerChoice, OneShotTarget {
  /** Calibration samples (real inputs: the statistics are the method). */
  calibration: SampleSource | undefined;
  /** Samples used (default 128, as the papers). */
  samples?: number;
  /** Prune in rounds, each layer calibrated on the model pruned so far (default true). */
  sequential?: boolean;
}

/** How one method prunes one layer, given its input statistic. */
export interface LayerSolver {
  readonly method: string;
  /** 'norms': ‖X_j‖ per input feature; 'gram': Σ xxᵀ. */
  readonly statistic: 'norms' | 'gram';
  solve(layer: LayerMatrix, weights: Float64Array, statistic: Float64Array): { weights: Float64Array; mask: Uint8Array };
}

/** Default calibration samples. */
export const ONE_SHOT_SAMPLES = 128;

export async function oneShotPrune(model: Model, options: OneShotOptions, solver: LayerSolver, ctx: PassContext): Promise<Omit<PassReport, 'pass' | 'ms'> & { details: PruneDetails }> {
  const method = solver.method;
  const { targets, skipped } = pruneTargets(model, options);
  const layers: LayerMatrix[] = [];
  for (const target of targets) {
    const view = layerMatrix(target, model.graph);
    if ('reason' in view) skipped.push({ node: target.readers[0].node.label, reason: view.reason });
    else layers.push(view);
  }
  const pattern = options.pattern;
  if (pattern !== undefined) {
    for (const layer of layers) {
      if (layer.run % pattern.m !== 0) {
        const across = layer.conv === undefined ? `${layer.cols} input features` : `${layer.run} input channels`;
        throw new Error(`prune: ${pattern.n}:${pattern.m} needs input features in multiples of ${pattern.m}, but '${layer.node.label}' (${layer.node.opType}) reads ${across}; leave it out with --exclude '${layer.node.name || layer.node.opType}'`);
      }
    }
  }
  const tensors: PrunedTensor[] = [];
  const outcome = await calibrateInRounds(model, layers, { ...options, statistic: solver.statistic, purpose: `${method} calibration` }, ctx, (layer, statistic) => {
    const weight = layer.target.weight;
    const zerosBefore = zeroCount(weight.data() as Float32Array);
    const data = layer.write(solver.solve(layer, layer.read(), statistic).weights);
    replaceConstant(model, layer.target.scope, layer.target.name, Tensor.fromArray(layer.target.name, weight.dataType, weight.dims, data), layer.target.readers);
    tensors.push({ name: layer.target.name, node: layer.node.label, op: layer.node.opType, dimsBefore: [...weight.dims], dimsAfter: [...weight.dims], zerosBefore, zerosAfter: zeroCount(data) });
  });
  skipped.push(...outcome.skipped);
  const details: PruneDetails = { tensors, skipped };
  return {
    stats: { tensors: tensors.length, zeroed: tensors.reduce((n, t) => n + t.zerosAfter - t.zerosBefore, 0), skipped: skipped.length, rounds: outcome.rounds, calibration_samples: outcome.samples },
    warnings: [],
    details,
  };
}

export interface RoundOptions {
  statistic: 'norms' | 'gram';
  calibration: SampleSource | undefined;
  /** Samples used (default 128). */
  samples?: number;
  /** Rounds by depth on the model as changed so far (default true), or one round on the original. */
  sequential?: boolean;
  /** What the statistics are for, in errors and progress ("sparsegpt calibration"). */
  purpose: string;
  /**
   * With 'gram': the model whose layers the changed ones should match (asymmetric calibration).
   * Each round also runs it on the same samples and hands `visit` X̃ᵀX, the cross product of the
   * layer's input in `model` (X̃) and in the reference (X). Its activations of one round are held
   * in memory, up to `referenceBytes` (default 1 GiB).
   */
  reference?: Model;
  referenceBytes?: number;
  /** With `reference`: a constant last feature in both statistics ([cols + 1]²), for fits with a bias. */
  intercept?: boolean;
}

/** Default bound on the reference activations held for one round of asymmetric calibration. */
const REFERENCE_BYTES = 2 ** 30;

/**
 * Collects each layer's input statistic over the calibration samples and hands it to `visit`, in
 * rounds by depth: `visit` changes the layer's weight in `model`, and the next round's statistics
 * are collected on the model so changed. Layers whose input is not float32 are skipped (returned).
 */
export async function calibrateInRounds(
  model: Model,
  layers: readonly LayerMatrix[],
  options: RoundOptions,
  ctx: PassContext,
  visit: (layer: LayerMatrix, statistic: Float64Array, cross?: Float64Array) => void | Promise<void>,
): Promise<{ rounds: number; samples: number; skipped: { node: string; reason: string }[] }> {
  const calibration = options.calibration;
  const purpose = options.purpose;
  if (calibration === undefined) throw new Error(`${purpose}: no calibration samples (real inputs): give --calib (or --data)`);
  if (ctx.ort === undefined) throw new Error(`${purpose} runs the model in onnxruntime`);
  const ort = ctx.ort;
  const rounds = options.sequential === false ? [[...layers]] : roundsByDepth(model, layers);
  const reference = options.reference;
  if (reference !== undefined && options.statistic !== 'gram') throw new Error(`${purpose}: a reference model needs the 'gram' statistic`);
  if (options.intercept === true && reference === undefined) throw new Error(`${purpose}: an intercept goes with a reference model`);
  const products = options.statistic === 'gram' ? await OrtGram.create(ort, { threads: ctx.threads }) : undefined;
  const skipped: { node: string; reason: string }[] = [];
  let samples = 0;
  try {
    for (const [r, round] of rounds.entries()) {
      const statistics = new Map<string, { accumulator: ActivationAccumulator; read: () => Float64Array; cross?: () => Float64Array }>();
      const keyOf = (layer: LayerMatrix) => `${layer.input}\u0000${JSON.stringify(layer.conv ?? null)}`;
      const recorded = reference === undefined ? undefined : await recordReference(ort, reference, round, calibration, options, ctx, `${purpose}, round ${r + 1}/${rounds.length}`);
      for (const layer of round) {
        const key = keyOf(layer);
        if (statistics.has(key)) continue;
        const recorder = recorded?.get(layer.input);
        if (recorder !== undefined) {
          const paired = new CrossGram(layer.input, recorder, layer.conv, products, options.intercept === true);
          statistics.set(key, { accumulator: paired, read: () => paired.gram, cross: () => paired.cross });
        } else if (options.statistic === 'gram') {
          const gram = new GramMatrix(layer.input, { ort, products, threads: ctx.threads });
          statistics.set(key, { accumulator: wrap(gram, layer), read: () => gram.matrix });
        } else {
          const norms = new ChannelNorms(layer.input, -1);
          statistics.set(key, { accumulator: wrap(norms, layer), read: () => norms.norms() });
        }
      }
      const collected = await collectActivations(
        ort,
        model,
        [...statistics.values()].map((s) => s.accumulator),
        calibration,
        { limit: options.samples ?? ONE_SHOT_SAMPLES, threads: ctx.threads, progress: ctx.progress, purpose: `${purpose}, round ${r + 1}/${rounds.length}` },
      );
      samples = collected.samples;
      for (const layer of round) {
        const notFloat = collected.notFloat.get(layer.input);
        if (notFloat !== undefined) {
          skipped.push({ node: layer.node.label, reason: `its input '${layer.input}' is ${notFloat}, not float32` });
          continue;
        }
        const collectedFor = statistics.get(keyOf(layer)) as { read: () => Float64Array; cross?: () => Float64Array };
        const statistic = collectedFor.read();
        const features = layer.cols + (collectedFor.cross !== undefined && options.intercept === true ? 1 : 0);
        const expected = options.statistic === 'gram' ? features * features : features;
        if (statistic.length !== expected) throw new Error(`${purpose}: '${layer.node.label}' multiplies ${layer.cols} input features, but its input '${layer.input}' gave ${options.statistic === 'gram' ? Math.round(Math.sqrt(statistic.length)) - features + layer.cols : statistic.length}`);
        await visit(layer, statistic, collectedFor.cross?.());
        ctx.debug?.(2, `${purpose}: ${layer.node.label} [${layer.rows}x${layer.cols}] round ${r + 1}`);
      }
    }
  } finally {
    await products?.release();
  }
  return { rounds: rounds.length, samples, skipped };
}

/** The reference model's activations at the inputs of one round's layers, recorded batch by batch. */
async function recordReference(ort: OrtModule, reference: Model, round: readonly LayerMatrix[], calibration: SampleSource, options: RoundOptions, ctx: PassContext, purpose: string): Promise<Map<string, ActivationRecorder>> {
  const limit = options.referenceBytes ?? REFERENCE_BYTES;
  const budget = { bytes: limit };
  const recorders = new Map<string, ActivationRecorder>();
  const values = [...new Set(round.map((l) => l.input))];
  const tooLarge = `${options.purpose}: the reference model's activations at ${values.map((v) => `'${v}'`).join(', ')} over the calibration samples pass ${Math.round(limit / 2 ** 20)} MiB; use fewer samples`;
  for (const value of values) recorders.set(value, new ActivationRecorder(value, budget, tooLarge));
  await collectActivations(ort, reference, [...recorders.values()], calibration, { limit: options.samples ?? ONE_SHOT_SAMPLES, threads: ctx.threads, progress: ctx.progress, purpose: `${purpose}, reference model` });
  return recorders;
}

function wrap(accumulator: ActivationAccumulator, layer: LayerMatrix): ActivationAccumulator {
  return layer.conv === undefined ? accumulator : new Im2colRows(accumulator, layer.conv);
}

/**
 * Layers grouped by depth: a layer's depth is one more than the deepest pruned layer upstream of
 * its input (through any path of the main graph, subgraph reads included).
 */
export function roundsByDepth(model: Model, layers: readonly LayerMatrix[]): LayerMatrix[][] {
  const byNode = new Map(layers.map((l) => [l.node, l]));
  const depthOf = new Map<string, number>();
  const levels = new Map<LayerMatrix, number>();
  for (const node of nodeOrder(model.graph).order) {
    let depth = 0;
    const layer = byNode.get(node);
    // A layer's own weight is no path from another layer: only its activation input counts.
    const reads = layer === undefined ? nodeReads(node) : [layer.input];
    for (const name of reads) depth = Math.max(depth, depthOf.get(name) ?? 0);
    if (layer !== undefined) {
      depth += 1;
      levels.set(layer, depth);
    }
    for (const out of node.outputs) if (out !== '') depthOf.set(out, depth);
  }
  const rounds: LayerMatrix[][] = [];
  for (const layer of layers) {
    const level = levels.get(layer) ?? 1;
    while (rounds.length < level) rounds.push([]);
    rounds[level - 1].push(layer);
  }
  return rounds.filter((r) => r.length > 0);
}
