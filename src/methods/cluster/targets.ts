// The weights weight sharing works on: the constant float32 weights of Conv, ConvTranspose, MatMul,
// Gemm and of embedding Gathers (a 2-D table gathered on axis 0), in the main graph and inside
// If/Loop bodies, chosen by --only and --exclude as pruning chooses (op types or node-name
// regexes). A weight read by several layers is one entry; its first reader gives the channel axis.
import { DataType, dataTypeName } from '../../ir/dtype.js';
import type { Model } from '../../ir/model.js';
import { type LayerChoice, type PruneTarget, weightTargets } from '../prune/layers.js';

export const CLUSTERED_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'Gather']);

/** A weight to cluster: where it is defined and every layer reading it. */
export type ClusterTarget = PruneTarget;

/** The weights to cluster, in graph order, and the layers left alone with why. */
export function clusterTargets(model: Model, choice: LayerChoice): { targets: ClusterTarget[]; skipped: { node: string; reason: string }[] } {
  return weightTargets(model, choice, CLUSTERED_OPS, (node, name, weight, axes) => {
    // A Gather of anything but a 2-D float table on axis 0 is not an embedding (shape arithmetic, indices).
    if (node.opType === 'Gather' && (axes === undefined || weight.dataType !== DataType.FLOAT)) return 'ignore';
    return weight.dataType === DataType.FLOAT ? undefined : `weight '${name}' is ${dataTypeName(weight.dataType)}; only float32 weights are clustered`;
  });
}
