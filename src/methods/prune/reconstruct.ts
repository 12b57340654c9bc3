// Reconstruction after channel pruning (He, Zhang and Sun 2017 refit each layer after pruning by
// least squares; here every layer, against the original): with the removed channels set to zero
// (channel-rewrite.ts zeroChannels: the same function as the pruned model, the original's shapes),
// every matrix layer (MatMul, Gemm, Conv of group 1: layer-matrix.ts) is refitted so that its
// outputs on the inputs it now receives match the ORIGINAL model's outputs of that layer on the
// original's inputs, bias included:
//     min_{Q, δ} ‖X W_refᵀ + b_ref - X̃ Qᵀ - b - δ‖² + λ(‖Q - W‖² + ‖δ‖²)
// (kernels/asymmetric-target.ts with a constant feature for δ). Layers go in rounds by depth on
// the model refitted so far (one-shot.ts calibrateInRounds), so each takes out the drift that the
// removed channels and the layers before it left, where mean or least-squares compensation only
// replaces the removed channels of the activation it reads. Removed rows and columns (all zero in
// the zeroed model) stay zero, so removing the channels afterwards loses nothing.
import type { SampleSource } from '../../eval/samples.js';
import type { Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import { asymmetricTarget } from '../../kernels/asymmetric-target.js';
import type { PassContext } from '../../pipeline/pass.js';
import { addLayerBias, layerBias } from './layer-bias.js';
import { type LayerMatrix, layerMatrix } from './layer-matrix.js';
import { pruneTargets } from './layers.js';
import { calibrateInRounds } from './one-shot.js';

/** Default calibration samples of a reconstruction. */
export const RECONSTRUCT_SAMPLES = 64;
/** Default damping, as a share of the mean diagonal of the inputs' Gram matrix. */
export const RECONSTRUCT_DAMPING = 0.01;

export interface ReconstructOptions {
  calibration: SampleSource;
  samples?: number;
  damping?: number;
}

export interface ReconstructReport {
  layers: number;
  rounds: number;
  samples: number;
  skipped: { node: string; reason: string }[];
}

/**
 * Refits the matrix layers of `model` (the pruned model with its removed channels zeroed, in
 * place) to the outputs of the same layers of `reference` (the model before pruning: the same
 * graph, weight names and shapes).
 */
export async function reconstructLayers(model: Model, reference: Model, options: ReconstructOptions, ctx: PassContext): Promise<ReconstructReport> {
  const skipped: { node: string; reason: string }[] = [];
  const referenceViews = new Map<string, LayerMatrix>();
  for (const target of pruneTargets(reference, {}).targets) {
    const view = layerMatrix(target, reference.graph);
    if (!('reason' in view)) referenceViews.set(target.name, view);
  }
  const layers: LayerMatrix[] = [];
  for (const target of pruneTargets(model, {}).targets) {
    const view = layerMatrix(target, model.graph);
    if ('reason' in view) {
      skipped.push({ node: target.readers[0].node.label, reason: view.reason });
      continue;
    }
    const before = referenceViews.get(target.name);
    if (before === undefined || before.rows !== view.rows || before.cols !== view.cols) skipped.push({ node: view.node.label, reason: `the original has no layer of the same shape on '${target.name}'` });
    else layers.push(view);
  }
  const damping = options.damping ?? RECONSTRUCT_DAMPING;
  let refitted = 0;
  const outcome = await calibrateInRounds(
    model,
    layers,
    { statistic: 'gram', calibration: options.calibration, samples: options.samples ?? RECONSTRUCT_SAMPLES, purpose: 'prune: reconstruction', reference, intercept: true },
    ctx,
    (view, gram, cross) => {
      const before = referenceViews.get(view.target.name) as LayerMatrix;
      const { rows, cols } = view;
      const graph = view.target.readers[0].graph;
      const biasNow = layerBias(graph, view.node, rows);
      const biasBefore = layerBias(before.target.readers[0].graph, before.node, rows);
      if (cross === undefined || biasNow === undefined || biasBefore === undefined) {
        skipped.push({ node: view.node.label, reason: cross === undefined ? `its input '${view.input}' was not measured in both models` : 'its bias is not a per-output constant' });
        return;
      }
      const now = view.read();
      const original = before.read();
      // The constant feature's weights: 0 for the layer fitted, the bias difference for the original.
      const width = cols + 1;
      const current = new Float64Array(rows * width);
      const target = new Float64Array(rows * width);
      for (let r = 0; r < rows; r++) {
        current.set(now.subarray(r * cols, (r + 1) * cols), r * width);
        target.set(original.subarray(r * cols, (r + 1) * cols), r * width);
        target[r * width + cols] = biasBefore[r] - biasNow[r];
      }
      const fitted = asymmetricTarget(current, rows, width, gram, cross, damping, target);
      // Removed outputs and inputs are all-zero rows and columns of the zeroed layer: they stay so.
      const liveRow = new Uint8Array(rows);
      const liveCol = new Uint8Array(cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (now[r * cols + c] !== 0) liveRow[r] = liveCol[c] = 1;
      const weights = new Float64Array(rows * cols);
      const shift = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        if (liveRow[r] === 0) continue;
        for (let c = 0; c < cols; c++) if (liveCol[c] === 1) weights[r * cols + c] = fitted[r * width + c];
        shift[r] = fitted[r * width + cols];
      }
      const weight = view.target.weight;
      replaceConstant(model, view.target.scope, view.target.name, Tensor.fromArray(view.target.name, weight.dataType, weight.dims, view.write(weights)), view.target.readers);
      // layerBias read it, so addLayerBias can write it.
      if (shift.some((v) => v !== 0) && !addLayerBias(model, graph, view.node, shift)) throw new Error(`prune: reconstruction could not shift the bias of '${view.node.label}'`);
      refitted += 1;
    },
  );
  return { layers: refitted, rounds: outcome.rounds, samples: outcome.samples, skipped: [...skipped, ...outcome.skipped] };
}
