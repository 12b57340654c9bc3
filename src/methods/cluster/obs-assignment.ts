// Codes chosen for the layer's outputs rather than its weights (`codes: 'obs'`): with each
// codebook fitted by k-means as usual, the weights of a layer are assigned their centroids by the
// GPTQ column sweep (kernels/obs-codes.ts) on the Hessian of the layer's calibration inputs, so
// the rounding error of one weight is taken up by the weights after it. Layers go in rounds by
// depth on the model as clustered so far (prune/one-shot.ts' calibrateInRounds), so each layer
// also makes up for the layers before it. Only layers that are one matrix product of one weight
// (layer-matrix.ts: MatMul, Gemm, Conv of group 1) with codebooks along their output rows qualify;
// the others keep nearest-centroid codes.
import type { SampleSource } from '../../eval/samples.js';
import type { Model } from '../../ir/model.js';
import { asymmetricTarget } from '../../kernels/asymmetric-target.js';
import { obsCodes } from '../../kernels/obs-codes.js';
import type { PassContext } from '../../pipeline/pass.js';
import { calibrateInRounds } from '../prune/one-shot.js';
import { type LayerMatrix, layerMatrix } from '../prune/layer-matrix.js';
import { type Codebook, groupCentroids, withAssignedValues } from './codebook.js';
import type { ClusterTarget } from './targets.js';

/** Default calibration samples for OBS codes. */
export const OBS_CODE_SAMPLES = 64;

/** A weight whose codebook is fitted and whose codes wait for the sweep. */
export interface PendingCodes {
  target: ClusterTarget;
  book: Codebook;
  /** The codebooks' channel axis in the weight (undefined: one per tensor). */
  axis: number | undefined;
  /** Exact zeros kept at the group's zero centroid. */
  keepZeros: boolean;
}

export interface ObsAssignmentOptions {
  calibration: SampleSource;
  samples?: number;
  damping?: number;
  actOrder?: boolean;
  /**
   * The model whose outputs each layer should keep (asymmetric calibration, kernels/asymmetric-target.ts):
   * codes are fitted to its layer's outputs on its own inputs, which takes out the drift the layers
   * before have left. Without it, each layer keeps its own float outputs on its drifted inputs.
   */
  reference?: Model;
}

/** The matrix view of a pending weight, or why it keeps nearest codes. */
export function obsLayer(pending: PendingCodes, main: Model['graph']): LayerMatrix | { reason: string } {
  const view = layerMatrix(pending.target, main);
  if ('reason' in view) return view;
  // Codebooks must follow the matrix's rows (its outputs) for a row to have one list of centroids.
  if (pending.axis !== undefined && pending.target.weight.dims[pending.axis] !== view.rows) return { reason: `its codebooks run along axis ${pending.axis}, not its outputs` };
  return view;
}

/**
 * Sweeps each layer of `layers` on its calibration Hessian and hands the codebook with the new
 * codes to `write`, which writes it into `model` (the next rounds' statistics see it).
 */
export async function assignObsCodes<P extends PendingCodes>(
  model: Model,
  layers: readonly { pending: P; view: LayerMatrix }[],
  options: ObsAssignmentOptions,
  ctx: PassContext,
  write: (pending: P, book: Codebook) => void,
): Promise<{ rounds: number; samples: number; skipped: { node: string; reason: string }[] }> {
  const byView = new Map(layers.map((l) => [l.view, l.pending]));
  const pendingNotWritten = new Set(layers.map((l) => l.pending));
  const outcome = await calibrateInRounds(
    model,
    layers.map((l) => l.view),
    { statistic: 'gram', calibration: options.calibration, samples: options.samples ?? OBS_CODE_SAMPLES, purpose: 'cluster: OBS codes', reference: options.reference },
    ctx,
    (view, hessian, cross) => {
      const pending = byView.get(view) as P;
      const { book, axis } = pending;
      const rowGroup = (r: number) => (axis === undefined || book.groupOfChannel === undefined ? 0 : book.groupOfChannel[r]);
      const centroids = Array.from({ length: book.groups }, (_, g) => groupCentroids(book, g, pending.keepZeros));
      const original = view.read();
      let fixed: Uint8Array | undefined;
      if (pending.keepZeros) {
        fixed = new Uint8Array(original.length);
        for (let i = 0; i < original.length; i++) if (original[i] === 0 && book.zeroSlot[rowGroup(Math.floor(i / view.cols))] >= 0) fixed[i] = 1;
      }
      let target = original;
      if (cross !== undefined) {
        target = asymmetricTarget(original, view.rows, view.cols, hessian, cross, options.damping);
        // Pruned zeros stay where they are.
        if (fixed !== undefined) for (let i = 0; i < fixed.length; i++) if (fixed[i] === 1) target[i] = original[i];
      }
      const swept = obsCodes(target, view.rows, view.cols, hessian, (r) => centroids[rowGroup(r)], { damping: options.damping, actOrder: options.actOrder }, fixed);
      const assigned = Float32Array.from(view.write(swept.weights));
      write(pending, withAssignedValues(book, assigned, pending.target.weight.data() as Float32Array, pending.target.weight.dims, axis));
      pendingNotWritten.delete(pending);
    },
  );
  // Layers calibration could not measure (input not float32) keep their nearest codes.
  for (const pending of pendingNotWritten) write(pending, pending.book);
  return outcome;
}
